"""RTP and RTCP (RFC 3550), datagram classification (RFC 7983), jitter buffer, RFC 4733 events."""

from pidphone.rtp.classify import PacketKind, classify
from pidphone.rtp.jitter import JitterBuffer, JitterFrame
from pidphone.rtp.packet import (
    RtpExtension,
    RtpPacket,
    RtpParseError,
    build_rtp,
    rtp_fields,
    rtp_header_fields,
)
from pidphone.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from pidphone.rtp.sender import RtpSender
from pidphone.rtp.stats import ReceiverStats
from pidphone.rtp.telephone_event import (
    DtmfPress,
    EventPacket,
    TelephoneEvent,
    TelephoneEventDecoder,
    TelephoneEventEncoder,
    TelephoneEventParseError,
)

__all__ = [
    "Bye",
    "DtmfPress",
    "EventPacket",
    "JitterBuffer",
    "JitterFrame",
    "PacketKind",
    "ReceiverReport",
    "ReceiverStats",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "RtpExtension",
    "RtpPacket",
    "RtpParseError",
    "RtpSender",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "TelephoneEvent",
    "TelephoneEventDecoder",
    "TelephoneEventEncoder",
    "TelephoneEventParseError",
    "UnknownRtcp",
    "build_rtp",
    "classify",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_rtcp",
    "rtp_fields",
    "rtp_header_fields",
    "serialize_rtcp",
]
