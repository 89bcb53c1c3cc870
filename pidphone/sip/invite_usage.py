"""The INVITE dialog usage (RFC 3261 §13-§15, RFC 5057 §3): one call's state, as a table.

Everything that moves a call from one `InviteState` to another is in `TRANSITIONS`: (state,
input) -> new state, for both roles. The handlers (`invite_client`, `invite_server`,
`reinvite`) do what the RFC asks on each input and move the call with `InviteUsage.apply`; an
input the table does not list in the call's state is a peer's stray message (ignored) or our
own misuse of the API (LocalProtocolError).

The app is told a call ended (`CallEnded`) when it enters one of `OVER` (the states where the
person's call is over), whatever protocol work is left: after a hang-up before the answer the
CANCEL may still have to wait for a provisional response, and a 2xx that crosses it is ACKed
and ended with a BYE; after a hang-up between our 2xx and its ACK the BYE waits for the ACK.

Besides its state a call may have a re-INVITE in flight each way (§14) and a 2xx of ours
repeated until its ACK comes (§13.3.1.4); each has its own small record here. A dialog is the
usage's (`dialog`), so other usages of the same dialog (REFER's implicit subscription, RFC
3515) can share it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.dialog import Dialog
from pidphone.sip.message import Request, Response
from pidphone.sip.transaction import T1, T2, TIMER_H, Transaction
from pidphone.sip.uri import Uri

Address = tuple[str, int]

LINGER = 64 * T1
"""How long an ended call is kept to absorb late responses and retransmissions."""


class Role(enum.Enum):
    UAC = "caller"
    UAS = "callee"


class InviteState(enum.Enum):
    CALLING = "calling"
    """UAC: our INVITE is out (or waiting for its flow), no provisional response yet."""
    PROCEEDING = "proceeding"
    """UAC: a provisional response came, so a CANCEL may be sent (§9.1)."""
    INCOMING = "incoming"
    """UAS: an INVITE came in, not answered yet."""
    ANSWERED = "answered"
    """UAS: our 2xx is out, its ACK has not come."""
    CONFIRMED = "confirmed"
    """The session is up."""
    CANCEL_DUE = "cancel due"
    """UAC, over: hung up before any provisional; the CANCEL goes when one comes."""
    CANCELLED = "cancelled"
    """UAC, over: our CANCEL is out; a 2xx crossing it is ACKed and ended with a BYE."""
    BYE_DUE = "bye due"
    """UAS, over: hung up after our 2xx; the BYE goes when the ACK comes (or is given up)."""
    ENDED = "ended"


class CallInput(enum.Enum):
    PROVISIONAL = "1xx to our INVITE"
    RESENT = "our INVITE sent anew: with credentials, or on to a 3xx's Contact"
    ACCEPTED = "2xx to our INVITE"
    REFUSED = "failure or no response to our INVITE"
    ANSWER = "our 2xx"
    REJECT = "our failure response"
    ACK = "ACK of our 2xx"
    NO_ACK = "no ACK of our 2xx (64*T1)"
    PEER_CANCEL = "CANCEL"
    HANGUP = "hang-up"
    BYE = "BYE"
    DIALOG_GONE = "408, 481 or no response to our re-INVITE"


S, In = InviteState, CallInput
TRANSITIONS: dict[tuple[InviteState, CallInput], InviteState] = {
    # §13.2 the caller
    (S.CALLING, In.PROVISIONAL): S.PROCEEDING,
    (S.CALLING, In.ACCEPTED): S.CONFIRMED,  # the ACK is sent on the way
    (S.CALLING, In.REFUSED): S.ENDED,
    (S.CALLING, In.HANGUP): S.CANCEL_DUE,  # no CANCEL before a provisional response (§9.1)
    (S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
    (S.PROCEEDING, In.ACCEPTED): S.CONFIRMED,
    (S.PROCEEDING, In.REFUSED): S.ENDED,
    (S.PROCEEDING, In.HANGUP): S.CANCELLED,  # CANCEL sent
    # §8.1.3.4 (a redirect) or §22.2 (credentials): a new INVITE transaction, which has had
    # no provisional response yet (§9.1)
    (S.CALLING, In.RESENT): S.CALLING,
    (S.PROCEEDING, In.RESENT): S.CALLING,
    # §9.1 after our hang-up
    (S.CANCEL_DUE, In.PROVISIONAL): S.CANCELLED,  # CANCEL sent now
    (S.CANCEL_DUE, In.ACCEPTED): S.ENDED,  # the 2xx crossed: ACK, then BYE
    (S.CANCEL_DUE, In.REFUSED): S.ENDED,
    (S.CANCELLED, In.PROVISIONAL): S.CANCELLED,
    (S.CANCELLED, In.ACCEPTED): S.ENDED,  # the 2xx crossed our CANCEL: ACK, then BYE
    (S.CANCELLED, In.REFUSED): S.ENDED,  # 487, or Timer B
    # §13.3 the callee
    (S.INCOMING, In.ANSWER): S.ANSWERED,
    (S.INCOMING, In.REJECT): S.ENDED,  # hang-up too: 603
    (S.INCOMING, In.PEER_CANCEL): S.ENDED,  # 487 (§9.2)
    (S.ANSWERED, In.ACK): S.CONFIRMED,
    (S.ANSWERED, In.HANGUP): S.BYE_DUE,
    (S.ANSWERED, In.NO_ACK): S.ENDED,  # BYE sent (§13.3.1.4)
    (S.ANSWERED, In.BYE): S.ENDED,
    (S.BYE_DUE, In.ACK): S.ENDED,  # BYE sent now
    (S.BYE_DUE, In.NO_ACK): S.ENDED,  # BYE sent
    (S.BYE_DUE, In.BYE): S.ENDED,
    # §14, §15 in the dialog
    (S.CONFIRMED, In.HANGUP): S.ENDED,  # BYE sent
    (S.CONFIRMED, In.BYE): S.ENDED,
    (S.CONFIRMED, In.NO_ACK): S.ENDED,  # a re-INVITE's 2xx never ACKed: BYE sent
    (S.CONFIRMED, In.DIALOG_GONE): S.ENDED,
    (S.ENDED, In.BYE): S.ENDED,
    (S.ENDED, In.NO_ACK): S.ENDED,  # BYE sent again
}
del S, In

OVER = frozenset(
    {InviteState.CANCEL_DUE, InviteState.CANCELLED, InviteState.BYE_DUE, InviteState.ENDED}
)
"""States in which the app has been told that the call ended."""


@dataclass
class OkRetransmission:
    """Our 2xx to an INVITE, repeated with T1 doubling up to T2 until its ACK comes, and given
    up after 64*T1 (§13.3.1.4)."""

    response: Response
    resend_at: float
    give_up_at: float
    interval: float = T1

    @classmethod
    def start(cls, response: Response, now: float) -> OkRetransmission:
        return cls(response, resend_at=now + T1, give_up_at=now + TIMER_H)

    def resent(self, now: float) -> None:
        self.interval = min(self.interval * 2, T2)
        self.resend_at = now + self.interval


@dataclass
class OutgoingReinvite:
    """Our re-INVITE (§14.1): in flight (`tx`), or refused with 491 and due again at
    `retry_at` (at most `MAX_GLARE_RETRIES` times)."""

    sdp: bytes
    tx: Transaction | None = None
    retry_at: float | None = None
    glare_retries: int = 0


@dataclass
class InviteUsage:
    """One call: its INVITE, its dialog once there is one, and where it stands."""

    call_id: str
    role: Role
    flow: Address
    state: InviteState
    invite: Request
    """The INVITE we sent last (caller) or received (callee)."""
    local_tag: str
    invite_tx: Transaction | None = None
    dialog: Dialog | None = None
    direct: bool = False
    """Sent straight to the called host, not through the registrar."""
    invite_headers: tuple[tuple[str, str], ...] = ()
    """Headers our INVITE carries beside the standard ones (Replaces, Referred-By)."""
    auth_attempts: int = 0
    redirect_targets: list[Uri] = field(default_factory=list)
    """Contacts of the 3xx responses the caller got, not tried yet, next first (§8.1.3.4)."""
    tried_targets: set[str] = field(default_factory=set)
    """Every Request-URI this call's INVITE went to: none is tried twice (no loops)."""
    redirects: int = 0
    """INVITEs sent on redirects so far."""
    last_ack: Request | None = None
    """Our last ACK of a 2xx, sent again if the 2xx is (§13.2.2.4)."""
    ok: OkRetransmission | None = None
    reinvite_out: OutgoingReinvite | None = None
    reinvite_in: Transaction | None = None
    """The peer's re-INVITE we have not answered yet (§14.2)."""
    purge_at: float | None = None

    @property
    def over(self) -> bool:
        return self.state in OVER

    def can(self, event: CallInput) -> bool:
        return (self.state, event) in TRANSITIONS

    def apply(self, event: CallInput) -> InviteState:
        """Move along the table; an input the state does not take is our own bug."""
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"call {self.call_id} in state {self.state.value} cannot take {event.value}"
            ) from None
        return self.state

    def deadlines(self) -> Iterator[float]:
        if self.ok is not None:
            yield self.ok.resend_at
            yield self.ok.give_up_at
        if self.reinvite_out is not None and self.reinvite_out.retry_at is not None:
            yield self.reinvite_out.retry_at
        if self.purge_at is not None:
            yield self.purge_at


class InviteUsages:
    """The calls by Call-ID, and the one way a call ends for the app."""

    def __init__(self, report: Callable[[ev.SipEvent], None]) -> None:
        self._report = report
        self._calls: dict[str, InviteUsage] = {}

    def add(self, call: InviteUsage) -> None:
        self._calls[call.call_id] = call

    def get(self, call_id: str) -> InviteUsage | None:
        return self._calls.get(call_id)

    def require(self, call_id: str) -> InviteUsage:
        """The call the app names; an unknown one is the app's mistake."""
        call = self._calls.get(call_id)
        if call is None:
            raise LocalProtocolError(f"no call {call_id!r}")
        return call

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def __iter__(self) -> Iterator[InviteUsage]:
        return iter(list(self._calls.values()))

    def end(
        self,
        call: InviteUsage,
        event: CallInput,
        status: int | None,
        reason: str,
        *,
        by_peer: bool,
        now: float,
    ) -> None:
        """Move `call` on `event`; if that ends it for the app, report `CallEnded` and keep it
        `LINGER` seconds for late messages. A call already over only moves, if it can."""
        if call.over:
            if call.can(event):
                call.apply(event)
            return
        call.apply(event)
        if call.reinvite_out is not None:
            call.reinvite_out.retry_at = None
        call.purge_at = now + LINGER
        self._report(ev.CallEnded(call.call_id, status, reason, by_peer))

    def purge_if_due(self, call: InviteUsage, now: float) -> None:
        """Forget `call` once its linger time is over."""
        if call.purge_at is not None and call.purge_at <= now:
            del self._calls[call.call_id]
