"""Frequency and level measurement."""

from __future__ import annotations

import struct

import pytest

from pidphone.audio import dominant_frequencies, goertzel_power, rms, samples_of
from pidphone.audio import test_tone as sine
from pidphone.audio.tones import amplitude


@pytest.mark.parametrize("frequency", [150.0, 440.0, 997.0, 1000.0, 2222.2, 3700.0])
def test_one_second_tone_to_within_a_few_hz(frequency: float) -> None:
    assert dominant_frequencies(sine(frequency, 1.0)) == [pytest.approx(frequency, abs=3)]


def test_two_tones_strongest_first() -> None:
    a = samples_of(sine(700, 1.0, level_dbm0=-10))
    b = samples_of(sine(1800, 1.0, level_dbm0=-16))
    mix = struct.pack("<8000h", *(x + y for x, y in zip(a, b, strict=True)))
    found = dominant_frequencies(mix, count=2)
    assert found == [pytest.approx(700, abs=3), pytest.approx(1800, abs=3)]
    assert dominant_frequencies(mix, count=2, lo=1000) == [pytest.approx(1800, abs=3)]


def test_silence_and_short_input() -> None:
    assert dominant_frequencies(bytes(16000)) == []
    assert dominant_frequencies(b"\x01\x00" * 10) == []
    assert rms(b"") == 0.0
    assert goertzel_power(b"", 1000) == 0.0


def test_goertzel_power_is_half_the_squared_amplitude() -> None:
    pcm = sine(1000, 0.5)
    assert goertzel_power(pcm, 1000) == pytest.approx(amplitude(-10) ** 2 / 2, rel=0.01)
    assert goertzel_power(pcm, 1500) < 1.0
    assert rms(pcm) == pytest.approx(amplitude(-10) / 2**0.5, rel=0.01)


def test_longer_audio_with_a_16k_rate() -> None:
    pcm = sine(3000, 3.0, rate=16000)
    assert dominant_frequencies(pcm, 16000, hi=7000) == [pytest.approx(3000, abs=5)]


def test_rms_is_exact_at_full_scale() -> None:
    """The level is the exact root of the mean square, full scale and odd bytes included."""
    assert rms(struct.pack("<4h", -32768, -32768, -32768, -32768)) == 32768.0
    assert rms(struct.pack("<2h", 3, -4) + b"\x07") == (25 / 2) ** 0.5
