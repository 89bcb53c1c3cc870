"""Which protocol a datagram on the shared media port belongs to (RFC 7983 §7, RFC 5761 §4).

RTP, RTCP, ZRTP and STUN share one UDP port; the first byte separates the families and a
magic cookie confirms STUN and ZRTP. Within the RTP range, RTCP is told apart by its packet
type (second byte 192..223), which is why RTP payload types 64..95 are never used.
ZRTP's first byte is 0x10, or 0x11 for a fragment of a long message (the post-quantum Commit
and DHPart1, as Linphone's bzrtp 5.5 sends them): both in RFC 7983's ZRTP range, 16..19.
"""

from __future__ import annotations

import enum

_STUN_COOKIE = b"\x21\x12\xa4\x42"
_ZRTP_COOKIE = b"ZRTP"
_ZRTP_FIRST_BYTES = (0x10, 0x11)
"""A whole ZRTP packet, a fragment."""


class PacketKind(enum.Enum):
    """The families a media datagram can belong to."""

    RTP = "rtp"
    RTCP = "rtcp"
    ZRTP = "zrtp"
    STUN = "stun"
    DTLS = "dtls"
    OTHER = "other"


def classify(data: bytes) -> PacketKind:
    """Return the family of `data`; OTHER for anything too short or unknown."""
    if len(data) < 8:
        return PacketKind.OTHER
    first = data[0]
    if 128 <= first <= 191:
        if 192 <= data[1] <= 223:
            return PacketKind.RTCP
        return PacketKind.RTP if len(data) >= 12 else PacketKind.OTHER
    if first in _ZRTP_FIRST_BYTES:
        return PacketKind.ZRTP if data[4:8] == _ZRTP_COOKIE else PacketKind.OTHER
    if first <= 3:
        if len(data) >= 20 and data[4:8] == _STUN_COOKIE:
            return PacketKind.STUN
        return PacketKind.OTHER
    if 20 <= first <= 63:
        return PacketKind.DTLS
    return PacketKind.OTHER
