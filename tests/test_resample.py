"""Resampling: frequencies and levels kept, no aliases or images, state across frames."""

from __future__ import annotations

import random
import struct

import pytest

from pidphone.audio import dominant_frequencies, goertzel_power, rms, samples_of
from pidphone.audio import test_tone as sine
from pidphone.audio.resample import Resampler, resample
from pidphone.errors import LocalProtocolError

RATES = [16000, 44100, 48000]


def frames(pcm: bytes, rate: int) -> list[bytes]:
    size = rate // 50 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("up", [True, False])
def test_1khz_tone_keeps_frequency_and_level(rate: int, up: bool) -> None:
    src, dst = (8000, rate) if up else (rate, 8000)
    resampler = Resampler(src, dst)
    pcm = sine(1000, 1.0, rate=src)
    out = b"".join(resampler.process(chunk) for chunk in frames(pcm, src))
    assert len(out) == 2 * dst
    steady = out[2 * dst // 10 :]  # past the filter delay
    assert dominant_frequencies(steady, dst, count=1, hi=dst / 2 - 100) == [
        pytest.approx(1000, abs=3)
    ]
    assert rms(steady) == pytest.approx(rms(pcm), rel=0.01)


@pytest.mark.parametrize("rate", RATES)
def test_upsampling_leaves_no_images(rate: int) -> None:
    out = resample(sine(1000, 0.5), 8000, rate)[rate // 5 :]
    signal = goertzel_power(out, 1000, rate)
    for image in (7000, 9000, 15000):
        if image < rate / 2:
            assert goertzel_power(out, image, rate) < signal * 1e-5  # 50 dB down


@pytest.mark.parametrize("rate", RATES)
def test_downsampling_does_not_alias(rate: int) -> None:
    # 5 kHz would fold to 3 kHz at 8 kHz: it must be filtered out instead
    out = resample(sine(5000, 0.5, rate=rate), rate, 8000)[800:]
    assert rms(out) < rms(sine(5000, 0.1)) * 0.003
    assert goertzel_power(out, 3000) < 10.0


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 48000), (48000, 8000), (8000, 44100), (44100, 8000), (16000, 8000)]
)
def test_chunking_does_not_matter(src: int, dst: int) -> None:
    rng = random.Random(3)
    pcm = struct.pack("<4410h", *(rng.randint(-12000, 12000) for _ in range(4410)))
    whole = Resampler(src, dst).process(pcm)
    pieces = Resampler(src, dst)
    out = b""
    pos = 0
    while pos < len(pcm):
        size = 2 * rng.randint(0, 300)
        out += pieces.process(pcm[pos : pos + size])
        pos += size
    assert out == whole
    assert abs(len(whole) // 2 - 4410 * dst / src) <= 1


@pytest.mark.parametrize(("src", "dst"), [(8000, 48000), (48000, 8000), (8000, 44100)])
def test_full_scale_input_saturates_instead_of_wrapping(src: int, dst: int) -> None:
    n = src // 50
    square = struct.pack(f"<{8 * n}h", *([32767] * n + [-32768] * n) * 4)
    out = samples_of(Resampler(src, dst).process(square))
    ratio = dst / src
    # the middle of each half-period keeps its sign: a wrap would flip it
    for k in range(1, 7):
        middle = round((k * n + n / 2) * ratio)
        assert (out[middle] > 20000) == (k % 2 == 0)
        assert (out[middle] < -20000) == (k % 2 == 1)
    assert max(out) == 32767
    assert min(out) == -32768


def test_same_rate_and_errors() -> None:
    assert Resampler(8000, 8000).process(b"\x01\x02\x03") == b"\x01\x02"
    assert Resampler(8000, 48000).process(b"") == b""
    assert 0 < Resampler(8000, 48000).delay < 0.005
    with pytest.raises(LocalProtocolError):
        Resampler(0, 8000)
