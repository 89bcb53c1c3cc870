"""Measuring PCM: the power at one frequency, the dominant frequencies, DTMF keys, the level.

Used by tests, `pidphone call` and the demo to prove that audio really went through (a 1 kHz
tone in, 1 kHz out). Pure Python, so the methods are chosen for speed:

* `goertzel_power` is the Goertzel recurrence (one multiply-add per sample) at any frequency.
* `dominant_frequencies` averages the Hann-windowed spectra of up to eight 1024-sample
  blocks spread over the signal (a small radix-2 FFT), picks the strongest local maxima
  between `lo` and `hi`, and refines each by parabolic interpolation of the log magnitude,
  which is accurate to a fraction of the 7.8 Hz bin at 8 kHz.
* `detect_dtmf` runs Goertzel at the eight DTMF frequencies over 20 ms blocks and reports a
  key when one row and one column dominate for at least two consecutive blocks.
"""

from __future__ import annotations

import cmath
import math
import struct
from functools import lru_cache
from operator import mul

from pidphone.audio.tones import DTMF_COLUMNS, DTMF_KEYS, DTMF_ROWS

_FFT_SIZE = 1024
_MAX_BLOCKS = 8


def samples_of(pcm: bytes) -> tuple[int, ...]:
    """The samples of S16_LE mono PCM (an odd last byte is ignored)."""
    return struct.unpack_from(f"<{len(pcm) // 2}h", pcm)


def rms(pcm: bytes) -> float:
    """The root-mean-square sample value (0.0 for empty input)."""
    samples = samples_of(pcm)
    if not samples:
        return 0.0
    squares: int = sum(map(mul, samples, samples))  # exact, at C speed (per frame in a call)
    return math.sqrt(squares / len(samples))


def _goertzel(samples: tuple[int, ...] | list[float], frequency: float, rate: int) -> float:
    if not samples:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * power / (len(samples) * len(samples))


def goertzel_power(pcm: bytes, frequency: float, rate: int = 8000) -> float:
    """The power of the `frequency` component: A**2 / 2 for a sine of amplitude A on it."""
    return _goertzel(samples_of(pcm), frequency, rate)


@lru_cache(maxsize=4)
def _fft_tables(size: int) -> tuple[list[int], list[complex], list[float]]:
    bits = size.bit_length() - 1
    reverse = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(size)]
    twiddles = [cmath.exp(-2j * math.pi * k / size) for k in range(size // 2)]
    window = [0.5 - 0.5 * math.cos(2 * math.pi * n / size) for n in range(size)]
    return reverse, twiddles, window


def _fft(values: list[float], size: int) -> list[complex]:
    reverse, twiddles, _ = _fft_tables(size)
    data = [complex(values[reverse[i]]) for i in range(size)]
    half = 1
    while half < size:
        stride = size // (2 * half)
        for start in range(0, size, 2 * half):
            for k in range(half):
                top = start + k
                bottom = data[top + half] * twiddles[k * stride]
                data[top + half] = data[top] - bottom
                data[top] = data[top] + bottom
        half *= 2
    return data


def _spectrum(samples: tuple[int, ...], size: int) -> list[float]:
    """Average power spectrum (bins 0..size/2) of Hann-windowed blocks spread over samples."""
    _, _, window = _fft_tables(size)
    count = max(1, min(_MAX_BLOCKS, len(samples) // size))
    spacing = (len(samples) - size) // count if len(samples) > size else 0
    total = [0.0] * (size // 2 + 1)
    for b in range(count):
        block = samples[b * spacing : b * spacing + size]
        values = [x * w for x, w in zip(block, window, strict=False)]
        values.extend([0.0] * (size - len(values)))
        for k, value in enumerate(_fft(values, size)[: size // 2 + 1]):
            total[k] += value.real * value.real + value.imag * value.imag
    return total


def dominant_frequencies(
    pcm: bytes, rate: int = 8000, *, count: int = 2, lo: float = 100, hi: float | None = None
) -> list[float]:
    """The `count` strongest tones between lo and hi Hz (default: 95 % of the Nyquist
    frequency, 3800 Hz at 8 kHz), strongest first.

    Peaks weaker than 1/1000 of the strongest (-30 dB) are not reported, so a pure sine gives
    one frequency even when two are asked for; silence gives none.
    """
    samples = samples_of(pcm)
    if len(samples) < 64:
        return []
    size = _FFT_SIZE
    spectrum = _spectrum(samples, size)
    bin_hz = rate / size
    first = max(1, math.ceil(lo / bin_hz))
    top = 0.475 * rate if hi is None else hi
    last = min(size // 2 - 1, math.floor(top / bin_hz))
    peaks = [
        k
        for k in range(first, last + 1)
        if spectrum[k] > spectrum[k - 1] and spectrum[k] >= spectrum[k + 1]
    ]
    peaks.sort(key=lambda k: spectrum[k], reverse=True)
    if not peaks or spectrum[peaks[0]] <= 0.0:
        return []
    floor = spectrum[peaks[0]] / 1000
    found: list[float] = []
    for k in peaks:
        if len(found) == count or spectrum[k] < floor:
            break
        a, b, c = (math.log(spectrum[k + d] + 1e-12) for d in (-1, 0, 1))
        curvature = a - 2 * b + c
        offset = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
        frequency = (k + offset) * bin_hz
        if all(abs(frequency - f) > 3 * bin_hz for f in found):
            found.append(frequency)
    return found


def detect_dtmf(pcm: bytes, rate: int = 8000) -> str:
    """The DTMF keys heard in `pcm`, each press once, in order."""
    samples = samples_of(pcm)
    block = rate // 50
    keys: list[str] = []
    previous = ""
    run = 0
    for start in range(0, len(samples) - block + 1, block):
        chunk = samples[start : start + block]
        energy = sum(x * x for x in chunk) / block
        key = ""
        if energy > 1000.0:  # about -57 dBm0: quieter blocks are silence
            rows = [_goertzel(chunk, f, rate) for f in DTMF_ROWS]
            columns = [_goertzel(chunk, f, rate) for f in DTMF_COLUMNS]
            row = max(range(4), key=rows.__getitem__)
            column = max(range(4), key=columns.__getitem__)
            # Two tones of amplitude A carry A**2 of the block's energy A**2.
            strong = rows[row] + columns[column] > 0.5 * energy
            alone = all(p < rows[row] / 4 for i, p in enumerate(rows) if i != row) and all(
                p < columns[column] / 4 for i, p in enumerate(columns) if i != column
            )
            twist = 0.1 < rows[row] / max(columns[column], 1e-9) < 10
            if strong and alone and twist:
                key = DTMF_KEYS[row][column]
        if key and key == previous:
            run += 1
            if run == 2:
                keys.append(key)
        else:
            run = 1
        previous = key
    return "".join(keys)
