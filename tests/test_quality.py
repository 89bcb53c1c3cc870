"""Speech quality through each codec and its concealment, scored with ITU-T P.862 PESQ on speech
made here by espeak-ng: the scoring tells a clean channel from a broken one, and each codec
keeps a floor (well below what bench/quality.py measures, so only a real fault fails it)."""

from __future__ import annotations

import pytest

from bench.jitter import run_point
from bench.relay import Impairer, Impairment
from bench.speech import make_speech, mos, resample_fft, through_codec
from pidphone.audio.codec import Codec, OpusCodec, make_codec
from tests.conftest import need_program

FRAMES = 1000


@pytest.fixture(scope="module")
def speech() -> dict[int, bytes]:
    need_program("espeak-ng", "espeak-ng")
    return {rate: make_speech(rate) for rate in (8000, 16000, 48000)}


def losses(loss: float, burst: float | None = None, seed: int = 1) -> list[bool]:
    impairer = Impairer(Impairment(loss=loss, burst=burst), seed)
    return [impairer.schedule(0.0) == [] for _ in range(FRAMES)]


def score(codec: Codec, speech: dict[int, bytes], lost: list[bool]) -> float:
    out = through_codec(codec, speech[codec.sample_rate], lost)
    rate = 8000 if codec.sample_rate == 8000 else 16000
    return mos(speech[rate], resample_fft(out, codec.sample_rate, rate), rate)


def test_the_speech_is_speech(speech: dict[int, bytes]) -> None:
    assert 8.0 < len(speech[8000]) / 16000 < 30.0
    assert mos(speech[8000], speech[8000], 8000) > 4.4  # narrowband PESQ's ceiling is 4.55
    assert mos(speech[16000], speech[16000], 16000) > 4.6  # wideband's is 4.64


def test_a_clean_g711_channel_scores_high_and_a_broken_one_low(speech: dict[int, bytes]) -> None:
    clean = score(make_codec("PCMU"), speech, [])
    broken = score(make_codec("PCMU"), speech, losses(0.3, burst=3))
    assert clean > 3.8
    assert broken < 2.5
    # and concealment is worth having: the same losses as gaps of silence score lower still
    pcm = speech[8000]
    gaps = b"".join(
        bytes(320) if gone else pcm[n * 320 : n * 320 + 320]
        for n, gone in enumerate(losses(0.1)[: len(pcm) // 320])
    )
    concealed = score(make_codec("PCMU"), speech, losses(0.1))
    assert mos(pcm, gaps, 8000) < concealed - 0.3


PIDPHONE_FMTP = {"useinbandfec": "1"}
"""What a pidphone peer asks of an Opus sender."""


@pytest.mark.parametrize(("name", "floor"), [("PCMA", 3.8), ("G722", 2.8), ("opus", 3.3)])
def test_each_codec_keeps_its_clean_floor(
    speech: dict[int, bytes], name: str, floor: float
) -> None:
    assert score(make_codec(name, PIDPHONE_FMTP), speech, []) > floor


def test_concealment_holds_speech_together_at_3_percent_loss(speech: dict[int, bytes]) -> None:
    for name in ("PCMU", "G722", "opus"):
        clean = score(make_codec(name, PIDPHONE_FMTP), speech, [])
        lossy = score(make_codec(name, PIDPHONE_FMTP), speech, losses(0.03))
        assert clean - lossy < 0.8, name


def test_opus_fec_scores_above_its_plc_at_10_percent_loss(speech: dict[int, bytes]) -> None:
    class PlcOnly(OpusCodec):
        def decode_fec(self, next_payload: bytes) -> bytes | None:
            return None

    lost = losses(0.1)
    with_fec = score(OpusCodec(), speech, lost)
    plc_only = score(PlcOnly(), speech, lost)
    assert with_fec > plc_only + 0.1


@pytest.mark.parametrize(("name", "floor"), [("PCMU", 2.3), ("G722", 1.4), ("opus", 2.5)])
def test_the_receive_path_keeps_speech_under_loss_and_jitter(
    speech: dict[int, bytes], name: str, floor: float
) -> None:
    """The media session's receive path (jitter buffer, concealment, Opus FEC) on a simulated
    clock, 10 % loss and 60 ms of jitter (bench/jitter.py; it measures PCMU 2.73, G.722 1.67,
    Opus 3.67): a buffer that lets jitter become loss, or grows its delay with each loss,
    falls below the floor (the buffer before the current one scored 1.79 with PCMU)."""
    del speech  # espeak-ng is needed: the fixture checks it
    outcome = run_point(name, loss=0.1, jitter=0.06, seed=1, phase=0.01)
    assert outcome.mos > floor, outcome
    assert outcome.wait < 0.1, outcome  # seconds a packet waits in the buffer, on average


def test_a_sender_stall_at_30_ms_of_jitter_does_not_ruin_the_call(
    speech: dict[int, bytes],
) -> None:
    """A peer whose audio clock restarts after a 220 ms stall, without skipping its RTP time,
    sends every later packet 220 ms later for its timestamp; at 30 ms of jitter the buffer
    that took that step for jitter (a transit floor that could not rise) played the rest of
    the call against a floor 220 ms too low and scored 1.40 (real calls: 1.2-1.3). It
    measures 3.49 (3.64 without jitter, 4.07 without the stall)."""
    del speech  # espeak-ng is needed: the fixture checks it
    outcome = run_point("opus", loss=0.0, jitter=0.03, seed=1, phase=0.01, stall=0.22)
    assert outcome.mos > 2.8, outcome
    assert outcome.late < 40, outcome


def test_opus_at_3_percent_loss_is_within_a_fifth_of_a_point_of_its_clean_score(
    speech: dict[int, bytes],
) -> None:
    """The in-band FEC rebuilds nearly every lost frame, and the bitrate leaves room for it
    (at 40 kbit/s the FEC's copy cost the clean path a third of a point, and 3 % loss took
    0.22 more)."""
    clean = score(make_codec("opus", PIDPHONE_FMTP), speech, [])
    lossy = score(make_codec("opus", PIDPHONE_FMTP), speech, losses(0.03))
    assert clean > 4.0
    assert clean - lossy < 0.2, (clean, lossy)
