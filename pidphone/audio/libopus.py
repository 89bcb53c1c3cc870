"""A small typed binding of libopus (Debian's libopus0, RFC 6716) through ctypes.

Only what a phone needs: one mono encoder and one decoder at 48 kHz, the encoder's VoIP
settings (bitrate, in-band FEC, expected loss, DTX, bandwidth, complexity), and decoding with
the library's own concealment (`decode(None)`) and forward error correction (`decode(next,
fec=True)`). The library is loaded by its soname on first use, so importing this module needs
no libopus; a missing library is `CodecUnavailable`. Bytes in, bytes out: no I/O, no clock.

Why our own: the PyPI bindings are either unmaintained since 2018 (opuslib) or young forks
(opuslib-next); the part of the API used here is eight functions.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

from pidphone.errors import LocalProtocolError, RemoteProtocolError

SONAME = "libopus.so.0"

APPLICATION_VOIP = 2048
SIGNAL_VOICE = 3001
BANDWIDTH_NARROWBAND = 1101
BANDWIDTH_MEDIUMBAND = 1102
BANDWIDTH_WIDEBAND = 1103
BANDWIDTH_SUPERWIDEBAND = 1104
BANDWIDTH_FULLBAND = 1105

_SET_BITRATE = 4002
_SET_MAX_BANDWIDTH = 4004
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_SET_SIGNAL = 4024
_GET_LOOKAHEAD = 4027

MAX_PACKET = 1500
"""Bytes: an RTP payload never exceeds one Ethernet frame; longer input is refused."""
MAX_FRAME_MS = 120
"""The longest duration one Opus packet can carry (RFC 6716 §3.2.5)."""


class CodecUnavailable(LocalProtocolError):  # noqa: N818 (a condition, not a failure)
    """The codec's shared library is not installed (apt: libopus0, libspandsp2)."""


class CodecDecodeError(RemoteProtocolError):
    """A payload the codec cannot decode: the caller drops it and conceals the frame."""


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """libopus with its function types declared (loaded once)."""
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as exc:
        raise CodecUnavailable(f"Opus needs {SONAME} (Debian package libopus0): {exc}") from exc
    c_int, c_int32, ptr = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_get_version_string.argtypes = []
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [c_int]
    lib.opus_encoder_create.restype = ptr
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, ctypes.POINTER(c_int)]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encoder_destroy.argtypes = [ptr]
    lib.opus_encode.restype = c_int32
    lib.opus_encode.argtypes = [ptr, ctypes.c_char_p, c_int, ctypes.c_char_p, c_int32]
    lib.opus_decoder_create.restype = ptr
    lib.opus_decoder_create.argtypes = [c_int32, c_int, ctypes.POINTER(c_int)]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decoder_destroy.argtypes = [ptr]
    lib.opus_decode.restype = c_int
    lib.opus_decode.argtypes = [ptr, ctypes.c_char_p, c_int32, ctypes.c_char_p, c_int, c_int]
    lib.opus_packet_get_nb_samples.restype = c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, c_int32, c_int32]
    # opus_encoder_ctl is variadic: each call passes its one argument with an explicit type
    lib.opus_encoder_ctl.restype = c_int
    return lib


def version() -> str:
    """The library's version string, e.g. "libopus 1.3.1"."""
    return bytes(library().opus_get_version_string()).decode("ascii", "replace")


def _error(lib: ctypes.CDLL, code: int) -> str:
    return bytes(lib.opus_strerror(code)).decode("ascii", "replace")


class OpusEncoder:
    """One mono Opus encoder (RFC 7587 sends mono voice as one channel)."""

    def __init__(
        self,
        sample_rate: int = 48000,
        *,
        bitrate: int = 32000,
        fec: bool = True,
        expected_loss: int = 10,
        dtx: bool = False,
        max_bandwidth: int = BANDWIDTH_FULLBAND,
        complexity: int = 5,
    ) -> None:
        lib = self._lib = library()
        error = ctypes.c_int(0)
        handle = lib.opus_encoder_create(sample_rate, 1, APPLICATION_VOIP, ctypes.byref(error))
        if error.value != 0 or not handle:
            raise LocalProtocolError(f"opus_encoder_create: {_error(lib, error.value)}")
        self._handle: int | None = handle
        self.sample_rate = sample_rate
        self._ctl(_SET_SIGNAL, SIGNAL_VOICE)
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_INBAND_FEC, int(fec))
        self._ctl(_SET_PACKET_LOSS_PERC, expected_loss)
        self._ctl(_SET_DTX, int(dtx))
        self._ctl(_SET_MAX_BANDWIDTH, max_bandwidth)
        self._ctl(_SET_COMPLEXITY, complexity)

    def _ctl(self, request: int, value: int) -> None:
        result = self._lib.opus_encoder_ctl(
            ctypes.c_void_p(self._live()), ctypes.c_int(request), ctypes.c_int32(value)
        )
        if result != 0:
            raise LocalProtocolError(f"opus_encoder_ctl({request}, {value}): {result}")

    @property
    def lookahead(self) -> int:
        """Samples of algorithmic delay the encoder adds."""
        value = ctypes.c_int32(0)
        self._lib.opus_encoder_ctl(
            ctypes.c_void_p(self._live()), ctypes.c_int(_GET_LOOKAHEAD), ctypes.byref(value)
        )
        return value.value

    def set_expected_loss(self, percent: int) -> None:
        """The loss the peer reports (RTCP): more loss, more redundancy in the FEC."""
        self._ctl(_SET_PACKET_LOSS_PERC, max(0, min(100, percent)))

    def set_bitrate(self, bitrate: int) -> None:
        self._ctl(_SET_BITRATE, bitrate)

    def encode(self, pcm: bytes) -> bytes:
        """One frame of S16_LE mono PCM (2.5..60 ms) to one Opus packet. A packet of one or
        two bytes under DTX means "nothing to send" (RFC 7587 §3.3)."""
        samples = len(pcm) // 2
        out = ctypes.create_string_buffer(MAX_PACKET)
        size = self._lib.opus_encode(self._live(), bytes(pcm), samples, out, MAX_PACKET)
        if size < 0:
            raise LocalProtocolError(f"opus_encode of {samples} samples: {_error(self._lib, size)}")
        return out.raw[:size]

    def _live(self) -> int:
        if self._handle is None:
            raise LocalProtocolError("the Opus encoder is closed")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._lib.opus_encoder_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


class OpusDecoder:
    """One mono Opus decoder with the library's concealment and FEC."""

    def __init__(self, sample_rate: int = 48000) -> None:
        lib = self._lib = library()
        error = ctypes.c_int(0)
        handle = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
        if error.value != 0 or not handle:
            raise LocalProtocolError(f"opus_decoder_create: {_error(lib, error.value)}")
        self._handle: int | None = handle
        self.sample_rate = sample_rate
        self._max_samples = sample_rate * MAX_FRAME_MS // 1000
        self._out = ctypes.create_string_buffer(2 * self._max_samples)

    def packet_samples(self, payload: bytes) -> int:
        """Samples the packet holds at our rate (raises `CodecDecodeError` if malformed)."""
        count = self._lib.opus_packet_get_nb_samples(bytes(payload), len(payload), self.sample_rate)
        if count < 0:
            raise CodecDecodeError(f"not an Opus packet: {_error(self._lib, count)}")
        return int(count)

    def decode(self, payload: bytes | None, samples: int, *, fec: bool = False) -> bytes:
        """Decode `payload` to S16_LE PCM. None: conceal `samples` samples with the library's
        PLC. `fec=True`: `payload` is the packet after a lost one, and the result is the lost
        one rebuilt from its in-band FEC (or concealed where it has none), `samples` long."""
        if payload is not None and not 0 < len(payload) <= MAX_PACKET:
            raise CodecDecodeError(f"an Opus payload of {len(payload)} bytes")
        count = min(samples, self._max_samples)
        data = None if payload is None else bytes(payload)
        size = 0 if payload is None else len(payload)
        result = self._lib.opus_decode(self._live(), data, size, self._out, count, int(fec))
        if result < 0:
            raise CodecDecodeError(f"opus_decode: {_error(self._lib, result)}")
        return self._out.raw[: 2 * result]

    def _live(self) -> int:
        if self._handle is None:
            raise LocalProtocolError("the Opus decoder is closed")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._lib.opus_decoder_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()
