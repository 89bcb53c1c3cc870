"""G.711 mu-law and A-law (ITU-T G.711), bit-exact, on S16_LE mono PCM.

No per-sample Python step, and no `audioop` (gone in Python 3.13): decoding is two
`bytes.translate` calls (low and high byte of each sample) woven into one buffer; A-law
encoding unpacks the samples as unsigned 16-bit indices and picks them from a 65,536-entry
table with one `itemgetter` call; mu-law encoding, on the send path of every call, works on
the whole frame as one integer of 16-bit lanes and finishes each lane with 256-byte tables
(see `ulaw_encode`), a quarter faster again. A 20 ms frame costs a few microseconds. The
formulas follow the G.191 reference coder, which is what `audioop` implemented.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from operator import itemgetter

_BIAS = 0x84


def _linear_from_ulaw(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + _BIAS) << exponent
    magnitude -= _BIAS
    return -magnitude if code & 0x80 else magnitude


def _alaw_from_linear(sample: int) -> int:
    # A-law works on 13-bit magnitudes: drop the 3 low bits of the 16-bit sample.
    if sample >= 0:
        mask = 0xD5
        magnitude = sample >> 3
    else:
        mask = 0x55
        magnitude = (-sample - 1) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5  # 1..7
        if exponent > 7:
            return 0x7F ^ mask
        code = exponent << 4 | (magnitude >> exponent) & 0x0F
    return code ^ mask


def _linear_from_alaw(code: int) -> int:
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def _encode_table(encode: Callable[[int], int]) -> bytes:
    # Indexed by the sample as an unsigned 16-bit number: 0..32767 positive, 32768.. negative.
    return bytes(encode(index - 65536 if index >= 32768 else index) for index in range(65536))


def _decode_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    """Two 256-byte translate tables: the low and the high byte of each code's sample."""
    samples = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(v & 0xFF for v in samples), bytes(v >> 8 for v in samples)


_ALAW_ENCODE = _encode_table(_alaw_from_linear)
_ULAW_LOW, _ULAW_HIGH = _decode_tables(_linear_from_ulaw)
_ALAW_LOW, _ALAW_HIGH = _decode_tables(_linear_from_alaw)
_FRAME = struct.Struct("<160H")


def _encode(pcm: bytes, table: bytes) -> bytes:
    count = len(pcm) // 2
    if count == 160:
        samples = _FRAME.unpack_from(pcm)
    else:
        samples = struct.unpack_from(f"<{count}H", pcm)
    if count < 2:  # itemgetter of one index returns an int, not a tuple
        return bytes(table[s] for s in samples)
    return bytes(itemgetter(*samples)(table))


# mu-law encoding, lane-parallel. The reference coder (G.191) takes t = sample >> 2 (so -1..-4
# become -1, one step away from zero), m = min(|t|, 8159) + 33, e = bit length of m - 6 (8
# means the top code), code = (e << 4 | (m >> (e + 1)) & 15) XOR 0xFF, or XOR 0x7F when
# negative. With u the sample in one's complement (XOR 0xFFFF when negative: -(s >> 2) is
# (~s >> 2) + 1) and w = u + 132, plus 4 when negative, m = w >> 2, and for a = w >> 8,
# b = (w & 0xFF) >> 3 this is e = bit length of a and
#     code = coarse(a) + fine(min(e, 5), b)  XOR 0xFF or 0x7F
#     coarse(a) = (e - 1) * 16 + (a << 8 >> (e + 3))   (0 for a = 0, 127 for the clip a = 128)
#     fine(r, b) = b >> r                               (b - 16 for r = 0: w >= 132 so b >= 16)
# exactly, as a << 8 is a multiple of 2^(e + 3) for e <= 5 and b >> e is 0 beyond. u and w
# take a few big-integer operations on all samples at once (16-bit lanes never carry into
# each other: w < 2^16); a and b are the odd and even bytes of w, and `bytes.translate` maps
# them through the tables below, class(a) << 5 | b indexing the fine part.


def _ulaw_coarse(a: int) -> int:
    e = a.bit_length()
    if e > 7:
        return 0x7F
    return (e - 1) * 16 + ((a << 8) >> (e + 3)) if a else 0


def _ulaw_fine(index: int) -> int:
    r, b = index >> 5, index & 31
    if r == 0:
        return max(b - 16, 0)
    return b >> r


_ULAW_COARSE = bytes(_ulaw_coarse(a) for a in range(256))
_ULAW_CLASS = bytes(min(a.bit_length(), 5) << 5 for a in range(256))
_ULAW_STEP = bytes(x >> 3 for x in range(256))
_ULAW_FINE = bytes(_ulaw_fine(index) for index in range(256))
_ULAW_SIGN = bytes(0x7F if high >= 0x80 else 0xFF for high in range(256))
_CACHED_LANES = 4096
"""Lane constants are kept for inputs up to 4096 samples (half a second at 8 kHz)."""
_LANES: dict[int, tuple[int, int]] = {}


def _lanes(count: int) -> tuple[int, int]:
    """1 and 132 in each of `count` 16-bit little-endian lanes."""
    ones = int.from_bytes(b"\x01\x00" * count, "little")
    lanes = (ones, ones * 132)
    if count <= _CACHED_LANES:
        _LANES[count] = lanes
    return lanes


def ulaw_encode(pcm: bytes) -> bytes:
    """Encode S16_LE mono PCM to mu-law, one byte per sample (an odd last byte is ignored)."""
    if type(pcm) is not bytes:
        pcm = bytes(pcm)
    count = len(pcm) >> 1
    ones, bias = _LANES.get(count) or _lanes(count)
    size = count << 1
    samples = int.from_bytes(pcm[:size] if len(pcm) != size else pcm, "little")
    negative = (samples >> 15) & ones
    w = ((samples ^ negative * 0xFFFF) + (negative << 2) + bias).to_bytes(size, "little")
    high = w[1::2]
    fine = (
        (
            int.from_bytes(high.translate(_ULAW_CLASS), "little")
            | int.from_bytes(w[0::2].translate(_ULAW_STEP), "little")
        )
        .to_bytes(count, "little")
        .translate(_ULAW_FINE)
    )
    code = int.from_bytes(high.translate(_ULAW_COARSE), "little") + int.from_bytes(fine, "little")
    sign = int.from_bytes(pcm[1:size:2].translate(_ULAW_SIGN), "little")
    return (code ^ sign).to_bytes(count, "little")


def alaw_encode(pcm: bytes) -> bytes:
    """Encode S16_LE mono PCM to A-law, one byte per sample (an odd last byte is ignored)."""
    return _encode(pcm, _ALAW_ENCODE)


def _decode(codes: bytes, low: bytes, high: bytes) -> bytes:
    if type(codes) is not bytes:
        codes = bytes(codes)
    pcm = bytearray(len(codes) << 1)
    pcm[0::2] = codes.translate(low)
    pcm[1::2] = codes.translate(high)
    return bytes(pcm)


def ulaw_decode(codes: bytes) -> bytes:
    """Decode mu-law to S16_LE mono PCM."""
    return _decode(codes, _ULAW_LOW, _ULAW_HIGH)


def alaw_decode(codes: bytes) -> bytes:
    """Decode A-law to S16_LE mono PCM."""
    return _decode(codes, _ALAW_LOW, _ALAW_HIGH)
