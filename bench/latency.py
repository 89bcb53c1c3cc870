"""Mouth-to-ear delay added by two phones, measured with a chirp, run by hand:

    .venv/bin/python -m bench.latency [--chirps 10] [--interval 1.0] [--codec PCMU]

Two pidphones in one process on loopback, as `pidphone demo` builds them: Alice calls Bob
directly over TLS, the call is secured with ZRTP. Alice's simulated microphone is silence with a
chirp (300-3000 Hz, 40 ms, Hann-windowed, -10 dBov) every `--interval` seconds; like a sound
card it is paced in real time (20 ms frames on absolute deadlines) and every frame is stamped
when the phone takes it. Bob's simulated earpiece stamps every frame it is given. The chirp is
found in what Bob's earpiece played by cross-correlation (to the sample); its delay is

    (time the earpiece starts to play the frame + offset in it) - (time the chirp's first
    sample reached the microphone: its frame's due time - 20 ms)

that is from the moment the sound reached the microphone to the moment it leaves the
earpiece. The earpiece is a buffer of a few periods played out in real time, as the
simulated one is, so what the media worker keeps queued in it counts, as on a real card.

The breakdown is computed beside the measurement: capture period (the frame is complete only at
its end), packetization (one 20 ms frame per packet: no extra wait), the jitter buffer's target
hold, the frames queued in the earpiece ahead of a new one (the media worker keeps it
PLAYBACK_AHEAD periods ahead), the concealer's look-ahead (G.711 Appendix I: 3.75 ms); what
remains is mostly the random phase between the two phones' audio clocks (0-20 ms). Encode,
SRTP and decode take microseconds (bench/media.py). Needs numpy.

`--alsa` gives Bob's earpiece to the real ALSA driver (`pidphone.drivers.alsa_audio`) over
real alsa-lib: a `file` PCM writing a raw file (no card here). A card model replays that file
in real time from the first write, as a card does once started, one period after another: a
frame must be in the buffer by the time the card starts to play it. The slack of each frame
(how long before it was due it was written) is reported; a negative slack is an underrun, and
the model restarts from there, as a card does after one. On a real card the DMA takes a
period when it starts playing it (a USB card a millisecond or two earlier, when it fills its
next URB): the smallest slack must stay above that.

`--linphone` measures linphonec -> linphonec the same way as far as its file audio allows
(as root, through a Kamailio): see `linphone_measure`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.quality import write_wav
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallIncoming, CallSecure
from pidphone.app.controller import Controller, ControllerEvent, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.sim_audio import BUFFER_FRAMES, Pacer
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, AudioPurpose, frame_bytes
from pidphone.rtp.jitter import JitterBuffer
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from tests.peers.interop import PCMU_ONLY, InteropLinphone
from tests.peers.kamailio import Kamailio
from tests.peers.netns import private_network

FRAME_TIME = FRAME_SAMPLES / SAMPLE_RATE
CHIRP_SECONDS = 0.04
CHIRP_LOW, CHIRP_HIGH = 300.0, 3000.0
CONCEALER_DELAY = 0.00375
"""G.711 Appendix I delays its output by a quarter of the longest pitch period."""


def chirp(rate: int = SAMPLE_RATE) -> np.ndarray:
    """A linear chirp with a Hann window: sharp autocorrelation, within any codec's band."""
    n = np.arange(round(rate * CHIRP_SECONDS))
    t = n / rate
    sweep = (CHIRP_HIGH - CHIRP_LOW) / CHIRP_SECONDS
    phase = 2 * np.pi * (CHIRP_LOW * t + sweep * t * t / 2)
    amplitude = 32768 * 10 ** (-10 / 20)
    return np.asarray(amplitude * np.hanning(len(n)) * np.sin(phase))


# --------------------------------------------------------------------------- devices


class ChirpCapture:
    """Silence with a chirp every `interval` once armed, paced like a sound card; notes when
    each chirp's first frame was complete (its due time)."""

    def __init__(self, interval: float, rate: int = SAMPLE_RATE) -> None:
        self.rate = self.device_rate = rate
        self._frame_bytes = frame_bytes(rate)
        self._pacer = Pacer()
        self._pacer.due()  # the schedule starts when the device opens
        self._interval_frames = max(2, round(interval / FRAME_TIME))
        signal = np.clip(np.round(chirp(rate)), -32768, 32767).astype("<i2").tobytes()
        self._signal = signal + bytes(-len(signal) % self._frame_bytes)
        self.armed = threading.Event()
        self.frames = 0
        self.sent: list[float] = []
        """When each chirp's first sample reached the microphone."""
        self._pending = b""

    def next_frame_at(self) -> float:
        return self._pacer.due()

    def read_frame(self) -> bytes:
        complete = self._pacer.due()
        self._pacer.wait()
        self.frames += 1
        if not self._pending and self.armed.is_set() and self.frames % self._interval_frames == 0:
            self._pending = self._signal
            self.sent.append(complete - FRAME_TIME)  # the frame's first sample
        size = self._frame_bytes
        frame, self._pending = self._pending[:size], self._pending[size:]
        return frame.ljust(size, b"\0")

    def close(self) -> None:
        """Nothing to release."""


class StampedPlayback:
    """A device buffer of `BUFFER_FRAMES` periods played out in real time, as the simulated
    earpiece is; keeps every frame with the time it starts to play."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self.rate = self.device_rate = rate
        self.frames: list[tuple[float, bytes]] = []
        self._played_until: float | None = None
        self._lock = threading.Lock()

    def write_frame(self, pcm: bytes) -> None:
        now = time.monotonic()
        until = self._played_until
        if until is None or until < now:
            until = now  # empty (or ran dry): the card starts from now
        excess = until - now - (BUFFER_FRAMES - 1) * FRAME_TIME
        if excess > 1e-6:
            time.sleep(excess)
        self._played_until = until + FRAME_TIME
        with self._lock:
            self.frames.append((until, bytes(pcm)))

    def played(self) -> list[tuple[float, bytes]]:
        with self._lock:
            return list(self.frames)

    def close(self) -> None:
        """Nothing to release."""


ASOUNDRC = """
pcm.fileout { @args [ FILE ] @args.FILE { type string default "/dev/null" }
              type file slave.pcm "null" file $FILE format "raw" }
"""
ALSA_CONF = "/usr/share/alsa/alsa.conf"


@dataclass
class _AlsaSettings:
    """The `[audio]` settings of an earpiece on the `fileout` PCM."""

    playback_device: str
    capture_device: str = "null"
    ring_device: str = ""
    rate: int = 0
    mixer_card: str = "default"
    mixer_control: str = ""


class AlsaEarpiece:
    """The ALSA driver's playback over alsa-lib's `file` PCM, with a card model: the file is
    played in real time from the first write, period after period (see the module doc)."""

    def __init__(self, path: Path, rate: int) -> None:
        from pidphone.drivers.alsa_audio import AlsaAudio

        self.path = path
        self.rate = self.device_rate = rate
        self._device = AlsaAudio(_AlsaSettings(f"fileout:{path}")).open_playback("call", rate)
        self.writes: list[float] = []
        self.frames: list[bytes] = []

    def write_frame(self, pcm: bytes) -> None:
        self.writes.append(time.monotonic())
        self.frames.append(bytes(pcm))
        self._device.write_frame(pcm)

    def close(self) -> None:
        self._device.close()

    def replay(self) -> tuple[list[tuple[float, bytes]], list[float], int]:
        """What the card played (each period with the time it started), each written frame's
        slack, and the underruns. The file must begin with exactly the frames written: the
        driver added nothing ahead of them (alsa-lib may pad the end when it closes)."""
        written = b"".join(self.frames)
        data = self.path.read_bytes() if self.path.exists() else b""
        if not self.writes or data[: len(written)] != written:
            raise RuntimeError(f"{self.path} does not hold the frames written to the earpiece")
        start = self.writes[0]
        played: list[tuple[float, bytes]] = []
        slacks: list[float] = []
        underruns = 0
        for n, (written_at, frame) in enumerate(zip(self.writes, self.frames, strict=True)):
            due = start + n * FRAME_TIME
            slack = due - written_at
            slacks.append(slack)
            if slack < 0:  # the card ran dry: it starts again from this frame
                underruns += 1
                start, due = written_at - n * FRAME_TIME, written_at
            played.append((due, frame))
        return played, slacks, underruns


class LatencyDevices:
    """The `AudioDevices` port for one phone of the measurement."""

    def __init__(self, interval: float, alsa_dir: Path | None = None) -> None:
        self._interval = interval
        self._alsa_dir = alsa_dir
        self.capture = ChirpCapture(interval)
        self.earpiece: StampedPlayback | AlsaEarpiece | None = None
        self._opened = 0

    def open_capture(self, rate: int = SAMPLE_RATE) -> ChirpCapture:
        self.capture = ChirpCapture(self._interval, rate)
        return self.capture

    def open_playback(
        self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE
    ) -> StampedPlayback | AlsaEarpiece:
        playback: StampedPlayback | AlsaEarpiece
        if purpose == "call" and self._alsa_dir is not None:
            self._opened += 1
            playback = AlsaEarpiece(self._alsa_dir / f"earpiece-{self._opened}.raw", rate)
        else:
            playback = StampedPlayback(rate)
        if purpose == "call":
            self.earpiece = playback
        return playback

    def set_volume(self, percent: int) -> None:
        """No mixer."""


# --------------------------------------------------------------------------- phones


@dataclass
class Phone:
    engine: Controller
    transport: TlsTransport
    devices: LatencyDevices
    secure: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: ControllerEvent) -> None:
        if isinstance(event, CallSecure):
            self.secure.set()
        elif isinstance(event, CallIncoming):  # headless: answer at once
            self.engine.answer(event.call_id)


async def make_phone(
    name: str,
    ca: str,
    server: TlsServerConfig | None,
    interval: float,
    codec: str = "PCMU",
    client: tuple[Path, Path] | None = None,
    alsa_dir: Path | None = None,
) -> Phone:
    """One phone; a caller presents `client` (certificate, key): the listener authenticates
    its direct callers."""
    agent = UserAgent(
        AgentConfig(aor=f"sips:{name}@127.0.0.1", display_name=name, keepalive_interval=0)
    )
    cert, key = (str(client[0]), str(client[1])) if client is not None else (None, None)
    transport = TlsTransport(TlsClientConfig(ca_file=ca, client_cert=cert, client_key=key), server)
    settings = ControllerSettings(
        calls=SwitchboardSettings(
            call=CallSettings(
                media=MediaConfig(policy="require"), media_host="127.0.0.1", codecs=(codec,)
            ),
            media_bind="127.0.0.1",
        )
    )
    devices = LatencyDevices(interval, alsa_dir)
    engine = Controller(settings, agent, transport, MemoryZidCache(), open_udp, audio=devices)
    phone = Phone(engine, transport, devices)
    engine.add_listener(phone.on_event)
    await engine.start()
    return phone


# --------------------------------------------------------------------------- analysis


def find_chirps(
    played: list[tuple[float, bytes]], count: int, rate: int = SAMPLE_RATE
) -> list[float]:
    """The time each chirp found in the played frames left the earpiece, in order."""
    if not played:
        return []
    pcm = np.frombuffer(b"".join(frame for _, frame in played), dtype="<i2").astype(np.float64)
    template = chirp(rate)
    correlation = np.correlate(pcm, template, mode="valid")
    energy = np.sqrt(
        np.convolve(pcm * pcm, np.ones(len(template)), mode="valid") * np.sum(template**2)
    )
    score = np.where(energy > 0, correlation / np.maximum(energy, 1e-9), 0.0)
    found: list[int] = []
    gap = round(0.5 * rate)
    for index in np.argsort(score)[::-1]:
        if score[index] < 0.8 or len(found) == count:
            break
        if all(abs(int(index) - f) > gap for f in found):
            found.append(int(index))
    samples_per_frame = len(played[0][1]) // 2
    times = []
    for index in sorted(found):
        frame, offset = divmod(index, samples_per_frame)
        times.append(played[frame][0] + offset / rate)
    return times


def pair_up(sent: list[float], heard: list[float]) -> list[float]:
    """Each chirp's delay: the first arrival after it was sent and before the next one."""
    delays = []
    for n, start in enumerate(sent):
        end = sent[n + 1] if n + 1 < len(sent) else math.inf
        arrivals = [t for t in heard if start <= t < end]
        if arrivals:
            delays.append(arrivals[0] - start)
    return delays


async def measure(chirps: int, interval: float, codec: str = "PCMU", alsa: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="pidphone-latency-") as tmp:
        alsa_dir = None
        if alsa:
            alsa_dir = Path(tmp) / "alsa"
            alsa_dir.mkdir()
            (alsa_dir / "asoundrc").write_text(ASOUNDRC)
            os.environ["ALSA_CONFIG_PATH"] = f"{ALSA_CONF}:{alsa_dir / 'asoundrc'}"
        pki = make_test_pki(Path(tmp) / "pki", ["127.0.0.1"])
        server = TlsServerConfig(
            cert_file=str(pki.server_cert),
            key_file=str(pki.server_key),
            host="127.0.0.1",
            port=0,
            ca_file=str(pki.ca_cert),
        )
        bob = await make_phone("bob", str(pki.ca_cert), server, interval, codec, alsa_dir=alsa_dir)
        alice = await make_phone(
            "alice", str(pki.ca_cert), None, interval, codec, (pki.client_cert, pki.client_key)
        )
        try:
            listening = bob.transport.listening
            if listening is None:
                print("bob's listener did not start", file=sys.stderr)
                return 1
            await alice.engine.place_call(f"sips:bob@127.0.0.1:{listening[1]}")
            await asyncio.wait_for(asyncio.gather(alice.secure.wait(), bob.secure.wait()), 15)
            await asyncio.sleep(1.0)  # let the jitter buffer settle
            capture = alice.devices.capture
            capture.armed.set()
            await asyncio.sleep(chirps * interval + 1.0)
            capture.armed.clear()
            await asyncio.sleep(0.5)
            target = jitter_target()
            phase = tick_phase(alice, bob)
            held = held_delay(bob)
            earpiece = bob.devices.earpiece
            rate = earpiece.rate if earpiece is not None else SAMPLE_RATE
        finally:
            await alice.engine.stop()
            await bob.engine.stop()
        played: list[tuple[float, bytes]] = []
        if isinstance(earpiece, AlsaEarpiece):
            played, slacks, underruns = earpiece.replay()
            report_slack(slacks, underruns)
        elif earpiece is not None:
            played = earpiece.played()
    sent = capture.sent
    heard = find_chirps(played, len(sent), rate)
    delays = pair_up(sent, heard)
    print(f"{codec}: earpiece at {rate} Hz" + (" (ALSA driver, alsa-lib file PCM)" if alsa else ""))
    report(delays, len(sent), target, codec)
    print(
        f"measured in this call: the receiver's tick comes {phase * 1000:.1f} ms after the "
        f"sender's (a packet waits that long before it is read); the jitter buffer's target "
        f"at the end: {held * 1000:.1f} ms"
    )
    return 0 if delays else 1


def report_slack(slacks: list[float], underruns: int) -> None:
    """How long before the card needed it each earpiece frame was written."""
    if not slacks:
        print("the earpiece was never written")
        return
    steady = sorted(slacks[10:] or slacks)
    ms = [s * 1000 for s in steady]
    p1 = ms[int(len(ms) * 0.01)]
    print(
        f"earpiece: {len(slacks)} frames written, {underruns} underruns; slack (written before "
        f"the card plays it) min {ms[0]:.2f} ms, p1 {p1:.2f}, median {statistics.median(ms):.2f}"
    )


def tick_phase(sender: Phone, receiver: Phone) -> float:
    """How long after the sender's capture tick the receiver's comes (0-20 ms): a packet sent
    on the one waits that long to be read on the other."""
    sent = sender.devices.capture.next_frame_at()
    read = receiver.devices.capture.next_frame_at()
    return (read - sent) % FRAME_TIME


def held_delay(receiver: Phone) -> float:
    """The receiving call's jitter-buffer target now (0 on a clean path)."""
    worker = receiver.engine.worker
    calls = getattr(worker, "_calls", {}) if worker is not None else {}
    for call in calls.values():
        return float(call.session._stream._jitter.delay)
    return float("nan")


def jitter_target() -> float:
    """The jitter buffer's starting target (what it holds on a clean loopback path: it grows
    only with measured jitter)."""
    return JitterBuffer().delay


def playback_queue_frames() -> int:
    """Frames already queued in the earpiece when the media worker writes one (it keeps the
    buffer `PLAYBACK_AHEAD` periods ahead; 0 where it does not say)."""
    try:
        from pidphone.app import media_worker
    except ImportError:
        return 0
    return max(0, int(getattr(media_worker, "PLAYBACK_AHEAD", 1)) - 1)


def codec_delay(codec: str) -> tuple[str, float]:
    """What the codec itself adds: G.711 and G.722 pass through Appendix I's concealer,
    which plays 3.75 ms late; Opus's encoder looks 6.5 ms ahead (libopus's lookahead)."""
    if codec == "opus":
        from pidphone.audio.codec import OpusCodec

        encoder = OpusCodec(sample_rate=16000)
        try:
            return "Opus encoder look-ahead", encoder.lookahead / 16000
        finally:
            encoder.close()
    return "concealer look-ahead (Appendix I)", CONCEALER_DELAY


def report(delays: list[float], sent: int, jitter_target: float, codec: str = "PCMU") -> None:
    print(f"chirps sent {sent}, found {len(delays)}")
    if not delays:
        print("no chirp was found in the earpiece")
        return
    ms = [d * 1000 for d in delays]
    print(
        f"mouth-to-ear delay added by the two phones: median {statistics.median(ms):.1f} ms, "
        f"min {min(ms):.1f}, max {max(ms):.1f} (each: {', '.join(f'{x:.1f}' for x in ms)})"
    )
    queue = playback_queue_frames()
    parts: list[tuple[str, float]] = [
        ("capture period (a frame is sent when complete)", FRAME_TIME),
        ("packetization (one frame per packet: no extra wait)", 0.0),
        (
            f"jitter buffer: its target on a clean path ({jitter_target * 1000:.0f} ms; a "
            "packet waits for the next pop, part of the phase below)",
            jitter_target,
        ),
        (f"frames queued in the earpiece ahead of it ({queue})", queue * FRAME_TIME),
        codec_delay(codec),
    ]
    print("breakdown:")
    for name, seconds in parts:
        print(f"  {seconds * 1000:6.2f} ms  {name}")
    total = sum(seconds for _, seconds in parts)
    rest = statistics.median(delays) - total
    print(f"  {total * 1000:6.2f} ms  sum of the above")
    print(
        f"  {rest * 1000:6.2f} ms  rest: the phase between the two phones' audio clocks (a frame"
        " waits 0-20 ms for the receiver's next tick), encode, SRTP, loopback, decode"
    )


# --------------------------------------------------------------------------- linphonec

STREAM_START = "audio_stream_start_from_io"
"""liblinphone's log line when a call's audio graph starts: the file player starts reading
and the file recorder starts writing on the same 10 ms ticker, from that moment on."""
LEAD_IN = 3.0
"""Seconds of silence before the first chirp: ZRTP must finish before audio flows."""


def chirp_train(count: int, interval: float, rate: int = SAMPLE_RATE) -> tuple[bytes, list[int]]:
    """Silence with `count` chirps, `interval` apart after `LEAD_IN`; and where each starts."""
    total = round((LEAD_IN + count * interval + 2.0) * rate)
    signal = np.zeros(total)
    template = chirp(rate)
    starts = [round((LEAD_IN + n * interval) * rate) for n in range(count)]
    for start in starts:
        signal[start : start + len(template)] = template
    return np.clip(np.round(signal), -32768, 32767).astype("<i2").tobytes(), starts


def linphone_measure(chirps: int, interval: float) -> int:
    """linphonec -> linphonec through Kamailio, `soundcard use files`: the caller plays a chirp
    train from a WAV file, the callee records. Each side's audio graph logs when it starts
    (millisecond stamps on the one wall clock), after which the player reads and the recorder
    writes in real time; so a chirp at sample n of the file leaves the caller at start + n/rate
    and one at sample m of the recording reaches the callee's file at start + m/rate. The
    ticker's 10 ms step bounds the error. File audio has no device buffer: a sound card adds
    its own."""
    if os.geteuid() != 0:
        print("run as root: the call runs in a private network namespace", file=sys.stderr)
        return 2
    train, starts = chirp_train(chirps, interval)
    with tempfile.TemporaryDirectory(prefix="pidphone-latency-linphone-") as tmp, private_network():
        work = Path(tmp)
        pki = make_test_pki(work / "pki")
        kamailio = Kamailio(work / "kamailio", pki)
        kamailio.start()
        common: dict[str, object] = {
            "ca_file": pki.ca_cert,
            "registrar": kamailio.address,
            "media_encryption": "zrtp",
            "encryption_mandatory": True,
            "codecs": PCMU_ONLY,
        }
        caller = InteropLinphone(work, "linphone", "linphonepw", **common)  # type: ignore[arg-type]
        callee = InteropLinphone(
            work,
            "lin2",
            "lin2pw",
            rtp_port=17178,
            auto_answer=True,
            **common,  # type: ignore[arg-type]
        )
        heard = work / "heard.wav"
        try:
            for phone in (caller, callee):
                phone.start()
                phone.wait_registered()
            caller.use_files(play=write_wav(work / "chirps.wav", train), record=None)
            callee.use_files(play=None, record=heard)
            caller.call(callee.uri)
            caller.wait_zrtp(timeout=30)
            time.sleep(len(train) / (2 * SAMPLE_RATE))
            caller.terminate()
            callee.wait_call_state("End", timeout=10)
            played_at = caller.log_times(STREAM_START)
            recorded_at = callee.log_times(STREAM_START)
        finally:
            caller.stop()
            callee.stop()
            kamailio.stop()
        with wave.open(str(heard)) as wav:
            if wav.getframerate() != SAMPLE_RATE:
                print(f"the recording is at {wav.getframerate()} Hz", file=sys.stderr)
                return 1
            pcm = wav.readframes(wav.getnframes())
    if not played_at or not recorded_at:
        print("linphonec's logs do not say when the audio started", file=sys.stderr)
        return 1
    frames = [
        (recorded_at[0] + i / SAMPLE_RATE, pcm[2 * i : 2 * i + FRAME_BYTES])
        for i in range(0, len(pcm) // 2 - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    ]
    sent = [played_at[0] + start / SAMPLE_RATE for start in starts]
    delays = pair_up(sent, find_chirps(frames, len(sent)))
    print(f"linphonec -> linphonec, file audio: chirps sent {len(sent)}, found {len(delays)}")
    if delays:
        ms = [d * 1000 for d in delays]
        print(
            f"mouth-to-ear delay (without sound-card buffers, +-10 ms): median "
            f"{statistics.median(ms):.1f} ms, min {min(ms):.1f}, max {max(ms):.1f}"
        )
    return 0 if delays else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--chirps", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between chirps")
    parser.add_argument("--codec", default="PCMU", choices=("PCMU", "PCMA", "G722", "opus"))
    parser.add_argument(
        "--linphone", action="store_true", help="measure linphonec -> linphonec instead (root)"
    )
    parser.add_argument(
        "--alsa", action="store_true", help="Bob's earpiece through the ALSA driver and alsa-lib"
    )
    args = parser.parse_args(argv)
    if args.linphone:
        return linphone_measure(args.chirps, args.interval)
    return asyncio.run(measure(args.chirps, args.interval, args.codec, args.alsa))


if __name__ == "__main__":
    sys.exit(main())
