"""The security indication tones, heard in the earpiece and seen on the wire.

A call that goes on NOT SECURE under "prefer" plays six short low beeps in the earpiece, and
not one clear RTP packet leaves before the last of them has been played, nor before NOT SECURE
is drawn when the display works; with the display in fault (an OLED whose I2C bus fails) the
tone alone holds the audio back. A call that becomes secure between two pidphones plays three
high beeps once, and a re-INVITE (hold, resume) that keeps it secure plays nothing new. The
earpiece is the simulated one (real frames at the call's rate, stamped when written), the peer
without ZRTP a caller over real TLS whose UDP socket notes when each of our packets arrives.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import (
    CallFinished,
    CallHeld,
    CallIncoming,
    CallInsecure,
    CallSecure,
    CallSecurityLost,
)
from pidphone.app.controller import Controller, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.media_events import MediaSecurityLost
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.audio import g711
from pidphone.audio.analysis import goertzel_power, rms
from pidphone.audio.tones import indication_length
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.oled import OledDisplay
from pidphone.drivers.sim_audio import SimAudioDevices, SimPlayback
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import FRAME_TIME, AudioPurpose, Display, HookEvent, Screen
from pidphone.rtp.classify import PacketKind, classify
from pidphone.rtp.packet import RtpPacket
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.config import ZrtpConfig
from tests.test_controller import ANYONE, Phone, Screens
from tests.test_device_faults import FlakyBus
from tests.test_media_path_fault import FakeCaller

NOT_SECURE_HZ = 500.0
SECURE_HZ = 1600.0
PEER_HZ = 700.0
QUICK_PREFER = MediaConfig(policy="prefer", zrtp=ZrtpConfig(hello_extension=1.0))
"""Hello gives up after its 3.75 s of retransmissions: the call goes on NOT SECURE then."""


# --------------------------------------------------------------------------- devices


class TimedPlayback(SimPlayback):
    """The simulated earpiece, noting when each frame was written."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.written: list[tuple[float, bytes]] = []

    def write_frame(self, pcm: bytes) -> None:
        super().write_frame(pcm)
        self.written.append((time.monotonic(), pcm))


class TimedAudio(SimAudioDevices):
    """Simulated devices whose earpieces note when each frame was written."""

    def __init__(self, tone_frequency: float) -> None:
        super().__init__(tone_frequency=tone_frequency)
        self.timed: list[TimedPlayback] = []

    def open_playback(self, purpose: AudioPurpose = "call", rate: int = 8000) -> SimPlayback:
        if purpose != "call":
            return super().open_playback(purpose, rate)
        playback = TimedPlayback(rate=rate)
        self.playbacks[purpose] = playback
        self.timed.append(playback)
        return playback

    def earpiece(self) -> list[tuple[float, bytes, int]]:
        """Every earpiece frame so far: (when written, PCM, its rate)."""
        return [(at, pcm, p.rate) for p in self.timed for at, pcm in p.written]


class TimedScreens(Screens):
    def __init__(self) -> None:
        super().__init__()
        self.drawn: list[tuple[float, Screen]] = []

    def show(self, screen: Screen) -> None:
        super().show(screen)
        self.drawn.append((time.monotonic(), screen))


# --------------------------------------------------------------------------- analysis


def beeps(
    frames: list[tuple[float, bytes, int]], frequency: float
) -> list[tuple[float, float, int]]:
    """The bursts of `frequency` in the frames: (first written, last written, frames)."""
    found: list[tuple[float, float, int]] = []
    previous = False
    for at, pcm, rate in frames:
        level = rms(pcm)
        on = level > 1000 and goertzel_power(pcm, frequency, rate) > 0.3 * level**2
        if on and previous:
            first, _, count = found[-1]
            found[-1] = (first, at, count + 1)
        elif on:
            found.append((at, at, 1))
        previous = on
    return found


def hears(frames: list[tuple[float, bytes, int]], frequency: float) -> bool:
    return any(
        rms(pcm) > 1000 and goertzel_power(pcm, frequency, rate) > 0.3 * rms(pcm) ** 2
        for _, pcm, rate in frames
    )


# --------------------------------------------------------------------------- a caller without ZRTP


@dataclass
class ClearTone:
    """A caller without ZRTP: 700 Hz in PCMU every 20 ms; notes what reaches its socket."""

    seq: int = 0
    arrived: list[tuple[float, PacketKind]] = field(default_factory=list)

    def __call__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            self.arrived.append((time.monotonic(), classify(data)))
        start = self.seq * 160
        self.seq += 1
        pcm = struct.pack(
            "<160h",
            *(
                round(8000 * math.sin(2 * math.pi * PEER_HZ * n / 8000))
                for n in range(start, start + 160)
            ),
        )
        packet = RtpPacket(0, self.seq, start, 0xC1EA2, g711.ulaw_encode(pcm))
        sock.sendto(bytes(packet), peer)

    def first(self, kind: PacketKind) -> float | None:
        return next((at for at, k in self.arrived if k == kind), None)


async def callee(pki: Pki, display: Display, audio: SimAudioDevices, port: int = 0) -> Phone:
    server = TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=port, callers=ANYONE)
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(call=CallSettings(media=QUICK_PREFER), register=False),
            phone=pe.PhoneSettings(account="bob"),
        ),
        UserAgent(AgentConfig(aor="sips:bob@127.0.0.1", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        open_udp,
        audio=audio,
        display=display,
    )
    phone = Phone(engine, audio, Screens(), transport)
    engine.add_listener(phone.events.append)
    await engine.start()
    return phone


async def not_secure_call(tmp_path: Path, display: Display, audio: TimedAudio) -> ClearTone:
    """A call from a phone without ZRTP, answered by lifting the handset, until 1.5 s of its
    clear audio have had the time to play."""
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"], client_name="127.0.0.1")
    bob = await callee(pki, display, audio)
    assert bob.transport.listening is not None
    caller = FakeCaller(
        bob.transport.listening[1], str(pki.ca_cert), str(pki.client_cert), str(pki.client_key)
    )
    media = ClearTone()
    calling = asyncio.create_task(caller.call(media))
    try:
        await bob.until(lambda e: isinstance(e, CallIncoming))
        bob.engine.press(HookEvent(off_hook=True))
        await bob.until(lambda e: isinstance(e, CallInsecure), timeout=20)
        async with asyncio.timeout(20):
            while media.first(PacketKind.RTP) is None:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
    finally:
        calling.cancel()
        await bob.engine.stop()
    return media


def check_not_secure_tone_first(audio: TimedAudio, media: ClearTone) -> float:
    """Six short low beeps in the earpiece, then the peer's audio; the first clear RTP left
    after the last beep was played. When the last beep ended."""
    earpiece = audio.earpiece()
    heard = beeps(earpiece, NOT_SECURE_HZ)
    assert len(heard) == 6, heard
    assert all(2 <= count <= 5 for _, _, count in heard), heard  # 80 ms each, 4 periods
    assert heard[-1][1] - heard[0][0] == pytest.approx(0.9, abs=0.15)
    last_beep = heard[-1][1]
    first_rtp = media.first(PacketKind.RTP)
    assert first_rtp is not None
    # the last beep's frame is played out at most two periods after it was written
    assert first_rtp > last_beep + 2 * FRAME_TIME, (first_rtp, last_beep)
    peer = [f for f in earpiece if f[0] > first_rtp]
    assert hears(peer, PEER_HZ)  # then the call goes on in clear, both ways
    assert not hears([f for f in earpiece if f[0] < last_beep], PEER_HZ)
    assert not hears(earpiece, SECURE_HZ)
    return last_beep


def test_not_secure_tone_plays_before_any_clear_audio(tmp_path: Path) -> None:
    audio = TimedAudio(1000)
    screens = TimedScreens()
    media = asyncio.run(not_secure_call(tmp_path, screens, audio))
    check_not_secure_tone_first(audio, media)
    drawn = next(at for at, screen in screens.drawn if screen.big == "NOT SECURE")
    first_rtp = media.first(PacketKind.RTP)
    assert first_rtp is not None and first_rtp > drawn


def test_with_the_display_in_fault_the_tone_alone_holds_clear_audio_back(
    tmp_path: Path,
) -> None:
    bus = FlakyBus()
    bus.broken.set()  # the OLED's I2C bus fails from the start: its screens count as shown
    audio = TimedAudio(1000)
    media = asyncio.run(
        not_secure_call(tmp_path, OledDisplay(lambda: bus, retry_interval=0.0), audio)
    )
    check_not_secure_tone_first(audio, media)
    assert bus.attempts  # the display was tried, and failed


# --------------------------------------------------------------------------- two pidphones


async def make(
    name: str, tone: float, pki: Pki, *, listen: bool, dials: dict[str, str], secure_tone: bool
) -> Phone:
    server = (
        TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0, callers=ANYONE)
        if listen
        else None
    )
    transport = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server)
    audio = TimedAudio(tone)
    engine = Controller(
        ControllerSettings(
            calls=SwitchboardSettings(call=CallSettings(media=MediaConfig(), codecs=("G722",))),
            phone=pe.PhoneSettings(account=name, speed_dials=dials),
            secure_tone=secure_tone,
        ),
        UserAgent(AgentConfig(aor=f"sips:{name}@127.0.0.1", keepalive_interval=0)),
        transport,
        MemoryZidCache(),
        open_udp,
        audio=audio,
        display=Screens(),
    )
    phone = Phone(engine, audio, Screens(), transport)
    engine.add_listener(phone.events.append)
    await engine.start()
    return phone


def test_a_secured_call_plays_the_secure_tone_once(tmp_path: Path) -> None:
    """Alice calls Bob (G.722: the earpiece runs at 16 kHz, and the tone with it); she hears
    three high beeps when the call is secure, then Bob. Hold
    and resume (two re-INVITEs that keep it secure) play nothing more. Bob turned the tone
    off (audio.secure_tone): he hears Alice at once."""

    async def main() -> tuple[Phone, Phone, float]:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={}, secure_tone=False)
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri}, secure_tone=True)
        try:
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            bob.engine.press(HookEvent(off_hook=True))
            await alice.until(lambda e: isinstance(e, CallSecure))
            await bob.until(lambda e: isinstance(e, CallSecure))
            await asyncio.sleep(indication_length("secure") + 0.8)
            resumed_at = time.monotonic()
            alice.key("hold")
            await bob.until(lambda e: isinstance(e, CallHeld) and e.remote_hold)
            await asyncio.sleep(0.3)
            alice.key("hold")
            await bob.until(lambda e: isinstance(e, CallHeld) and not e.remote_hold)
            await asyncio.sleep(1.2)
            alice.key("hangup")
            await bob.until(lambda e: isinstance(e, CallFinished))
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
        return alice, bob, resumed_at

    alice, bob, later = asyncio.run(main())
    assert isinstance(alice.audio, TimedAudio) and isinstance(bob.audio, TimedAudio)
    earpiece = alice.audio.earpiece()
    heard = beeps(earpiece, SECURE_HZ)
    assert len(heard) == 3, heard  # once, and not again after the re-INVITEs
    # 160 ms each (a period or two may be lost to a late tick on a loaded machine)
    assert all(5 <= count <= 8 for _, _, count in heard), heard
    assert heard[-1][0] < later
    during = [f for f in earpiece if heard[0][0] <= f[0] <= heard[-1][1]]
    assert {rate for _, _, rate in during} == {16000}  # the call's rate, not reopened
    assert not hears(earpiece, NOT_SECURE_HZ)
    assert not hears(during, 700)
    assert hears([f for f in earpiece if f[0] > heard[-1][1] + 0.1], 700)  # then Bob
    secured = next(e for e in bob.events if isinstance(e, CallSecure))
    assert secured.secured.sas  # Bob's call was secure too, and he heard no tone
    assert beeps(bob.audio.earpiece(), SECURE_HZ) == []
    assert hears(bob.audio.earpiece(), 1000)


def test_the_security_lost_warning_tone_plays_over_the_call(tmp_path: Path) -> None:
    """SECURITY LOST is heard as well as seen: the reducer's congestion tone plays in place of
    the handset call's audio (it used to wait for the handset to be free of calls, so the
    warning was silent). The loss is told to Alice's phone UI as the media would report it;
    her media goes on, so before the tone she hears Bob."""

    async def main() -> tuple[Phone, float]:
        pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"])
        bob = await make("bob", 700, pki, listen=True, dials={}, secure_tone=False)
        assert bob.transport.listening is not None
        uri = f"sips:bob@127.0.0.1:{bob.transport.listening[1]}"
        alice = await make("alice", 1000, pki, listen=False, dials={"1": uri}, secure_tone=False)
        try:
            alice.key("speed1")
            await bob.until(lambda e: isinstance(e, CallIncoming))
            bob.engine.press(HookEvent(off_hook=True))
            await alice.until(lambda e: isinstance(e, CallSecure))
            await asyncio.sleep(0.6)
            ui = alice.engine.ui
            assert ui is not None
            (call,) = alice.engine.calls()
            lost = MediaSecurityLost("the peer asked to stop encryption (GoClear)")
            lost_at = time.monotonic()
            ui.fact(CallSecurityLost(call.call_id, lost))
            await asyncio.sleep(1.2)
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
        return alice, lost_at

    alice, at = asyncio.run(main())
    assert isinstance(alice.audio, TimedAudio)
    earpiece = alice.audio.earpiece()
    before = [f for f in earpiece if at - 0.5 < f[0] < at]
    after = [f for f in earpiece if at + 0.1 < f[0] < at + 1.1]
    assert hears(before, 700) and not hears(before, 425)
    assert beeps(after, 425) and not hears(after, 700)  # the congestion tone, 0.25 s on/off
