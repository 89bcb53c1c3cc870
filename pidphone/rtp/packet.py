"""RTP data packets (RFC 3550 §5.1, §5.3.1): parse and serialize.

`RtpPacket` is the typed view used by tests, the jitter buffer and the media session;
`rtp_fields`, `rtp_header_fields` and `build_rtp` are the lean helpers for the per-packet hot
path, which skip building an object when only the header fields and the payload matter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError, ParseError

RTP_VERSION = 2
RTP_HEADER_LEN = 12

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_FIXED = struct.Struct("!BHII")
"""The fixed header after its first octet."""


class RtpParseError(ParseError):
    """A datagram that is not a well-formed RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): a 16-bit profile word and 32-bit aligned data."""

    profile: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet.

    `padding` is the number of padding octets including the final count octet (0 means the P
    bit is clear); serialization writes zeros followed by the count.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise `RtpParseError` on malformed input."""
        if len(data) < RTP_HEADER_LEN:
            raise RtpParseError("RTP packet length is less than 12 bytes")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("RTP packet has invalid version")
        pos = RTP_HEADER_LEN
        csrc_count = first & 0x0F
        csrc: tuple[int, ...] = ()
        if csrc_count:
            end = pos + 4 * csrc_count
            if len(data) < end:
                raise RtpParseError("RTP packet has truncated CSRC")
            csrc = struct.unpack_from(f"!{csrc_count}I", data, pos)
            pos = end
        extension = None
        if first & 0x10:
            if len(data) < pos + 4:
                raise RtpParseError("RTP packet has truncated extension profile / length")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * words
            if len(data) < end:
                raise RtpParseError("RTP packet has truncated extension value")
            extension = RtpExtension(profile, bytes(data[pos:end]))
            pos = end
        padding = 0
        end = len(data)
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise RtpParseError("RTP packet padding length is invalid")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[pos:end] if type(data) is bytes else bytes(data[pos:end]),
            marker=second >= 0x80,
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        if not 0 <= self.payload_type <= 0x7F:
            raise LocalProtocolError(f"RTP payload type {self.payload_type} is not in 0..127")
        if len(self.csrc) > 15:
            raise LocalProtocolError("RTP packet cannot carry more than 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise LocalProtocolError(f"RTP padding {self.padding} is not in 0..255")
        first = RTP_VERSION << 6 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        try:
            parts = [
                _HEADER.pack(
                    first,
                    self.marker << 7 | self.payload_type,
                    self.sequence,
                    self.timestamp,
                    self.ssrc,
                )
            ]
            if self.csrc:
                parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
            if self.extension is not None:
                ext = self.extension
                if len(ext.data) % 4:
                    raise LocalProtocolError("RTP header extension length is not a multiple of 4")
                parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
                parts.append(ext.data)
        except struct.error as exc:
            raise LocalProtocolError(f"RTP header field out of range: {exc}") from None
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def rtp_fields(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    """Return (payload_type, marker, sequence, timestamp, ssrc, payload) of one RTP packet.

    The same checks and payload as `RtpPacket.parse` (CSRC list, extension and padding are
    skipped), without building a packet: the receive path feeds these straight to
    `JitterBuffer.put_raw`. Raises `RtpParseError` on malformed input.
    """
    if len(data) >= RTP_HEADER_LEN and data[0] == 0x80:  # version 2, nothing optional
        second, sequence, timestamp, ssrc = _FIXED.unpack_from(data, 1)
        payload = data[RTP_HEADER_LEN:]
        return (
            second & 0x7F,
            second >= 0x80,
            sequence,
            timestamp,
            ssrc,
            payload if type(payload) is bytes else bytes(payload),
        )
    packet = RtpPacket.parse(data)
    return (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.payload,
    )


def rtp_header_fields(data: bytes) -> tuple[int, int, int, int, int]:
    """Return (payload_type, sequence, timestamp, ssrc, header_len) without building a packet.

    header_len covers the CSRC list and the extension; padding is not inspected. Raises
    `RtpParseError` like `RtpPacket.parse` for a bad version or a truncated header.
    """
    if len(data) < RTP_HEADER_LEN:
        raise RtpParseError("RTP packet length is less than 12 bytes")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError("RTP packet has invalid version")
    header_len = RTP_HEADER_LEN + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < header_len + 4:
            raise RtpParseError("RTP packet has truncated extension profile / length")
        header_len += 4 + 4 * _EXT_HEADER.unpack_from(data, header_len)[1]
    if len(data) < header_len:
        raise RtpParseError("RTP packet has truncated header")
    return second & 0x7F, sequence, timestamp, ssrc, header_len


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
) -> bytes:
    """Serialize a packet with no CSRC, extension or padding: the common case, fast."""
    return _HEADER.pack(0x80, marker << 7 | payload_type, sequence, timestamp, ssrc) + payload
