"""Simulated audio devices, implementing `ports.AudioDevices`: the microphone plays a file or a
test tone, the earpiece and the ringer record what they are given (in memory and, if asked,
to a raw file). Like a sound card they are the media clock: each frame takes 20 ms of real
time, paced against absolute deadlines so that no drift accumulates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pidphone.audio.tones import ToneSpec, looped_tone
from pidphone.errors import LocalProtocolError
from pidphone.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, AudioPurpose

FRAME_TIME = FRAME_SAMPLES / SAMPLE_RATE
PLAYBACK_PHASE = FRAME_TIME / 2
"""How far the earpiece's ticks lag the microphone's."""
KEEP_FRAMES = 3000
"""Frames each simulated playback remembers (one minute)."""


class Pacer:
    """Frame n is due at start + n * period. After a stall longer than `max_lag` the schedule
    restarts from now instead of delivering the missed frames in a burst."""

    def __init__(
        self,
        period: float = FRAME_TIME,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_lag: float = 0.2,
        phase: float = 0.0,
    ) -> None:
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._max_lag = max_lag
        self._phase = phase
        self._start: float | None = None
        self._count = 0

    def wait(self) -> None:
        """Block until the next frame is due."""
        now = self._clock()
        if self._start is None:
            self._start = now + self._phase
        self._count += 1
        due = self._start + self._count * self.period
        if due > now:
            self._sleep(due - now)
        elif now - due > self._max_lag:
            self._start, self._count = now, 0


class FileSource:
    """Frames from raw S16_LE mono PCM at 8 kHz, looped (or silence after the end)."""

    def __init__(self, pcm: bytes, *, loop: bool = True) -> None:
        self._pcm = pcm[: len(pcm) - len(pcm) % 2]
        self._loop = loop and len(self._pcm) > 0
        self._offset = 0

    def __call__(self) -> bytes:
        start = self._offset
        if start + FRAME_BYTES <= len(self._pcm):  # all but the frame that wraps: a slice
            self._offset = start + FRAME_BYTES
            return self._pcm[start : start + FRAME_BYTES]
        frame = bytearray()
        while len(frame) < FRAME_BYTES:
            if self._offset >= len(self._pcm):
                if not self._loop:
                    break
                self._offset = 0
            part = self._pcm[self._offset : self._offset + FRAME_BYTES - len(frame)]
            frame += part
            self._offset += len(part)
        return bytes(frame).ljust(FRAME_BYTES, b"\0")


def tone_source(frequency: float) -> Callable[[], bytes]:
    """A continuous sine at -10 dBm0 (0 Hz: silence), each distinct frame computed once."""
    if frequency <= 0:
        return lambda: bytes(FRAME_BYTES)
    return looped_tone(ToneSpec((frequency,)))


class SimCapture:
    def __init__(self, source: Callable[[], bytes], pacer: Pacer) -> None:
        self._source = source
        self._pacer = pacer

    def read_frame(self) -> bytes:
        self._pacer.wait()
        return self._source()

    def close(self) -> None:
        """Nothing to release."""


class SimPlayback:
    """Keeps the last KEEP_FRAMES frames played (`frames`) and appends them to `out` if set."""

    def __init__(self, pacer: Pacer, out: BinaryIO | None = None) -> None:
        self._pacer = pacer
        self._out = out
        self._lock = threading.Lock()
        self.frames: deque[bytes] = deque(maxlen=KEEP_FRAMES)
        self.closed = False

    def write_frame(self, pcm: bytes) -> None:
        if len(pcm) != FRAME_BYTES:
            raise LocalProtocolError(f"a frame is {FRAME_BYTES} bytes, got {len(pcm)}")
        self._pacer.wait()
        with self._lock:
            self.frames.append(pcm)
            if self._out is not None:
                self._out.write(pcm)

    def played(self) -> bytes:
        """Everything remembered, in order."""
        with self._lock:
            return b"".join(self.frames)

    def close(self) -> None:
        self.closed = True
        if self._out is not None:
            self._out.flush()


class SimAudioDevices:
    """The simulated handset and ringer. `clock` and `sleep` pace every stream (tests may pass
    a fake clock whose sleep advances it)."""

    def __init__(
        self,
        *,
        in_file: Path | None = None,
        tone_frequency: float = 1000.0,
        out_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._in_pcm = in_file.read_bytes() if in_file is not None else None
        self._tone_frequency = tone_frequency
        self._out = out_file.open("ab") if out_file is not None else None
        self._clock = clock
        self._sleep = sleep
        self.volume = 100
        self.playbacks: dict[AudioPurpose, SimPlayback] = {}
        """The latest playback opened for each purpose, to inspect what was played."""

    def _pacer(self, phase: float = 0.0) -> Pacer:
        return Pacer(clock=self._clock, sleep=self._sleep, phase=phase)

    def open_capture(self) -> SimCapture:
        source: Callable[[], bytes]
        if self._in_pcm is not None:
            source = FileSource(self._in_pcm)
        else:
            source = tone_source(self._tone_frequency)
        return SimCapture(source, self._pacer())

    def open_playback(self, purpose: AudioPurpose = "call") -> SimPlayback:
        # Half a period after the microphone's ticks: the two device threads never wake
        # together, so they do not queue for the interpreter's lock at every frame.
        playback = SimPlayback(
            self._pacer(PLAYBACK_PHASE), self._out if purpose == "call" else None
        )
        self.playbacks[purpose] = playback
        return playback

    def set_volume(self, percent: int) -> None:
        self.volume = max(0, min(100, percent))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
