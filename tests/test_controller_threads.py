"""One owner per thread: every datagram of a call is read and sent by the media thread (ZRTP,
SRTP, RTCP alike), while the loop runs SAS confirmation, hold and hang-up through commands;
nothing raises and the audio stays right."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallFinished, CallHeld, CallIncoming, CallSecure
from pidphone.app.controller import Controller, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import UdpSocket, open_udp
from pidphone.ports import Address
from pidphone.rtp import PacketKind, classify
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy
from pidphone.zrtp.cache import MemoryZidCache
from tests.test_controller import Phone, Screens, strongest

ANYONE = CallerPolicy(anyone=True)
"""Listeners here let any TLS client in: these tests are about calls, not admission."""

RTCP_INTERVAL = 0.1
"""Short, so that RTCP reports go out and come in many times during the test."""


class WatchedSocket(UdpSocket):
    """The UDP driver's socket, noting which thread reads and sends each kind of datagram."""

    def __init__(self, inner: UdpSocket, seen: dict[str, set[PacketKind]]) -> None:
        self.__dict__.update(inner.__dict__)
        self._seen = seen

    def receive(self, limit: int) -> list[tuple[bytes, Address, float]]:
        got = super().receive(limit)
        self._note("read", [data for data, _, _ in got])
        return got

    def sendto(self, data: bytes, addr: Address) -> str | None:
        self._note("sent", [data])
        return super().sendto(data, addr)

    def _note(self, what: str, datagrams: list[bytes]) -> None:
        kinds = self._seen.setdefault(f"{what} on {threading.current_thread().name}", set())
        kinds.update(classify(data) for data in datagrams)


async def make(
    name: str, tone: float, pki: Pki, *, listen: bool, seen: dict[str, set[PacketKind]]
) -> Phone:
    server = (
        TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0, callers=ANYONE)
        if listen
        else None
    )
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = SimAudioDevices(tone_frequency=tone)
    screens = Screens()
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(
                call=CallSettings(media=MediaConfig(rtcp_interval=RTCP_INTERVAL))
            ),
            phone=pe.PhoneSettings(account=name),
            secure_tone=False,  # what is heard is the peer at once (tests/test_security_tones.py)
        ),
        UserAgent(AgentConfig(aor=f"sips:{name}@127.0.0.1", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        lambda host, port: WatchedSocket(open_udp(host, port), seen),
        audio=audio,
        display=screens,
    )
    phone = Phone(engine, audio, screens, transport)
    engine.add_listener(phone.events.append)
    await engine.start()
    return phone


def test_the_media_thread_owns_the_sockets_while_the_loop_runs_sas_hold_and_hang_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        seen: dict[str, set[PacketKind]] = {}
        bob = await make("bob", 700, pki, listen=True, seen={})
        alice = await make("alice", 1000, pki, listen=False, seen=seen)
        try:
            assert bob.transport.listening is not None
            call = await alice.engine.place_call(f"sips:bob@127.0.0.1:{bob.transport.listening[1]}")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            (incoming,) = bob.engine.calls()
            bob.engine.answer(incoming.call_id)
            # ZRTP runs on the media threads, as the audio does.
            await alice.until(lambda e: isinstance(e, CallSecure))
            await bob.until(lambda e: isinstance(e, CallSecure))
            await asyncio.sleep(0.6)
            assert abs(strongest(bob.heard(10)) - 1000) < 30
            assert abs(strongest(alice.heard(10)) - 700) < 30
            alice.engine.confirm_sas(call.call_id, True)
            bob.engine.confirm_sas(incoming.call_id, True)

            for _ in range(3):  # hold and resume while the ticks run
                alice.engine.hold(call.call_id, True)
                await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
                await asyncio.sleep(0.3)
                alice.engine.hold(call.call_id, False)
                await bob.until(
                    lambda e: isinstance(e, CallHeld) and not e.remote_hold, timeout=10.0
                )
                bob.events.clear()
            await asyncio.sleep(0.6)
            assert abs(strongest(bob.heard(10)) - 1000) < 30
            assert abs(strongest(alice.heard(10)) - 700) < 30

            # RTP, RTCP and ZRTP came and went on the media thread, and nowhere else.
            stats = await alice.engine.media_stats(call)
            assert stats.rtcp_sent >= 3 and stats.rtcp_received >= 3
            every = {PacketKind.RTP, PacketKind.RTCP, PacketKind.ZRTP}
            assert seen.keys() == {"read on media", "sent on media"}
            assert seen["read on media"] >= every and seen["sent on media"] >= every
            assert stats.dropped == 0
            assert call.secured is not None
            entry = alice.engine.cache.load(call.secured.peer_zid)
            assert entry is not None and entry.verified

            alice.engine.hangup(call.call_id)
            await bob.until(lambda e: isinstance(e, CallFinished) and e.by_peer)
            await asyncio.sleep(0.2)  # ticks after the hang-up find no call
            assert alice.engine.calls() == [] and bob.engine.calls() == []
        finally:
            await alice.engine.stop()
            await bob.engine.stop()

    asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
