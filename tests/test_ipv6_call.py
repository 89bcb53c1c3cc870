"""A call over IPv6 carries audio both ways: the media socket follows the signalling's address
family. It used to bind 0.0.0.0 while the SDP said ::1, so the call secured nothing, carried
no audio and ended after ~12 s blaming the peer ("Peer does not support ZRTP")."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallFinished, CallIncoming, CallSecure
from pidphone.app.controller import Controller, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import local_address_towards, open_udp
from pidphone.ports import HookEvent
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from tests.test_controller import ANYONE, Phone, Screens, strongest


async def make(name: str, tone: float, pki: Pki, *, listen: bool, dials: dict[str, str]) -> Phone:
    server = (
        TlsServerConfig(str(pki.server_cert), str(pki.server_key), "::1", 0, callers=ANYONE)
        if listen
        else None
    )
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = SimAudioDevices(tone_frequency=tone)
    screens = Screens()
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(
                call=CallSettings(media=MediaConfig()), media_bind="0.0.0.0", register=False
            ),
            phone=pe.PhoneSettings(account=name, speed_dials=dials),
            secure_tone=False,  # what is heard is the peer at once (tests/test_security_tones.py)
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


def test_a_call_over_ipv6_is_secure_with_audio_both_ways(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ["::1"])

    async def main() -> None:
        bob = await make("bob", 700, pki, listen=True, dials={})
        assert bob.transport.listening is not None
        uri = f"sips:bob@[::1]:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri})
        try:
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            bob.engine.press(HookEvent(off_hook=True))
            await alice.until(lambda e: isinstance(e, CallSecure), timeout=10)
            await bob.until(lambda e: isinstance(e, CallSecure), timeout=10)
            await asyncio.sleep(0.8)
            assert abs(strongest(alice.heard()) - 700) < 20  # Bob's tone at Alice
            assert abs(strongest(bob.heard()) - 1000) < 20  # and Alice's at Bob
            (call,) = alice.engine.calls()
            assert call.media_params is not None
            assert ":" in call.media_params.remote_address[0]  # the peer's media is an IPv6 address
            alice.engine.hangup(call.call_id)
            await bob.until(lambda e: isinstance(e, CallFinished))
        finally:
            await alice.engine.stop()
            await bob.engine.stop()

    asyncio.run(main())


def test_a_socket_on_every_interface_takes_ipv4_and_ipv6_peers() -> None:
    """Dual-stack: IPv4 peers keep their plain form on both sides of the socket."""
    sock = open_udp("0.0.0.0", 0)
    try:
        assert sock.dual_stack
        port = sock.local[1]
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as peer:
                peer.bind((host, 0))
                peer.sendto(b"hello " + host.encode(), (host, port))
                for _ in range(100):
                    got = sock.receive(4)
                    if got:
                        break
                    time.sleep(0.01)
                ((data, source, _),) = got
                assert data == b"hello " + host.encode()
                assert source == (host, peer.getsockname()[1])
                sock.sendto(b"back", source)
                assert peer.recvfrom(16)[0] == b"back"
    finally:
        sock.close()
