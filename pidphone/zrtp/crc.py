"""CRC-32C (Castagnoli), the ZRTP packet checksum (RFC 6189 §5, RFC 4960 Appendix B).

`crc32c` is Google's C implementation (the google-crc32c wheel, with the CRC32C instruction of
SSE 4.2 or ARMv8 where the CPU has it): it checks every ZRTP datagram before anything else, so
its cost per byte is what a flood of ZRTP-looking junk costs. Where the C extension cannot be
loaded, `crc32c_table`, a 256-entry table in Python, takes its place (`IMPLEMENTATION` says
which is in use). The value goes on the wire least-significant byte first, as RFC 4960's
reference code does and as bzrtp and GNU ZRTP send it: `struct.pack("<I", ...)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

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


def crc32c_table(data: bytes) -> int:
    """The standard CRC-32C of `data`, one table lookup per byte (check value 0xE3069283)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _load() -> tuple[Callable[[bytes], int], Literal["c", "python"]]:
    with warnings.catch_warnings():  # it warns when it falls back to its own Python
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            import google_crc32c
        except ImportError:
            return crc32c_table, "python"
    if google_crc32c.implementation != "c":  # no wheel here and no compiler at install
        return crc32c_table, "python"
    value: Callable[[bytes], int] = google_crc32c.value
    return value, "c"


crc32c, IMPLEMENTATION = _load()
"""`crc32c(data)`: the standard CRC-32C of `data` (crc32c(b"123456789") == 0xE3069283)."""
