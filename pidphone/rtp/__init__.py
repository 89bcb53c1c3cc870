"""RTP and RTCP (RFC 3550), datagram classification (RFC 7983), jitter buffer, RFC 4733 events."""

from pidphone.rtp.classify import PacketKind, classify
from pidphone.rtp.jitter import JitterBuffer, JitterFrame
from pidphone.rtp.packet import (
    RtpExtension,
    RtpPacket,
    RtpParseError,
    build_rtp,
    rtp_header_fields,
)
from pidphone.rtp.sender import RtpSender

__all__ = [
    "JitterBuffer",
    "JitterFrame",
    "PacketKind",
    "RtpExtension",
    "RtpPacket",
    "RtpParseError",
    "RtpSender",
    "build_rtp",
    "classify",
    "rtp_header_fields",
]
