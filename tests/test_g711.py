"""G.711 against audioop (the oracle on Python 3.11) for every input."""

from __future__ import annotations

import struct
import warnings

import pytest

from pidphone.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_SAMPLES = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))


def test_ulaw_encode_every_sample() -> None:
    assert ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)


def test_alaw_encode_every_sample() -> None:
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)


def test_ulaw_decode_every_code() -> None:
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_every_code() -> None:
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


@pytest.mark.parametrize("pcm", [b"", b"\x01", b"\x10\x00", b"\x10\x00\x20\x00\x05"])
def test_short_and_odd_inputs(pcm: bytes) -> None:
    even = pcm[: len(pcm) // 2 * 2]
    assert ulaw_encode(pcm) == audioop.lin2ulaw(even, 2)
    assert alaw_encode(pcm) == audioop.lin2alaw(even, 2)


def test_frame_round_trip_is_close() -> None:
    pcm = struct.pack("<160h", *(i * 200 - 16000 for i in range(160)))
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        out = struct.unpack("<160h", decode(encode(pcm)))
        for a, b in zip(out, struct.unpack("<160h", pcm), strict=True):
            assert abs(a - b) <= max(16, abs(b) // 16)
    assert ulaw_decode(b"\xff\x7f") == b"\x00\x00\x00\x00"
