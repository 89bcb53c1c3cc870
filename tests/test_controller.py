"""Two phones over real TLS and UDP on loopback, driven through the phone's keys: ringing,
answer, DTMF, hold and resume, mute, hang-up by hook, and what the screen shows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallDtmf, CallFinished, CallHeld, CallIncoming, CallSecure
from pidphone.app.call_state import CallState
from pidphone.app.controller import Controller, ControllerEvent, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.media_messages import CloseMedia
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.audio.analysis import dominant_frequencies, rms
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import Address, HookEvent, KeyEvent, Screen, SipTransportHandler
from pidphone.rtp import stun
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy
from pidphone.zrtp.cache import CacheEntry, MemoryZidCache

ANYONE = CallerPolicy(anyone=True)
"""Listeners here let any TLS client in: these tests are about calls, not admission."""


class Screens:
    def __init__(self) -> None:
        self.shown: list[Screen] = []

    def show(self, screen: Screen) -> None:
        self.shown.append(screen)

    def close(self) -> None:
        pass


@dataclass
class Phone:
    engine: Controller
    audio: SimAudioDevices
    screens: Screens
    transport: TlsTransport
    events: list[ControllerEvent] = field(default_factory=list)

    def key(self, name: str) -> None:
        self.engine.press(KeyEvent(name))

    def heard(self, frames: int = 25) -> bytes:
        return b"".join(list(self.audio.playbacks["call"].frames)[-frames:])

    async def until(self, check: Callable[[ControllerEvent], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not any(check(e) for e in self.events):
                await asyncio.sleep(0.02)


async def make(
    name: str,
    tone: float,
    pki: Pki,
    *,
    listen: bool,
    dials: dict[str, str],
    audio: SimAudioDevices | None = None,
    screens: Screens | None = None,
) -> Phone:
    server = (
        TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0, callers=ANYONE)
        if listen
        else None
    )
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = audio or SimAudioDevices(tone_frequency=tone)
    screens = screens or Screens()
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(call=CallSettings(media=MediaConfig())),
            phone=pe.PhoneSettings(account=name, speed_dials=dials),
            secure_tone=False,  # what is heard is the peer at once (tests/test_security_tones.py)
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


PKIS: dict[Path, Pki] = {}
"""The test PKI of each test's two_phones(), for a third phone."""


@asynccontextmanager
async def two_phones(tmp_path: Path) -> AsyncIterator[tuple[Phone, Phone]]:
    pki = PKIS[tmp_path] = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
    bob = await make("bob", 700, pki, listen=True, dials={})
    assert bob.transport.listening is not None
    uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
    alice = await make("alice", 1000, pki, listen=False, dials={"1": uri})
    try:
        yield alice, bob
    finally:
        await alice.engine.stop()
        await bob.engine.stop()


async def connect(alice: Phone, bob: Phone) -> None:
    alice.key("speed1")
    await bob.until(lambda e: isinstance(e, CallIncoming))
    bob.engine.press(HookEvent(off_hook=True))  # lifting the handset answers
    await alice.until(lambda e: isinstance(e, CallSecure))
    await bob.until(lambda e: isinstance(e, CallSecure))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def strongest(pcm: bytes) -> float:
    found = dominant_frequencies(pcm, count=1)
    return found[0] if found else 0.0


def test_ring_answer_by_hook_secure_screen_and_hang_up(tmp_path: Path) -> None:
    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            await asyncio.sleep(0.6)
            # Alice hears the ETSI ringback (425 Hz) while Bob's ringer plays 1100 + 1400 Hz.
            assert abs(strongest(alice.heard()) - 425) < 15
            ring = bob.audio.playbacks["ring"].played()
            assert sorted(round(f, -2) for f in dominant_frequencies(ring)) == [1100, 1400]
            assert bob.screens.shown[-1].title.lower().startswith("incoming")
            bob.engine.press(HookEvent(off_hook=True))
            await until(lambda: bob.audio.playbacks["ring"].closed)  # the ringer stops
            await alice.until(lambda e: isinstance(e, CallSecure))
            await bob.until(lambda e: isinstance(e, CallSecure))
            await asyncio.sleep(0.8)
            secure = next(e for e in alice.events if isinstance(e, CallSecure))
            assert alice.screens.shown[-1].big == secure.secured.sas
            assert "secure" in alice.screens.shown[-1].icons
            assert abs(strongest(alice.heard()) - 700) < 20
            assert abs(strongest(bob.heard()) - 1000) < 20
            bob.engine.press(HookEvent(off_hook=False))  # Bob hangs up
            await alice.until(lambda e: isinstance(e, CallFinished))
            finished = next(e for e in alice.events if isinstance(e, CallFinished))
            assert finished.by_peer

    asyncio.run(main())


def test_dtmf_hold_resume_and_mute_from_the_keys(tmp_path: Path) -> None:
    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            await connect(alice, bob)
            for key in "42#":
                alice.key(key)
                await asyncio.sleep(0.3)
            await bob.until(lambda e: isinstance(e, CallDtmf) and e.dtmf.key == "#")
            assert [e.dtmf.key for e in bob.events if isinstance(e, CallDtmf)] == ["4", "2", "#"]

            alice.key("mute")
            await asyncio.sleep(0.6)
            assert rms(bob.heard(10)) < 50  # Bob hears silence from a muted Alice
            alice.key("mute")
            await asyncio.sleep(0.6)
            assert abs(strongest(bob.heard(10)) - 1000) < 30

            alice.key("hold")
            await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
            await asyncio.sleep(0.5)
            assert rms(bob.heard(10)) < 50
            assert alice.screens.shown[-1].icons >= {"hold"}
            alice.key("hold")  # resume
            await bob.until(lambda e: isinstance(e, CallHeld) and not e.remote_hold)
            await asyncio.sleep(0.6)
            assert abs(strongest(bob.heard(10)) - 1000) < 30
            # Still the first exchange's keys: one SAS event on each side.
            assert sum(isinstance(e, CallSecure) for e in alice.events) == 1

    asyncio.run(main())


class RecordingTransport:
    """A SIP transport whose flows open at once and whose bytes are kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.handler: SipTransportHandler | None = None

    async def start(self, handler: SipTransportHandler) -> None:
        self.handler = handler

    def connect(self, peer: Address) -> None:
        assert self.handler is not None
        self.handler.connection_made(peer, ("192.0.2.10", 40000))

    def send(self, data: bytes, peer: Address) -> None:
        self.sent.append(data)

    def close(self, peer: Address) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_the_sdp_names_the_address_that_routes_to_the_peer() -> None:
    asked: list[str] = []

    async def route_to(host: str) -> str:
        asked.append(host)
        return "192.0.2.10"

    async def main() -> bytes:
        transport = RecordingTransport()
        engine = Controller(
            ControllerSettings(calls=SwitchboardSettings(media_bind="0.0.0.0")),
            UserAgent(AgentConfig(aor="sips:alice@192.0.2.10", keepalive_interval=0)),
            transport,
            MemoryZidCache(),
            open_udp,
            local_address=route_to,
        )
        await engine.start()
        try:
            call = await engine.place_call("sips:bob@198.51.100.7:5061")
            assert call.media_port > 0
        finally:
            await engine.stop()
        return next(data for data in transport.sent if data.startswith(b"INVITE"))

    invite = asyncio.run(main())
    assert asked == ["198.51.100.7"]
    assert b"c=IN IP4 192.0.2.10\r\n" in invite


def test_with_an_account_a_direct_call_routes_media_towards_the_called_host() -> None:
    asked: list[str] = []

    async def route_to(host: str) -> str:
        asked.append(host)
        return "192.0.2.10"

    async def main() -> None:
        engine = Controller(
            ControllerSettings(calls=SwitchboardSettings(media_bind="0.0.0.0", register=False)),
            UserAgent(
                AgentConfig(
                    aor="sips:alice@example.org",
                    registrar=("192.0.2.1", 5061),
                    keepalive_interval=0,
                )
            ),
            RecordingTransport(),
            MemoryZidCache(),
            open_udp,
            local_address=route_to,
        )
        await engine.start()
        try:
            await engine.place_call("sips:bob@198.51.100.7:5061")  # a phone's own listener
            await engine.place_call("carol")  # through the registrar
        finally:
            await engine.stop()

    asyncio.run(main())
    assert asked == ["198.51.100.7", "192.0.2.1"]


def test_call_waiting_holds_the_first_call_and_answers_the_second(tmp_path: Path) -> None:
    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            await connect(alice, bob)
            assert bob.transport.listening is not None
            bob_uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
            carol = await make("carol", 500, PKIS[tmp_path], listen=False, dials={"1": bob_uri})
            try:
                carol.key("speed1")
                await bob.until(lambda e: isinstance(e, CallIncoming) and "carol" in e.remote_uri)
                await asyncio.sleep(0.3)
                bob.key("answer")  # takes Carol's call and puts Alice on hold
                await alice.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
                await carol.until(lambda e: isinstance(e, CallSecure))
                await asyncio.sleep(0.8)
                assert abs(strongest(bob.heard(10)) - 500) < 20  # Bob hears Carol now
                assert rms(alice.heard(10)) < 50  # and Alice hears nothing while held
                assert len(bob.engine.calls()) == 2
            finally:
                await carol.engine.stop()

    asyncio.run(main())


def test_with_a_stun_server_the_sdp_names_the_mapped_address() -> None:
    async def main() -> bytes:
        server = open_udp("127.0.0.1", 0)

        def answer() -> None:
            for data, source, _ in server.receive(8):
                request = stun.parse_message(data)
                mapped = stun.build_binding_response(request.transaction_id, "203.0.113.9", 41000)
                server.sendto(mapped, source)

        asyncio.get_running_loop().add_reader(server.fileno(), answer)
        transport = RecordingTransport()
        engine = Controller(
            ControllerSettings(
                calls=SwitchboardSettings(media_bind="127.0.0.1", stun_server=server.local)
            ),
            UserAgent(AgentConfig(aor="sips:alice@127.0.0.1", keepalive_interval=0)),
            transport,
            MemoryZidCache(),
            open_udp,
        )
        await engine.start()
        try:
            await engine.place_call("sips:bob@127.0.0.1:5061")
        finally:
            await engine.stop()
            asyncio.get_running_loop().remove_reader(server.fileno())
            server.close()
        return next(data for data in transport.sent if data.startswith(b"INVITE"))

    invite = asyncio.run(main())
    assert b"c=IN IP4 203.0.113.9\r\n" in invite
    assert b"m=audio 41000 RTP/AVP " in invite


def test_confirming_the_sas_after_the_media_closed_is_ignored(tmp_path: Path) -> None:
    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            await connect(alice, bob)
            (call,) = alice.engine.calls()
            worker = alice.engine.worker
            assert worker is not None
            worker.send(CloseMedia(call.media_id))  # ZRTP is gone; the SAS was shown before
            await until(lambda: call.media.closed)
            alice.engine.confirm_sas(call.call_id, True)
            await asyncio.sleep(0.1)
            assert call.state == CallState.CONNECTED
            assert alice.engine.worker is worker and worker.alive  # no fault: only logged
            assert call.secured is not None
            entry = alice.engine.cache.load(call.secured.peer_zid)
            assert entry is not None and not entry.verified
            (peer,) = bob.engine.calls()
            bob.engine.confirm_sas(peer.call_id, True)  # Bob's side still confirms
            secured = peer.secured
            assert secured is not None

            def verified() -> bool:
                entry = bob.engine.cache.load(secured.peer_zid)
                return entry is not None and entry.verified

            await until(verified)

    asyncio.run(main())


def test_call_milestones_are_logged_with_the_call_id_and_peer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pidphone.app.switchboard")

    async def main() -> tuple[str, str]:
        async with two_phones(tmp_path) as (alice, bob):
            await connect(alice, bob)
            (call,) = alice.engine.calls()
            alice.engine.hangup(call.call_id)
            await bob.until(lambda e: isinstance(e, CallFinished))
            secure = next(e for e in alice.events if isinstance(e, CallSecure))
            return call.call_id, secure.secured.sas

    call_id, sas = asyncio.run(main())
    mine = [r for r in caplog.records if getattr(r, "CALL_ID", None) == call_id]
    said = [r.getMessage().split(":")[0].split(" from ")[0] for r in mine]
    # Alice's side, then Bob's: the same Call-ID ties both ends of one call together.
    for milestone in ("calling sips", "incoming call", "call answered", "call secured"):
        assert any(m.startswith(milestone) for m in said), (milestone, said)
    assert said.count("call ended") == 2
    peers = {r.__dict__["PEER"] for r in mine}
    assert any("bob@127.0.0.1" in p for p in peers)
    assert any("alice@127.0.0.1" in p for p in peers)
    assert {r.__dict__.get("SAS_VERIFIED") for r in mine} == {None, "no"}
    assert not any(sas in r.getMessage() for r in caplog.records)


def test_mismatch_is_settled_by_one_press_and_journalled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bob's phone lost its secrets between two calls: Alice's shows the mismatch warning;
    one press of SAS matches closes it, verifies and keeps the new secret, and the journal
    says mismatch, then confirmed. SAS differs on the next mismatch ends the call."""
    caplog.set_level(logging.INFO, logger="pidphone.app.switchboard")

    async def secure_call(alice: Phone, bob: Phone) -> str:
        alice.events.clear()
        bob.events.clear()
        await connect(alice, bob)
        (call,) = alice.engine.calls()
        return call.call_id

    async def end(alice: Phone, bob: Phone, call_id: str) -> None:
        alice.engine.hangup(call_id)
        await bob.until(lambda e: isinstance(e, CallFinished))
        await alice.until(lambda e: isinstance(e, CallFinished))
        bob.engine.press(HookEvent(off_hook=False))  # Bob puts the handset down

    async def main() -> None:
        async with two_phones(tmp_path) as (alice, bob):
            ours = alice.engine.cache
            await end(alice, bob, await secure_call(alice, bob))
            bob_zid = bob.engine.cache.our_zid
            alice_zid = ours.our_zid
            bob.engine.cache.store(alice_zid, CacheEntry())  # Bob's secrets are gone
            call_id = await secure_call(alice, bob)
            await until(lambda: alice.screens.shown[-1].status == "SECRET MISMATCH")
            alice.key("sas_confirm")
            await until(lambda: alice.screens.shown[-1].verified)

            def settled() -> bool:
                entry = ours.load(bob_zid)
                return entry is not None and entry.verified and not entry.mismatch

            await until(settled)
            await end(alice, bob, call_id)

            bob.engine.cache.store(alice_zid, CacheEntry())  # and again
            call_id = await secure_call(alice, bob)
            await until(lambda: alice.screens.shown[-1].status == "SECRET MISMATCH")
            alice.key("sas_reject")
            await bob.until(lambda e: isinstance(e, CallFinished))
            await until(lambda: "SAS rejected" in alice.screens.shown[-1].lines)
            assert alice.screens.shown[-1].alert
            # the media thread applies the rejection: wait for the cache to say so

            def erased() -> bool:
                entry = ours.load(bob_zid)
                return entry is not None and entry.rs1 is None and not entry.verified

            await until(erased)

    asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    mismatch = [m for m in said if m.startswith("cached secret mismatch")]
    assert len(mismatch) == 2
    assert said.index(mismatch[0]) < said.index("SAS confirmed by the user")
    assert any(m.startswith("SAS REJECTED by the user") for m in said)


def test_audio_volume_is_set_at_start_and_the_ringer_has_its_own_level() -> None:
    """audio.volume reached the mixer only at the first volume key; audio.ring_volume was
    read nowhere."""
    import struct

    from pidphone.app.phone_ui import Ringer

    async def main() -> SimAudioDevices:
        audio = SimAudioDevices()
        engine = Controller(
            ControllerSettings(phone=pe.PhoneSettings(volume=35)),
            UserAgent(AgentConfig(aor="sips:alice@192.0.2.10", keepalive_interval=0)),
            RecordingTransport(),
            MemoryZidCache(),
            open_udp,
            audio=audio,
            display=Screens(),
        )
        await engine.start()
        try:
            await until(lambda: audio.volume == 35)
        finally:
            await engine.stop()
        return audio

    assert asyncio.run(main()).volume == 35

    def peak(volume: int) -> int:
        audio = SimAudioDevices()
        ringer = Ringer(audio, "etsi", volume)
        ringer.ring(True)
        deadline = time.monotonic() + 5
        while "ring" not in audio.playbacks or len(audio.playbacks["ring"].played()) < 8000:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ringer.close()
        pcm = audio.playbacks["ring"].played()
        samples: tuple[int, ...] = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        return max(abs(s) for s in samples)

    loud, quiet = peak(100), peak(25)
    assert loud > 3000
    assert abs(quiet / loud - 0.25) < 0.02


def test_a_call_to_a_refused_port_says_refused_on_the_screen(tmp_path: Path) -> None:
    async def main() -> None:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        nobody = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = nobody.sockets[0].getsockname()[1]
        nobody.close()
        await nobody.wait_closed()
        alice = await make(
            "alice", 1000, pki, listen=False, dials={"1": f"sips:bob@127.0.0.1:{port}"}
        )
        try:
            alice.engine.press(HookEvent(off_hook=True))
            alice.key("speed1")
            await alice.until(lambda e: isinstance(e, CallFinished))
            finished = next(e for e in alice.events if isinstance(e, CallFinished))
            assert finished.reason == "Connection refused"
            await until(lambda: alice.screens.shown[-1].title == "Call failed:")
            assert alice.screens.shown[-1].lines[0] == "Connection refused"
        finally:
            await alice.engine.stop()

    asyncio.run(main())
