"""Sample-rate conversion of S16_LE mono PCM, for sound cards that cannot run at 8 kHz.

A polyphase FIR resampler for a ratio L/M (8000 <-> 16000, 44100, 48000): conceptually the
input is padded with L-1 zeros per sample, low-pass filtered at the rate L*src and every M-th
sample kept. The filter is a Kaiser-windowed sinc (about 60 dB stopband, beta 5.65) with its
cutoff at 0.4875 and a transition band of 0.125 of the lower rate (3.9 kHz and 1 kHz for
8 kHz): the telephone band up to 3.4 kHz passes flat, images and aliases above 4.4 kHz are
60 dB down. Filter state and phase carry over between calls, so 20 ms frames join seamlessly.

Two ways to compute it, both exact to the same filter:

* Integer ratios (L or M is 1: 8 <-> 16 and 48 kHz), the hot case, use Kronecker
  substitution: the zero-stuffed samples (offset to be non-negative) are packed into one big
  integer with a 64-bit field per sample, the 16-bit fixed-point coefficients into another,
  and one big-integer multiplication (C code) yields the whole convolution, one sum per field.
  Each phase's coefficients sum to exactly 2**16, so a field holds (y + 32768) << 16 plus a
  bias: the output samples are two bytes of each kept field, cut out by slicing. A sample that
  would clip is detected (byte 4 of its field is not 1) and only then is the frame clipped
  sample by sample. This is about twenty times faster than a loop of dot products.
* Other ratios (44.1 kHz) compute each output as a dot product with its coefficient phase.
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache
from operator import mul

from pidphone.errors import LocalProtocolError

_STOPBAND_DB = 60.0
_BETA = 0.1102 * (_STOPBAND_DB - 8.7)
_SHIFT = 16
"""Fractional bits of the fixed-point coefficients."""
_FIELD = 5
"""Bytes per field in the packed integers: sums stay below 2**35."""
_FIELD_BIAS = (1 << (_SHIFT + 16)) + (1 << (_SHIFT - 1))
"""Added to every field: 65536 << 16 keeps it positive when y undershoots (and covers the
partial sums at the edges), the second term rounds. A field is then
(y + 32768 + 65536) << 16 plus rounding: bytes 2-3 are y + 32768, byte 4 is 1 when y fits."""
_SIGN_FLIP = bytes(b ^ 0x80 for b in range(256))


def _bessel_i0(x: float) -> float:
    total = term = 1.0
    k = 1
    while term > 1e-12 * total:
        term *= (x / (2 * k)) ** 2
        total += term
        k += 1
    return total


@lru_cache(maxsize=8)
def _design(up: int, low_rate: int, fast_rate: int) -> tuple[float, ...]:
    """The low-pass filter at the fast rate, a multiple of `up` taps, gain `up`."""
    cutoff = 0.4875 * low_rate / fast_rate  # in cycles per sample at the fast rate
    transition = 2 * math.pi * 0.125 * low_rate / fast_rate
    taps_wanted = math.ceil((_STOPBAND_DB - 8) / (2.285 * transition)) + 1
    taps = math.ceil(taps_wanted / up) * up
    centre = (taps - 1) / 2
    norm = _bessel_i0(_BETA)
    coefficients = []
    for n in range(taps):
        x = n - centre
        sinc = 2 * cutoff if x == 0 else math.sin(2 * math.pi * cutoff * x) / (math.pi * x)
        window = _bessel_i0(_BETA * math.sqrt(max(0.0, 1 - (x / centre) ** 2))) / norm
        coefficients.append(up * sinc * window)
    return tuple(coefficients)


def _fixed_point(filter_: tuple[float, ...], up: int) -> list[int]:
    """Coefficients in 1/65536, each phase summing to exactly 65536 (unity DC gain)."""
    fixed = [round(c * (1 << _SHIFT)) for c in filter_]
    for phase in range(up):
        taps = range(phase, len(fixed), up)
        centre = max(taps, key=lambda n: abs(fixed[n]))
        fixed[centre] += (1 << _SHIFT) - sum(fixed[n] for n in taps)
    return fixed


def _design_taps(up: int, down: int, low_rate: int, fast_rate: int) -> tuple[float, ...]:
    """`_design`, zero-padded to a multiple of `down` taps for the decimating form."""
    filter_ = _design(up, low_rate, fast_rate)
    return filter_ + (0.0,) * (-len(filter_) % down)


def _pack(low: bytes, high: bytes, count: int) -> int:
    """Samples given by their (sign-flipped) low and high bytes, one per field."""
    fields = bytearray(count * _FIELD)
    fields[0::_FIELD] = low
    fields[1::_FIELD] = high
    return int.from_bytes(fields, "little")


def _pack_coefficients(coefficients: list[int]) -> int:
    return sum(c << (8 * _FIELD * n) for n, c in enumerate(coefficients))


class Resampler:
    """Converts a stream from `src_rate` to `dst_rate`, one chunk at a time."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise LocalProtocolError("sample rates must be positive")
        common = math.gcd(src_rate, dst_rate)
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._up = up = dst_rate // common
        self._down = down = src_rate // common
        packed = down == 1 or up == 1
        filter_ = _design_taps(up, down if up == 1 else 1, min(src_rate, dst_rate), src_rate * up)
        self._taps = len(filter_)
        self._per_phase = len(filter_) // up
        self._packed_phases: list[int] = []
        self._phases: tuple[tuple[float, ...], ...] = ()
        if packed:
            fixed = _fixed_point(filter_, up)
            # interpolating: one set per output phase; decimating: one per input phase
            sets = up if down == 1 else down
            self._packed_phases = [_pack_coefficients(fixed[r::sets]) for r in range(sets)]
        else:
            self._phases = tuple(
                tuple(filter_[p + j * up] for j in reversed(range(self._per_phase)))
                for p in range(up)
            )
        self._history = bytes(2 * (self._per_phase - 1))
        self._position = 0
        """The next output, in fast-rate samples from the first new input sample."""
        self._bias: dict[int, int] = {}

    @property
    def delay(self) -> float:
        """The filter's delay in seconds."""
        return (self._taps - 1) / 2 / (self.src_rate * self._up)

    def process(self, pcm: bytes) -> bytes:
        """Resample a chunk; the output length follows the ratio, carrying any fraction over."""
        pcm = bytes(pcm[: len(pcm) & ~1])
        if self._up == self._down:
            return pcm
        data = self._history + pcm
        if self._history:
            self._history = data[len(data) - len(self._history) :]
        if self._down == 1:
            return self._interpolate(data)
        if self._up == 1:
            return self._decimate(data)
        return self._process_dot(data)

    def _bias_for(self, fields: int) -> int:
        bias = self._bias.get(fields)
        if bias is None:
            bias = _pack_coefficients([_FIELD_BIAS] * fields)
            self._bias[fields] = bias
        return bias

    def _interpolate(self, data: bytes) -> bytes:
        """Integer up-sampling: output phase p is the input convolved with phase p's taps."""
        up, taps = self._up, self._per_phase
        count = len(data) // 2
        new = count - (taps - 1)
        if new <= 0:
            return b""
        low, high = data[0::2], data[1::2].translate(_SIGN_FLIP)
        samples = _pack(low, high, count)
        bias = self._bias_for(count + taps - 1)
        out = bytearray(2 * new * up)
        start, stop = (taps - 1) * _FIELD, count * _FIELD
        for phase, coefficients in enumerate(self._packed_phases):
            raw = (samples * coefficients + bias).to_bytes((count + taps - 1) * _FIELD, "little")
            if raw[start + 4 : stop : _FIELD].count(1) != new:
                raw = _clip(raw, range(taps - 1, count))
            out[2 * phase :: 2 * up] = raw[start + 2 : stop : _FIELD]
            out[2 * phase + 1 :: 2 * up] = raw[start + 3 : stop : _FIELD].translate(_SIGN_FLIP)
        return bytes(out)

    def _decimate(self, data: bytes) -> bytes:
        """Integer down-sampling: the sum over input phases r of x[.. - r :: M] * h[r :: M]."""
        down, taps = self._down, self._per_phase
        groups = taps // down  # taps per input phase
        count = len(data) // 2
        first = taps - 1 + self._position
        outputs = len(range(first, count, down))
        self._position = first + outputs * down - count
        if outputs == 0:
            return b""
        length = outputs + groups - 1
        flipped = data[1::2].translate(_SIGN_FLIP)
        total = self._bias_for(length + groups - 1)
        for r, coefficients in enumerate(self._packed_phases):
            begin = first - r - (groups - 1) * down
            low = data[2 * begin :: 2 * down][:length]
            high = flipped[begin::down][:length]
            total += _pack(low, high, length) * coefficients
        raw = total.to_bytes((length + groups - 1) * _FIELD, "little")
        start, stop = (groups - 1) * _FIELD, (groups - 1 + outputs) * _FIELD
        if raw[start + 4 : stop : _FIELD].count(1) != outputs:
            raw = _clip(raw, range(groups - 1, groups - 1 + outputs))
        out = bytearray(2 * outputs)
        out[0::2] = raw[start + 2 : stop : _FIELD]
        out[1::2] = raw[start + 3 : stop : _FIELD].translate(_SIGN_FLIP)
        return bytes(out)

    def _process_dot(self, data: bytes) -> bytes:
        samples = struct.unpack(f"<{len(data) // 2}h", data)
        phases, up, down, taps = self._phases, self._up, self._down, self._per_phase
        position = self._position + (taps - 1) * up
        end = len(samples) * up
        out = []
        while position < end:
            n, phase = divmod(position, up)
            value = sum(map(mul, samples[n - taps + 1 : n + 1], phases[phase]))
            out.append(-32768 if value < -32768 else 32767 if value > 32767 else round(value))
            position += down
        self._position = position - end
        return struct.pack(f"<{len(out)}h", *out)


def _clip(raw: bytes, fields: range) -> bytes:
    """Saturate the given fields to the 16-bit range (rare: only loud, clipping input)."""
    clipped = bytearray(raw)
    low, high = 1 << 32, (1 << 32) + (0xFFFF << _SHIFT)
    for index in fields:
        at = index * _FIELD
        value = int.from_bytes(raw[at : at + _FIELD], "little")
        if not low <= value <= high + 0xFFFF:
            value = low if value < low else high
            clipped[at : at + _FIELD] = value.to_bytes(_FIELD, "little")
    return bytes(clipped)


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole buffer (a fresh `Resampler`; the start includes the filter delay)."""
    return Resampler(src_rate, dst_rate).process(pcm)
