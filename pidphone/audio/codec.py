"""Voice codecs behind one interface: what a call's media session holds to turn 20 ms frames of
PCM into RTP payloads and back, and to fill the gap a lost packet leaves.

| name | RTP clock | PCM rate | 20 ms frame | payload | concealment |
|---|---|---|---|---|---|
| PCMU, PCMA | 8000 | 8000 | 160 samples | 160 B | G.711 Appendix I (audio.plc) |
| G722 | 8000 (RFC 3551 §4.5.2) | 16000 | 320 samples | 160 B | Appendix I at 16 kHz |
| opus | 48000 (RFC 7587) | 48000 (or 8-24k) | 960 samples | varies | libopus PLC and FEC |

So RTP timestamps advance by `frame_ticks` per frame, which is not `frame_samples` for G.722
(160 ticks for 320 samples) nor for Opus decoded at 16 kHz (960 ticks for 320 samples): a
jitter buffer must count in `clock_rate` ticks, and the audio device runs at `sample_rate`.

Each object belongs to one stream (one encoder, one decoder, their state) and one thread.
Pure: bytes in, bytes out; the native libraries (libopus, spandsp) are loaded through their
bindings on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property

from pidphone.audio import g711
from pidphone.audio.libopus import (
    BANDWIDTH_FULLBAND,
    BANDWIDTH_MEDIUMBAND,
    BANDWIDTH_NARROWBAND,
    BANDWIDTH_SUPERWIDEBAND,
    BANDWIDTH_WIDEBAND,
    CodecDecodeError,
    CodecUnavailable,
    OpusDecoder,
    OpusEncoder,
)
from pidphone.audio.libspandsp import G722Decoder, G722Encoder
from pidphone.audio.plc import Concealer
from pidphone.errors import LocalProtocolError

FRAME_MS = 20
"""Every codec here sends 20 ms per packet (RFC 3551's and RFC 7587's default ptime)."""

CODEC_NAMES = ("opus", "G722", "PCMU", "PCMA")
"""SDP encoding names of the codecs `make_codec` builds."""

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""PCM rates libopus encodes from and decodes to (the RTP clock stays 48000)."""

OPUS_BITRATE = 64000
"""bit/s: wideband speech plus its in-band FEC, the rate G.711 and G.722 use. The FEC's copy
of each frame is paid out of the bitrate: at 40 kbit/s it cost a third of a MOS point on a
clean path. Measured (PESQ-WB of espeak-ng speech, FEC sized for 5 % loss, random loss,
seeds 1 and 2, at 0 / 3 / 10 % loss): 40 kbit/s 3.71 / 3.49 / 3.23, 48 kbit/s 3.99 / 3.76 /
3.45, 64 kbit/s 4.27 / 4.07 / 3.76 (without FEC, 40 kbit/s: 4.06 / 2.56 / 1.81). A peer's
maxaveragebitrate lowers it."""

OPUS_COMPLEXITY = 5
"""libopus's encoder complexity (0-10; its own default is 10). `bench.codec_cpu --opus`
measures encode time and speech quality at each."""

OPUS_AUDIO_RATE = 16000
"""Hz: the widest audio pidphone encodes with Opus (wideband, 50-7000 Hz: what a handset
earpiece reproduces; the bits go to the speech band instead of 8-20 kHz)."""

OPUS_EXPECTED_LOSS = 5
"""Percent of loss the FEC is sized for. Measured as above at 64 kbit/s: sized for 10 % it
scores 4.16 / 3.98 / 3.74, no better at 10 % loss and worse below (a bigger copy leaves fewer
bits for every frame), so it stays at 5 % whatever loss RTCP reports."""

__all__ = [
    "CODEC_NAMES",
    "Codec",
    "CodecDecodeError",
    "CodecUnavailable",
    "G711Codec",
    "G722Codec",
    "OpusCodec",
    "audio_rate",
    "make_codec",
]


class Codec(ABC):
    """One stream's encoder and decoder. PCM is S16_LE mono at `sample_rate`."""

    name: str
    """The SDP encoding name ("opus", "G722", "PCMU", "PCMA")."""
    clock_rate: int
    """RTP timestamp ticks per second (the rate in a=rtpmap)."""
    sample_rate: int
    """Hz of the PCM `encode` takes and `decode` gives."""

    # Cached: asked several times a period, and a codec's rates never change.
    @cached_property
    def frame_samples(self) -> int:
        """PCM samples in one 20 ms frame."""
        return self.sample_rate * FRAME_MS // 1000

    @cached_property
    def frame_bytes(self) -> int:
        return 2 * self.frame_samples

    @cached_property
    def frame_ticks(self) -> int:
        """RTP timestamp increment per 20 ms frame."""
        return self.clock_rate * FRAME_MS // 1000

    @property
    @abstractmethod
    def wideband(self) -> bool:
        """True when the call carries more than the 300-3400 Hz telephone band ("HD")."""

    def _check_frame(self, pcm: bytes) -> bytes:
        if len(pcm) != self.frame_bytes:
            raise LocalProtocolError(
                f"{self.name} encodes {self.frame_bytes}-byte frames, got {len(pcm)}"
            )
        return bytes(pcm)

    @abstractmethod
    def encode(self, pcm: bytes) -> bytes:
        """One 20 ms frame to one RTP payload; b"" means nothing to send (Opus DTX)."""

    @abstractmethod
    def decode(self, payload: bytes) -> bytes:
        """An RTP payload to PCM (as long as the payload holds: 20 ms for our own packets).
        Raises `CodecDecodeError` for a payload the codec cannot read (drop it, conceal)."""

    def silence(self) -> bytes:
        """One 20 ms frame to play while nothing is received (before the first packet, between
        talk-spurts): silence, which a loss right after conceals from rather than replaying
        the last words."""
        return bytes(self.frame_bytes)

    @abstractmethod
    def conceal(self) -> bytes:
        """One 20 ms frame to play in place of a lost packet: a continuation of the voice that
        fades over a longer loss, never a hard cut to silence."""

    has_fec: bool = False
    """`decode_fec` can rebuild a lost frame (Opus with in-band FEC)."""

    def decode_fec(self, next_payload: bytes) -> bytes | None:
        """The lost frame just before `next_payload`, rebuilt from the redundancy carried in
        `next_payload`; None for codecs without in-band FEC (then use `conceal`)."""
        del next_payload
        return None

    def close(self) -> None:  # noqa: B027 (only codecs with native state override it)
        """Free native state (also done when the object is collected)."""


class G711Codec(Codec):
    """PCMU (mu-law) or PCMA (A-law), with Appendix I concealment. Decoded audio comes out
    3.75 ms late: the concealer's look-back (every frame passes through it)."""

    clock_rate = 8000
    sample_rate = 8000

    def __init__(self, name: str = "PCMU") -> None:
        if name == "PCMU":
            self._encode, self._decode = g711.ulaw_encode, g711.ulaw_decode
        elif name == "PCMA":
            self._encode, self._decode = g711.alaw_encode, g711.alaw_decode
        else:
            raise LocalProtocolError(f"G.711 is PCMU or PCMA, not {name!r}")
        self.name = name
        self._plc = Concealer(self.frame_samples, self.sample_rate)

    @property
    def wideband(self) -> bool:
        return False

    def encode(self, pcm: bytes) -> bytes:
        return self._encode(self._check_frame(pcm))

    def decode(self, payload: bytes) -> bytes:
        return self._plc.good(self._decode(bytes(payload)))

    def silence(self) -> bytes:
        return self._plc.good(bytes(self.frame_bytes))

    def conceal(self) -> bytes:
        return self._plc.conceal()


class G722Codec(Codec):
    """G.722 at 64 kbit/s (spandsp): 16 kHz audio on an 8000 Hz RTP clock, concealed with
    Appendix I's method at 16 kHz (G.722 itself has none)."""

    name = "G722"
    clock_rate = 8000
    sample_rate = 16000

    def __init__(self) -> None:
        self._encoder = G722Encoder()
        self._decoder = G722Decoder()
        self._plc = Concealer(self.frame_samples, self.sample_rate)

    @property
    def wideband(self) -> bool:
        return True

    def encode(self, pcm: bytes) -> bytes:
        return self._encoder.encode(self._check_frame(pcm))

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecDecodeError("an empty G.722 payload")
        return self._plc.good(self._decoder.decode(payload))

    def silence(self) -> bytes:
        return self._plc.good(bytes(self.frame_bytes))

    def conceal(self) -> bytes:
        return self._plc.conceal()

    def close(self) -> None:
        self._encoder.close()
        self._decoder.close()


def _bandwidth_for(max_playback_rate: int) -> int:
    """The widest Opus audio bandwidth a receiver playing at this rate can use."""
    for limit, bandwidth in (
        (8000, BANDWIDTH_NARROWBAND),
        (12000, BANDWIDTH_MEDIUMBAND),
        (16000, BANDWIDTH_WIDEBAND),
        (24000, BANDWIDTH_SUPERWIDEBAND),
    ):
        if max_playback_rate <= limit:
            return bandwidth
    return BANDWIDTH_FULLBAND


class OpusCodec(Codec):
    """Opus for voice (RFC 7587): mono, 20 ms, 48000 Hz RTP clock whatever `sample_rate` the
    device runs at, in-band FEC and DTX as the peer's fmtp asks, libopus's own concealment."""

    name = "opus"
    clock_rate = 48000
    has_fec = True

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        fec: bool = True,
        dtx: bool = False,
        max_playback_rate: int = 48000,
        bitrate: int = OPUS_BITRATE,
        expected_loss: int = OPUS_EXPECTED_LOSS,
        audio_rate: int = OPUS_AUDIO_RATE,
        complexity: int = OPUS_COMPLEXITY,
    ) -> None:
        if sample_rate not in OPUS_RATES:
            raise LocalProtocolError(f"Opus runs at {OPUS_RATES} Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self.dtx = dtx
        self.max_playback_rate = max_playback_rate
        self._encoder = OpusEncoder(
            sample_rate,
            bitrate=bitrate,
            fec=fec,
            expected_loss=expected_loss if fec else 0,
            dtx=dtx,
            max_bandwidth=_bandwidth_for(min(max_playback_rate, audio_rate)),
            complexity=complexity,
        )
        self._decoder = OpusDecoder(sample_rate)

    @classmethod
    def from_fmtp(cls, fmtp: Mapping[str, str], *, sample_rate: int = 48000) -> OpusCodec:
        """An encoder shaped by the peer's a=fmtp (RFC 7587 §6.1: the parameters describe what
        the peer wants to receive): useinbandfec, usedtx, maxplaybackrate,
        maxaveragebitrate. Values out of range fall back to the defaults."""

        def number(key: str, low: int, high: int, default: int) -> int:
            text = fmtp.get(key, "").strip()
            if not (text.isascii() and text.isdigit() and len(text) <= 6):
                return default
            value = int(text)
            return value if low <= value <= high else default

        bitrate = number("maxaveragebitrate", 6000, 510000, OPUS_BITRATE)
        return cls(
            sample_rate=sample_rate,
            fec=fmtp.get("useinbandfec", "0").strip() == "1",
            dtx=fmtp.get("usedtx", "0").strip() == "1",
            max_playback_rate=number("maxplaybackrate", 8000, 48000, 48000),
            bitrate=min(bitrate, OPUS_BITRATE),
        )

    @property
    def wideband(self) -> bool:
        return self.sample_rate > 8000 and self.max_playback_rate > 8000

    @property
    def lookahead(self) -> int:
        """Samples of delay the encoder adds (6.5 ms)."""
        return self._encoder.lookahead

    def set_expected_loss(self, percent: int) -> None:
        """Tune the FEC to the loss the peer reports in RTCP."""
        self._encoder.set_expected_loss(percent)

    def encode(self, pcm: bytes) -> bytes:
        packet = self._encoder.encode(self._check_frame(pcm))
        if self.dtx and len(packet) <= 2:
            return b""  # libopus: a packet of one or two bytes need not be sent
        return packet

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecDecodeError("an empty Opus payload")
        samples = self._decoder.packet_samples(payload)
        return self._decoder.decode(payload, samples)

    def conceal(self) -> bytes:
        return self._decoder.decode(None, self.frame_samples)

    def decode_fec(self, next_payload: bytes) -> bytes | None:
        if not next_payload:
            return None
        return self._decoder.decode(next_payload, self.frame_samples, fec=True)

    def close(self) -> None:
        self._encoder.close()
        self._decoder.close()


def make_codec(
    name: str, fmtp: Mapping[str, str] | None = None, *, sample_rate: int | None = None
) -> Codec:
    """The codec a negotiation named (`MediaParams.codec`, `.fmtp`). `sample_rate` asks Opus
    to run at the device's rate (G.711 and G.722 have one rate each)."""
    if name in ("PCMU", "PCMA"):
        return G711Codec(name)
    if name == "G722":
        return G722Codec()
    if name == "opus":
        return OpusCodec.from_fmtp(fmtp or {}, sample_rate=sample_rate or 48000)
    raise LocalProtocolError(f"unknown codec {name!r}: one of {CODEC_NAMES}")


def audio_rate(name: str) -> int:
    """Hz of the audio a call with this codec carries, at which the media session encodes
    and decodes and asks the devices to run: 8000 for G.711, 16000 for G.722 and for Opus
    (`OPUS_AUDIO_RATE`: wideband, which a handset reproduces)."""
    if name in ("PCMU", "PCMA"):
        return G711Codec.sample_rate
    if name == "G722":
        return G722Codec.sample_rate
    if name == "opus":
        return OPUS_AUDIO_RATE
    raise LocalProtocolError(f"unknown codec {name!r}: one of {CODEC_NAMES}")
