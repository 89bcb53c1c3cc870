"""The SIP user agent: registration, calls and everything between, sans I/O (RFC 3261 over
TLS, RFC 3581 rport, RFC 5626 outbound keep-alives).

Three things drive it, as in aioquic: the transport (`connection_made`, `receive_data`,
`connection_lost`), the clock (`get_timer` / `handle_timer`) and API calls (`register`,
`invite`, `answer`, ...), each with a required `now`. Output is (bytes, flow) pairs
(`data_to_send`, in the media session's order), flows to close (`flows_to_close`) and typed
events (`next_event`).

A *flow* is one TLS connection named by the peer's (host, port). When a message needs a flow
that is not connected, the agent queues it and `data_to_send` yields `(b"", address)`: the
driver opens the connection (an empty payload asks for nothing else) and calls
`connection_made`, after which the message is built with the connection's local address in
Via and Contact and comes out of the next `data_to_send`; its transaction's timers (B, F) start
then, when the request is really sent. A connection attempt that fails is reported with
`connection_lost`.

Calls, by their Call-ID: `invite` → `CallProgress`* → `CallAnswered` or `CallEnded`;
`IncomingCall` → `ringing`/`answer` → `CallEstablished`, or `reject` → `CallEnded`. `hangup`
(CANCEL, 603 or BYE as the state requires) reports `CallEnded` at once; a 200 that crosses
our CANCEL is ACKed and ended with a BYE. Re-INVITEs: `reinvite` → `ReinviteAnswered` or
`ReinviteFailed` (a 491 is retried after the §14.1 delay); `ReinviteReceived` →
`accept_reinvite`/`reject_reinvite`. API misuse raises LocalProtocolError.

Nothing a peer sends can raise out of `receive_data`: a malformed request that can be framed
is answered 400 (or the status its error hints) and reported as `RequestRejected`; a stream
that cannot be framed is reported as `FlowFailed` and listed by `flows_to_close`.

This module is where everything is routed: each message to the part of the agent that owns
it (requests by method and dialog, responses by the purpose of their client transaction), each
API call to the part that owns the call's state. The parts: `registration` (§10),
`invite_client` and `invite_server` (§13, §9), `in_dialog` (§12.2, §14, §15), `uas` (§8.2),
over the shared `stack` (flows, transactions, credentials, building and sending). Another
usage of a dialog (RFC 5057), such as a subscription (RFC 6665) or REFER's implicit one (RFC
3515), is a part beside the INVITE usage, routed here by method: `voicemail` keeps the
message-summary subscription (RFC 3842), whose NOTIFYs are routed to it by Call-ID.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import assert_never

from pidphone.errors import ProtocolError
from pidphone.sip import events as ev
from pidphone.sip.agent_config import AgentConfig, Transport
from pidphone.sip.callers import PeerCertificate
from pidphone.sip.errors import SipParseError
from pidphone.sip.in_dialog import InDialog
from pidphone.sip.invite_client import InviteClient
from pidphone.sip.invite_server import InviteServer
from pidphone.sip.invite_usage import InviteState, InviteUsages
from pidphone.sip.message import Request, Response, parse_message
from pidphone.sip.methods import Method
from pidphone.sip.refer import ReferUsages
from pidphone.sip.registration import RegistrationClient, RegState
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction import Kind
from pidphone.sip.transaction_layer import (
    Cancelling,
    ClientTransaction,
    Ending,
    Inviting,
    NoResponse,
    Notifying,
    Referring,
    Registering,
    Reinviting,
    Subscribing,
)
from pidphone.sip.uas import ServerCore
from pidphone.sip.voicemail import VoicemailClient

__all__ = ["AgentConfig", "Transport", "UserAgent"]

Address = tuple[str, int]


class UserAgent:
    """A SIP user agent over reliable flows. See the module docstring for the contract."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self._stack = stack = SipStack(config, random_bytes)
        self._registration = RegistrationClient(stack)
        self._calls = InviteUsages(stack.report)
        self._uas = ServerCore(stack)
        self._in_dialog = InDialog(stack, self._calls)
        self._client = InviteClient(stack, self._calls)
        self._server = InviteServer(stack, self._calls)
        self._refers = ReferUsages(stack, self._calls, self._client.target_uri)
        self._voicemail = VoicemailClient(stack)

    # ------------------------------------------------------------------ transport side

    def connection_made(
        self,
        peer: Address,
        local: Address,
        now: float,
        certificate: PeerCertificate | None = None,
    ) -> None:
        """A connection is up: one we asked for (pings go out on it every
        `keepalive_interval`, RFC 5626 §3.5.1) or one a peer opened to our listener, with
        the client `certificate` TLS verified, if any."""
        self._stack.flows.made(peer, local, now, certificate)

    def connection_lost(self, peer: Address, now: float) -> None:
        """The connection to `peer` closed, or could not be opened: its pending requests fail
        (transport error, §8.1.3.1) and a registration over it is renewed after a backoff."""
        stack = self._stack
        stack.flows.lost(peer, now)
        for outcome in stack.transactions.client_flow_lost(peer, now):
            self._route_outcome(*outcome, now)
        stack.transactions.server_flow_lost(peer)
        self._registration.flow_lost(peer, now)
        self._voicemail.flow_lost(peer, now)

    def receive_data(self, data: bytes, peer: Address, now: float) -> None:
        """Bytes from `peer`'s connection, in any chunking. Never raises on their content."""
        for message in self._stack.flows.frames(peer, data):
            self._receive_message(peer, message, now)

    def data_to_send(self) -> list[tuple[bytes, Address]]:
        """(bytes, flow) to write, in order; an empty payload only asks for a connection."""
        return self._stack.flows.data_to_send()

    def flows_to_close(self) -> list[Address]:
        """Connections the driver must close (unframeable stream or buffer over its cap)."""
        return self._stack.flows.to_close()

    def next_event(self) -> ev.SipEvent | None:
        """The oldest event not yet taken, or None."""
        events = self._stack.events
        return events.popleft() if events else None

    def get_timer(self) -> float | None:
        """The next deadline (absolute, same clock as `now`), or None."""
        stack = self._stack
        times = [*stack.transactions.deadlines(), *stack.flows.deadlines()]
        times += self._registration.deadlines()
        times += self._refers.deadlines()
        times += self._voicemail.deadlines()
        for call in self._calls:
            times.extend(call.deadlines())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Run everything due at `now`: transaction timers, keep-alives, registration refresh
        and retry, 2xx retransmission, glare retries."""
        stack = self._stack
        for outcome in stack.transactions.client_timeouts(now):
            self._route_outcome(*outcome, now)
        stack.transactions.server_timeouts(now)
        stack.flows.handle_timer(now)
        self._registration.handle_timer(now)
        self._refers.handle_timer(now)
        self._voicemail.handle_timer(now)
        for call in self._calls:
            self._server.handle_timer(call, now)
            self._in_dialog.handle_timer(call, now)
            self._calls.purge_if_due(call, now)

    # ------------------------------------------------------------------ registration API

    def register(self, now: float) -> None:
        """Register our Contact with the registrar (and keep refreshing it)."""
        self._registration.register(now)

    def unregister(self, now: float) -> None:
        """Remove our binding (Expires: 0), e.g. on shutdown, and end the voicemail
        subscription; `Unregistered` follows."""
        self._voicemail.unwatch(now)
        self._registration.unregister(now)

    # ------------------------------------------------------------------ voicemail API

    def watch_voicemail(self, now: float, uri: str | None = None) -> None:
        """Subscribe to the message summary of `uri` (default: our AOR) through the registrar
        and keep the subscription up: `VoicemailStatus` on each notification,
        `VoicemailUnavailable` when it fails (it is started again by itself)."""
        self._voicemail.watch(now, uri)

    def unwatch_voicemail(self, now: float) -> None:
        """End the message-summary subscription."""
        self._voicemail.unwatch(now)

    # ------------------------------------------------------------------ call API

    def invite(self, target: str, sdp: bytes, now: float, *, replaces: str | None = None) -> str:
        """Call `target` (a SIP URI, or a user name in our domain) with the offer `sdp`.
        Returns the Call-ID that names the call from now on.

        With `replaces` (the Replaces value a REFER carried, RFC 3891) the call takes the place
        of one of the target's calls, and goes through the registrar when there is one: a
        call a transfer asked for never opens a connection to a host the REFER named."""
        if replaces is None:
            return self._client.invite(target, sdp, now)
        headers = (("Replaces", replaces), *self._referred_by(target))
        return self._client.invite(target, sdp, now, headers=headers, via_registrar=True)

    def invite_referred(self, target: str, sdp: bytes, now: float) -> str:
        """Call `target` because a REFER asked for it: as `invite`, through the registrar
        when there is one, with the REFER's Referred-By (RFC 3892)."""
        headers = self._referred_by(target)
        return self._client.invite(target, sdp, now, headers=headers, via_registrar=True)

    def _referred_by(self, target: str) -> tuple[tuple[str, str], ...]:
        referrer = self._refers.referred_by(target)
        return () if referrer is None else (("Referred-By", referrer),)

    def next_hop(self, target: str) -> Address:
        """Where an INVITE to `target` goes first: the registrar, or the called host."""
        return self._client.next_hop(target)

    def ringing(self, call_id: str, now: float) -> None:
        """Send 180 Ringing for an incoming call."""
        self._server.ringing(call_id, now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        """Accept an incoming call with the answer `sdp` (200 OK, repeated until the ACK)."""
        self._server.answer(call_id, sdp, now)

    def reject(self, call_id: str, status: int, now: float) -> None:
        """Refuse an incoming call: 486 Busy Here, 603 Decline, 488 Not Acceptable Here ..."""
        self._server.reject(call_id, status, now)

    def redirect(self, call_id: str, target: str, now: float) -> None:
        """Forward an incoming call: 302 with `target` (a SIP URI, "user@host" or a number
        in our domain) as the Contact."""
        self._server.redirect(call_id, self._client.target_uri(target), now)

    def hangup(self, call_id: str, now: float) -> None:
        """End a call in whatever state: CANCEL, reject (603), or BYE as the state requires."""
        call = self._calls.require(call_id)
        match call.state:
            case InviteState.CALLING | InviteState.PROCEEDING:
                self._client.cancel(call, now)
            case InviteState.INCOMING:
                self._server.reject(call_id, 603, now)
            case InviteState.ANSWERED:
                self._server.hang_up_before_ack(call, now)
            case InviteState.CONFIRMED:
                self._in_dialog.hang_up(call, now)
            case (
                InviteState.CANCEL_DUE
                | InviteState.CANCELLED
                | InviteState.BYE_DUE
                | InviteState.ENDED
            ):
                return
            case _:
                assert_never(call.state)

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Send a new offer in an established call (hold: sendonly/inactive; resume)."""
        self._in_dialog.reinvite(call_id, sdp, now)

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Answer the peer's re-INVITE with `sdp` (200 OK, repeated until the ACK)."""
        self._in_dialog.accept_reinvite(call_id, sdp, now)

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None:
        """Refuse the peer's re-INVITE (488 ...); the call goes on as before."""
        self._in_dialog.reject_reinvite(call_id, status, now)

    # ------------------------------------------------------------------ transfer API

    def refer(self, call_id: str, target: str, now: float) -> None:
        """Blind transfer: ask the peer of established call `call_id` to call `target`
        (REFER); `TransferProgress`* then `TransferEnded` follow."""
        self._refers.refer(call_id, target, now, replacing=None)

    def refer_replacing(self, call_id: str, other_call_id: str, now: float) -> None:
        """Attended transfer: ask the peer of `call_id` to call the peer of our established
        call `other_call_id` in its place (REFER with Refer-To ...?Replaces=, RFC 5589)."""
        self._refers.refer(call_id, "", now, replacing=other_call_id)

    def accept_refer(self, call_id: str, now: float) -> None:
        """Take the transfer `ReferReceived` asked for: 202, and a NOTIFY "100 Trying"."""
        self._refers.accept_refer(call_id, now)

    def reject_refer(self, call_id: str, status: int, now: float) -> None:
        """Decline the transfer `ReferReceived` asked for (603, 403 ...)."""
        self._refers.reject_refer(call_id, status, now)

    def refer_progress(self, call_id: str, status: int, reason: str, now: float) -> None:
        """The call a REFER in `call_id` asked for reached `status` (a final one ends the
        transferor's subscription)."""
        self._refers.refer_progress(call_id, status, reason, now)

    # ------------------------------------------------------------------ routing what comes in

    def _receive_message(self, peer: Address, data: bytes, now: float) -> None:
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._uas.reject_unparsable(peer, data, exc)
            return
        try:
            if isinstance(message, Request):
                self._receive_request(peer, message, now)
            else:
                self._receive_response(message, now)
        except ProtocolError as exc:
            if isinstance(message, Request) and message.method != Method.ACK:
                status = exc.error_status_hint
                stack = self._stack
                stack.send(peer, stack.response(message, status, peer, to_tag=stack.token(8)))
                stack.report(ev.RequestRejected(status, str(exc)))

    def _receive_request(self, peer: Address, req: Request, now: float) -> None:
        method = Method.of(req.method)
        if method is Method.ACK:
            self._server.receive_ack(req, now)
            return
        if method is Method.CANCEL:
            self._server.receive_cancel(peer, req, now)
            return
        if self._stack.transactions.server(req, req.method) is not None:
            return  # a retransmission; the transport is reliable, the answer is on its way
        if not self._uas.acceptable(peer, req):
            return
        if req.to.tag is not None:
            self._receive_in_dialog(peer, req, method, now)
        elif not self._uas.caller_admitted(peer, req):
            return
        elif method is Method.INVITE:
            self._server.receive_invite(peer, req, now)
        elif method is Method.OPTIONS:
            self._uas.answer_options(peer, req)
        elif method is Method.BYE:
            self._stack.reject(peer, req, 481)
        elif method is Method.REFER:
            # only the peer of a call we are in may transfer it (refer.py)
            self._stack.reject(peer, req, 403)
        elif method is Method.NOTIFY:
            self._stack.reject(peer, req, 481)  # RFC 6665 §4.1.3: no subscription of ours
        else:
            self._uas.reject_method(peer, req)

    def _receive_in_dialog(
        self, peer: Address, req: Request, method: Method | None, now: float
    ) -> None:
        """§12.2.2: a request in a dialog goes to the usage whose dialog it names."""
        if self._voicemail.owns(req):
            self._voicemail.receive_notify(peer, req, now)
            return
        call = self._calls.get(req.call_id)
        dialog = call.dialog if call else None
        if call is None or dialog is None or not dialog.matches(req, incoming_request=True):
            self._stack.reject(peer, req, 481)
            return
        if not dialog.accept_remote_seq(req.cseq.seq, req.method):
            self._stack.reject(peer, req, 500)
            return
        if method is Method.BYE:
            self._in_dialog.receive_bye(peer, call, req, now)
        elif method is Method.INVITE:
            self._in_dialog.receive_reinvite(peer, call, dialog, req, now)
        elif method is Method.OPTIONS:
            self._uas.answer_options(peer, req)
        elif method is Method.REFER:
            self._refers.receive_refer(peer, call, req, now)
        elif method is Method.NOTIFY:
            self._refers.receive_notify(peer, call, req, now)
        else:
            self._uas.reject_method(peer, req)

    def _receive_response(self, resp: Response, now: float) -> None:
        transactions = self._stack.transactions
        ctx = transactions.client_for(resp)
        if ctx is None:
            self._client.stray_response(resp)
            return
        if not transactions.advance(ctx, resp, now):
            return
        tx = ctx.tx
        if tx.terminated and tx.kind is Kind.INVITE_CLIENT and resp.status >= 300:
            self._stack.send(tx.flow, self._stack.make.ack_for_failure(tx.request, resp))
        self._route_outcome(ctx, resp, now)

    def _route_outcome(
        self, ctx: ClientTransaction, resp: Response | NoResponse, now: float
    ) -> None:
        """A client transaction's response, or its end without one, to the part that sent
        its request."""
        purpose = ctx.purpose
        match purpose:
            case Registering():
                self._registration.on_outcome(ctx, purpose, resp, now)
                if self._registration.state.state is RegState.REGISTERED:
                    self._voicemail.registered(now)
            case Subscribing():
                self._voicemail.on_outcome(ctx, purpose, resp, now)
            case Inviting(call_id=call_id):
                if (call := self._calls.get(call_id)) is not None:
                    self._client.on_outcome(call, resp, now)
            case Reinviting(call_id=call_id):
                if (call := self._calls.get(call_id)) is not None:
                    self._in_dialog.on_outcome(call, resp, now)
            case Referring(call_id=call_id):
                if (call := self._calls.get(call_id)) is not None:
                    self._refers.on_refer_outcome(call, resp, now)
            case Notifying(call_id=call_id):
                if (call := self._calls.get(call_id)) is not None:
                    self._refers.on_notify_outcome(call, resp, now)
            case Cancelling() | Ending():
                return  # their answers change nothing
            case _:
                assert_never(purpose)
