"""The callee's side of a call (RFC 3261 §13.3, §9.2, §17.2.1).

`IncomingCall` (100 Trying already sent) -> `ringing` / `answer` (our 2xx, repeated until its
ACK; `CallEstablished` on the ACK) / `reject`. A CANCEL before our final answer gets 200 and
the INVITE 487 (`CallEnded` "Cancelled"). A 2xx never ACKed within 64*T1 ends the dialog with
a BYE; a hang-up between our 2xx and its ACK sends the BYE once the ACK comes.
"""

from __future__ import annotations

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.dialog import Dialog
from pidphone.sip.errors import SipParseError
from pidphone.sip.events import readable_reason
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.in_dialog import send_bye
from pidphone.sip.invite_usage import (
    CallInput,
    InviteState,
    InviteUsage,
    InviteUsages,
    OkRetransmission,
    Role,
)
from pidphone.sip.message import Header, Request
from pidphone.sip.methods import ALLOW, Method
from pidphone.sip.replaces import Replaces
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction import Input, State, response_input
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]


class InviteServer:
    """Incoming calls until they are confirmed (module docstring)."""

    def __init__(self, stack: SipStack, calls: InviteUsages) -> None:
        self._stack = stack
        self._calls = calls

    # ------------------------------------------------------------------ API

    def ringing(self, call_id: str, now: float) -> None:
        self._respond(self._incoming(call_id, "ringing"), 180, now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        call = self._incoming(call_id, "answer")
        call.dialog = Dialog.as_uas(call.invite, call.local_tag)
        call.apply(CallInput.ANSWER)
        self._respond(call, 200, now, body=sdp)

    def reject(self, call_id: str, status: int, now: float) -> None:
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject needs a 3xx-6xx status, not {status}")
        call = self._incoming(call_id, "reject")
        self._respond(call, status, now)
        reason = readable_reason(status, "")
        self._calls.end(call, CallInput.REJECT, status, reason, by_peer=False, now=now)

    def redirect(self, call_id: str, target: Uri, now: float) -> None:
        """Send the caller elsewhere: 302 Moved Temporarily with `target` as the Contact
        (RFC 3261 §21.3.3), e.g. for call forwarding."""
        call = self._incoming(call_id, "redirect")
        self._respond(call, 302, now, extra=[("Contact", str(NameAddr(uri=target)))])
        self._calls.end(call, CallInput.REJECT, 302, "Forwarded", by_peer=False, now=now)

    def hang_up_before_ack(self, call: InviteUsage, now: float) -> None:
        """Hung up after our 2xx went: the BYE waits for the ACK (§15)."""
        self._calls.end(call, CallInput.HANGUP, None, "Hung up", by_peer=False, now=now)

    # ------------------------------------------------------------------ requests from the peer

    def receive_invite(self, peer: Address, req: Request, now: float) -> None:
        stack = self._stack
        if req.call_id in self._calls:
            stack.reject(peer, req, 482)  # a second INVITE of a call we know: a loop/merge
            return
        replaced: str | None = None
        if req.header("Replaces") is not None:
            found = self._replaced_call(peer, req)
            if found is None:
                return
            replaced = found.call_id
        tx = stack.transactions.start_server(req, peer, req.call_id, now)
        call = InviteUsage(
            req.call_id, Role.UAS, peer, InviteState.INCOMING, req, stack.token(8), tx
        )
        self._calls.add(call)
        stack.send(peer, stack.response(req, 100, peer, to_tag=None))
        stack.report(
            ev.IncomingCall(
                req.call_id, str(req.from_.uri), req.from_.display_name, req.body, replaced
            )
        )

    def _replaced_call(self, peer: Address, req: Request) -> InviteUsage | None:
        """RFC 3891 §3: the established call an INVITE with Replaces names (its Call-ID, our
        tag as to-tag, the peer's as from-tag); answered 481 when there is none, 486 when it
        asks for an early dialog only, 400 when the header cannot be read."""
        stack = self._stack
        values = req.header_values("Replaces")
        try:
            if len(values) != 1:
                raise SipParseError("more than one Replaces")
            replaces = Replaces.parse(values[0])
        except SipParseError as exc:
            stack.reject(peer, req, 400, why=str(exc))
            return None
        call = self._calls.get(replaces.call_id)
        dialog = call.dialog if call is not None else None
        if (
            call is None
            or dialog is None
            or call.state is not InviteState.CONFIRMED
            or dialog.local_tag != replaces.to_tag
            or dialog.remote_tag != replaces.from_tag
        ):
            stack.reject(peer, req, 481)
            return None
        if replaces.early_only:
            stack.reject(peer, req, 486)
            return None
        return call

    def receive_ack(self, req: Request, now: float) -> None:
        """The ACK of our failure ends its transaction (§17.2.1); the ACK of our 2xx confirms
        the call (§13.3.1.4), or lets our BYE go after a hang-up."""
        found = self._stack.transactions.server(req, Method.INVITE)
        if found is not None and found[0].state is State.COMPLETED:
            found[0].apply(Input.ACK, now)
            self._stack.transactions.forget_server(found[0])
            return
        call = self._calls.get(req.call_id)
        if call is None or call.dialog is None or call.ok is None:
            return
        if req.cseq.seq != call.ok.response.cseq.seq:
            return
        call.ok = None
        if call.state is InviteState.BYE_DUE:
            call.apply(CallInput.ACK)
            send_bye(self._stack, call, now)
        elif call.state is InviteState.ANSWERED:
            call.apply(CallInput.ACK)
            self._stack.report(ev.CallEstablished(call.call_id, req.body))

    def receive_cancel(self, peer: Address, req: Request, now: float) -> None:
        stack = self._stack
        found = stack.transactions.server(req, Method.INVITE)
        if found is None:
            stack.reject(peer, req, 481)
            return
        tx, call_id = found
        stack.send(peer, stack.response(req, 200, peer, to_tag=None))
        call = self._calls.get(call_id)
        if call is None or tx.state is not State.PROCEEDING:
            return
        if call.state is not InviteState.INCOMING:
            return  # a re-INVITE's CANCEL: the call goes on
        self._respond(call, 487, now)
        self._calls.end(call, CallInput.PEER_CANCEL, 487, "Cancelled", by_peer=True, now=now)

    # ------------------------------------------------------------------ our 2xx until its ACK

    def handle_timer(self, call: InviteUsage, now: float) -> None:
        ok = call.ok
        if ok is None:
            return
        if ok.give_up_at <= now:
            # §13.3.1.4: no ACK within 64·T1 — end the dialog with a BYE
            call.ok = None
            send_bye(self._stack, call, now)
            reason = "No ACK from the caller"
            self._calls.end(call, CallInput.NO_ACK, 408, reason, by_peer=False, now=now)
        elif ok.resend_at <= now:
            self._stack.send(call.flow, ok.response)
            ok.resent(now)

    # ------------------------------------------------------------------ helpers

    def _incoming(self, call_id: str, action: str) -> InviteUsage:
        call = self._calls.require(call_id)
        if call.role is not Role.UAS or call.state is not InviteState.INCOMING:
            raise LocalProtocolError(f"cannot {action} call {call_id} in state {call.state.value}")
        return call

    def _respond(
        self,
        call: InviteUsage,
        status: int,
        now: float,
        body: bytes = b"",
        extra: list[Header] | None = None,
    ) -> None:
        """Answer the call's INVITE; a 2xx is repeated until its ACK comes."""
        tx = call.invite_tx
        if tx is None:
            raise LocalProtocolError(f"call {call.call_id} has no INVITE to answer")
        stack = self._stack
        extra = list(extra or [])
        if status < 300:
            extra += [("Allow", ALLOW), ("Supported", SUPPORTED)]
        response = stack.response(
            call.invite,
            status,
            call.flow,
            to_tag=call.local_tag,
            extra=extra,
            body=body,
            contact=100 < status < 300,
        )
        tx.apply(response_input(status), now)
        if tx.terminated:
            stack.transactions.forget_server(tx)
        stack.send(call.flow, response)
        if 200 <= status < 300:
            call.ok = OkRetransmission.start(response, now)
