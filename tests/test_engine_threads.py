"""The media work on the capture thread: while the audio clock's ticks read, encode, protect and
send on their thread, the loop runs ZRTP, RTCP, SAS confirmation, hold and hang-up on the same
media sessions under the engine's media lock; nothing raises and the audio stays right."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallFinished, CallHeld, CallSecure, CallSettings
from pidphone.app.engine import CallIncoming, Engine, EngineSettings
from pidphone.app.media import MediaConfig, MediaSession
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import Address
from pidphone.rtp import PacketKind, classify
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from tests.test_engine import Phone, Screens, strongest

RTCP_INTERVAL = 0.1
"""Short, so that RTCP reports go out and come in on the loop many times during the test."""


async def make(name: str, tone: float, pki: Pki, *, listen: bool) -> Phone:
    server = TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0) if listen else None
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = SimAudioDevices(tone_frequency=tone)
    screens = Screens()
    engine = Engine(
        EngineSettings(
            call=CallSettings(media=MediaConfig(rtcp_interval=RTCP_INTERVAL)),
            phone=pe.PhoneSettings(account=name),
        ),
        UserAgent(AgentConfig(aor=f"sips:{name}@127.0.0.1", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        open_udp,
        audio=audio,
        display=screens,
    )
    phone = Phone(engine, audio, screens, transport)
    engine.add_listener(phone.events.append)
    await engine.start()
    return phone


def record_threads(media: MediaSession, seen: dict[str, set[PacketKind]]) -> None:
    """Note which thread hands each kind of datagram to the session."""
    receive = media.receive_datagram

    def recording(data: bytes, source: Address, now: float) -> None:
        seen.setdefault(threading.current_thread().name, set()).add(classify(data))
        receive(data, source, now)

    media.receive_datagram = recording  # type: ignore[method-assign]


def test_ticks_on_the_capture_thread_while_the_loop_runs_zrtp_rtcp_hold_and_hang_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)

    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True)
        alice = await make("alice", 1000, pki, listen=False)
        try:
            assert bob.transport.listening is not None
            call = await alice.engine.place_call(f"sips:bob@127.0.0.1:{bob.transport.listening[1]}")
            seen: dict[str, set[PacketKind]] = {}
            record_threads(call.media, seen)
            await bob.until(lambda e: isinstance(e, CallIncoming))
            (incoming,) = bob.engine.calls()
            bob.engine.answer(incoming.call_id)
            # ZRTP runs on the loop while both capture threads tick.
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

            # RTCP came and went on the loop, RTP was read by the capture thread, ZRTP
            # by the loop.
            assert call.media.stats.rtcp_sent >= 3 and call.media.stats.rtcp_received >= 3
            assert PacketKind.RTP in seen.get("audio-capture", set())
            assert PacketKind.ZRTP in seen.get("MainThread", set())
            assert call.media.stats.dropped == 0
            assert call.media.secured is not None
            entry = alice.engine.cache.load(call.media.secured.peer_zid)
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
