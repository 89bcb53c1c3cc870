"""Tones checked by their measured frequencies, cadence and level."""

from __future__ import annotations

import pytest

from pidphone.audio import (
    ToneGenerator,
    ToneSpec,
    detect_dtmf,
    dominant_frequencies,
    dtmf_frequencies,
    dtmf_tone,
    goertzel_power,
    rms,
)
from pidphone.audio import test_tone as sine
from pidphone.audio.tones import PLANS, amplitude, looped_tone
from pidphone.errors import LocalProtocolError


def frames(generator: ToneGenerator, seconds: float) -> list[bytes]:
    return [generator.frame() for _ in range(round(seconds / 0.02))]


def cadence(chunks: list[bytes]) -> list[tuple[bool, int]]:
    """Runs of (on, number of 20 ms frames)."""
    runs: list[tuple[bool, int]] = []
    for chunk in chunks:
        on = rms(chunk) > 1000
        if runs and runs[-1][0] == on:
            runs[-1] = (on, runs[-1][1] + 1)
        else:
            runs.append((on, 1))
    return runs


@pytest.mark.parametrize(
    ("plan", "kind", "freqs"),
    [
        ("us", "dial", [350, 440]),
        ("us", "ringback", [440, 480]),
        ("us", "busy", [480, 620]),
        ("us", "congestion", [480, 620]),
        ("us", "call_waiting", [440]),
        ("etsi", "dial", [425]),
        ("etsi", "ringback", [425]),
        ("etsi", "busy", [425]),
        ("etsi", "congestion", [425]),
        ("etsi", "call_waiting", [425]),
        ("etsi", "ring", [1100, 1400]),
    ],
)
def test_tone_frequencies(plan: str, kind: str, freqs: list[int]) -> None:
    generator = ToneGenerator(kind, plan=plan)
    on = b"".join(chunk for chunk in frames(generator, 2.0) if rms(chunk) > 3000)
    # bursts joined end to end are not phase-continuous: ask only for the expected count
    found = sorted(dominant_frequencies(on, count=len(freqs)))
    for measured, expected in zip(found, freqs, strict=True):
        assert measured == pytest.approx(expected, abs=10)


@pytest.mark.parametrize(
    ("plan", "kind", "expected"),
    [
        ("us", "ringback", [(True, 100), (False, 200), (True, 100)]),
        ("us", "busy", [(True, 25), (False, 25)] * 2),
        ("us", "congestion", [(True, 13), (False, 12), (True, 12), (False, 13)]),
        ("etsi", "ringback", [(True, 50), (False, 200), (True, 50)]),
        ("etsi", "busy", [(True, 25), (False, 25)] * 2),
        ("etsi", "call_waiting", [(True, 10), (False, 10), (True, 10), (False, 250)]),
        ("us", "call_waiting", [(True, 15), (False, 485)]),
        ("etsi", "ring", [(True, 20), (False, 10), (True, 20), (False, 100)]),
    ],
)
def test_cadence(plan: str, kind: str, expected: list[tuple[bool, int]]) -> None:
    total = sum(n for _, n in expected)
    runs = cadence(frames(ToneGenerator(kind, plan=plan), total * 0.02))
    # 0.25 s is 12.5 frames: the edges fall inside frames, so allow one frame either way
    assert [on for on, _ in runs] == [on for on, _ in expected]
    for (_, n), (_, want) in zip(runs, expected, strict=True):
        assert abs(n - want) <= 1


def test_dial_tone_is_continuous_in_phase_and_level() -> None:
    generator = ToneGenerator("dial")
    chunks = frames(generator, 1.0)
    whole = b"".join(chunks)
    assert dominant_frequencies(whole, count=1) == [pytest.approx(425, abs=2)]
    levels = [rms(chunk) for chunk in chunks[1:]]
    # -10 dBm0: amplitude 7,169, rms 5,069; identical in every frame (no phase jumps)
    assert min(levels) == pytest.approx(amplitude(-10) / 2**0.5, rel=0.02)
    assert max(levels) - min(levels) < 60
    # power at 425 Hz over the whole second matches a clean sine: no discontinuities
    assert goertzel_power(whole[320:], 425) == pytest.approx(amplitude(-10) ** 2 / 2, rel=0.02)


def test_frames_are_20_ms() -> None:
    assert len(ToneGenerator("busy", plan="us").frame()) == 320
    assert len(ToneGenerator("dial", rate=16000).frame()) == 640


@pytest.mark.parametrize("key", "0123456789*#ABCD")
def test_dtmf_tones(key: str) -> None:
    pcm = dtmf_tone(key, 0.2)
    assert len(pcm) == 3200
    row, column = dtmf_frequencies(key)
    found = sorted(dominant_frequencies(pcm, count=2))
    assert found == [pytest.approx(row, abs=10), pytest.approx(column, abs=10)]
    assert detect_dtmf(pcm) == key


def test_detect_dtmf_sequence_and_rejects_speechlike_tones() -> None:
    digits = "19*0#D"
    pcm = b"".join(dtmf_tone(k, 0.08) + bytes(640) for k in digits)
    assert detect_dtmf(pcm) == digits
    assert detect_dtmf(sine(1000, 0.5)) == ""
    assert detect_dtmf(bytes(1600)) == ""


def test_custom_spec_and_errors() -> None:
    generator = ToneGenerator.from_spec(ToneSpec((1000.0,)))
    assert dominant_frequencies(b"".join(frames(generator, 0.5))) == [pytest.approx(1000, abs=2)]
    with pytest.raises(LocalProtocolError, match="unknown tone"):
        ToneGenerator("siren")
    with pytest.raises(LocalProtocolError, match="unknown tone plan"):
        ToneGenerator("dial", plan="mars")
    with pytest.raises(LocalProtocolError, match="not a DTMF key"):
        dtmf_tone("E")
    with pytest.raises(LocalProtocolError):
        ToneGenerator.from_spec(ToneSpec((1.0,), (1.0,)))
    assert set(PLANS["us"]) == set(PLANS["etsi"])


@pytest.mark.parametrize(
    "spec",
    [
        ToneSpec((1000.0,)),
        ToneSpec((700.0,)),
        ToneSpec((425.0,)),
        ToneSpec((350.0, 440.0)),
        ToneSpec((1234.5,)),  # no repeat within a second: computed frame by frame
        ToneSpec((425.0,), (0.25, 0.25)),  # a cadence: computed frame by frame
    ],
)
def test_looped_tone_plays_the_same_samples_as_the_generator(spec: ToneSpec) -> None:
    looped = looped_tone(spec)
    assert [looped() for _ in range(120)] == frames(ToneGenerator.from_spec(spec), 2.4)


@pytest.mark.parametrize("plan", ["etsi", "us"])
@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize(
    ("kind", "frequency", "runs"),
    [
        ("secure", 1600, [(True, 8), (False, 5), (True, 8), (False, 5), (True, 8)]),
        ("not_secure", 500, [(True, 4), (False, 5)] * 5 + [(True, 4)]),
    ],
)
def test_indication_tones_are_told_apart_by_pitch_and_pattern(
    plan: str, rate: int, kind: str, frequency: int, runs: list[tuple[bool, int]]
) -> None:
    """Three long high beeps when secure, six short low ones when not; then a long silence,
    so a tone stopped late adds no beep."""
    from pidphone.audio.tones import INDICATION_TAIL, indication_length

    generator = ToneGenerator(kind, plan=plan, rate=rate)
    assert generator.frame_samples == rate // 50
    length = indication_length(kind)
    chunks = frames(generator, length + 2.0)
    # 20 ms frames: a 150 ms beep covers 8 (its last half ramps off), 80 ms exactly 4
    measured = cadence(chunks)
    assert measured[:-1] == runs
    assert measured[-1][0] is False and measured[-1][1] >= round(2.0 / 0.02) - 1
    on = b"".join(chunk for chunk in chunks if rms(chunk) > 3000)
    assert dominant_frequencies(on, count=1, rate=rate) == [pytest.approx(frequency, abs=10)]
    assert INDICATION_TAIL >= 10
    assert length == pytest.approx({"secure": 0.68, "not_secure": 0.98}[kind])


def test_a_tone_moved_to_another_rate_goes_on_from_the_same_moment() -> None:
    narrow = ToneGenerator("not_secure", rate=8000)
    frames(narrow, 0.3)  # two beeps in, a gap just begun
    wide = narrow.at_rate(16000)
    assert wide.rate == 16000 and wide.frame_samples == 320
    rest = cadence(frames(wide, 0.7))
    reference = ToneGenerator("not_secure", rate=16000)
    frames(reference, 0.3)
    assert rest == cadence(frames(reference, 0.7))
    with pytest.raises(LocalProtocolError, match="not an indication tone"):
        from pidphone.audio.tones import indication_length

        indication_length("dial")
