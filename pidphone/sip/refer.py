"""REFER and its implicit subscription in a call's dialog (RFC 3515, RFC 4488, RFC 5057 §4):
the usage beside the INVITE usage that transfers a call, both ways, as a state table.

As transferor, `refer` sends a REFER to the call's peer (Refer-To the target; for an attended
transfer, another of our calls' peer with `?Replaces=` naming that dialog, RFC 5589 §7) and
follows the NOTIFYs' sipfrag status lines: `TransferProgress` for each provisional status,
`TransferEnded` once a final one comes, the subscription ends, the REFER is refused, or
nothing decisive came within `TRANSFER_TIME`.

As transferee, a REFER from the peer of an established call is checked (one Refer-To, a sip:
or sips: URI with a user, method INVITE, at most one Replaces; every other embedded header
dropped) and reported as `ReferReceived`; the app decides (`accept_refer`: 202 and a first
NOTIFY "100 Trying"; `reject_refer`), then reports the new call with `refer_progress`, a
NOTIFY per status, the final one ending the subscription. Unanswered, the REFER is declined
after `REFER_DECISION_TIME`; a subscription still open after `NOTIFIER_TIME` is ended with
"408". A REFER outside a dialog, or in a call that is not established, is refused: only the
peer of a call the person is in, authenticated by the call's own flow, may transfer it.

Everything that moves a referral is in `TRANSITIONS`. A call has at most one referral at a
time, whichever way, and at most `MAX_REFERS` in its life; while one runs the call's dialog
is kept (its `purge_at` pushed back) so that NOTIFYs after the BYE still find it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.errors import SipParseError
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.in_dialog import dialog_request, session_headers
from pidphone.sip.invite_usage import InviteState, InviteUsage, InviteUsages
from pidphone.sip.message import Header, Request, Response, reason_phrase
from pidphone.sip.methods import Method
from pidphone.sip.replaces import ReferTarget, Replaces
from pidphone.sip.sipfrag import MEDIA_TYPE, parse_status_line, status_line
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction import T1
from pidphone.sip.transaction_layer import NoResponse, Notifying, Referring
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]

TRANSFER_TIME = 180.0
"""Seconds a transferor waits for the outcome after its REFER (the new call may ring)."""
REFER_DECISION_TIME = 64 * T1 - 2.0
"""Seconds the app has to accept or decline a REFER, inside the sender's Timer F."""
NOTIFIER_TIME = 180.0
"""Seconds a transferee reports on its new call before it gives up (final "408")."""
SUBSCRIPTION_EXPIRES = 180
"""The expires= of our active Subscription-State."""
MAX_REFERS = 3
"""REFERs one call may carry in its life, both ways together."""


class ReferState(enum.Enum):
    REFERRING = "our REFER is out"
    WATCHING = "following the transferee's NOTIFYs"
    DECIDING = "the peer's REFER waits for the app"
    NOTIFYING = "reporting our new call to the transferor"
    DONE = "done"


class ReferInput(enum.Enum):
    ACCEPTED = "2xx to our REFER"
    REFUSED = "failure or no response to our REFER"
    PROGRESS = "NOTIFY with a provisional status"
    OUTCOME = "NOTIFY with a final status, or one that ends the subscription"
    ACCEPT = "our 202"
    REJECT = "our failure response"
    REPORT = "our provisional NOTIFY"
    FINISH = "our final NOTIFY"
    EXPIRED = "time is up"


S, In = ReferState, ReferInput
TRANSITIONS: dict[tuple[ReferState, ReferInput], ReferState] = {
    # transferor (§2.4.4): a NOTIFY may overtake the 202
    (S.REFERRING, In.ACCEPTED): S.WATCHING,
    (S.REFERRING, In.REFUSED): S.DONE,
    (S.REFERRING, In.PROGRESS): S.WATCHING,
    (S.REFERRING, In.OUTCOME): S.DONE,
    (S.REFERRING, In.EXPIRED): S.DONE,
    (S.WATCHING, In.ACCEPTED): S.WATCHING,
    (S.WATCHING, In.PROGRESS): S.WATCHING,
    (S.WATCHING, In.OUTCOME): S.DONE,
    (S.WATCHING, In.EXPIRED): S.DONE,
    # transferee (§2.4.2, §2.4.5)
    (S.DECIDING, In.ACCEPT): S.NOTIFYING,
    (S.DECIDING, In.REJECT): S.DONE,
    (S.DECIDING, In.EXPIRED): S.DONE,  # declined
    (S.NOTIFYING, In.REPORT): S.NOTIFYING,
    (S.NOTIFYING, In.FINISH): S.DONE,
    (S.NOTIFYING, In.EXPIRED): S.DONE,  # final NOTIFY "408"
}
del S, In


@dataclass
class Referral:
    """One REFER in call `call_id`, ours or the peer's, and where it stands."""

    call_id: str
    state: ReferState
    request: Request
    deadline: float
    subscribed: bool = True
    """False when the REFER or its 2xx said `Refer-Sub: false` (RFC 4488): no NOTIFYs."""
    last_status: int = 0
    target: str = ""
    """The peer's REFER: the URI it asked us to call."""
    referrer: str = ""
    """The peer's REFER: who referred us, for the Referred-By of the call it asked for."""

    def can(self, event: ReferInput) -> bool:
        return (self.state, event) in TRANSITIONS

    def apply(self, event: ReferInput) -> ReferState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"transfer in call {self.call_id} in state {self.state.value} "
                f"cannot take {event.value}"
            ) from None
        return self.state

    @property
    def transferor(self) -> bool:
        return self.state in (ReferState.REFERRING, ReferState.WATCHING)


class ReferUsages:
    """The referrals of every call, by Call-ID (module docstring)."""

    def __init__(
        self, stack: SipStack, calls: InviteUsages, target_uri: Callable[[str], Uri]
    ) -> None:
        self._stack = stack
        self._calls = calls
        self._target_uri = target_uri
        """How a number or name the user typed becomes a URI (the caller's own rule)."""
        self._referrals: dict[str, Referral] = {}
        self._counts: dict[str, int] = {}

    # ------------------------------------------------------------------ transferor API

    def refer(self, call_id: str, target: str, now: float, *, replacing: str | None) -> None:
        """Ask the peer of `call_id` to call `target`; with `replacing`, to call the peer of
        that other call of ours instead, in its place (attended transfer)."""
        call = self._calls.require(call_id)
        self._ready(call)
        if replacing is not None:
            other = self._calls.require(replacing)
            dialog = other.dialog
            if other.state is not InviteState.CONFIRMED or dialog is None or other is call:
                raise LocalProtocolError(f"call {replacing} is not established")
            # RFC 3891 §3: the tags as the receiver of the INVITE (our peer there) sees them
            replaces = Replaces(dialog.call_id, to_tag=dialog.remote_tag, from_tag=dialog.local_tag)
            refer_to = ReferTarget(dialog.remote.uri, replaces)
        else:
            refer_to = ReferTarget(self._target_uri(target))
        stack = self._stack
        extra: list[Header] = [
            ("Refer-To", str(refer_to.refer_to())),
            ("Referred-By", str(stack.make.local_name_addr())),
            *session_headers(stack, call),
        ]
        request = dialog_request(stack, call, Method.REFER, extra=extra)
        self._add(Referral(call_id, ReferState.REFERRING, request, now + TRANSFER_TIME), call)
        stack.start_client(request, call.flow, Referring(call_id), now)

    def on_refer_outcome(self, call: InviteUsage, resp: Response | NoResponse, now: float) -> None:
        referral = self._referrals.get(call.call_id)
        if referral is None or not referral.transferor:
            return
        if isinstance(resp, NoResponse):
            self._end_transfer(referral, ReferInput.REFUSED, resp.status, resp.reason)
        elif resp.status < 200:
            return
        elif resp.status < 300:
            if (resp.header("Refer-Sub") or "").strip().lower() == "false":
                # RFC 4488: no NOTIFYs will come; accepted is all we will ever know
                referral.subscribed = False
                self._end_transfer(referral, ReferInput.ACCEPTED, resp.status, "Transfer accepted")
                return
            referral.apply(ReferInput.ACCEPTED)
        else:
            reason = ev.readable_reason(resp.status, resp.reason)
            self._end_transfer(referral, ReferInput.REFUSED, resp.status, reason)

    def receive_notify(self, peer: Address, call: InviteUsage, req: Request, now: float) -> None:
        stack = self._stack
        event = (req.header("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            stack.reject(peer, req, 489, why="Bad Event")  # RFC 6665 §4.1.3
            return
        referral = self._referrals.get(call.call_id)
        if referral is None or not referral.transferor:
            stack.reject(peer, req, 481)  # no subscription of ours
            return
        try:
            status, reason = parse_status_line(req.body)
        except SipParseError as exc:
            stack.reject(peer, req, 400, why=str(exc))
            return
        stack.send(peer, stack.response(req, 200, peer, to_tag=None))
        terminated = (req.header("Subscription-State") or "").strip().lower()
        if status >= 200:
            text = reason_phrase(status) if status < 300 else ev.readable_reason(status, reason)
            self._end_transfer(referral, ReferInput.OUTCOME, status, text, ok=status < 300)
        elif terminated.startswith("terminated"):
            text = "Transfer ended without an outcome"
            self._end_transfer(referral, ReferInput.OUTCOME, status, text)
        elif status > referral.last_status:
            referral.apply(ReferInput.PROGRESS)
            referral.last_status = status
            stack.report(ev.TransferProgress(call.call_id, status, reason or reason_phrase(status)))
        elif referral.can(ReferInput.PROGRESS):
            referral.apply(ReferInput.PROGRESS)

    # ------------------------------------------------------------------ transferee API

    def receive_refer(self, peer: Address, call: InviteUsage, req: Request, now: float) -> None:
        stack = self._stack
        if call.state is not InviteState.CONFIRMED:
            stack.reject(peer, req, 481)
            return
        if call.call_id in self._referrals or self._counts.get(call.call_id, 0) >= MAX_REFERS:
            stack.reject(peer, req, 491 if call.call_id in self._referrals else 603)
            return
        values = req.header_values("Refer-To")
        if len(values) != 1:
            stack.reject(peer, req, 400, why="exactly one Refer-To is needed")
            return
        try:
            target = ReferTarget.parse(values[0])
        except SipParseError as exc:
            stack.reject(peer, req, 400, why=str(exc))
            return
        referral = Referral(call.call_id, ReferState.DECIDING, req, now + REFER_DECISION_TIME)
        referral.subscribed = (req.header("Refer-Sub") or "").strip().lower() != "false"
        referral.target = str(target.uri)
        referral.referrer = referrer(req)
        self._add(referral, call)
        replaces = None if target.replaces is None else str(target.replaces)
        stack.report(ev.ReferReceived(call.call_id, referral.target, replaces, referral.referrer))

    def referred_by(self, target: str) -> str | None:
        """The Referred-By for our INVITE to `target`, if a REFER we accepted asked for that
        call (RFC 3892 §3: the referee copies it into the request the REFER triggers)."""
        for referral in self._referrals.values():
            if referral.state is ReferState.NOTIFYING and referral.target == target:
                return referral.referrer or None
        return None

    def accept_refer(self, call_id: str, now: float) -> None:
        call, referral = self._deciding(call_id)
        referral.apply(ReferInput.ACCEPT)
        referral.deadline = now + NOTIFIER_TIME
        extra: list[Header] = [("Supported", SUPPORTED)]
        if not referral.subscribed:
            extra.append(("Refer-Sub", "false"))
        stack = self._stack
        stack.send(
            call.flow, stack.response(referral.request, 202, call.flow, to_tag=None, extra=extra)
        )
        if referral.subscribed:
            self._notify(call, referral, 100, "Trying", now, final=False)
        else:
            referral.apply(ReferInput.FINISH)
            self._forget(referral)

    def reject_refer(self, call_id: str, status: int, now: float) -> None:
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject_refer needs a 3xx-6xx status, not {status}")
        call, referral = self._deciding(call_id)
        self._decline(call, referral, status)

    def refer_progress(self, call_id: str, status: int, reason: str, now: float) -> None:
        """The new call a REFER asked for reached `status`: tell the transferor; a final
        status ends the subscription."""
        referral = self._referrals.get(call_id)
        if referral is None or referral.state is not ReferState.NOTIFYING:
            return  # over already (expired, or no subscription): nothing to tell
        call = self._calls.get(call_id)
        final = status >= 200
        if call is None or (not final and status <= referral.last_status):
            return
        self._notify(call, referral, status, reason, now, final=final)

    def on_notify_outcome(self, call: InviteUsage, resp: Response | NoResponse, now: float) -> None:
        """A transferor that answers 481 (or not at all) has no subscription any more."""
        status = resp.status if isinstance(resp, Response) else 408
        referral = self._referrals.get(call.call_id)
        if referral is not None and referral.state is ReferState.NOTIFYING and status in (481, 408):
            referral.apply(ReferInput.FINISH)
            self._forget(referral)

    # ------------------------------------------------------------------ time

    def deadlines(self) -> Iterator[float]:
        for referral in self._referrals.values():
            yield referral.deadline

    def handle_timer(self, now: float) -> None:
        for referral in list(self._referrals.values()):
            call = self._calls.get(referral.call_id)
            if referral.deadline > now:
                if call is not None:
                    self._keep_dialog(call, referral.deadline)  # the call may have ended since
                continue
            if referral.transferor:
                self._end_transfer(referral, ReferInput.EXPIRED, None, "No transfer outcome")
            elif referral.state is ReferState.DECIDING:
                if call is not None:
                    self._decline(call, referral, 603)
                else:
                    referral.apply(ReferInput.EXPIRED)
                    self._forget(referral)
            elif call is not None:
                self._notify(call, referral, 408, "Request Timeout", now, final=True)
            else:
                referral.apply(ReferInput.EXPIRED)
                self._forget(referral)

    # ------------------------------------------------------------------ helpers

    def _ready(self, call: InviteUsage) -> None:
        if call.state is not InviteState.CONFIRMED or call.dialog is None:
            raise LocalProtocolError(f"call {call.call_id} is not established")
        if call.call_id in self._referrals:
            raise LocalProtocolError(f"call {call.call_id} already has a transfer in progress")
        if self._counts.get(call.call_id, 0) >= MAX_REFERS:
            raise LocalProtocolError(f"call {call.call_id} has been transferred too often")

    def _add(self, referral: Referral, call: InviteUsage) -> None:
        self._referrals[referral.call_id] = referral
        self._counts[referral.call_id] = self._counts.get(referral.call_id, 0) + 1
        self._keep_dialog(call, referral.deadline)

    def _keep_dialog(self, call: InviteUsage, until: float) -> None:
        """The dialog outlives its INVITE usage while the referral may still use it."""
        if call.purge_at is not None and call.purge_at < until + 64 * T1:
            call.purge_at = until + 64 * T1

    def _deciding(self, call_id: str) -> tuple[InviteUsage, Referral]:
        call = self._calls.require(call_id)
        referral = self._referrals.get(call_id)
        if referral is None or referral.state is not ReferState.DECIDING:
            raise LocalProtocolError(f"call {call_id} has no REFER to answer")
        return call, referral

    def _decline(self, call: InviteUsage, referral: Referral, status: int) -> None:
        referral.apply(ReferInput.REJECT)
        stack = self._stack
        stack.send(call.flow, stack.response(referral.request, status, call.flow, to_tag=None))
        self._forget(referral)

    def _notify(
        self,
        call: InviteUsage,
        referral: Referral,
        status: int,
        reason: str,
        now: float,
        *,
        final: bool,
    ) -> None:
        state = (
            "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION_EXPIRES}"
        )
        stack = self._stack
        extra: list[Header] = [
            ("Event", f"refer;id={referral.request.cseq.seq}"),
            ("Subscription-State", state),
            *session_headers(stack, call),
            ("Content-Type", f"{MEDIA_TYPE};version=2.0"),
        ]
        body = status_line(status, reason)
        request = dialog_request(stack, call, Method.NOTIFY, body=body, extra=extra)
        stack.start_client(request, call.flow, Notifying(call.call_id), now)
        referral.last_status = status
        if final:
            referral.apply(ReferInput.FINISH if referral.deadline > now else ReferInput.EXPIRED)
            self._forget(referral)
        else:
            referral.apply(ReferInput.REPORT)

    def _end_transfer(
        self,
        referral: Referral,
        event: ReferInput,
        status: int | None,
        reason: str,
        *,
        ok: bool = False,
    ) -> None:
        succeeded = ok or (event is ReferInput.ACCEPTED and not referral.subscribed)
        if event is ReferInput.ACCEPTED:
            event = ReferInput.OUTCOME  # accepted without a subscription: nothing follows
        if not referral.can(event):
            return
        referral.apply(event)
        self._forget(referral)
        self._stack.report(ev.TransferEnded(referral.call_id, succeeded, status, reason))

    def _forget(self, referral: Referral) -> None:
        if self._referrals.get(referral.call_id) is referral:
            del self._referrals[referral.call_id]


MAX_REFERRED_BY = 256
"""Characters of a REFER's Referred-By looked at."""


def referrer(req: Request) -> str:
    """Who referred us (RFC 3892): the REFER's Referred-By, parsed and written again with no
    URI headers and no `cid` (we carry no Referred-By token); its From when it has none, or
    one that does not parse. Never more than the peer could say in its own From."""
    raw = (req.header("Referred-By") or "")[:MAX_REFERRED_BY]
    try:
        said = NameAddr.parse(raw) if raw.strip() else None
    except SipParseError:
        said = None
    if said is None or said.wildcard or said.uri.scheme not in ("sip", "sips"):
        said = NameAddr(uri=req.from_.uri, display_name=req.from_.display_name)
    params = tuple((n, v) for n, v in said.params if n.lower() not in ("cid", "tag"))
    uri = replace(said.uri, headers=(), password=None)
    return str(NameAddr(uri=uri, display_name=said.display_name, params=params))
