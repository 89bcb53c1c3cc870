"""An INVITE the phone cannot use is refused with the right status, over real TLS, and the
media socket opened for it is closed again (its port can be bound at once)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallIncoming
from pidphone.app.controller import Controller, ControllerEvent, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import UdpSocket, open_udp
from pidphone.sip import Frame, Response, StreamFramer, parse_message
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy
from pidphone.zrtp.cache import MemoryZidCache

SDP = (
    "v=0\r\no=mallory 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n"
)


def invite(body: str, call_id: str) -> bytes:
    data = body.encode()
    head = (
        "INVITE sips:bob@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:41000;branch=z9hG4bK" + call_id + ";rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sips:mallory@127.0.0.1>;tag=m1\r\n"
        "To: <sips:bob@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sips:mallory@127.0.0.1:41000>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


OpenSocket = Callable[[str, int], UdpSocket]


async def bob_engine(
    pki: Pki, open_socket: OpenSocket, events: list[ControllerEvent]
) -> tuple[Controller, TlsTransport]:
    transport = TlsTransport(
        TlsClientConfig(ca_file=str(pki.ca_cert)),
        TlsServerConfig(
            str(pki.server_cert), str(pki.server_key), port=0, callers=CallerPolicy(anyone=True)
        ),
    )
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(
                call=CallSettings(media=MediaConfig()), media_bind="127.0.0.1"
            ),
            phone=pe.PhoneSettings(account="bob"),
        ),
        UserAgent(AgentConfig(aor="sips:bob@127.0.0.1", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        open_socket,
        audio=SimAudioDevices(),
    )
    engine.add_listener(events.append)
    await engine.start()
    return engine, transport


async def final_response(pki: Pki, port: int, data: bytes) -> Response:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(data)
    framer = StreamFramer()
    try:
        async with asyncio.timeout(5):
            while True:
                framer.feed(await reader.read(4096))
                while (item := framer.next_item()) is not None:
                    if isinstance(item, Frame):
                        message = parse_message(item.data)
                        if isinstance(message, Response) and message.status >= 200:
                            return message
    finally:
        writer.close()


def port_is_free(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.mark.parametrize(
    ("sdp", "status"),
    [
        (SDP.replace("m=audio 4000", "m=audio 400\u00b2"), 400),  # unreadable
        (SDP.replace("PCMU/8000", "PCMU/800\u00b2"), 488),  # no codec whose rate is a number
    ],
)
def test_an_unusable_invite_is_refused_and_its_socket_closed(
    tmp_path: Path, sdp: str, status: int
) -> None:
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
    opened: list[UdpSocket] = []

    def recording(host: str, port: int) -> UdpSocket:
        sock = open_udp(host, port)
        opened.append(sock)
        return sock

    async def main() -> None:
        events: list[ControllerEvent] = []
        engine, transport = await bob_engine(pki, recording, events)
        try:
            assert transport.listening is not None
            answer = await final_response(pki, transport.listening[1], invite(sdp, "bad1"))
            assert answer.status == status
            assert answer.header("Call-ID") == "bad1"
            assert engine.calls() == []
            assert not any(isinstance(e, CallIncoming) for e in events)
            assert len(opened) == 1
            async with asyncio.timeout(5):  # the media thread closes it as the call ends
                while not port_is_free(opened[0].local[1]):
                    await asyncio.sleep(0.01)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_call_without_a_media_socket_is_refused_500(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])

    def no_sockets(host: str, port: int) -> UdpSocket:
        raise OSError(24, "Too many open files")

    async def main() -> None:
        events: list[ControllerEvent] = []
        engine, transport = await bob_engine(pki, no_sockets, events)
        try:
            assert transport.listening is not None
            answer = await final_response(pki, transport.listening[1], invite(SDP, "nosock"))
            assert answer.status == 500
            assert engine.calls() == []
        finally:
            await engine.stop()

    asyncio.run(main())
