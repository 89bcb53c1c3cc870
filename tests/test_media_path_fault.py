"""A call whose media path never works is not blamed on the other phone's ZRTP.

The phone used to end such a call with "Peer does not support ZRTP (Error 0xb0)" whatever
happened: a media socket of the wrong family (IPv4 while the SDP said ::1), a firewall, or a
peer that really sent clear RTP. Now the reason says whose side it is on, as far as the phone
can tell: our socket could not send ("Our media failed"), not one datagram came from the peer
("No audio from peer: check network"), or the peer sent media but no ZRTP, or stopped
answering it (the peer's fault, as before). Shown here from the outside: the screens of two
phones over real TLS and UDP on loopback, and `pidphone answer`'s report for a caller whose
media is silent, clear, or ZRTP that never answers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallFinished, CallIncoming
from pidphone.app.controller import Controller, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.cli.call import _answer
from pidphone.cli.common import EXIT_NOT_SECURE
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import local_address_towards, open_udp
from pidphone.ports import HookEvent, Screen
from pidphone.rtp.packet import RtpPacket
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.session import ZrtpSession
from tests.test_call_command import configs
from tests.test_controller import ANYONE, Phone, Screens

QUICK_ZRTP = MediaConfig(zrtp=ZrtpConfig(hello_extension=1.0), secure_timeout=8.0)
"""Hello gives up after its 3.75 s of retransmissions (not 12 s): the tests stay short."""
PATIENT_ZRTP = MediaConfig(zrtp=ZrtpConfig(hello_extension=10.0), secure_timeout=20.0)
"""The other phone waits longer, so that the quick one's own reason is what it shows."""


async def make(
    name: str,
    pki: Pki,
    *,
    media: MediaConfig,
    media_bind: str,
    dials: dict[str, str],
    media_address: str | None = None,
) -> Phone:
    listen = not dials
    server = (
        TlsServerConfig(str(pki.server_cert), str(pki.server_key), "::1", 0, callers=ANYONE)
        if listen
        else None
    )
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = SimAudioDevices(tone_frequency=700)
    screens = Screens()
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(
                call=CallSettings(media=media),
                media_bind=media_bind,
                media_address=media_address,
                register=False,
            ),
            phone=pe.PhoneSettings(account=name, speed_dials=dials),
        ),
        UserAgent(AgentConfig(aor=f"sips:{name}@[::1]", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        open_udp,
        local_address=local_address_towards,
        audio=audio,
        display=screens,
    )
    phone = Phone(engine, audio, screens, transport)
    engine.add_listener(phone.events.append)
    await engine.start()
    return phone


def words(screens: list[Screen]) -> str:
    return "\n".join(" | ".join((s.title, *s.lines)) for s in screens)


@pytest.mark.parametrize("quick", ["alice", "bob"])
def test_a_socket_that_cannot_reach_the_peer_names_our_side_and_the_network(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick: str
) -> None:
    """Alice's media socket is bound to 127.0.0.1 while her SDP names ::1 (a bind address and
    a media address of different families): her datagrams cannot leave, Bob's never reach her.
    Whoever gives up first says why: Alice that her own media failed, Bob that no audio came;
    neither is told that the other phone lacks ZRTP."""
    pki = make_test_pki(tmp_path / "pki", ["::1"])
    caplog.set_level(logging.WARNING, logger="pidphone.media")

    def media(name: str) -> MediaConfig:
        return QUICK_ZRTP if name == quick else PATIENT_ZRTP

    async def main() -> tuple[Phone, Phone]:
        bob = await make("bob", pki, media=media("bob"), media_bind="0.0.0.0", dials={})
        assert bob.transport.listening is not None
        uri = f"sips:bob@[::1]:{bob.transport.listening[1]}"
        alice = await make(
            "alice",
            pki,
            media=media("alice"),
            media_bind="127.0.0.1",
            media_address="::1",
            dials={"1": uri},
        )
        try:
            alice.engine.press(HookEvent(off_hook=True))
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            bob.engine.press(HookEvent(off_hook=True))
            await alice.until(lambda e: isinstance(e, CallFinished), timeout=15)
            await bob.until(lambda e: isinstance(e, CallFinished), timeout=15)
            await asyncio.sleep(0.2)  # the last screens are drawn
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
        return alice, bob

    alice, bob = asyncio.run(main())
    at_alice, at_bob = words(alice.screens.shown), words(bob.screens.shown)
    # what stays up once the call has ended, handset still lifted
    if quick == "alice":
        assert at_alice.endswith("Our media failed: | cannot send to ::1 | Hang up to dial again")
        assert at_bob.endswith("Hung up by peer | Hang up to dial again")
    else:
        assert at_bob.endswith("No audio from peer: | check network | Hang up to dial again")
        assert at_alice.endswith("Hung up by peer | Hang up to dial again")
    assert "ZRTP" not in at_alice + at_bob and "Encryption failed" not in at_alice + at_bob
    assert "media: cannot send to ::1 port" in caplog.text


Media = Callable[[socket.socket, tuple[str, int]], None]
"""What the fake caller does with its media socket every 20 ms."""


class FakeCaller:
    """A caller over real TLS whose media is a plain UDP socket the test drives: `media(sock,
    peer)` is called every 20 ms once the callee's SDP is known."""

    def __init__(self, port: int, ca_file: str, cert: str, key: str) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=ca_file)
        self.context.load_cert_chain(cert, key)

    async def call(self, media: Media) -> None:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname="127.0.0.1"
        )
        body = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            + getattr(media, "sdp", "")
        ).encode()
        head = (
            f"sips:bob@127.0.0.1:{self.port} SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bK-path-{n}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sips:carol@127.0.0.1>;tag=c1\r\n"
            "To: <sips:bob@127.0.0.1:{port}>{to_tag}\r\n"
            "Call-ID: path-fault-1@127.0.0.1\r\n"
        )
        writer.write(
            (
                "INVITE "
                + head.format(n=1, port=self.port, to_tag="")
                + "CSeq: 1 INVITE\r\nContact: <sips:carol@127.0.0.1:5099;transport=tls>\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        try:
            reply = await self._final(reader)
            assert reply.startswith("SIP/2.0 200"), reply
            to_tag = reply.split("\r\nTo: ", 1)[1].split("\r\n", 1)[0].split(">", 1)[1]
            length = int(reply.split("Content-Length: ", 1)[1].split("\r\n", 1)[0])
            sdp = (await reader.readexactly(length)).decode()
            peer = (
                sdp.split("c=IN IP4 ", 1)[1].split("\r\n", 1)[0],
                int(sdp.split("m=audio ", 1)[1].split(" ", 1)[0]),
            )
            writer.write(
                (
                    "ACK "
                    + head.format(n=2, port=self.port, to_tag=to_tag)
                    + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
                ).encode()
            )
            while not writer.is_closing():
                media(rtp, peer)
                try:
                    async with asyncio.timeout(0.02):
                        if not await reader.read(4096):  # the BYE, or the end of the flow
                            return
                except TimeoutError:
                    pass
        finally:
            writer.close()
            rtp.close()

    @staticmethod
    async def _final(reader: asyncio.StreamReader) -> str:
        async with asyncio.timeout(5):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                if not head.startswith("SIP/2.0 1"):
                    return head


def silent(sock: socket.socket, peer: tuple[str, int]) -> None:
    """A caller whose media never reaches us (a firewall on the way)."""


class ClearRtp:
    """A caller without ZRTP: plain PCMU, one packet per 20 ms."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.seq += 1
        packet = RtpPacket(0, self.seq, 160 * self.seq, 0xC1EA2, b"\xff" * 160)
        sock.sendto(bytes(packet), peer)


class HelloOnly:
    """A ZRTP caller that sends Hello but never hears us: it never answers our Hello."""

    def __init__(self) -> None:
        self.zrtp = ZrtpSession(cache=MemoryZidCache(), ssrc=0xC0FFEE, config=ZrtpConfig())
        self.started = False
        self.sdp = f"a=zrtp-hash:{self.zrtp.hello_hash}\r\n"
        """Its SDP says it speaks ZRTP: its Hello is proven the peer's, not a stranger's."""

    def __call__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        now = time.monotonic()
        if not self.started:
            self.started = True
            self.zrtp.start(now)
        timer = self.zrtp.get_timer()
        if timer is not None and timer <= now:
            self.zrtp.handle_timer(now)
        for datagram in self.zrtp.datagrams_to_send():
            sock.sendto(datagram, peer)


@pytest.mark.parametrize(
    ("media", "reason", "line"),
    [
        (
            lambda: silent,
            "No audio from peer: check network",
            "NOT SECURE, ending the call: No audio from peer: check network\n",
        ),
        (
            ClearRtp,
            "Peer does not support ZRTP",
            "NOT SECURE, ending the call: Peer does not support ZRTP (Error 0xb0)\n",
        ),
        (
            HelloOnly,
            "ZRTP failed: Protocol timeout: the peer never answered Hello",
            "NOT SECURE, ending the call: ZRTP failed: Protocol timeout: the peer never "
            "answered Hello (Error 0xb0)\n",
        ),
    ],
    ids=["silent", "clear-rtp", "hello-only"],
)
def test_answer_names_whose_side_the_failure_is_on(
    tmp_path: Path,
    media: Callable[[], Media],
    reason: str,
    line: str,
) -> None:
    """`pidphone answer` under "require" hears nothing, clear RTP, or Hellos that never answer
    ours: only the last two blame the caller's phone (with ZRTP's Error code)."""
    caller, callee, port = configs(tmp_path)
    callee = replace(callee, security=replace(callee.security, hello_timeout=1.0))
    client = FakeCaller(
        port, caller.server.ca_file, caller.server.client_cert, caller.server.client_key
    )
    drive = media()

    async def main() -> tuple[int, str]:
        out = io.StringIO()
        args = argparse.Namespace(count=1, duration=30.0, json=False)
        answering = asyncio.create_task(_answer(args, callee, out))
        await asyncio.sleep(0.3)
        calling = asyncio.create_task(client.call(drive))
        status = await asyncio.wait_for(answering, 20)
        calling.cancel()
        return status, out.getvalue()

    status, text = asyncio.run(main())
    assert line in text, text
    assert f"result: FAILED (unsecured): {reason}" in text, text
    assert status == EXIT_NOT_SECURE
