"""Packet-loss concealment: continuity, pitch, decay to silence, smooth recovery."""

from __future__ import annotations

import itertools
import math
import random
import struct

import pytest

from pidphone.audio import dominant_frequencies, rms, samples_of
from pidphone.audio.plc import Concealer, _to_pcm, find_pitch
from pidphone.errors import LocalProtocolError


def sine_frames(
    frequency: float, count: int, start: int = 0, amplitude: float = 8000
) -> list[bytes]:
    step = 2 * math.pi * frequency / 8000
    return [
        struct.pack(
            "<160h", *(round(amplitude * math.sin(step * n)) for n in range(k * 160, k * 160 + 160))
        )
        for k in range(start, start + count)
    ]


def max_jump(pcm: bytes) -> int:
    s = samples_of(pcm)
    return max(abs(a - b) for a, b in itertools.pairwise(s))


def test_good_frames_pass_through_delayed() -> None:
    concealer = Concealer()
    frames = sine_frames(200, 5)
    out = b"".join(concealer.good(f) for f in frames)
    # delayed by 30 samples (3.75 ms), otherwise untouched
    assert out[60:] == b"".join(frames)[:-60]
    assert out[:60] == bytes(60)


@pytest.mark.parametrize("frequency", [70.0, 100.0, 160.0, 200.0])
def test_find_pitch(frequency: float) -> None:
    history = [1000 * math.sin(2 * math.pi * frequency * n / 8000) for n in range(390)]
    assert find_pitch(history) == pytest.approx(8000 / frequency, abs=1)


@pytest.mark.parametrize("frequency", [70.0, 100.0, 160.0, 200.0])
def test_find_pitch_at_16_khz_covers_the_same_voices(frequency: float) -> None:
    history = [1000 * math.sin(2 * math.pi * frequency * n / 16000) for n in range(780)]
    assert find_pitch(history, 16000) == pytest.approx(16000 / frequency, abs=2)


def test_concealer_at_16_khz_keeps_the_lengths_in_milliseconds() -> None:
    concealer = Concealer(320, 16000)
    assert concealer.delay == 60  # 3.75 ms, as 30 samples at 8 kHz
    tone = struct.pack(
        "<3200h", *(round(5000 * math.sin(2 * math.pi * 300 * n / 16000)) for n in range(3200))
    )
    for start in range(0, len(tone), 640):
        concealer.good(tone[start : start + 640])
    lost = b"".join(concealer.conceal() for _ in range(4))
    assert dominant_frequencies(lost[:640], 16000, count=1) == [pytest.approx(300, abs=10)]
    assert rms(lost[-640:]) < 0.6 * rms(lost[:640])  # fading from the second 10 ms on
    with pytest.raises(LocalProtocolError):
        Concealer(rate=11025)


def test_concealment_continues_the_waveform_then_fades_to_silence() -> None:
    concealer = Concealer()
    frames = sine_frames(200, 12)  # 200 Hz: a 40-sample period
    out = [concealer.good(f) for f in frames[:8]]
    concealed = [concealer.conceal() for _ in range(4)]
    stream = b"".join(out + concealed)
    # no click where the concealment starts: steps stay like those of the sine itself
    assert max_jump(stream) <= max_jump(b"".join(frames)) * 1.2
    # the first concealed frame still sounds like the original
    assert dominant_frequencies(concealed[0] * 4, count=1) == [pytest.approx(200, abs=10)]
    # the first 10 ms is the sine at full level (the true continuation, 30 samples delayed)
    truth = samples_of(b"".join(frames))[8 * 160 - 30 : 8 * 160 + 50]
    first = samples_of(concealed[0])[:80]
    assert max(abs(a - b) for a, b in zip(first, truth, strict=True)) < 800
    levels = [rms(c) for c in concealed]
    assert levels[0] > levels[1] > levels[2] > levels[3]
    assert levels[0] == pytest.approx(8000 / 2**0.5, rel=0.15)
    # after 60 ms (plus the 30 delayed samples, which end the fade): silence
    tail = samples_of(concealed[3])
    assert max(abs(s) for s in tail[:30]) < 800
    assert tail[30:] == (0,) * 130


def test_recovery_is_smooth() -> None:
    concealer = Concealer()
    frames = sine_frames(250, 12)
    out = [concealer.good(f) for f in frames[:6]]
    out.append(concealer.conceal())
    out += [concealer.good(f) for f in frames[7:12]]
    stream = b"".join(out)
    assert max_jump(stream) <= max_jump(b"".join(frames)) * 1.3
    # later frames are the original again, 30 samples late
    assert out[-1] == b"".join(frames)[11 * 160 * 2 - 60 : 12 * 160 * 2 - 60]


def test_recovery_after_long_loss_fades_in_from_silence() -> None:
    concealer = Concealer()
    frames = sine_frames(200, 12)
    for f in frames[:5]:
        concealer.good(f)
    for _ in range(5):
        assert len(concealer.conceal()) == 320
    back = samples_of(concealer.good(frames[10]))
    # the 30 delayed samples are still silence, then the signal ramps in
    assert back[:30] == (0,) * 30
    ramp = [abs(s) for s in back[30:110]]
    assert max(ramp[:10]) < max(ramp[-10:])


def test_silence_stays_silent() -> None:
    concealer = Concealer()
    concealer.good(bytes(320))
    assert concealer.conceal() == bytes(320)


def _reference_pitch(history: list[float], rate: int) -> int:
    """find_pitch as Appendix I words it: explicit loops over the samples."""
    scale = rate // 8000
    corr_len, end = 160 * scale, len(history)
    target = history[end - corr_len :]

    def score(lag: int, step: int) -> float:
        candidate = history[end - corr_len - lag : end - lag]
        corr = energy = 0.0
        for i in range(0, corr_len, step):
            corr += target[i] * candidate[i]
            energy += candidate[i] * candidate[i]
        return corr / math.sqrt(max(energy, 250.0 * scale))

    lags = range(40 * scale, 120 * scale + 1, 2 * scale)
    coarse = max(lags, key=lambda lag: score(lag, 2 * scale))
    best = score(coarse, 1)
    for divisor in (3, 2):
        shorter = round(coarse / divisor)
        if shorter >= 40 * scale and score(shorter, 1) >= 0.9 * best:
            coarse = shorter
            break
    fine = range(max(40 * scale, coarse - scale), min(120 * scale, coarse + scale) + 1)
    return max(fine, key=lambda lag: score(lag, 1))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_find_pitch_is_the_plain_correlation_search(rate: int) -> None:
    """The pitch search sums its products at C speed; it picks what the plain loops pick,
    on voices and on noise."""
    rng = random.Random(rate)
    for _ in range(40):
        f, noise = rng.uniform(60, 400), rng.uniform(0, 20000)
        history = [
            4000 * math.sin(2 * math.pi * f * n / rate) + rng.uniform(-noise, noise)
            for n in range(390 * rate // 8000)
        ]
        assert find_pitch(history, rate) == _reference_pitch(history, rate)


def test_synthetic_samples_round_half_to_even_and_clip() -> None:
    samples = [0.5, 1.5, -0.5, -2.5, 32767.4, 32767.5, 40000.0, -32768.5, -40000.0, 12.7]
    expected = [max(-32768, min(32767, round(s))) for s in samples]
    assert samples_of(_to_pcm(samples)) == tuple(expected)


@pytest.mark.parametrize("unit", [1, 2, 3, 5, 6])
def test_attenuation_falls_sample_by_sample(unit: int) -> None:
    concealer = Concealer()
    samples = [float(s) for s in range(-80, 80, 2)]
    gain, step, expected = 1.0 - (unit - 1) * 0.2, 0.2 / 80, []
    for s in samples:
        expected.append(s * max(0.0, gain))
        gain -= step
    assert concealer._attenuate(samples, unit) == expected


def test_long_loss_loops_the_pitch_buffer_sample_by_sample() -> None:
    """A loss reads the pitch buffer round and round from where the last read stopped (150
    samples from a buffer of two periods wrap)."""
    concealer = Concealer()
    for frame in sine_frames(250, 4):
        concealer.good(frame)
    concealer.conceal()  # 20 ms lost: the buffer grew to two periods
    buffer, length, offset = list(concealer._buffer), concealer._length, concealer._offset
    start = len(buffer) - length
    expected = []
    for _ in range(150):
        expected.append(buffer[start + offset])
        offset = (offset + 1) % length
    assert concealer._synthesize(150) == expected
    assert concealer._offset == offset
