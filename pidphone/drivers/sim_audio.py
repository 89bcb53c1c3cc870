"""Simulated audio devices, implementing `ports.AudioDevices`: the microphone plays a file or a
test tone, the earpiece and the ringer record what they are given (in memory and, if asked,
to a raw file). Like a sound card they are the media clock: the microphone gives a frame every
20 ms of real time, paced against absolute deadlines so that no drift accumulates, and says
when the next one is due; a playback is a buffer of `BUFFER_FRAMES` periods played out in
real time, so a writer that runs ahead waits and one that falls behind underruns (counted).

They run at any rate they are opened at, as a card that takes 8, 16 and 48 kHz does. The
files are at one rate of their own (`file_rate`), converted to and from the device's; a tone
is made at the device's rate, and one at or above half of it is silence, as behind the
anti-aliasing filter of a real card.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pidphone.audio.resample import Resampler
from pidphone.audio.tones import ToneSpec, looped_tone
from pidphone.errors import LocalProtocolError
from pidphone.ports import FRAME_TIME, SAMPLE_RATE, AudioPurpose, frame_bytes

BUFFER_FRAMES = 4
"""Periods a simulated playback buffers, as the ALSA driver's devices do."""
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

    def due(self) -> float:
        """When the next `wait` returns (the schedule starts at the first question)."""
        if self._start is None:
            self._start = self._clock() + self._phase
        return self._start + (self._count + 1) * self.period

    def wait(self) -> None:
        """Block until the next frame is due."""
        due = self.due()
        now = self._clock()
        self._count += 1
        if due > now:
            self._sleep(due - now)
        elif now - due > self._max_lag:
            self._start, self._count = now, 0


class FileSource:
    """Frames from raw S16_LE mono PCM at `rate`, looped (or silence after the end)."""

    def __init__(self, pcm: bytes, *, loop: bool = True, rate: int = SAMPLE_RATE) -> None:
        self._pcm = pcm[: len(pcm) - len(pcm) % 2]
        self._loop = loop and len(self._pcm) > 0
        self._offset = 0
        self._frame_bytes = frame_bytes(rate)

    def __call__(self) -> bytes:
        start, size = self._offset, self._frame_bytes
        if start + size <= len(self._pcm):  # all but the frame that wraps: a slice
            self._offset = start + size
            return self._pcm[start : start + size]
        frame = bytearray()
        while len(frame) < size:
            if self._offset >= len(self._pcm):
                if not self._loop:
                    break
                self._offset = 0
            part = self._pcm[self._offset : self._offset + size - len(frame)]
            frame += part
            self._offset += len(part)
        return bytes(frame).ljust(size, b"\0")


class ResampledSource:
    """Frames at `rate` from a source of frames at `src_rate`, converted frame by frame as
    they are read (converting a whole file up front would hold up whoever opens the device:
    the media worker, before its call's first packet)."""

    def __init__(self, source: Callable[[], bytes], src_rate: int, rate: int) -> None:
        self._source = source
        self._resampler = Resampler(src_rate, rate)
        self._frame_bytes = frame_bytes(rate)
        self._pending = bytearray()

    def __call__(self) -> bytes:
        size = self._frame_bytes
        while len(self._pending) < size:
            self._pending += self._resampler.process(self._source())
        frame = bytes(self._pending[:size])
        del self._pending[:size]
        return frame


def tone_source(frequency: float, rate: int = SAMPLE_RATE) -> Callable[[], bytes]:
    """A continuous sine at -10 dBm0, each distinct frame computed once; silence for 0 Hz
    and for a tone the rate cannot carry (at or above half of it)."""
    if frequency <= 0 or 2 * frequency >= rate:
        silence = bytes(frame_bytes(rate))
        return lambda: silence
    return looped_tone(ToneSpec((frequency,)), rate=rate)


class SimCapture:
    def __init__(self, source: Callable[[], bytes], pacer: Pacer, rate: int = SAMPLE_RATE) -> None:
        self.rate = self.device_rate = rate
        self._source = source
        self._pacer = pacer
        pacer.due()  # the schedule starts when the device opens

    def next_frame_at(self) -> float:
        return self._pacer.due()

    def read_frame(self) -> bytes:
        self._pacer.wait()
        return self._source()

    def close(self) -> None:
        """Nothing to release."""


class SimPlayback:
    """A device buffer of `BUFFER_FRAMES` periods played out in real time. Keeps the last
    KEEP_FRAMES frames written (`frames`, at `rate`) and appends them to `out` if set (at
    `out_rate`)."""

    def __init__(
        self,
        out: BinaryIO | None = None,
        *,
        rate: int = SAMPLE_RATE,
        out_rate: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = self.device_rate = rate
        self._frame_bytes = frame_bytes(rate)
        self._out = out
        self._to_out = (
            Resampler(rate, out_rate).process
            if out is not None and out_rate is not None and out_rate != rate
            else None
        )
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._played_until: float | None = None
        """When the last frame written will have been played out."""
        self.frames: deque[bytes] = deque(maxlen=KEEP_FRAMES)
        self.underruns = 0
        self.closed = False

    def write_frame(self, pcm: bytes) -> None:
        if len(pcm) != self._frame_bytes:
            raise LocalProtocolError(f"a frame is {self._frame_bytes} bytes, got {len(pcm)}")
        now = self._clock()
        until = self._played_until
        if until is None or until < now:
            if until is not None:
                self.underruns += 1  # the buffer ran dry: the card restarts from now
            until = now
        excess = until - now - (BUFFER_FRAMES - 1) * FRAME_TIME
        if excess > 1e-6:  # the buffer is full: wait until a period has played out
            self._sleep(excess)
        self._played_until = until + FRAME_TIME
        with self._lock:
            self.frames.append(pcm)
            if self._out is not None:
                self._out.write(pcm if self._to_out is None else self._to_out(pcm))

    def played(self) -> bytes:
        """Everything remembered, in order."""
        with self._lock:
            return b"".join(self.frames)

    def close(self) -> None:
        self.closed = True
        if self._out is not None:
            self._out.flush()


class SimAudioDevices:
    """The simulated handset and ringer. `in_file` and `out_file` are raw S16_LE mono at
    `file_rate`. `clock` and `sleep` pace every stream (tests may pass a fake clock whose
    sleep advances it)."""

    def __init__(
        self,
        *,
        in_file: Path | None = None,
        tone_frequency: float = 1000.0,
        out_file: Path | None = None,
        file_rate: int = SAMPLE_RATE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._in_pcm = in_file.read_bytes() if in_file is not None else None
        self.file_rate = file_rate
        self._tone_frequency = tone_frequency
        self._out = out_file.open("ab") if out_file is not None else None
        self._clock = clock
        self._sleep = sleep
        self.volume = 100
        self.playbacks: dict[AudioPurpose, SimPlayback] = {}
        """The latest playback opened for each purpose, to inspect what was played."""
        self.earpieces: list[SimPlayback] = []
        """Every earpiece ("call" playback) opened, oldest first: the media worker reopens it
        at each codec's rate, and a call's audio is in the one open while it lasted."""

    def _pacer(self) -> Pacer:
        return Pacer(clock=self._clock, sleep=self._sleep)

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        source: Callable[[], bytes]
        if self._in_pcm is not None:
            source = FileSource(self._in_pcm, rate=self.file_rate)
            if rate != self.file_rate:
                source = ResampledSource(source, self.file_rate, rate)
        else:
            source = tone_source(self._tone_frequency, rate)
        return SimCapture(source, self._pacer(), rate)

    def open_playback(self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE) -> SimPlayback:
        playback = SimPlayback(
            self._out if purpose == "call" else None,
            rate=rate,
            out_rate=self.file_rate,
            clock=self._clock,
            sleep=self._sleep,
        )
        self.playbacks[purpose] = playback
        if purpose == "call":
            self.earpieces.append(playback)
        return playback

    def set_volume(self, percent: int) -> None:
        self.volume = max(0, min(100, percent))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
