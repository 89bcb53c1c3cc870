"""Packet-loss concealment after ITU-T G.711 Appendix I, on S16_LE mono PCM.

Appendix I is written for 8 kHz; at 16 kHz (G.722) every length in samples doubles, so the
pitch search covers the same 66..200 Hz and each step lasts as long (`Concealer(rate=16000)`).
How it works (the structure of Appendix I; constants in samples at 8 kHz):

* Output is delayed by 30 samples (3.75 ms, a quarter of the longest pitch period), and the
  last 390 samples (three longest periods plus that quarter) are kept as history.
* When a loss starts, the pitch period (40..120 samples, 200..66 Hz) is found by normalised
  cross-correlation of the last 20 ms with the history: a coarse search on every second
  sample and lag (then a half or a third of the best lag if it is within 90 %, against
  octave errors), and a fine search around it. The last period becomes the pitch
  buffer; its last quarter-period is overlap-added with the quarter before the period so the
  loop joins smoothly, and the same blend replaces the still unplayed delayed samples.
* The loss is filled by repeating the pitch buffer. Each further 10 ms (the second and third)
  the buffer grows by one period, with an overlap-add at the switch, so long losses do not
  buzz. From the second 10 ms on, the signal is attenuated by 20 % per 10 ms; after 60 ms the
  output is silence.
* The first good frame after a loss is cross-faded from the continued synthetic signal over
  a quarter-period plus 4 ms for every further 10 ms lost (at most 10 ms).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from operator import mul as _mul

from pidphone.errors import LocalProtocolError

_ATTENUATION = 0.2
_MIN_POWER = 250.0
_SILENT_AFTER = 6
"""10 ms units of synthetic signal before the output is silent (60 ms)."""


@dataclass(frozen=True)
class _Lengths:
    """Appendix I's lengths in samples at 8000 * `scale` Hz."""

    scale: int

    @property
    def pitch_min(self) -> int:
        return 40 * self.scale

    @property
    def pitch_max(self) -> int:
        return 120 * self.scale

    @property
    def overlap_max(self) -> int:
        return self.pitch_max // 4

    @property
    def history(self) -> int:
        return 3 * self.pitch_max + self.overlap_max

    @property
    def corr_len(self) -> int:
        return 160 * self.scale

    @property
    def unit(self) -> int:
        """10 ms."""
        return 80 * self.scale

    @property
    def overlap_step(self) -> int:
        return 32 * self.scale


@lru_cache(maxsize=4)
def _lengths(rate: int) -> _Lengths:
    if rate <= 0 or rate % 8000:
        raise LocalProtocolError(f"concealment works at a multiple of 8000 Hz, not {rate}")
    return _Lengths(rate // 8000)


def _to_pcm(samples: list[float]) -> bytes:
    # round, then clip to 16 bits; comparisons cost less than max(min()) per sample
    return struct.pack(
        f"<{len(samples)}h",
        *[-32768 if r < -32768 else 32767 if r > 32767 else r for r in map(round, samples)],
    )


def _overlap_add(fading_out: list[float], fading_in: list[float]) -> list[float]:
    n = len(fading_out)
    return [
        a + (b - a) * (i + 1) / (n + 1)
        for i, (a, b) in enumerate(zip(fading_out, fading_in, strict=True))
    ]


def find_pitch(history: list[float], rate: int = 8000) -> int:
    """The pitch period in samples (40..120 at 8 kHz) of the end of `history` (at least 390
    samples at 8 kHz)."""
    lengths = _lengths(rate)
    corr_len, scale = lengths.corr_len, lengths.scale
    end = len(history)
    target = history[end - corr_len :]

    targets = {step: target[::step] for step in (1, 2 * scale)}

    def score(lag: int, step: int) -> float:
        # the products summed in the same order as a loop over i would, at C speed
        candidate = history[end - corr_len - lag : end - lag : step]
        corr: float = sum(map(_mul, targets[step], candidate))
        energy: float = sum(map(_mul, candidate, candidate))
        return corr / math.sqrt(max(energy, _MIN_POWER * scale))

    coarse_step = 2 * scale
    coarse = max(
        range(lengths.pitch_min, lengths.pitch_max + 1, coarse_step),
        key=lambda lag: score(lag, coarse_step),
    )
    # a multiple of the period correlates as well as the period itself: prefer a third or
    # a half of the lag when it is nearly as good, so the loop holds one period
    best = score(coarse, 1)
    for divisor in (3, 2):
        shorter = round(coarse / divisor)
        if shorter >= lengths.pitch_min and score(shorter, 1) >= 0.9 * best:
            coarse = shorter
            break
    fine = range(max(lengths.pitch_min, coarse - scale), min(lengths.pitch_max, coarse + scale) + 1)
    return max(fine, key=lambda lag: score(lag, 1))


@lru_cache(maxsize=64)
def _gains(unit: int, unit_len: int, count: int) -> tuple[float, ...]:
    """The gain of each of `count` samples in the `unit`-th 10 ms of a loss: 20 % less per
    10 ms from the second on, falling sample by sample, never below zero."""
    gain = 1.0 - (unit - 1) * _ATTENUATION
    step = _ATTENUATION / unit_len
    gains = []
    for _ in range(count):
        gains.append(max(0.0, gain))
        gain -= step
    return tuple(gains)


class Concealer:
    """Conceals lost 20 ms frames of one decoded stream (see the module docstring)."""

    def __init__(self, frame_samples: int = 160, rate: int = 8000) -> None:
        self.frame_samples = frame_samples
        self.rate = rate
        self._n = n = _lengths(rate)
        self._delay_bytes = 2 * n.overlap_max
        self._history_bytes = 2 * n.history
        self._history = bytes(self._history_bytes)
        self._erased = 0
        """10 ms units concealed in the current loss."""
        self._pitch = n.pitch_min
        self._overlap = n.pitch_min // 4
        self._buffer: list[float] = []
        self._length = 0
        self._offset = 0
        self._last_quarter: list[float] = []

    @property
    def delay(self) -> int:
        """Samples by which the output lags the input (a quarter of the longest period)."""
        return self._n.overlap_max

    def good(self, pcm: bytes) -> bytes:
        """Record a received frame; return the frame to play (delayed by 3.75 ms, and
        cross-faded from the concealment if a loss just ended)."""
        if self._erased:
            pcm = self._blend_in(pcm)
        return self._push(pcm)

    def conceal(self) -> bytes:
        """Return one frame to play in place of a lost one."""
        samples: list[float] = []
        for _ in range(max(1, self.frame_samples // self._n.unit)):
            samples.extend(self._unit())
        return self._push(_to_pcm(samples))

    def _push(self, pcm: bytes) -> bytes:
        joined = self._history + pcm
        self._history = joined[-self._history_bytes :]
        delay = self._delay_bytes
        return joined[len(joined) - len(pcm) - delay : len(joined) - delay]

    def _synthesize(self, count: int) -> list[float]:
        """The next `count` samples of the pitch buffer's last `_length`, looped."""
        length, offset = self._length, self._offset
        start = self._n.history - length
        period = self._buffer[start : start + length]
        out = period[offset : offset + count]
        while len(out) < count:
            out += period[: count - len(out)]
        self._offset = (offset + count) % length
        return out

    def _start(self) -> None:
        size = self._n.history
        history = list(map(float, struct.unpack(f"<{size}h", self._history)))
        pitch = find_pitch(history, self.rate)
        overlap = pitch // 4
        self._pitch, self._overlap = pitch, overlap
        self._last_quarter = history[size - overlap :]
        before = history[size - pitch - overlap : size - pitch]
        history[size - overlap :] = _overlap_add(self._last_quarter, before)
        self._buffer = history
        self._length = pitch
        self._offset = 0
        # the blended end is still in the delay line, not yet played: replace it
        self._history = self._history[: -2 * overlap] + _to_pcm(history[size - overlap :])

    def _grow(self) -> None:
        """Add one period to the pitch buffer, blending its end into the new start."""
        self._length += self._pitch
        start = self._n.history - self._length
        before = self._buffer[start - self._overlap : start]
        self._buffer[self._n.history - self._overlap :] = _overlap_add(self._last_quarter, before)

    def _attenuate(self, samples: list[float], unit: int) -> list[float]:
        return list(map(_mul, samples, _gains(unit, self._n.unit, len(samples))))

    def _unit(self) -> list[float]:
        unit = self._erased
        self._erased += 1
        size = self._n.unit
        if unit == 0:
            self._start()
            return self._synthesize(size)
        if unit >= _SILENT_AFTER:
            return [0.0] * size
        if unit <= 2:
            saved = self._offset
            tail = self._synthesize(self._overlap)
            self._offset = saved
            self._grow()
            out = self._synthesize(size)
            out[: self._overlap] = _overlap_add(tail, out[: self._overlap])
        else:
            out = self._synthesize(size)
        return self._attenuate(out, unit)

    def _blend_in(self, pcm: bytes) -> bytes:
        unit = self._erased
        self._erased = 0
        count = len(pcm) // 2
        length = min(count, self._n.unit, self._overlap + (unit - 1) * self._n.overlap_step)
        if unit >= _SILENT_AFTER:
            synthetic = [0.0] * length
        else:
            synthetic = self._synthesize(length)
            if unit > 1:
                synthetic = self._attenuate(synthetic, unit)
        real = [float(s) for s in struct.unpack_from(f"<{length}h", pcm)]
        return _to_pcm(_overlap_add(synthetic, real)) + pcm[2 * length :]
