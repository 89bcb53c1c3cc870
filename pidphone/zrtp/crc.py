"""CRC-32C (Castagnoli), the ZRTP packet checksum (RFC 6189 §5, RFC 4960 Appendix B).

Pure Python with a 256-entry table. The value goes on the wire least-significant byte first,
as RFC 4960's reference code does and as bzrtp and GNU ZRTP send it: `struct.pack("<I", ...)`.
"""

from __future__ import annotations

_POLY_REFLECTED = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY_REFLECTED if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c(data: bytes) -> int:
    """The standard CRC-32C of `data` (check value: crc32c(b"123456789") == 0xE3069283)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF
