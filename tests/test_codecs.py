"""The voice codecs through the real libraries (libopus, spandsp): what comes out is what went
in (frequency and level), wideband codecs carry 5 kHz and G.711 does not, lost frames are
concealed and fade, and Opus's in-band FEC rebuilds a lost frame better than concealment."""

from __future__ import annotations

import itertools
import math
import struct

import pytest

from pidphone.audio.analysis import dominant_frequencies, goertzel_power, rms, samples_of
from pidphone.audio.codec import (
    Codec,
    CodecDecodeError,
    G711Codec,
    G722Codec,
    OpusCodec,
    make_codec,
)
from pidphone.audio.libopus import version
from pidphone.audio.resample import Resampler
from pidphone.errors import LocalProtocolError

AMPLITUDE = 8000.0


def tone(frequency: float, rate: int, seconds: float, amplitude: float = AMPLITUDE) -> bytes:
    count = round(rate * seconds)
    return struct.pack(
        f"<{count}h",
        *(round(amplitude * math.sin(2 * math.pi * frequency * n / rate)) for n in range(count)),
    )


def voiced(rate: int, frames: int) -> bytes:
    """A vowel-like signal whose pitch changes every 20 ms: harmonics of 110..230 Hz with a
    formant near 700 Hz, so no frame is predictable from the one before."""
    out: list[int] = []
    phase = 0.0
    per_frame = rate // 50
    for f in range(frames):
        pitch = 110 + (f * 37) % 120
        for _ in range(per_frame):
            phase += 2 * math.pi * pitch / rate
            value = sum(
                math.sin(k * phase) / k * (2.0 if 500 < k * pitch < 1000 else 1.0)
                for k in range(1, 16)
                if k * pitch < rate / 2.2
            )
            out.append(round(3000 * value))
    return struct.pack(f"<{len(out)}h", *out)


def frames_of(pcm: bytes, codec: Codec) -> list[bytes]:
    size = codec.frame_bytes
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def round_trip(codec: Codec, pcm: bytes) -> bytes:
    return b"".join(codec.decode(codec.encode(frame)) for frame in frames_of(pcm, codec))


def amplitude_at(pcm: bytes, frequency: float, rate: int) -> float:
    return math.sqrt(2 * goertzel_power(pcm, frequency, rate))


ALL = ["PCMU", "PCMA", "G722", "opus"]


def test_libopus_is_the_system_library() -> None:
    assert version().startswith("libopus 1.")


@pytest.mark.parametrize(
    ("name", "clock", "rate", "ticks", "samples", "wideband"),
    [
        ("PCMU", 8000, 8000, 160, 160, False),
        ("PCMA", 8000, 8000, 160, 160, False),
        ("G722", 8000, 16000, 160, 320, True),  # RFC 3551 §4.5.2: the 8000 Hz clock
        ("opus", 48000, 48000, 960, 960, True),
    ],
)
def test_clock_and_frame_geometry(
    name: str, clock: int, rate: int, ticks: int, samples: int, wideband: bool
) -> None:
    codec = make_codec(name)
    assert (codec.name, codec.clock_rate, codec.sample_rate) == (name, clock, rate)
    assert (codec.frame_ticks, codec.frame_samples, codec.wideband) == (ticks, samples, wideband)


def test_opus_at_the_device_rate_keeps_the_48k_clock() -> None:
    codec = make_codec("opus", sample_rate=16000)
    assert (codec.clock_rate, codec.sample_rate, codec.frame_ticks, codec.frame_samples) == (
        48000,
        16000,
        960,
        320,
    )
    out = round_trip(codec, tone(1000, 16000, 0.4))
    assert len(out) == len(tone(1000, 16000, 0.4))
    assert dominant_frequencies(out[3200:], 16000, count=1) == [pytest.approx(1000, abs=5)]


@pytest.mark.parametrize("name", ALL)
def test_a_tone_keeps_its_frequency_and_level(name: str) -> None:
    codec = make_codec(name)
    rate = codec.sample_rate
    sent = tone(1000, rate, 0.5)
    received = round_trip(codec, sent)
    assert len(received) == len(sent)
    settled = received[len(received) // 2 :]
    assert dominant_frequencies(settled, rate, count=1, hi=rate / 2.2) == [
        pytest.approx(1000, abs=5)
    ]
    level = 20 * math.log10(amplitude_at(settled, 1000, rate) / AMPLITUDE)
    assert abs(level) < 1.0, f"{name}: {level:.2f} dB"


@pytest.mark.parametrize("name", ["G722", "opus"])
def test_wideband_codecs_carry_5_khz(name: str) -> None:
    codec = make_codec(name)
    received = round_trip(codec, tone(5000, codec.sample_rate, 0.5))
    settled = received[len(received) // 2 :]
    assert amplitude_at(settled, 5000, codec.sample_rate) > 0.7 * AMPLITUDE
    assert dominant_frequencies(settled, codec.sample_rate, count=1, hi=7500) == [
        pytest.approx(5000, abs=10)
    ]


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_does_not_carry_5_khz(name: str) -> None:
    """From a 16 kHz microphone to a 16 kHz earpiece through G.711 (resampled to 8 kHz and
    back): nothing of the 5 kHz tone arrives, while 1 kHz does."""
    codec = make_codec(name)

    def through(pcm: bytes) -> bytes:
        narrow = Resampler(16000, 8000).process(pcm)
        return Resampler(8000, 16000).process(round_trip(codec, narrow))

    high = through(tone(5000, 16000, 0.5))
    low = through(tone(1000, 16000, 0.5))
    assert amplitude_at(high[8000:], 5000, 16000) < 0.01 * AMPLITUDE
    assert amplitude_at(low[8000:], 1000, 16000) > 0.8 * AMPLITUDE


@pytest.mark.parametrize("name", ALL)
def test_a_lost_frame_is_concealed_and_a_burst_fades(name: str) -> None:
    codec = make_codec(name)
    rate = codec.sample_rate
    for frame in frames_of(tone(440, rate, 0.3), codec):
        heard = codec.decode(codec.encode(frame))
    level = rms(heard)
    concealed = [codec.conceal() for _ in range(8)]
    assert all(len(frame) == codec.frame_bytes for frame in concealed)
    # the first lost frame goes on with the voice: not silence, near the level, same pitch
    assert rms(concealed[0]) > 0.5 * level
    assert dominant_frequencies(concealed[0], rate, count=1, hi=rate / 2.2) == [
        pytest.approx(440, abs=15)
    ]
    # a long burst fades out instead of buzzing: the 8th lost frame (160 ms) is far quieter
    assert rms(concealed[-1]) < 0.25 * level


@pytest.mark.parametrize("name", ["PCMU", "G722"])
def test_the_first_frame_after_a_loss_joins_smoothly(name: str) -> None:
    codec = make_codec(name)
    frames = frames_of(tone(440, codec.sample_rate, 0.4), codec)
    out = [codec.decode(codec.encode(f)) for f in frames[:10]]
    codec.encode(frames[10])  # this packet is lost
    out.append(codec.conceal())
    out.extend(codec.decode(codec.encode(f)) for f in frames[11:])
    samples = samples_of(b"".join(out))
    biggest_step = max(abs(b - a) for a, b in itertools.pairwise(samples))
    # a 440 Hz sine of amplitude A moves at most 2*pi*440/rate*A between samples
    assert biggest_step < 2.5 * 2 * math.pi * 440 / codec.sample_rate * AMPLITUDE


def _error(reference: bytes, test: bytes) -> float:
    a, b = samples_of(reference), samples_of(test)
    noise = sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    return noise / max(1, sum(x * x for x in a))


def test_opus_fec_rebuilds_a_lost_frame_better_than_plc() -> None:
    sender = OpusCodec(fec=True, expected_loss=20)
    packets = [sender.encode(frame) for frame in frames_of(voiced(48000, 40), sender)]
    clean = OpusCodec()
    reference = [clean.decode(p) for p in packets]
    fec_errors, plc_errors = [], []
    for lost in range(10, 38, 3):
        with_fec, with_plc = OpusCodec(), OpusCodec()
        for p in packets[:lost]:
            with_fec.decode(p)
            with_plc.decode(p)
        rebuilt = with_fec.decode_fec(packets[lost + 1])
        assert rebuilt is not None and len(rebuilt) == 1920
        fec_errors.append(_error(reference[lost], rebuilt))
        plc_errors.append(_error(reference[lost], with_plc.conceal()))
    fec, plc = sum(fec_errors) / len(fec_errors), sum(plc_errors) / len(plc_errors)
    assert fec < 0.5 * plc, f"error energy: FEC {fec:.3f}, PLC {plc:.3f}"
    assert fec < 0.6


def test_codecs_without_fec_say_so() -> None:
    for codec in (G711Codec("PCMU"), G722Codec()):
        assert codec.decode_fec(b"\x00" * 160) is None


def test_opus_dtx_sends_nothing_in_silence() -> None:
    codec = OpusCodec(dtx=True)
    payloads = [codec.encode(bytes(1920)) for _ in range(30)]
    assert payloads[-1] == b""
    assert OpusCodec(dtx=False).encode(bytes(1920)) != b""


def test_opus_fmtp_shapes_the_encoder() -> None:
    codec = OpusCodec.from_fmtp({"useinbandfec": "1", "usedtx": "1", "maxplaybackrate": "8000"})
    assert codec.dtx and not codec.wideband
    narrow = round_trip(codec, tone(5000, 48000, 0.4))
    # a peer that plays at most 8 kHz gets a narrowband stream: 5 kHz is not sent
    assert amplitude_at(narrow[len(narrow) // 2 :], 5000, 48000) < 0.05 * AMPLITUDE
    odd = OpusCodec.from_fmtp({"maxplaybackrate": "99999999", "maxaveragebitrate": "x"})
    assert odd.max_playback_rate == 48000 and odd.wideband


@pytest.mark.parametrize(
    "payload", [b"", b"\xff", b"\x0b" + b"\xff" * 10, b"\x03\xff\xff\xff", bytes(2000)]
)
def test_bad_opus_payloads_are_decode_errors(payload: bytes) -> None:
    codec = OpusCodec()
    with pytest.raises(CodecDecodeError):
        codec.decode(payload)
    assert len(codec.conceal()) == 1920


def test_any_g722_payload_decodes() -> None:
    codec = G722Codec()
    assert len(codec.decode(bytes(range(256)) * 2)) == 4 * 512
    with pytest.raises(CodecDecodeError):
        codec.decode(b"")


@pytest.mark.parametrize("name", ALL)
def test_frames_of_the_wrong_size_are_refused(name: str) -> None:
    codec = make_codec(name)
    with pytest.raises(LocalProtocolError):
        codec.encode(bytes(codec.frame_bytes - 2))


def test_unknown_codecs_and_rates_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        make_codec("G729")
    with pytest.raises(LocalProtocolError):
        make_codec("opus", sample_rate=44100)


def test_closed_codecs_refuse_work() -> None:
    codec = OpusCodec()
    codec.close()
    codec.close()
    with pytest.raises(LocalProtocolError):
        codec.encode(bytes(1920))
