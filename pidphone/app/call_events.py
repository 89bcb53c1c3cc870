"""What a call tells the phone: the call layer's events, one frozen dataclass per fact.

A `Call` (pidphone.app.call) reports them from `next_event()`; the switchboard hands them to
the controller, which gives them as they are to the phone's reducer (pidphone.app.state) and
to the listeners (the daemon's journal, the CLI). They are the only words for these facts
above the media session: the reducer keeps no copy of them.

An event that stands for what the media session reported carries the media session's own
event (`CallSecure.secured` is ZRTP's `Secured`, `CallSecurityLost.lost` the media's
`MediaSecurityLost` ...) rather than copying its fields, so a field added below reaches the
screen without another class changing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sdp.offer_answer import MediaParams
from pidphone.sip.events import CallRedirected, TransferEnded, TransferProgress
from pidphone.zrtp.events import Secured

from .media_events import MediaDtmf, MediaSecurityFailed, MediaSecurityLost


@dataclass(frozen=True)
class CallEvent:
    """Base of the call layer's events: each names its call by the SIP Call-ID."""

    call_id: str


@dataclass(frozen=True)
class CallIncoming(CallEvent):
    """An INVITE arrived and the phone is ringing; `answer` or `hangup` it."""

    remote_uri: str
    remote_name: str


@dataclass(frozen=True)
class CallPlaced(CallEvent):
    """Our INVITE is out."""

    target: str


@dataclass(frozen=True)
class CallRinging(CallEvent):
    """The callee is alerting (180 or 183): ringback here."""


@dataclass(frozen=True)
class CallForwarded(CallEvent):
    """The call we placed was redirected (3xx) and goes on to `redirected.target` through the
    registrar: "Forwarded to ..." on the screen."""

    redirected: CallRedirected


@dataclass(frozen=True)
class CallConnected(CallEvent):
    """The dialog is established (200 OK to our INVITE, or the ACK of the one we answered);
    media is starting, not yet secure."""


@dataclass(frozen=True)
class CallMedia(CallEvent):
    """The offer/answer settled the call's codec: when it connects, and again when a
    re-INVITE changes it. `params` is the negotiation's own result (the codec, its clock
    rate and format parameters, whether the audio is wideband)."""

    params: MediaParams


@dataclass(frozen=True)
class CallSecure(CallEvent):
    """ZRTP keyed the call: show the SAS. `secured` is the ZRTP session's own event (the SAS
    and its scheme, whether it was verified before, the algorithms, the peer's ZID)."""

    secured: Secured


@dataclass(frozen=True)
class CallInsecure(CallEvent):
    """ "prefer" policy, a peer that never negotiated ZRTP: show NOT SECURE, then `allow_clear`
    lets clear audio flow. `failure` is what the media session reported (not fatal)."""

    failure: MediaSecurityFailed


@dataclass(frozen=True)
class CallSecurityFailed(CallEvent):
    """ "require" policy, or a peer that negotiated ZRTP: the exchange failed (`failure.code`:
    its §5.9 Error code, when there was one) or the peer never spoke it; the call is being
    hung up with `failure.reason`, and no audio went out."""

    failure: MediaSecurityFailed


@dataclass(frozen=True)
class CallMismatch(CallEvent):
    """The retained secret did not match: a possible man in the middle; verify the SAS."""


@dataclass(frozen=True)
class CallSecurityLost(CallEvent):
    """A secure call lost its security for an authenticated reason (`lost.reason`): audio has
    stopped both ways and never flows in clear; the phone warns, and ends the call unless the
    user keeps the line (a new exchange may restore security: `CallSecure` again)."""

    lost: MediaSecurityLost


@dataclass(frozen=True)
class CallVerified(CallEvent):
    """The user confirmed (or rejected) the SAS; the cache now says so."""

    verified: bool


@dataclass(frozen=True)
class CallDtmf(CallEvent):
    """The peer pressed a key (`dtmf.key`, RFC 4733)."""

    dtmf: MediaDtmf


@dataclass(frozen=True)
class CallHeld(CallEvent):
    """The media direction changed by a re-INVITE (ours or the peer's): whether we hold the
    call, and whether the peer does."""

    local_hold: bool
    remote_hold: bool


@dataclass(frozen=True)
class CallTransferProgress(CallEvent):
    """Our transfer of this call's peer goes on: `progress` is the SIP agent's report of a
    NOTIFY (RFC 3515), the status the transferee's new call reached (100, 180 ...)."""

    progress: TransferProgress


@dataclass(frozen=True)
class CallTransferEnded(CallEvent):
    """Our transfer of this call's peer is over: `ended.succeeded` (the transferee's new call
    was answered; our calls in it are being hung up) or not, with `ended.reason` for the
    screen (the agent's event, or one made here when the REFER could not even be sent). A
    blind transfer that failed takes the call off hold again."""

    ended: TransferEnded


@dataclass(frozen=True)
class CallReferred(CallEvent):
    """The peer of this call transferred us (a REFER it may send only in this call): the
    phone is calling `target` as call `new_call_id`, which runs its own ZRTP exchange."""

    target: str
    new_call_id: str


@dataclass(frozen=True)
class CallReplaced(CallEvent):
    """A transfer joined `remote_uri` to us in place of our call `replaces` (INVITE with
    Replaces, RFC 3891): this new call is answered at once and runs its own ZRTP exchange,
    and the replaced one is being hung up."""

    replaces: str
    remote_uri: str
    remote_name: str


@dataclass(frozen=True)
class CallFinished(CallEvent):
    """The call is over. `reason` is for the screen ("Busy Here", "Hung up by peer", "Peer
    does not support ZRTP" ...), `by_peer` tells who ended it, `status` is the SIP status of
    a call that failed or was refused (486, 404, 488 ...)."""

    reason: str
    by_peer: bool
    status: int | None = None
