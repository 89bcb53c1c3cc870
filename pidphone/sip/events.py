"""What the SIP user agent reports: one frozen dataclass per fact, under `SipEvent`.

Each call event carries the call's Call-ID, the handle the app uses in `UserAgent` calls.
Reasons are for people: `readable_reason` words a final status as the screen shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sip.message import reason_phrase

READABLE_REASONS = {
    408: "Request timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Cancelled",
    600: "Busy Everywhere",
    603: "Declined",
}


def readable_reason(status: int, phrase: str) -> str:
    """A final status as the screen shows it: our words, else the peer's phrase, else §21's."""
    return READABLE_REASONS.get(status) or phrase or reason_phrase(status)


@dataclass(frozen=True)
class SipEvent:
    """Base of every event `UserAgent.next_event` returns."""


@dataclass(frozen=True)
class Registered(SipEvent):
    """The registrar accepted our binding for `expires` seconds; `contacts` lists every
    binding of the AOR it returned (ours included)."""

    expires: int
    contacts: tuple[str, ...]


@dataclass(frozen=True)
class RegistrationFailed(SipEvent):
    """A REGISTER failed (`status` None when no response came: timeout or connection loss).
    The agent retries by itself at `retry_at` (None: it will not, e.g. wrong password)."""

    status: int | None
    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class Unregistered(SipEvent):
    """Our binding was removed (Expires: 0 answered, or given up on)."""


@dataclass(frozen=True)
class IncomingCall(SipEvent):
    """An INVITE arrived and 100 Trying went back; answer with ringing/answer/reject."""

    call_id: str
    remote_uri: str
    remote_display_name: str
    sdp: bytes
    replaces: str | None = None
    """The Call-ID of our established call this INVITE replaces (RFC 3891: a transfer joins
    the caller to us in its place); None for a new call."""


@dataclass(frozen=True)
class CallProgress(SipEvent):
    """A provisional response (180 Ringing, 183 Session Progress ...) to our INVITE."""

    call_id: str
    status: int
    reason: str
    sdp: bytes | None


@dataclass(frozen=True)
class CallRedirected(SipEvent):
    """Our INVITE was redirected (a 3xx, RFC 3261 §8.1.3.4) and went on to `target` through
    the registrar; the call goes on (the same Call-ID) until that target answers."""

    call_id: str
    status: int
    target: str


@dataclass(frozen=True)
class CallAnswered(SipEvent):
    """Our INVITE got a 2xx with the answer `sdp`; the ACK is already queued."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class CallEstablished(SipEvent):
    """The ACK for the 2xx we sent arrived: the incoming call is up. `sdp` is the ACK's body:
    empty, unless the INVITE came without an offer and our 200 carried it (RFC 3264 §4)."""

    call_id: str
    sdp: bytes = b""


@dataclass(frozen=True)
class CallEnded(SipEvent):
    """The call is over. `reason` is for people ("Busy Here", "Declined", "Cancelled",
    "Hung up by peer", "Request timeout" ...); `by_peer` tells who ended it."""

    call_id: str
    status: int | None
    reason: str
    by_peer: bool


@dataclass(frozen=True)
class ReinviteReceived(SipEvent):
    """The peer sent a re-INVITE (hold/resume); answer with accept_reinvite/reject_reinvite."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class ReinviteAnswered(SipEvent):
    """Our re-INVITE got a 2xx with the answer `sdp` (ACK queued)."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class ReinviteFailed(SipEvent):
    """Our re-INVITE was refused; the previous session description still holds."""

    call_id: str
    status: int | None
    reason: str


@dataclass(frozen=True)
class ReferReceived(SipEvent):
    """The peer of established call `call_id` asks us to call `target` (RFC 3515), replacing
    one of its dialogs there when `replaces` is set (the Replaces header for our INVITE, RFC
    3891). Answer with `accept_refer` (then report the new call with `refer_progress`) or
    `reject_refer`; unanswered, it is declined after `REFER_DECISION_TIME`."""

    call_id: str
    target: str
    replaces: str | None
    referred_by: str


@dataclass(frozen=True)
class TransferProgress(SipEvent):
    """A NOTIFY about the call our REFER asked for: its provisional `status` (100, 180 ...)."""

    call_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class TransferEnded(SipEvent):
    """Our REFER in call `call_id` is over: `succeeded` when the transferee's new call was
    answered (a 2xx in the final NOTIFY); otherwise `status` and `reason` say why not (the
    REFER refused, the new call failed, no outcome in time)."""

    call_id: str
    succeeded: bool
    status: int | None
    reason: str


@dataclass(frozen=True)
class VoicemailStatus(SipEvent):
    """The voicemail box's message summary (RFC 3842), as its notifier last told it:
    whether messages wait, and the voice message counts (urgent ones are counted in `new` and
    `old` too, §5.2)."""

    waiting: bool
    new: int
    old: int
    urgent_new: int = 0
    urgent_old: int = 0


@dataclass(frozen=True)
class VoicemailUnavailable(SipEvent):
    """The message-summary subscription failed or ended (`status` None when no response
    came). The agent subscribes again by itself at `retry_at`, or once registered again;
    None: it will not (the server does not serve message-summary, refused us ...)."""

    status: int | None
    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class RequestRejected(SipEvent):
    """We answered a request we could not accept (malformed, unknown method, no such call)."""

    status: int
    reason: str


@dataclass(frozen=True)
class FlowFailed(SipEvent):
    """The connection to `peer` carried bytes that cannot be framed, or exceeded the buffer
    cap: the driver must close it (`UserAgent.flows_to_close` lists it too)."""

    peer: tuple[str, int]
    reason: str
