"""Requests inside a call's dialog (RFC 3261 §12.2, §14, §15): re-INVITE both ways with glare
resolution, and BYE.

`reinvite` -> `ReinviteAnswered` or `ReinviteFailed`; a 491 (the peer's re-INVITE crossed ours)
is retried after the §14.1 delay, at most `MAX_GLARE_RETRIES` times. `ReinviteReceived` ->
`accept_reinvite` (our 2xx is repeated until its ACK) or `reject_reinvite`. A BYE ends the call
at once both ways; one that arrives while the peer's re-INVITE waits for our answer gets that
re-INVITE answered 487 first (§15.1.2).
"""

from __future__ import annotations

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.dialog import Dialog
from pidphone.sip.events import readable_reason
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.invite_usage import (
    CallInput,
    InviteState,
    InviteUsage,
    InviteUsages,
    OkRetransmission,
    OutgoingReinvite,
    Role,
)
from pidphone.sip.message import Header, Request, Response
from pidphone.sip.methods import ALLOW, Method
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction import Input, Transaction
from pidphone.sip.transaction_layer import Ending, NoResponse, Reinviting

Address = tuple[str, int]

MAX_GLARE_RETRIES = 3
REINVITE_BUSY_RETRY = 1.0
"""Seconds before our re-INVITE tries again when an exchange in the other direction is still
open (the peer's re-INVITE unanswered, or our 2xx not yet ACKed)."""


def send_bye(stack: SipStack, call: InviteUsage, now: float) -> None:
    """End the call's dialog (§15.1.1)."""
    request = dialog_request(stack, call, Method.BYE)
    stack.start_client(request, call.flow, Ending(call.call_id), now)


def dialog_request(
    stack: SipStack,
    call: InviteUsage,
    method: Method,
    *,
    seq: int | None = None,
    body: bytes = b"",
    extra: list[Header] | None = None,
) -> Request:
    """A request in the call's dialog (§12.2.1.1): its target, route set and next CSeq."""
    dialog = call.dialog
    if dialog is None:
        raise LocalProtocolError(f"call {call.call_id} has no dialog for {method}")
    uri, routes = dialog.request_target()
    return stack.new_request(
        method,
        uri,
        call.flow,
        from_=dialog.from_header(),
        to=dialog.to_header(),
        call_id=dialog.call_id,
        seq=dialog.next_seq() if seq is None else seq,
        routes=routes,
        extra=extra or [],
        body=body,
    )


def session_headers(stack: SipStack, call: InviteUsage) -> list[Header]:
    """The Contact, Allow and Supported of our INVITEs (the Contact: `;ob` only through the
    proxy)."""
    local = stack.flows.local(call.flow)
    contact = stack.make.direct_contact(local) if call.direct else stack.make.dialog_contact(local)
    return [("Contact", str(contact)), ("Allow", ALLOW), ("Supported", SUPPORTED)]


class InDialog:
    """re-INVITE and BYE in established calls (module docstring)."""

    def __init__(self, stack: SipStack, calls: InviteUsages) -> None:
        self._stack = stack
        self._calls = calls

    # ------------------------------------------------------------------ API

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        call = self._calls.require(call_id)
        if call.state is not InviteState.CONFIRMED:
            raise LocalProtocolError(f"call {call_id} is not established")
        if _in_flight(call) or call.reinvite_in is not None:
            raise LocalProtocolError(f"call {call_id} already has a re-INVITE in progress")
        call.reinvite_out = OutgoingReinvite(sdp)
        self._send_reinvite(call, call.reinvite_out, now)

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        call, tx = self._pending(call_id)
        tx.apply(Input.SUCCESS, now)
        self._stack.transactions.forget_server(tx)
        call.reinvite_in = None
        stack = self._stack
        response = stack.response(tx.request, 200, call.flow, to_tag=call.local_tag, body=sdp)
        stack.send(call.flow, response)
        call.ok = OkRetransmission.start(response, now)

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None:
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject_reinvite needs a 3xx-6xx status, not {status}")
        call, tx = self._pending(call_id)
        tx.apply(Input.FAILURE, now)
        call.reinvite_in = None
        stack = self._stack
        stack.send(call.flow, stack.response(tx.request, status, call.flow, to_tag=call.local_tag))

    def hang_up(self, call: InviteUsage, now: float) -> None:
        """Our BYE ends an established call."""
        send_bye(self._stack, call, now)
        self._calls.end(call, CallInput.HANGUP, None, "Hung up", by_peer=False, now=now)

    # ------------------------------------------------------------------ requests from the peer

    def receive_bye(self, peer: Address, call: InviteUsage, req: Request, now: float) -> None:
        stack = self._stack
        stack.send(peer, stack.response(req, 200, peer, to_tag=None))
        call.ok = None
        pending = call.reinvite_in
        if pending is not None:  # §15.1.2: the unanswered re-INVITE gets 487
            call.reinvite_in = None
            pending.apply(Input.FAILURE, now)
            stack.send(peer, stack.response(pending.request, 487, peer, to_tag=None))
        self._calls.end(call, CallInput.BYE, None, "Hung up by peer", by_peer=True, now=now)

    def receive_reinvite(
        self, peer: Address, call: InviteUsage, dialog: Dialog, req: Request, now: float
    ) -> None:
        stack = self._stack
        if call.state is not InviteState.CONFIRMED or _in_flight(call):
            stack.reject(peer, req, 491)  # glare (§14.2)
            return
        if call.reinvite_in is not None or call.ok is not None:
            stack.reject(peer, req, 500, [("Retry-After", "1")])
            return
        dialog.refresh_target(req)
        call.reinvite_in = stack.transactions.start_server(req, peer, call.call_id, now)
        stack.send(peer, stack.response(req, 100, peer, to_tag=None))
        stack.report(ev.ReinviteReceived(call.call_id, req.body))

    # ------------------------------------------------------------------ our re-INVITE's outcome

    def on_outcome(self, call: InviteUsage, resp: Response | NoResponse, now: float) -> None:
        if isinstance(resp, Response) and resp.status < 200:
            return
        out = call.reinvite_out
        call.reinvite_out = None
        if isinstance(resp, NoResponse):  # §14.1: as a 408, whatever the cause
            self._calls.end(
                call, CallInput.DIALOG_GONE, None, readable_reason(408, ""), by_peer=False, now=now
            )
            return
        if resp.status in (408, 481):  # §14.1: the dialog is gone
            reason = readable_reason(resp.status, resp.reason)
            self._calls.end(
                call, CallInput.DIALOG_GONE, resp.status, reason, by_peer=False, now=now
            )
            return
        if resp.status < 300 and call.dialog is not None:
            call.dialog.refresh_target(resp)
            ack = dialog_request(self._stack, call, Method.ACK, seq=resp.cseq.seq)
            call.last_ack = ack
            self._stack.send(call.flow, ack)
            if call.over:
                return
            self._stack.report(ev.ReinviteAnswered(call.call_id, resp.body))
            return
        if (
            resp.status == 491
            and out is not None
            and out.glare_retries < MAX_GLARE_RETRIES
            and call.state is InviteState.CONFIRMED
        ):
            # §14.1: the owner of the Call-ID waits 2.1-4 s, the other side 0-2 s
            out.glare_retries += 1
            fraction = self._stack.fraction()
            delay = 2.1 + 1.9 * fraction if call.role is Role.UAC else 2.0 * fraction
            out.tx = None
            out.retry_at = now + delay
            call.reinvite_out = out
            return
        self._stack.report(ev.ReinviteFailed(call.call_id, resp.status, resp.reason))

    def handle_timer(self, call: InviteUsage, now: float) -> None:
        """Our re-INVITE again after a 491, once the other direction is quiet."""
        out = call.reinvite_out
        if out is None or out.retry_at is None or out.retry_at > now:
            return
        out.retry_at = None
        if call.state is not InviteState.CONFIRMED:
            return
        if call.reinvite_in is not None or call.ok is not None:
            out.retry_at = now + REINVITE_BUSY_RETRY
        else:
            self._send_reinvite(call, out, now)

    # ------------------------------------------------------------------ helpers

    def _send_reinvite(self, call: InviteUsage, out: OutgoingReinvite, now: float) -> None:
        extra = [*session_headers(self._stack, call), ("Content-Type", "application/sdp")]
        request = dialog_request(self._stack, call, Method.INVITE, body=out.sdp, extra=extra)
        out.tx = self._stack.start_client(request, call.flow, Reinviting(call.call_id), now)

    def _pending(self, call_id: str) -> tuple[InviteUsage, Transaction]:
        call = self._calls.require(call_id)
        tx = call.reinvite_in
        if tx is None:
            raise LocalProtocolError(f"call {call_id} has no re-INVITE to answer")
        return call, tx


def _in_flight(call: InviteUsage) -> bool:
    """Whether our re-INVITE waits for its final response."""
    return call.reinvite_out is not None and call.reinvite_out.tx is not None
