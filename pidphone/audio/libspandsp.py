"""G.722 (ITU-T G.722, 64 kbit/s, 16 kHz) from spandsp (Debian's libspandsp2) through ctypes.

spandsp is the telephony DSP library behind FreeSWITCH and Asterisk's fax and G.722 code; its
G.722 is the ITU reference algorithm. Only the four calls a codec needs are bound: create an
encoder or decoder, code a block, free it. The library is loaded by its soname on first use,
so importing this module needs no spandsp; a missing library is `CodecUnavailable`. Bytes in,
bytes out: no I/O, no clock.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

from pidphone.audio.libopus import CodecUnavailable
from pidphone.errors import LocalProtocolError

SONAME = "libspandsp.so.2"
BIT_RATE = 64000
"""The G.722 mode RTP uses (RFC 3551 §4.5.2): 8 bits per 16 kHz sample pair."""


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """libspandsp with the G.722 function types declared (loaded once)."""
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as exc:
        raise CodecUnavailable(f"G.722 needs {SONAME} (Debian package libspandsp2): {exc}") from exc
    c_int, ptr, data = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    for side in ("encode", "decode"):
        init = getattr(lib, f"g722_{side}_init")
        init.restype = ptr
        init.argtypes = [ptr, c_int, c_int]
        free = getattr(lib, f"g722_{side}_free")
        free.restype = c_int
        free.argtypes = [ptr]
    # int g722_encode(state, uint8_t out[], const int16_t amp[], int len)
    lib.g722_encode.restype = c_int
    lib.g722_encode.argtypes = [ptr, data, data, c_int]
    # int g722_decode(state, int16_t amp[], const uint8_t in[], int len)
    lib.g722_decode.restype = c_int
    lib.g722_decode.argtypes = [ptr, data, data, c_int]
    return lib


class _State:
    side = ""

    def __init__(self) -> None:
        lib = self._lib = library()
        handle = getattr(lib, f"g722_{self.side}_init")(None, BIT_RATE, 0)
        if not handle:
            raise LocalProtocolError(f"g722_{self.side}_init failed")
        self._handle: int | None = handle

    def _live(self) -> int:
        if self._handle is None:
            raise LocalProtocolError(f"the G.722 {self.side}r is closed")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            getattr(self._lib, f"g722_{self.side}_free")(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


class G722Encoder(_State):
    """16 kHz S16_LE mono PCM to G.722 at 64 kbit/s: one byte per two samples."""

    side = "encode"

    def encode(self, pcm: bytes) -> bytes:
        samples = len(pcm) // 2
        out = ctypes.create_string_buffer(samples // 2 + 1)
        size = self._lib.g722_encode(self._live(), out, bytes(pcm), samples)
        return out.raw[:size]


class G722Decoder(_State):
    """G.722 at 64 kbit/s to 16 kHz S16_LE mono PCM: two samples per byte."""

    side = "decode"

    def decode(self, payload: bytes) -> bytes:
        out = ctypes.create_string_buffer(4 * len(payload))
        count = self._lib.g722_decode(self._live(), out, bytes(payload), len(payload))
        return out.raw[: 2 * count]
