"""What the loop and the media worker say to each other: frozen commands one way, events back.

The loop never touches a call's `MediaSession` or socket: it names the call's media by a
`MediaId` of its own choosing and sends commands; the worker owns the session and answers
with events. `apply_to_session` is the one place a command becomes a `MediaSession` call: the
worker uses it, and so do the sans-I/O tests that drive a call and its session back to back
without a thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.ports import Address
from pidphone.sdp.offer_answer import MediaParams

from .media import MediaConfig, MediaSession
from .media_events import MediaEvent, MediaStats

MediaId = int
"""The loop's name for one call's media (the Call-ID is not known before the INVITE)."""


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class MediaCommand:
    """Base of what the loop asks of the media worker."""


@dataclass(frozen=True)
class OpenMedia(MediaCommand):
    """Bind a socket on `bind` (any port), learn its public address from `stun_server` if
    given, build the session; answered by `MediaOpened` or `MediaOpenFailed`."""

    media_id: MediaId
    bind: str
    config: MediaConfig
    stun_server: Address | None = None


@dataclass(frozen=True)
class SetCodec(MediaCommand):
    """The codec and payload types the SDP negotiation settled on: the negotiation's own
    result (codec, payload types, clock rates, the peer's fmtp)."""

    media_id: MediaId
    params: MediaParams


@dataclass(frozen=True)
class SetRemote(MediaCommand):
    """The peer's media address, a=zrtp-hash and RTCP address (None: multiplexed); answered
    by `MediaHelloHash` with our Hello hash, which a new peer hash may have changed."""

    media_id: MediaId
    address: Address
    peer_hello_hash: str | None
    rtcp: Address | None


@dataclass(frozen=True)
class StartMedia(MediaCommand):
    """Begin ZRTP (both sides send Hello as soon as the media path exists)."""

    media_id: MediaId


@dataclass(frozen=True)
class SetDirection(MediaCommand):
    media_id: MediaId
    direction: str


@dataclass(frozen=True)
class SendDigit(MediaCommand):
    """An RFC 4733 key press in place of the next frames' audio."""

    media_id: MediaId
    key: str


@dataclass(frozen=True)
class SetSasVerified(MediaCommand):
    """The user compared the SAS: set or clear the verified flag in the ZID cache."""

    media_id: MediaId
    verified: bool


@dataclass(frozen=True)
class RestartZrtp(MediaCommand):
    """Start a new ZRTP stream (Multistream from the call's first exchange)."""

    media_id: MediaId


@dataclass(frozen=True)
class AllowClear(MediaCommand):
    """NOT SECURE is on the screen and its tone has played: a call that fell back under
    "prefer" may carry clear audio now (nothing happens to a call that is, or was, secure)."""

    media_id: MediaId


@dataclass(frozen=True)
class QueryStats(MediaCommand):
    """Answered by `MediaStatsReport`."""

    media_id: MediaId


@dataclass(frozen=True)
class CloseMedia(MediaCommand):
    """Send an RTCP BYE where allowed, forget the keys, close the socket; answered by
    `MediaClosed`."""

    media_id: MediaId


@dataclass(frozen=True)
class SetHandset(MediaCommand):
    """Which call the handset carries (None: the tone or silence)."""

    media_id: MediaId | None


@dataclass(frozen=True)
class SetHandsetTone(MediaCommand):
    """A call-progress tone in the earpiece while no call has the handset; None stops it.
    `over_call`: in place of the handset call's audio too (a security indication tone), at
    the call's audio rate; the call's own audio still goes to the peer as its security allows."""

    kind: str | None
    over_call: bool = False


@dataclass(frozen=True)
class SetMicMuted(MediaCommand):
    muted: bool


SESSION_COMMANDS = (
    SetCodec,
    SetRemote,
    StartMedia,
    SetDirection,
    SendDigit,
    SetSasVerified,
    RestartZrtp,
    AllowClear,
    QueryStats,
    CloseMedia,
)
"""The commands `apply_to_session` runs against one call's session."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class WorkerEvent:
    """Base of what the media worker tells the loop."""


@dataclass(frozen=True)
class MediaOpened(WorkerEvent):
    """The call's socket is bound: `local` as bound, `mapped` as STUN saw it (or None), and
    our ZRTP Hello hash for the SDP."""

    media_id: MediaId
    local: Address
    mapped: Address | None
    hello_hash: str


@dataclass(frozen=True)
class MediaOpenFailed(WorkerEvent):
    media_id: MediaId
    reason: str


@dataclass(frozen=True)
class MediaUpdate(WorkerEvent):
    """What a call's media session reported."""

    media_id: MediaId
    event: MediaEvent


@dataclass(frozen=True)
class MediaHelloHash(WorkerEvent):
    """Our ZRTP Hello hash after `SetRemote` or `RestartZrtp` (new if our stream restarted:
    the next SDP we send must carry it)."""

    media_id: MediaId
    hello_hash: str


@dataclass(frozen=True)
class MediaStatsReport(WorkerEvent):
    media_id: MediaId
    stats: MediaStats


@dataclass(frozen=True)
class MediaClosed(WorkerEvent):
    """The call's media is gone; its last counters."""

    media_id: MediaId
    stats: MediaStats


@dataclass(frozen=True)
class WorkerFailed(WorkerEvent):
    """The media thread died: every call's media is gone with it."""

    reason: str


# --------------------------------------------------------------------------- applying


def apply_to_session(
    session: MediaSession, media_id: MediaId, command: MediaCommand, now: float
) -> list[WorkerEvent]:
    """Run one of `SESSION_COMMANDS` on the session; the replies it asks for. Our own misuse
    (a DTMF key without telephone-event, a SAS confirmed after ZRTP closed) raises
    `LocalProtocolError`, which the caller logs: it is no fault of the thread."""
    if isinstance(command, SetCodec):
        params = command.params
        session.configure(params.codec, params.payload_type, params.telephone_event_pt, params.fmtp)
    elif isinstance(command, SetRemote):
        session.set_remote(command.address, command.peer_hello_hash, rtcp=command.rtcp, now=now)
        return [MediaHelloHash(media_id, session.hello_hash)]
    elif isinstance(command, StartMedia):
        session.start(now)
    elif isinstance(command, SetDirection):
        session.set_direction(command.direction)
    elif isinstance(command, SendDigit):
        session.send_dtmf(command.key)
    elif isinstance(command, SetSasVerified):
        session.confirm_sas(command.verified)
    elif isinstance(command, RestartZrtp):
        session.restart_zrtp(now)
        return [MediaHelloHash(media_id, session.hello_hash)]
    elif isinstance(command, AllowClear):
        session.allow_clear()
    elif isinstance(command, QueryStats):
        return [MediaStatsReport(media_id, session.report_stats())]
    elif isinstance(command, CloseMedia):
        session.close(now)
        return [MediaClosed(media_id, session.report_stats())]
    else:
        raise TypeError(f"not a session command: {command!r}")
    return []
