"""What a media session reports: its events, one frozen dataclass per fact, and its counters.

The session (pidphone.app.media) queues the events for `next_event()`; the media worker posts
them to the loop inside `MediaUpdate`, and the call (pidphone.app.call) turns each into a call
event that carries it. `MediaSecured` carries ZRTP's own `Secured`: nothing of it is copied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from pidphone.ports import Address
from pidphone.zrtp.events import Secured

DROP_REASONS = (
    "oversize",
    "garbage",
    "zrtp_source",
    "srtp_auth",
    "srtp_replay",
    "srtp_short",
    "srtcp_auth",
    "srtcp_replay",
    "srtcp_short",
    "rtp_unkeyed",
    "rtcp_unkeyed",
    "rtp_malformed",
    "rtp_payload_type",
    "stun",
)
"""Keys of `MediaStats.drops` besides "zrtp_<reason>" (`pidphone.zrtp.session.DropReason`):
oversize: over `media.MAX_DATAGRAM`; garbage: no known protocol (RFC 7983); zrtp_source: ZRTP
from another address than the peer's once the call has been secure; srtp_*/srtcp_*: failed
authentication, replayed, or too short; rtp_unkeyed/rtcp_unkeyed: RTP/RTCP while there is no
key to check it and the call is not in clear; rtp_malformed: SRTP that authenticated around a
bad RTP header; rtp_payload_type: a payload type not negotiated; stun: a STUN message that is
not a plain binding request."""


@dataclass(frozen=True)
class MediaEvent:
    """Base of what the media session reports."""


@dataclass(frozen=True)
class MediaSecured(MediaEvent):
    """ZRTP finished: audio now goes out and comes in only as SRTP. `secured` is the ZRTP
    session's own event (SAS, algorithms, the peer's ZID)."""

    secured: Secured


@dataclass(frozen=True)
class MediaSecretMismatch(MediaEvent):
    """The peer's retained secret did not match ours: possible man in the middle (§4.6.1.1)."""


Fault = Literal["peer", "network", "ours"]
"""Whose side a failure lies on, as far as the phone can tell, so that the screen never blames
the other phone for our own trouble: "peer" (it sent media but no ZRTP, or stopped answering
it), "network" (not one datagram ever came from the peer: a firewall, a route or an address of
the wrong family, on either side), "ours" (our media socket could not send one datagram)."""


@dataclass(frozen=True)
class MediaSecurityFailed(MediaEvent):
    """ZRTP did not secure the call; `fatal` under the require policy: the call must end.
    `code` is the ZRTP Error code when the exchange itself failed (None when the media path
    never worked: then ZRTP's code says nothing about the peer)."""

    reason: str
    code: int | None
    fatal: bool
    peer_without_zrtp: bool
    fault: Fault = "peer"


@dataclass(frozen=True)
class MediaSecurityLost(MediaEvent):
    """A call that was secure lost its security for an authenticated reason; audio has
    stopped both ways and never comes back in clear (only a new exchange can restore it)."""

    reason: str


@dataclass(frozen=True)
class MediaDtmf(MediaEvent):
    """The peer pressed a key (RFC 4733 telephone-event)."""

    key: str


@dataclass(frozen=True)
class MediaPeerMoved(MediaEvent):
    """Symmetric RTP latched onto a new peer address (RFC 4961)."""

    address: Address


@dataclass
class MediaStats:
    """Counters for the call report and the screen."""

    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    clear_packets_sent: int = 0
    """RTP packets sent without SRTP (only under "prefer" after a failure)."""
    frames_withheld: int = 0
    """Captured frames not sent: not secured yet, on hold, or no peer address."""
    dropped: int = 0
    """Datagrams dropped, whatever the reason (the sum of `drops`)."""
    drops: Counter[str] = field(default_factory=Counter)
    """Datagrams dropped, by reason: `DROP_REASONS` and "zrtp_<reason>"."""
    zrtp_sent: int = 0
    zrtp_received: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    jitter: float = 0.0
    """Interarrival jitter in seconds (RFC 3550 A.8)."""
    fec_recovered: int = 0
    """Lost frames rebuilt from the next packet's in-band FEC (Opus) rather than concealed."""
    undecodable: int = 0
    """Authenticated packets of the negotiated payload type the codec could not decode
    (concealed)."""
    datagrams_received: int = 0
    """Every datagram that reached the call's socket, whatever it was: none at all means the
    media path never worked, which is no proof that the peer lacks ZRTP."""
    send_errors: int = 0
    """Datagrams our socket could not send (the system refused them)."""
    send_error: str = ""
    """The last of those, for the reason on screen ("cannot send to ::1")."""
    playout_late: int = 0
    """Audio packets that came after their frame had been played (dropped)."""
    playout_lost: int = 0
    """Frames missing at their turn with later ones there: concealed and skipped."""
    playout_concealed: int = 0
    """Frames concealed: the lost ones and those held while the jitter buffer grew."""
    playout_dropped: int = 0
    """Frames the jitter buffer discarded to shrink its delay."""
    playout_resyncs: int = 0
    """Times the incoming stream restarted (a new SSRC, a jump of its timestamps)."""
    playout_delay: float = 0.0
    """The jitter buffer's target delay in seconds when the stats were taken."""
    capture_skipped: int = 0
    """Frames the capture never gave (a stall longer than the card's backlog), skipped in the
    RTP time: what our own lateness took from the audio we sent."""
    earpiece_late: int = 0
    """Frames not written to the earpiece: the media thread came after the card had played
    all it had (what our own lateness took from the audio we played)."""
