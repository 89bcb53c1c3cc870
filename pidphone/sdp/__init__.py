"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for pidphone's one audio stream. Pure.

`SessionDescription.parse(data)` / `bytes(sd)` read and write descriptions; `build_offer`,
`build_answer`, `negotiate` and `with_direction` carry out offer/answer for Opus, G.722 and
G.711 audio with telephone-event and `a=zrtp-hash`.
"""

from pidphone.sdp.message import (
    DIRECTIONS,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpParseError,
    SessionDescription,
    Timing,
    read_number,
)
from pidphone.sdp.offer_answer import (
    CODECS,
    DEFAULT_CODECS,
    CodecSpec,
    MediaParams,
    NoCommonCodec,
    SdesOffered,
    build_answer,
    build_offer,
    negotiate,
    opus_fmtp,
    parse_fmtp,
    with_direction,
)

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "DIRECTIONS",
    "Attribute",
    "CodecSpec",
    "Connection",
    "MediaDescription",
    "MediaParams",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdesOffered",
    "SdpParseError",
    "SessionDescription",
    "Timing",
    "build_answer",
    "build_offer",
    "negotiate",
    "opus_fmtp",
    "parse_fmtp",
    "read_number",
    "with_direction",
]
