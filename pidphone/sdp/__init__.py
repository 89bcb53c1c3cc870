"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for pidphone's one audio stream. Pure.

`SessionDescription.parse(data)` / `bytes(sd)` read and write descriptions; `build_offer`,
`build_answer`, `negotiate` and `with_direction` carry out offer/answer for G.711 audio with
telephone-event and `a=zrtp-hash`.
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
    MediaParams,
    NoCommonCodec,
    build_answer,
    build_offer,
    negotiate,
    with_direction,
)

__all__ = [
    "DIRECTIONS",
    "Attribute",
    "Connection",
    "MediaDescription",
    "MediaParams",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpParseError",
    "SessionDescription",
    "Timing",
    "build_answer",
    "build_offer",
    "negotiate",
    "read_number",
    "with_direction",
]
