"""How late the audio clock's work runs while the phone's UI is slow, run by hand:

    .venv/bin/python -m bench.realtime [--seconds 20] [--i2c-khz 100] [--ring-ms 50]

Two phones in one process on loopback, as in `pidphone demo`: Alice calls Bob directly over TLS
and the call is secured. Alice's hardware is simulated the way a real Pi behaves where it hurts:
- her display takes as long as a full 128x64 frame (1 KiB) on the I2C bus at `--i2c-khz`
  (~100 ms at the Pi's default 100 kHz, ~25 ms at 400 kHz), sleeping, as the kernel's ioctl
  does, with the interpreter lock released;
- opening and closing her ringer's playback device takes `--ring-ms` each, and a mixer change
  `--mixer-ms`;
- during the call her screen changes several times a second (the mute key every 250 ms, Bob
  holding and resuming the call every 1.5 s), the volume keys move the mixer every second, and
  the ringer opens and closes every two seconds (as it would for a second caller).

Her capture device is paced like a sound card, on absolute 20 ms deadlines with a buffer of
`--periods` periods (the ALSA driver's four); her earpiece plays out its buffer in real time.
Reported: how late each frame was taken from the microphone (median, p99, max) and the
overruns a real card would have had (a frame later than the buffer holds); how long the
earpiece's buffer had run dry when a frame was written (a gap the listener hears: an
underrun).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallIncoming, CallSecure
from pidphone.app.controller import Controller, ControllerEvent, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices, tone_source
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import FRAME_TIME, SAMPLE_RATE, AudioPurpose, KeyEvent, Screen, frame_bytes
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy
from pidphone.zrtp.cache import MemoryZidCache

I2C_FRAME_BITS = 1024 * 9 + 64 * 9
"""A full frame: 1 KiB of pixels, each byte with its ACK bit, plus the command bytes."""


# --------------------------------------------------------------------------- devices


@dataclass
class Lateness:
    """How late a device's frames were handled, against a card with `periods` of buffer."""

    periods: int
    late: list[float] = field(default_factory=list)
    xruns: int = 0

    def record(self, seconds: float) -> None:
        self.late.append(seconds)
        if seconds > (self.periods - 1) * FRAME_TIME:
            self.xruns += 1  # an overrun: the frame waited longer than the buffer holds

    def summary(self, skip: int) -> str:
        values = sorted(self.late[skip:]) or [0.0]
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return (
            f"median {statistics.median(values) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms, "
            f"max {values[-1] * 1000:6.2f} ms, {self.xruns} xruns over {len(values)} frames"
        )


class CardCapture:
    """Frame n is captured at start + n * period; a frame read after that is late by the
    difference. After an overrun the card restarts its schedule, as ALSA does after -EPIPE."""

    def __init__(
        self, lateness: Lateness, source: Callable[[], bytes], rate: int = SAMPLE_RATE
    ) -> None:
        self.rate = self.device_rate = rate
        self._lateness = lateness
        self._source = source
        self._start = time.monotonic()
        self._count = 0

    def next_frame_at(self) -> float:
        return self._start + (self._count + 1) * FRAME_TIME

    def read_frame(self) -> bytes:
        due = self.next_frame_at()
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = time.monotonic()
        self._count += 1
        self._lateness.record(max(0.0, now - due))
        if now - due > (self._lateness.periods - 1) * FRAME_TIME:
            self._start, self._count = now, 0
        return self._source()

    def close(self) -> None:
        """Nothing to release."""


class CardPlayback:
    """A buffer of `periods` periods played out in real time. Records, for each frame
    written, how long the buffer had been dry (an underrun when above zero), and when each
    frame was played and whether it was silent (a tone is expected: a silent frame while the
    call is not on hold is a gap the listener hears). A writer that runs ahead (the ringer)
    waits while the buffer is full."""

    def __init__(self, dry: Lateness, close_seconds: float = 0.0, rate: int = SAMPLE_RATE) -> None:
        self.rate = self.device_rate = rate
        self._frame_bytes = frame_bytes(rate)
        self._dry = dry
        self._close_seconds = close_seconds
        self._until: float | None = None
        self.played: list[tuple[float, bool]] = []

    def write_frame(self, pcm: bytes) -> None:
        if len(pcm) != self._frame_bytes:
            raise ValueError(f"a frame is {self._frame_bytes} bytes")
        now = time.monotonic()
        until = self._until
        if until is None:
            until = now
        elif until < now:
            self._dry.record(now - until)
            self._dry.xruns += 1
            until = now
        else:
            self._dry.record(0.0)
        ahead = until - now
        if ahead >= self._dry.periods * FRAME_TIME:
            time.sleep(ahead - (self._dry.periods - 1) * FRAME_TIME)
        self._until = until + FRAME_TIME
        self.played.append((self._until, not any(pcm)))

    def close(self) -> None:
        time.sleep(self._close_seconds)


class SlowDevices:
    """Alice's handset and ringer: card-paced, with slow ringer opens/closes and mixer."""

    def __init__(self, periods: int, ring_seconds: float, mixer_seconds: float) -> None:
        self.capture_late = Lateness(periods)
        self.playback_late = Lateness(periods)
        self._ring_seconds = ring_seconds
        self._mixer_seconds = mixer_seconds
        self.ring_opens = 0
        self.volume_changes = 0
        self.earpiece: CardPlayback | None = None

    def open_capture(self, rate: int = SAMPLE_RATE) -> CardCapture:
        return CardCapture(self.capture_late, tone_source(1000.0, rate), rate)

    def open_playback(
        self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE
    ) -> CardPlayback:
        if purpose == "ring":
            self.ring_opens += 1
            time.sleep(self._ring_seconds)
            return CardPlayback(Lateness(self.playback_late.periods), self._ring_seconds, rate)
        self.earpiece = CardPlayback(self.playback_late, rate=rate)
        return self.earpiece

    def set_volume(self, percent: int) -> None:
        self.volume_changes += 1
        time.sleep(self._mixer_seconds)


class SlowDisplay:
    """A display whose every frame takes as long as the I2C bus needs for it."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self.frames = 0
        self.busy = 0.0

    def show(self, screen: Screen) -> None:
        start = time.monotonic()
        time.sleep(self._seconds)
        self.frames += 1
        self.busy += time.monotonic() - start

    def close(self) -> None:
        """Nothing to release."""


# --------------------------------------------------------------------------- phones


@dataclass
class Phone:
    engine: Controller
    transport: TlsTransport
    secure: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: ControllerEvent) -> None:
        if isinstance(event, CallSecure):
            self.secure.set()
        elif isinstance(event, CallIncoming):  # Bob, headless, answers at once
            self.engine.answer(event.call_id)


async def make_phone(
    name: str,
    ca: str,
    server: TlsServerConfig | None,
    audio: SimAudioDevices | SlowDevices,
    display: SlowDisplay | None,
    speed_dials: dict[str, str],
) -> Phone:
    agent = UserAgent(
        AgentConfig(aor=f"sips:{name}@127.0.0.1", display_name=name, keepalive_interval=0)
    )
    transport = TlsTransport(TlsClientConfig(ca_file=ca), server)
    settings = ControllerSettings(
        calls=SwitchboardSettings(
            call=CallSettings(media=MediaConfig(policy="require"), media_host="127.0.0.1"),
            media_bind="127.0.0.1",
        ),
        phone=None if display is None else pe.PhoneSettings(account=name, speed_dials=speed_dials),
    )
    engine = Controller(
        settings, agent, transport, MemoryZidCache(), open_udp, audio=audio, display=display
    )
    phone = Phone(engine, transport)
    engine.add_listener(phone.on_event)
    await engine.start()
    return phone


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace) -> int:
    display_seconds = I2C_FRAME_BITS / (args.i2c_khz * 1000)
    devices = SlowDevices(args.periods, args.ring_ms / 1000, args.mixer_ms / 1000)
    display = SlowDisplay(display_seconds)
    with tempfile.TemporaryDirectory(prefix="pidphone-realtime-") as tmp:
        pki = make_test_pki(Path(tmp) / "pki", ["127.0.0.1"])
        server = TlsServerConfig(
            cert_file=str(pki.server_cert),
            key_file=str(pki.server_key),
            host="127.0.0.1",
            port=0,
            callers=CallerPolicy(anyone=True),
        )
        bob = await make_phone(
            "bob", str(pki.ca_cert), server, SimAudioDevices(tone_frequency=700.0), None, {}
        )
        listening = bob.transport.listening
        if listening is None:
            print("bob's listener did not start", file=sys.stderr)
            return 1
        alice = await make_phone(
            "alice",
            str(pki.ca_cert),
            None,
            devices,
            display,
            {"1": f"sips:bob@127.0.0.1:{listening[1]}"},
        )
        try:
            alice.engine.press(KeyEvent("speed1"))
            await asyncio.wait_for(alice.secure.wait(), 15)
            skip = len(devices.capture_late.late)
            skip_play = len(devices.playback_late.late)
            xruns = (devices.capture_late.xruns, devices.playback_late.xruns)
            devices.capture_late.xruns = devices.playback_late.xruns = 0
            frames_before, busy_before = display.frames, display.busy
            start = time.monotonic()
            holds: list[tuple[float, bool]] = []
            await drive_ui(alice.engine, bob.engine, args.seconds, holds)
            earpiece = devices.earpiece.played if devices.earpiece else []
            print(
                f"display {display_seconds * 1000:.0f} ms per frame ({args.i2c_khz} kHz I2C): "
                f"{display.frames - frames_before} frames, "
                f"{display.busy - busy_before:.1f} s busy in {args.seconds:.0f} s; "
                f"ringer opened {devices.ring_opens} times ({args.ring_ms} ms open/close), "
                f"mixer changed {devices.volume_changes} times ({args.mixer_ms} ms)"
            )
            print(f"capture : {devices.capture_late.summary(skip)}")
            print(f"earpiece dry: {devices.playback_late.summary(skip_play)}")
            print(
                f"earpiece: {gaps(earpiece, start + 0.5, holds)} silent frames while the call "
                "was not on hold (gaps: the playback queue ran dry)"
            )
            print(f"(before the call was secured: {xruns[0]} + {xruns[1]} xruns, not counted)")
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
    return 0


HOLD_MARGIN = 0.3
"""Seconds around each hold or resume in which a silent earpiece frame is not a gap."""


def gaps(played: list[tuple[float, bool]], start: float, holds: list[tuple[float, bool]]) -> int:
    """Silent frames after `start`, outside the held spans and their margins."""
    count = 0
    for at, silent in played:
        if not silent or at < start:
            continue
        held_now = False
        near = False
        for toggled_at, held in holds:
            if toggled_at <= at:
                held_now = held
            near = near or abs(at - toggled_at) < HOLD_MARGIN
        if not held_now and not near:
            count += 1
    return count


async def drive_ui(
    alice: Controller, bob: Controller, seconds: float, holds: list[tuple[float, bool]]
) -> None:
    """Alice presses mute every 250 ms and a volume key every second; her ringer opens or
    closes every second (as for a second caller); Bob puts the call on hold or resumes it
    every 1.5 s (a re-INVITE whose event changes Alice's screen)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    step = 0
    held = False
    while loop.time() < end:
        await asyncio.sleep(0.25)
        step += 1
        alice.press(KeyEvent("mute"))
        if step % 4 == 0:
            alice.press(KeyEvent("volume_up" if step % 8 else "volume_down"))
            if alice.ui is not None:
                alice.ui.ring(step % 8 == 4)
        if step % 6 == 0:
            held = not held
            holds.append((time.monotonic(), held))
            for call in bob.calls():
                bob.hold(call.call_id, held)
    if alice.ui is not None:
        alice.ui.ring(False)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--i2c-khz", type=int, default=100, help="the display's I2C clock")
    parser.add_argument("--ring-ms", type=int, default=50, help="ringer open and close time")
    parser.add_argument("--mixer-ms", type=int, default=20, help="one mixer change")
    parser.add_argument("--periods", type=int, default=4, help="periods in the card's buffer")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    threading.current_thread().name = "loop"
    sys.exit(main())
