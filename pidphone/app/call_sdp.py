"""The SDP a call writes and what it reads from the peer's, apart from the dialog that carries it.

`LocalDescription` writes our offers and answers (RFC 3264): our media address, the codecs
in order of preference, our ZRTP Hello hash as a=zrtp-hash (RFC 6189 §8), a=rtcp-mux in our
offers and in answers to offers that had it (RFC 5761), and the o= line's session version,
which goes up with every new description in the dialog (RFC 3264 §8). `rtcp_address` reads
where the peer takes RTCP, and `offer_refusal` says how we refuse an offer we cannot take.
The call (pidphone.app.call) decides when to offer and answer; the negotiation itself is
pidphone.sdp's.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field

from pidphone.errors import ProtocolError
from pidphone.ports import Address
from pidphone.sdp import (
    Attribute,
    MediaDescription,
    MediaParams,
    NoCommonCodec,
    SdesOffered,
    SessionDescription,
    build_answer,
    build_offer,
    read_number,
)

SDES_REASON = "Caller wants SDES-SRTP keys (never accepted: ZRTP only)"
"""Why an offer with only RTP/SAVP audio is refused (488): not a codec matter."""


@dataclass
class LocalDescription:
    """Our side of one call's SDP."""

    address: Address
    """The address and port in our c= and m= lines (the STUN-mapped ones behind NAT)."""
    codecs: tuple[str, ...]
    """SDP encoding names, in order of preference."""
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**62))
    version: int = 0
    """The o= line's session version: `new_version()` before each description that
    changes something (a hold, an answer to a re-INVITE)."""

    def new_version(self) -> None:
        self.version += 1

    def offer(self, direction: str, hello_hash: str) -> SessionDescription:
        """Our offer, with a=rtcp-mux: RTCP may share the one media port."""
        offer = build_offer(
            address=self.address,
            codecs=self.codecs,
            zrtp_hash=zrtp_hash_hex(hello_hash),
            direction=direction,
            session_id=self.session_id,
            session_version=self.version,
        )
        return _with_rtcp_mux(offer)

    def answer(
        self, offer: SessionDescription, direction: str, hello_hash: str
    ) -> SessionDescription:
        """Our answer; it takes up a=rtcp-mux only when the offer proposed it (RFC 5761).
        Raises `NoCommonCodec` (or another `ProtocolError`) for an offer we cannot take."""
        answer = build_answer(
            offer,
            address=self.address,
            codecs=self.codecs,
            zrtp_hash=zrtp_hash_hex(hello_hash),
            direction=direction,
            session_id=self.session_id,
            session_version=self.version,
        )
        audio = live_audio(offer)
        if audio is not None and audio.attribute("rtcp-mux"):
            return _with_rtcp_mux(answer)
        return answer


def rtcp_address(
    remote: SessionDescription, params: MediaParams, local: SessionDescription | None
) -> Address | None:
    """Where the peer takes RTCP: None on the RTP port when both sides signalled a=rtcp-mux
    (RFC 5761); else its a=rtcp port (RFC 3605), or the RTP port + 1 (RFC 3550 §11)."""
    host, port = params.remote_address
    theirs = live_audio(remote)
    ours = live_audio(local) if local is not None else None
    if theirs is None:
        return (host, port + 1)
    if ours is not None and theirs.attribute("rtcp-mux") and ours.attribute("rtcp-mux"):
        return None
    rtcp = theirs.attribute("rtcp")
    words = rtcp.value.split() if rtcp is not None and rtcp.value else []
    rtcp_port = read_number(words[0], 5) if words else None
    if rtcp_port is not None and 0 < rtcp_port < 65536:
        return (words[3] if len(words) >= 4 else host, rtcp_port)
    return (host, port + 1)


def offer_refusal(exc: ProtocolError) -> tuple[int, str]:
    """The status and the screen's reason for an offer we cannot take: 488 when no codec
    fits (or only SDES-SRTP keys were offered), else the parse error's hint (400)."""
    if isinstance(exc, NoCommonCodec):
        return 488, SDES_REASON if isinstance(exc, SdesOffered) else "No common codec"
    return exc.error_status_hint, "Unreadable SDP offer"


def live_audio(sd: SessionDescription) -> MediaDescription | None:
    """The first audio stream that is not refused (port 0)."""
    return next((m for m in sd.media if m.media == "audio" and m.port != 0), None)


def zrtp_hash_hex(hello_hash: str) -> str:
    """The hex digest of ZRTP's "1.10 <hex>" Hello hash (the SDP module adds the version)."""
    return hello_hash.rpartition(" ")[2]


def _with_rtcp_mux(sd: SessionDescription) -> SessionDescription:
    """`sd` with a=rtcp-mux on its live audio stream: RTCP shares the one media port."""
    media = tuple(
        m.with_attributes((*m.attributes, Attribute("rtcp-mux")))
        if m.media == "audio" and m.port != 0 and m.attribute("rtcp-mux") is None
        else m
        for m in sd.media
    )
    return dataclasses.replace(sd, media=media)
