"""`pidphone demo`: two simulated phones on loopback place a secure call, start to finish.

No hardware and no SIP server: throw-away certificates are made in a temporary directory, Bob
listens for SIP over TLS on 127.0.0.1, and Alice calls him directly
(`sips:bob@127.0.0.1:<port>`) with a speed-dial key. Bob answers with a key, ZRTP runs on the
media path, both phones show the same SAS, and each sends a tone through SRTP (Alice 1000 Hz,
Bob 700 Hz) from a simulated microphone paced by a real clock; what each received is decoded
and its frequency checked. The screens are printed as text and saved as PNG. Alice hangs up
and a summary follows. Exit status 0 only when all of that worked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pidphone.app import phone_events as pe
from pidphone.app.call import Call, CallFinished, CallSecure, CallSettings
from pidphone.app.engine import CallIncoming, Engine, EngineEvent, EngineSettings
from pidphone.app.media import MediaConfig
from pidphone.audio.analysis import dominant_frequencies
from pidphone.audio.tones import ToneGenerator, ToneSpec
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import FRAME_BYTES, AudioCapture, AudioPlayback, AudioPurpose, KeyEvent, Screen
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache

log = logging.getLogger("pidphone.demo")

ALICE_TONE = 1000.0
BOB_TONE = 700.0
TONE_TOLERANCE = 25.0
"""Hz: how far the strongest received frequency may be from the tone sent."""
AUDIO_SECONDS = 3.0
"""How long the secured call carries audio before Alice hangs up."""
TIMEOUT = 12.0
"""Seconds for each step (answer, SAS) before the demo gives up."""


# --------------------------------------------------------------------------- simulated audio


class _Pacer:
    """A 20 ms period on the monotonic clock: the simulated device's media clock."""

    def __init__(self) -> None:
        self._next = time.monotonic()

    def wait(self) -> None:
        self._next += 0.02
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.2:  # far behind (a busy machine): do not try to catch up
            self._next = time.monotonic()


class ToneMicrophone:
    """Captures a steady tone (or silence at 0 Hz), or loops raw S16_LE PCM from a file."""

    def __init__(self, frequency: float, pcm: bytes = b"") -> None:
        self._tone = ToneGenerator.from_spec(ToneSpec((frequency,))) if frequency > 0 else None
        self._pcm = pcm[: len(pcm) - len(pcm) % FRAME_BYTES]
        self._offset = 0
        self._pacer = _Pacer()

    def read_frame(self) -> bytes:
        self._pacer.wait()
        if self._pcm:
            frame = self._pcm[self._offset : self._offset + FRAME_BYTES]
            self._offset = (self._offset + FRAME_BYTES) % len(self._pcm)
            return frame
        return self._tone.frame() if self._tone is not None else bytes(FRAME_BYTES)

    def close(self) -> None:
        pass


class RecordingEarpiece:
    """Plays into a list (and a raw PCM file when given), one frame per period."""

    def __init__(self, out_file: Path | None = None) -> None:
        self.frames: list[bytes] = []
        self._pacer = _Pacer()
        self._file = out_file.open("wb") if out_file is not None else None

    def write_frame(self, pcm: bytes) -> None:
        self._pacer.wait()
        self.frames.append(pcm)
        if self._file is not None:
            self._file.write(pcm)

    def mark(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SimulatedAudio:
    """The `AudioDevices` port of a simulated phone: a tone or file in, a recording out."""

    def __init__(
        self, frequency: float, *, in_pcm: bytes = b"", out_file: Path | None = None
    ) -> None:
        self.microphone = ToneMicrophone(frequency, in_pcm)
        self.earpiece = RecordingEarpiece(out_file)
        self.volume = 80

    def open_capture(self) -> AudioCapture:
        return self.microphone

    def open_playback(self, purpose: AudioPurpose = "call") -> AudioPlayback:
        return self.earpiece

    def set_volume(self, percent: int) -> None:
        self.volume = percent


class _ScreenLog:
    """The `Display` port: keeps every screen shown."""

    def __init__(self) -> None:
        self.screens: list[Screen] = []

    def show(self, screen: Screen) -> None:
        self.screens.append(screen)

    def close(self) -> None:
        pass


def screen_text(screen: Screen, width: int = 26) -> list[str]:
    """A Screen as a few lines of text in a box, for the terminal."""
    icons = " ".join(sorted(screen.icons))
    rows = [f"{screen.status[: width - len(icons) - 1]:<{width - len(icons)}}{icons}"]
    rows.append("-" * width)
    if screen.title:
        rows.append(screen.title)
    rows.extend(screen.lines)
    if screen.big:
        mark = " (verified)" if screen.verified else ""
        big = f"[ {screen.big} ]" if screen.big_inverse else screen.big.upper()
        rows.append(f"  {big}{mark}")
    if screen.alert:
        rows = [f"!! {row}" for row in rows]
    return (
        ["+" + "-" * (width + 2) + "+"]
        + [f"| {r[:width]:<{width}} |" for r in rows]
        + ["+" + "-" * (width + 2) + "+"]
    )


# --------------------------------------------------------------------------- one phone


@dataclass
class _Phone:
    name: str
    engine: Engine
    audio: SimulatedAudio
    display: _ScreenLog
    transport: TlsTransport
    events: list[EngineEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """The loop time each event arrived."""
    waiters: list[tuple[Callable[[EngineEvent], bool], asyncio.Future[EngineEvent]]] = field(
        default_factory=list
    )

    def on_event(self, event: EngineEvent) -> None:
        self.events.append(event)
        self.times.append(asyncio.get_running_loop().time())
        for check, future in list(self.waiters):
            if not future.done() and check(event):
                future.set_result(event)

    def time_of(self, event: EngineEvent) -> float:
        return self.times[self.events.index(event)]

    async def wait_for(self, check: Callable[[EngineEvent], bool], what: str) -> EngineEvent:
        for event in self.events:
            if check(event):
                return event
        future: asyncio.Future[EngineEvent] = asyncio.get_running_loop().create_future()
        self.waiters.append((check, future))
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        except TimeoutError:
            raise DemoFailedError(f"{self.name}: no {what} within {TIMEOUT:.0f} s") from None

    def press(self, key: str) -> None:
        self.engine.press(KeyEvent(key))


class DemoFailedError(Exception):
    """A step of the demo did not happen; the message says which."""


async def _make_phone(
    name: str,
    tone: float,
    pki_ca: str,
    server: TlsServerConfig | None,
    speed_dials: dict[str, str],
) -> _Phone:
    audio = SimulatedAudio(tone)
    display = _ScreenLog()
    agent = UserAgent(
        AgentConfig(aor=f"sips:{name.lower()}@127.0.0.1", display_name=name, keepalive_interval=0)
    )
    transport = TlsTransport(TlsClientConfig(ca_file=pki_ca), server)
    settings = EngineSettings(
        call=CallSettings(media=MediaConfig(policy="require"), media_host="127.0.0.1"),
        media_bind="127.0.0.1",
        phone=pe.PhoneSettings(account=name, speed_dials=speed_dials),
    )
    engine = Engine(
        settings,
        agent,
        transport,
        MemoryZidCache(),
        open_udp,
        audio=audio,
        display=display,
    )
    phone = _Phone(name, engine, audio, display, transport)
    engine.add_listener(phone.on_event)
    await engine.start()
    return phone


# --------------------------------------------------------------------------- the story


@dataclass
class DemoResult:
    sas: str = ""
    sas_scheme: str = ""
    algorithms: str = ""
    answer_to_sas: float = 0.0
    alice_heard: list[float] = field(default_factory=list)
    bob_heard: list[float] = field(default_factory=list)
    stats: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    screens: dict[str, Screen] = field(default_factory=dict)


def _is_secure(event: EngineEvent) -> bool:
    return isinstance(event, CallSecure)


async def _story(out: TextIO, workdir: Path) -> DemoResult:
    result = DemoResult()
    pki = make_test_pki(workdir / "pki", ["127.0.0.1", "localhost"])
    bob_server = TlsServerConfig(
        cert_file=str(pki.server_cert), key_file=str(pki.server_key), host="127.0.0.1", port=0
    )
    bob = await _make_phone("Bob", BOB_TONE, str(pki.ca_cert), bob_server, {})
    listening = bob.transport.listening
    if listening is None:
        raise DemoFailedError("Bob's TLS listener did not start")
    bob_uri = f"sips:bob@127.0.0.1:{listening[1]}"
    alice = await _make_phone("Alice", ALICE_TONE, str(pki.ca_cert), None, {"1": bob_uri})
    try:
        print(f"Bob listens for SIP over TLS on {listening[0]}:{listening[1]}", file=out)
        print(f"Alice presses speed dial 1: {bob_uri}", file=out)
        alice.press("speed1")
        incoming = await bob.wait_for(lambda e: isinstance(e, CallIncoming), "incoming call")
        result.screens["alice-calling"] = _screen(alice)
        result.screens["bob-incoming"] = _screen(bob)
        print(f"Bob's phone rings: {getattr(incoming, 'remote_uri', '')}", file=out)
        answered_at = asyncio.get_running_loop().time()
        bob.press("answer")
        secure_a = await alice.wait_for(_is_secure, "SAS")
        secure_b = await bob.wait_for(_is_secure, "SAS")
        result.answer_to_sas = max(alice.time_of(secure_a), bob.time_of(secure_b)) - answered_at
        assert isinstance(secure_a, CallSecure) and isinstance(secure_b, CallSecure)
        print(f"Alice's SAS: {secure_a.sas}   Bob's SAS: {secure_b.sas}", file=out)
        if secure_a.sas != secure_b.sas:
            raise DemoFailedError(f"the SAS differ: {secure_a.sas} != {secure_b.sas}")
        result.sas, result.sas_scheme = secure_a.sas, secure_a.sas_scheme
        result.algorithms = (
            f"{secure_a.key_agreement} {secure_a.cipher} {secure_a.auth_tag} "
            f"{secure_a.hash} {secure_a.sas_scheme}"
        )
        marks = (alice.audio.earpiece.mark(), bob.audio.earpiece.mark())
        await asyncio.sleep(AUDIO_SECONDS)
        result.screens["alice-secure"] = _screen(alice)
        result.screens["bob-secure"] = _screen(bob)
        result.alice_heard = heard_frequencies(alice.audio.earpiece.frames[marks[0] :])
        result.bob_heard = heard_frequencies(bob.audio.earpiece.frames[marks[1] :])
        for phone in (alice, bob):
            call = _only_call(phone)
            stats = call.media.stats
            result.stats[phone.name] = (
                stats.packets_sent,
                stats.packets_received,
                stats.packets_lost,
            )
        print("Alice hangs up", file=out)
        alice.press("hangup")
        await bob.wait_for(lambda e: isinstance(e, CallFinished), "hang-up")
        await alice.wait_for(lambda e: isinstance(e, CallFinished), "end of call")
        result.screens["alice-ended"] = _screen(alice)
        result.screens["bob-ended"] = _screen(bob)
    finally:
        await alice.engine.stop()
        await bob.engine.stop()
    return result


def _screen(phone: _Phone) -> Screen:
    screen = phone.engine.screen()
    return screen if screen is not None else Screen()


def _only_call(phone: _Phone) -> Call:
    calls = phone.engine.calls()
    if len(calls) != 1:
        raise DemoFailedError(f"{phone.name} has {len(calls)} calls, expected one")
    return calls[0]


def heard_frequencies(frames: list[bytes], count: int = 2) -> list[float]:
    """The strongest tones in what was played, rounded to the hertz."""
    pcm = b"".join(f for f in frames if len(f) == FRAME_BYTES)
    return [round(f) for f in dominant_frequencies(pcm, count=count)] if pcm else []


def _tone_ok(heard: list[float], expected: float) -> bool:
    return bool(heard) and abs(heard[0] - expected) <= TONE_TOLERANCE


def _save_png(screen: Screen, path: Path) -> bool:
    try:
        from pidphone.drivers.draw import draw_screen
    except ImportError:
        return False
    image = draw_screen(screen)
    image.resize((image.width * 4, image.height * 4)).save(path)
    return True


def _report(result: DemoResult, out: TextIO, screens_dir: Path | None) -> bool:
    for name, screen in result.screens.items():
        print(f"\n{name}:", file=out)
        for row in screen_text(screen):
            print(f"  {row}", file=out)
        if screens_dir is not None:
            screens_dir.mkdir(parents=True, exist_ok=True)
            _save_png(screen, screens_dir / f"{name}.png")
    alice_ok = _tone_ok(result.alice_heard, BOB_TONE)
    bob_ok = _tone_ok(result.bob_heard, ALICE_TONE)
    print("\nSummary", file=out)
    print(f"  SAS ({result.sas_scheme}):        {result.sas}   (same on both phones)", file=out)
    print(f"  algorithms:        {result.algorithms}", file=out)
    print(f"  answer to SAS:     {result.answer_to_sas * 1000:.0f} ms", file=out)
    print(
        f"  Alice heard:       {result.alice_heard} Hz (Bob sent {BOB_TONE:.0f} Hz)"
        f" {'ok' if alice_ok else 'WRONG'}",
        file=out,
    )
    print(
        f"  Bob heard:         {result.bob_heard} Hz (Alice sent {ALICE_TONE:.0f} Hz)"
        f" {'ok' if bob_ok else 'WRONG'}",
        file=out,
    )
    for name, (sent, received, lost) in result.stats.items():
        print(
            f"  {name + ':':<18} {sent} SRTP packets sent, {received} received, {lost} lost",
            file=out,
        )
    if screens_dir is not None:
        print(f"  screens saved in:  {screens_dir}", file=out)
    return alice_ok and bob_ok


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 when the call was secured and both tones arrived."""
    screens: Path | None = getattr(args, "screens", None)
    with tempfile.TemporaryDirectory(prefix="pidphone-demo-") as tmp:
        workdir = Path(tmp)
        if screens is None:
            screens = Path(tempfile.gettempdir()) / "pidphone-demo-screens"
        try:
            result = asyncio.run(asyncio.wait_for(_story(out, workdir), 4 * TIMEOUT))
        except DemoFailedError as exc:
            print(f"demo failed: {exc}", file=out)
            return 1
        except TimeoutError:
            print("demo failed: it took too long", file=out)
            return 1
        with contextlib.suppress(OSError):
            ok = _report(result, out, screens)
            return 0 if ok else 1
    return 1
