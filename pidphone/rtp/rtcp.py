"""RTCP (RFC 3550 §6): sender and receiver reports, SDES, BYE; compound packets.

`parse_rtcp` splits a compound datagram into typed packets (types it does not know, such as
APP or the feedback messages of RFC 4585, are kept as `UnknownRtcp` so nothing is lost);
`serialize_rtcp` writes them back. A padding bit is honoured on input; we never pad on output.
NTP helpers convert wall-clock seconds for the sender report and the LSR/DLSR fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError, ParseError

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_CNAME = 1

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SR_INFO = struct.Struct("!IQIII")


class RtcpParseError(ParseError):
    """A datagram that is not a well-formed (compound) RTCP packet."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Fraction lost since the previous report, in 1/256."""
    packets_lost: int
    """Cumulative packets lost, signed 24-bit (duplicates can make it negative)."""
    highest_sequence: int
    """Extended highest sequence number received (cycles << 16 | sequence)."""
    jitter: int
    """Interarrival jitter in RTP timestamp units."""
    lsr: int = 0
    """The middle 32 bits of the NTP timestamp of the last SR received (0: none yet)."""
    dlsr: int = 0
    """Delay since that SR in 1/65536 s."""

    def __bytes__(self) -> bytes:
        if not -(1 << 23) <= self.packets_lost < 1 << 23 or not 0 <= self.fraction_lost <= 255:
            raise LocalProtocolError("RTCP report block loss fields out of range")
        try:
            return _BLOCK.pack(
                self.ssrc,
                self.fraction_lost << 24 | self.packets_lost & 0xFFFFFF,
                self.highest_sequence,
                self.jitter,
                self.lsr,
                self.dlsr,
            )
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP report block field out of range: {exc}") from None

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = loss & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (PT 200): the sender's clocks and counters, plus reception reports."""

    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time (seconds << 32 | fraction) when the report was made."""
    rtp_timestamp: int
    """The RTP timestamp for the same instant."""
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    """Profile-specific extension, kept verbatim (a multiple of 4 bytes)."""


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (PT 201): reception reports from a participant that does not send."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item: type (1 CNAME, 2 NAME, ... 8 PRIV) and up to 255 bytes of text."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (PT 202)."""

    chunks: tuple[SdesChunk, ...] = ()


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (PT 203): the sources leave, with an optional reason."""

    sources: tuple[int, ...] = ()
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other packet type, kept as its count field and body."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp of a Unix time."""
    return round((unix_seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raise `RtcpParseError` on malformed input."""
    packets: list[RtcpPacket] = []
    pos = 0
    if not data:
        raise RtcpParseError("RTCP packet length is less than 4 bytes")
    while pos < len(data):
        if len(data) - pos < 4:
            raise RtcpParseError("RTCP packet length is less than 4 bytes")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpParseError("RTCP packet has invalid version")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise RtcpParseError("RTCP packet is truncated")
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - pos - 4:
                raise RtcpParseError("RTCP packet padding length is invalid")
            body_end -= padding
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(data[pos + 4 : body_end])))
        pos = end
    return packets


def _parse_blocks(body: bytes, offset: int, count: int, name: str) -> tuple[ReportBlock, ...]:
    if len(body) < offset + 24 * count:
        raise RtcpParseError(f"RTCP {name} length is invalid")
    return tuple(ReportBlock.parse(body, offset + 24 * i) for i in range(count))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise RtcpParseError("RTCP sender report length is invalid")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        blocks = _parse_blocks(body, 24, count, "sender report")
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks, body[24 + 24 * count :])
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtcpParseError("RTCP receiver report length is invalid")
        ssrc = int.from_bytes(body[:4], "big")
        blocks = _parse_blocks(body, 4, count, "receiver report")
        return ReceiverReport(ssrc, blocks, body[4 + 24 * count :])
    if packet_type == RTCP_SDES:
        return _parse_sdes(body, count)
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtcpParseError("RTCP BYE is truncated")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = b""
        if len(body) > 4 * count:
            length = body[4 * count]
            reason = body[4 * count + 1 : 4 * count + 1 + length]
            if len(reason) != length:
                raise RtcpParseError("RTCP BYE reason is truncated")
        return Bye(sources, reason)
    return UnknownRtcp(packet_type, count, body)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if len(body) < pos + 4:
            raise RtcpParseError("RTCP SDES chunk is truncated")
        ssrc = int.from_bytes(body[pos : pos + 4], "big")
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpParseError("RTCP SDES chunk is truncated")
            item_type = body[pos]
            if item_type == 0:  # end of list, then padding to a 32-bit boundary
                pos = (pos + 4) & ~3
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpParseError("RTCP SDES item is truncated")
            length = body[pos + 1]
            items.append(SdesItem(item_type, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise LocalProtocolError("an RTCP packet holds at most 31 reports, chunks or sources")
    if len(body) % 4:
        raise LocalProtocolError("RTCP packet body is not a multiple of 4 bytes")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _serialize_one(packet: RtcpPacket) -> bytes:
    try:
        if isinstance(packet, SenderReport):
            info = _SR_INFO.pack(
                packet.ssrc,
                packet.ntp_timestamp,
                packet.rtp_timestamp,
                packet.packet_count,
                packet.octet_count,
            )
            blocks = b"".join(bytes(block) for block in packet.reports)
            return _packet(RTCP_SR, len(packet.reports), info + blocks + packet.extension)
        if isinstance(packet, ReceiverReport):
            blocks = b"".join(bytes(block) for block in packet.reports)
            body = struct.pack("!I", packet.ssrc) + blocks + packet.extension
            return _packet(RTCP_RR, len(packet.reports), body)
        if isinstance(packet, SourceDescription):
            chunks = []
            for chunk in packet.chunks:
                if any(item.type == 0 for item in chunk.items):
                    raise LocalProtocolError("SDES item type 0 is the end-of-list marker")
                items = b"".join(
                    bytes((item.type, len(item.value))) + item.value for item in chunk.items
                )
                chunks.append(_pad4(struct.pack("!I", chunk.ssrc) + items + b"\x00"))
            return _packet(RTCP_SDES, len(packet.chunks), b"".join(chunks))
        if isinstance(packet, Bye):
            body = struct.pack(f"!{len(packet.sources)}I", *packet.sources)
            if packet.reason:
                body += _pad4(bytes((len(packet.reason),)) + packet.reason)
            return _packet(RTCP_BYE, len(packet.sources), body)
        return _packet(packet.packet_type, packet.count, packet.body)
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(f"RTCP field out of range: {exc}") from None


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialize packets into one compound RTCP packet."""
    return b"".join(_serialize_one(packet) for packet in packets)
