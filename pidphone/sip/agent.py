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
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.sip import events as ev
from pidphone.sip.auth import Challenge, DigestCredentials, best_challenge, parse_authorization
from pidphone.sip.callers import CallerPolicy, PeerCertificate
from pidphone.sip.dialog import Dialog
from pidphone.sip.errors import SipParseError
from pidphone.sip.factory import ALLOW, SUPPORTED, MessageFactory, uuid_urn
from pidphone.sip.framing import PING, PONG, Frame, Ping, Pong, StreamFramer
from pidphone.sip.grammar import parse_number
from pidphone.sip.message import (
    Header,
    Request,
    Response,
    parse_message,
    reason_phrase,
    salvage_error_response,
)
from pidphone.sip.registration import Registration, RegState, our_binding
from pidphone.sip.transaction import (
    T1,
    T2,
    TIMER_H,
    Input,
    Kind,
    State,
    Transaction,
    response_input,
)
from pidphone.sip.uri import NameAddr, Uri, format_host

Address = tuple[str, int]

KNOWN_NOT_ALLOWED = frozenset(
    {"REGISTER", "PRACK", "UPDATE", "INFO", "REFER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH"}
)
"""Methods we recognise but do not serve: 405 with Allow (§8.2.1); any other method gets 501."""
PONG_TIMEOUT = 10.0
"""RFC 5626 §4.4.1: a flow whose ping gets no pong within 10 s has failed."""
LINGER = 64 * T1
"""How long an ended call is kept to absorb late responses and retransmissions."""

READABLE_REASONS = {
    408: "Request timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Cancelled",
    600: "Busy Everywhere",
    603: "Declined",
}


AUTH_FAILED = "Authentication failed"
"""Why a request the registrar keeps challenging is given up: the password is wrong."""


def _printable(text: str, limit: int = 32) -> str:
    """A peer's text fit for the screen: printable characters only, and not too many."""
    return "".join(c for c in text[:limit] if c.isprintable())


def readable_reason(status: int, phrase: str) -> str:
    return READABLE_REASONS.get(status) or phrase or reason_phrase(status)


@dataclass(frozen=True)
class AgentConfig:
    """Who we are and where the registrar is. Times are in seconds."""

    aor: str
    """Address of record, e.g. "sips:alice@example.org" or "sip:alice@127.0.0.1"."""
    display_name: str = ""
    """Shown to the people we call (From), e.g. "Alice"."""
    auth_user: str | None = None
    """Digest user name; defaults to the AOR's user."""
    password: str | None = field(default=None, repr=False)
    registrar: Address | None = None
    """Where REGISTER and out-of-dialog requests go (the outbound proxy); None means no
    registration, direct calls only."""
    register_expires: int = 600
    """Seconds of registration asked for; refreshed halfway through (at most 30 s before)."""
    keepalive_interval: float = 30.0
    """CRLF ping on every open flow (RFC 5626 §3.5.1); 0 disables."""
    user_agent: str = "pidphone/0.1.0"
    """User-Agent of our requests and Server of our responses."""
    transport: str = "tls"
    """"tls" (or "tcp" for tests against plain peers)."""
    instance_id: str | None = None
    """RFC 5626 `+sip.instance` URN ("urn:uuid:..."); made up at start when None."""
    auth_realms: tuple[str, ...] = ()
    """Digest realms the password may answer besides the AOR's domain (a provider whose
    realm is not its domain). Only challenges from `registrar` are answered in any case."""
    callers: CallerPolicy | None = None
    """Who may start calls on connections a peer opened to our listener, checked against the
    certificate the transport verified (`connection_made`); None: no check."""


class CallState(enum.Enum):
    CALLING = "calling"  # our INVITE is out, no final response
    INCOMING = "incoming"  # an INVITE came in, not answered yet
    ANSWERED = "answered"  # we sent 200, the ACK has not come
    CONFIRMED = "confirmed"
    ENDED = "ended"


@dataclass
class _Call:
    call_id: str
    outgoing: bool
    flow: Address
    state: CallState
    invite: Request
    """The INVITE we sent last (outgoing) or received (incoming)."""
    local_tag: str
    invite_tx: Transaction | None = None
    dialog: Dialog | None = None
    provisional_seen: bool = False
    cancel_wanted: bool = False
    cancel_sent: bool = False
    bye_after_ack: bool = False
    auth_attempts: int = 0
    last_ack: Request | None = None
    # a 2xx we sent, retransmitted until its ACK (§13.3.1.4)
    ok_response: Response | None = None
    ok_resend_at: float | None = None
    ok_interval: float = T1
    ok_give_up_at: float | None = None
    # re-INVITE in either direction
    reinvite_out: Transaction | None = None
    reinvite_sdp: bytes = b""
    reinvite_retry_at: float | None = None
    glare_retries: int = 0
    reinvite_in: Transaction | None = None
    purge_at: float | None = None
    direct: bool = False
    """Sent straight to the called host, not through the registrar (see `_calls_direct`)."""


@dataclass
class _ClientTx:
    tx: Transaction
    purpose: str  # "register", "invite", "reinvite", "cancel", "bye", "options"
    call_id: str = ""


@dataclass
class _Deferred:
    """A request waiting for its flow: `send(now)` once it is up, `fail(reason, now)` if not."""

    send: Callable[[float], None]
    fail: Callable[[str, float], None]


@dataclass
class _Flow:
    framer: StreamFramer = field(default_factory=StreamFramer)
    local: Address | None = None
    pending: list[_Deferred] = field(default_factory=list)
    next_ping: float | None = None
    pong_due: float | None = None
    answers_pings: bool = False
    """The peer has answered a ping before, so a missing pong means a dead flow."""
    accepted: bool = False
    """The peer opened this connection to our listener (we did not ask for it)."""
    certificate: PeerCertificate | None = None
    """What TLS verified about the peer of an accepted connection."""


class UserAgent:
    """A SIP user agent over reliable flows. See the module docstring for the contract."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self._random = random_bytes
        self._aor = NameAddr.parse(config.aor).uri
        if self._aor.opaque is not None or not self._aor.user:
            raise LocalProtocolError(
                f"the AOR must be a sip: or sips: URI with a user: {config.aor!r}"
            )
        self._make = MessageFactory(
            aor=self._aor,
            display_name=config.display_name,
            transport=config.transport,
            user_agent=config.user_agent,
            instance=config.instance_id or uuid_urn(self._random(16)),
            outbound_proxy=config.registrar,
        )
        username = config.auth_user or self._aor.user
        self._credentials = (
            DigestCredentials(username, config.password) if config.password is not None else None
        )
        self._realms = frozenset(
            realm.lower() for realm in (self._aor.host.strip("[]"), *config.auth_realms)
        )
        """The realms whose challenges the password answers (compared in lower case)."""
        self._flows: dict[Address, _Flow] = {}
        self._last_local: dict[Address, Address] = {}
        self._out: list[tuple[bytes, Address]] = []
        self._close: list[Address] = []
        self._events: deque[ev.SipEvent] = deque()
        self._client: dict[tuple[str, str], _ClientTx] = {}
        self._server: dict[tuple[str, str], tuple[Transaction, str]] = {}
        self._calls: dict[str, _Call] = {}
        self._auth_everything = False
        """Set once a request other than REGISTER is challenged by the registrar: it wants
        credentials on every request, so they go up front on its flow from then on (§22.3)."""
        self._reg = Registration(
            call_id=self._token(16), from_tag=self._token(8), expires=config.register_expires
        )

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
        asked_for = peer in self._flows
        flow = self._flows.setdefault(peer, _Flow())
        if not asked_for:
            flow.accepted = True
            flow.certificate = certificate
        flow.local = local
        self._last_local[peer] = local
        if asked_for and self.config.keepalive_interval > 0:
            flow.next_ping = now + self.config.keepalive_interval
        pending, flow.pending = flow.pending, []
        for item in pending:
            item.send(now)

    def connection_lost(self, peer: Address, now: float) -> None:
        """The connection to `peer` closed, or could not be opened: its pending requests fail
        (transport error, §8.1.3.1) and a registration over it is renewed after a backoff."""
        flow = self._flows.pop(peer, None)
        if flow is not None:
            for item in flow.pending:
                item.fail("Connection failed", now)
        for key, ctx in list(self._client.items()):
            if ctx.tx.flow == peer and not ctx.tx.terminated:
                ctx.tx.apply(Input.TRANSPORT_ERROR, now)
                del self._client[key]
                self._client_result(ctx, None, "Connection lost", now)
        for key, (tx, _) in list(self._server.items()):
            if tx.flow == peer:
                del self._server[key]
        if peer == self.config.registrar and self._reg.state is RegState.REGISTERED:
            self._registration_failed(None, "Connection lost", now)

    def receive_data(self, data: bytes, peer: Address, now: float) -> None:
        """Bytes from `peer`'s connection, in any chunking. Never raises on their content."""
        flow = self._flows.setdefault(peer, _Flow())
        flow.framer.feed(data)
        while True:
            try:
                item = flow.framer.next_item()
            except SipParseError as exc:
                self._fail_flow(peer, str(exc))
                return
            if item is None:
                return
            if isinstance(item, Ping):
                self._out.append((PONG, peer))
            elif isinstance(item, Pong):
                flow.answers_pings = True
                flow.pong_due = None
            elif isinstance(item, Frame):
                self._receive_message(peer, item.data, now)

    def data_to_send(self) -> list[tuple[bytes, Address]]:
        """(bytes, flow) to write, in order; an empty payload only asks for a connection."""
        out, self._out = self._out, []
        return out

    def flows_to_close(self) -> list[Address]:
        """Connections the driver must close (unframeable stream or buffer over its cap)."""
        out, self._close = self._close, []
        return out

    def next_event(self) -> ev.SipEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next deadline (absolute, same clock as `now`), or None."""
        times: list[float] = [
            ctx.tx.deadline for ctx in self._client.values() if ctx.tx.deadline is not None
        ]
        times += [tx.deadline for tx, _ in self._server.values() if tx.deadline is not None]
        times += [f.next_ping for f in self._flows.values() if f.next_ping is not None and f.local]
        times += [f.pong_due for f in self._flows.values() if f.pong_due is not None]
        for t in (self._reg.refresh_at, self._reg.retry_at):
            if t is not None:
                times.append(t)
        for call in self._calls.values():
            for t in (call.ok_resend_at, call.ok_give_up_at, call.reinvite_retry_at, call.purge_at):
                if t is not None:
                    times.append(t)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Run everything due at `now`: transaction timers, keep-alives, registration refresh
        and retry, 2xx retransmission, glare retries."""
        for key, ctx in list(self._client.items()):
            if ctx.tx.deadline is not None and ctx.tx.deadline <= now:
                ctx.tx.apply(Input.TIMEOUT, now)
                del self._client[key]
                self._client_result(ctx, None, "Request timeout", now)
        for key, (tx, _) in list(self._server.items()):
            if tx.deadline is not None and tx.deadline <= now:
                tx.apply(Input.TIMEOUT, now)
                del self._server[key]
        for peer, flow in self._flows.items():
            if flow.local and flow.next_ping is not None and flow.next_ping <= now:
                self._out.append((PING, peer))
                flow.framer.ping_sent()
                flow.next_ping = now + self.config.keepalive_interval
                if flow.answers_pings:
                    flow.pong_due = now + PONG_TIMEOUT
            if flow.pong_due is not None and flow.pong_due <= now:
                flow.pong_due = None
                self._fail_flow(peer, "no answer to the keep-alive")
        reg = self._reg
        if reg.retry_at is not None and reg.retry_at <= now:
            reg.retry_at = None
            self._send_register(self._reg.expires, now)
        if reg.refresh_at is not None and reg.refresh_at <= now:
            reg.refresh_at = None
            self._send_register(self._reg.expires, now)
        for call in list(self._calls.values()):
            self._call_timers(call, now)

    # ------------------------------------------------------------------ registration API

    def register(self, now: float) -> None:
        """Register our Contact with the registrar (and keep refreshing it)."""
        if self.config.registrar is None:
            raise LocalProtocolError("no registrar configured")
        if self._reg.state in (RegState.REGISTERING, RegState.UNREGISTERING):
            return
        self._reg.retry_at = None
        self._send_register(self._reg.expires, now)

    def unregister(self, now: float) -> None:
        """Remove our binding (Expires: 0), e.g. on shutdown; `Unregistered` follows."""
        reg = self._reg
        reg.refresh_at = reg.retry_at = None
        registrar = self.config.registrar
        if registrar is None or reg.state is RegState.IDLE or registrar not in self._flows:
            reg.state = RegState.IDLE
            self._events.append(ev.Unregistered())
            return
        self._send_register(0, now)

    # ------------------------------------------------------------------ call API

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        """Call `target` (a SIP URI, or a user name in our domain) with the offer `sdp`.
        Returns the Call-ID that names the call from now on."""
        uri = self._target_uri(target)
        direct = self._calls_direct(uri)
        flow = self.next_hop(target)
        call_id = self._token(16)
        tag = self._token(8)
        placeholder = Request(method="INVITE", uri=uri)
        call = _Call(call_id, True, flow, CallState.CALLING, placeholder, tag, direct=direct)
        self._calls[call_id] = call
        to = NameAddr(uri=uri)

        def send(when: float) -> None:
            if call.state is CallState.CALLING:
                self._send_invite(call, to, uri, sdp, when)

        def fail(reason: str, when: float) -> None:
            self._end_call(call, 503, reason, by_peer=False, now=when)

        self._when_connected(flow, _Deferred(send, fail), now)
        return call_id

    def next_hop(self, target: str) -> Address:
        """Where an INVITE to `target` goes first: the registrar, or the called host."""
        uri = self._target_uri(target)
        registrar = self.config.registrar
        if registrar is not None and not self._calls_direct(uri):
            return registrar
        return (uri.host.strip("[]"), self._default_port(uri))

    def ringing(self, call_id: str, now: float) -> None:
        """Send 180 Ringing for an incoming call."""
        call = self._incoming(call_id, "ringing")
        self._respond_invite(call, 180, now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        """Accept an incoming call with the answer `sdp` (200 OK, repeated until the ACK)."""
        call = self._incoming(call_id, "answer")
        call.dialog = Dialog.as_uas(call.invite, call.local_tag)
        call.state = CallState.ANSWERED
        self._respond_invite(call, 200, now, body=sdp)

    def reject(self, call_id: str, status: int, now: float) -> None:
        """Refuse an incoming call: 486 Busy Here, 603 Decline, 488 Not Acceptable Here ..."""
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject needs a 3xx-6xx status, not {status}")
        call = self._incoming(call_id, "reject")
        self._respond_invite(call, status, now)
        self._end_call(call, status, readable_reason(status, ""), by_peer=False, now=now)

    def hangup(self, call_id: str, now: float) -> None:
        """End a call in whatever state: CANCEL, reject (603), or BYE as the state requires."""
        call = self._call(call_id)
        if call.state is CallState.ENDED:
            return
        if call.state is CallState.CALLING:
            call.cancel_wanted = True
            if call.provisional_seen:
                self._send_cancel(call, now)
            self._end_call(call, None, "Cancelled", by_peer=False, now=now)
        elif call.state is CallState.INCOMING:
            self.reject(call_id, 603, now)
        elif call.state is CallState.ANSWERED:
            call.bye_after_ack = True
            self._end_call(call, None, "Hung up", by_peer=False, now=now)
        else:
            self._send_in_dialog(call, "BYE", now)
            self._end_call(call, None, "Hung up", by_peer=False, now=now)

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Send a new offer in an established call (hold: sendonly/inactive; resume)."""
        call = self._call(call_id)
        if call.state is not CallState.CONFIRMED:
            raise LocalProtocolError(f"call {call_id} is not established")
        if call.reinvite_out is not None or call.reinvite_in is not None:
            raise LocalProtocolError(f"call {call_id} already has a re-INVITE in progress")
        call.reinvite_sdp = sdp
        call.glare_retries = 0
        call.reinvite_retry_at = None
        self._send_reinvite(call, now)

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Answer the peer's re-INVITE with `sdp` (200 OK, repeated until the ACK)."""
        call, tx = self._pending_reinvite(call_id)
        tx.apply(Input.SUCCESS, now)
        self._forget_server(tx)
        call.reinvite_in = None
        response = self._response(tx.request, 200, call.flow, to_tag=call.local_tag, body=sdp)
        self._send(call.flow, response)
        self._start_ok_retransmit(call, response, now)

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None:
        """Refuse the peer's re-INVITE (488 ...); the call goes on as before."""
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject_reinvite needs a 3xx-6xx status, not {status}")
        call, tx = self._pending_reinvite(call_id)
        tx.apply(Input.FAILURE, now)
        call.reinvite_in = None
        self._send(call.flow, self._response(tx.request, status, call.flow, to_tag=call.local_tag))

    # ------------------------------------------------------------------ receiving

    def _receive_message(self, peer: Address, data: bytes, now: float) -> None:
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._reject_unparsable(peer, data, exc)
            return
        try:
            if isinstance(message, Request):
                self._receive_request(peer, message, now)
            else:
                self._receive_response(message, now)
        except ProtocolError as exc:
            if isinstance(message, Request) and message.method != "ACK":
                status = exc.error_status_hint
                self._send(peer, self._response(message, status, peer, to_tag=self._token(8)))
                self._events.append(ev.RequestRejected(status, str(exc)))

    def _reject_unparsable(self, peer: Address, data: bytes, exc: SipParseError) -> None:
        status = exc.error_status_hint
        answer = salvage_error_response(data, status, self._token(8))
        if answer is not None:
            self._send(peer, answer)
            self._events.append(ev.RequestRejected(status, str(exc)))

    def _receive_request(self, peer: Address, req: Request, now: float) -> None:
        if req.method == "ACK":
            self._receive_ack(req, now)
            return
        if req.method == "CANCEL":
            self._receive_cancel(peer, req, now)
            return
        known = self._server.get((req.vias[0].branch or "", req.method))
        if known is not None:
            return  # a retransmission; the transport is reliable, the answer is on its way
        unsupported = [o for o in req.header_values("Require") if o.lower() != "outbound"]
        if unsupported:
            self._reject(peer, req, 420, [("Unsupported", ", ".join(unsupported))])
            return
        if req.method == "INVITE" and req.body and not _is_plain_sdp(req):
            self._reject(peer, req, 415, [("Accept", "application/sdp")])
            return
        if req.to.tag is None and self._caller_refused(peer, req):
            return
        if req.to.tag is not None:
            self._receive_in_dialog(peer, req, now)
        elif req.method == "INVITE":
            self._receive_invite(peer, req, now)
        elif req.method == "OPTIONS":
            self._answer_options(peer, req)
        elif req.method == "BYE":
            self._reject(peer, req, 481)
        else:
            self._reject_method(peer, req)

    def _caller_refused(self, peer: Address, req: Request) -> bool:
        """A request that starts something on a connection to our listener must come from a
        caller the policy admits; if not, it is answered 403 (and True returned)."""
        flow = self._flows.get(peer)
        policy = self.config.callers
        if policy is None or flow is None or not flow.accepted:
            return False
        refused = policy.caller_refusal(flow.certificate, req.from_.uri)
        if refused is None:
            return False
        response = self._response(req, 403, peer, to_tag=self._token(8))
        self._send(peer, response)
        self._events.append(ev.RequestRejected(403, f"{req.method} refused: {refused}"))
        return True

    def _reject_method(self, peer: Address, req: Request) -> None:
        if req.method in KNOWN_NOT_ALLOWED:
            self._reject(peer, req, 405, [("Allow", ALLOW)])
        else:
            self._reject(peer, req, 501)

    def _reject(
        self, peer: Address, req: Request, status: int, extra: list[Header] | None = None
    ) -> None:
        response = self._response(req, status, peer, to_tag=self._token(8), extra=extra or [])
        self._send(peer, response)
        self._events.append(ev.RequestRejected(status, f"{req.method}: {response.reason}"))

    def _answer_options(self, peer: Address, req: Request) -> None:
        extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", SUPPORTED)]
        self._send(peer, self._response(req, 200, peer, to_tag=self._token(8), extra=extra))

    def _receive_invite(self, peer: Address, req: Request, now: float) -> None:
        if req.call_id in self._calls:
            self._reject(peer, req, 482)  # a second INVITE of a call we know: a loop/merge
            return
        tx = Transaction.start(Kind.INVITE_SERVER, req, peer, now)
        call = _Call(req.call_id, False, peer, CallState.INCOMING, req, self._token(8), tx)
        self._calls[req.call_id] = call
        self._server[tx.key] = (tx, req.call_id)
        self._send(peer, self._response(req, 100, peer, to_tag=None))
        self._events.append(
            ev.IncomingCall(req.call_id, str(req.from_.uri), req.from_.display_name, req.body)
        )

    def _receive_in_dialog(self, peer: Address, req: Request, now: float) -> None:
        call = self._calls.get(req.call_id)
        dialog = call.dialog if call else None
        if call is None or dialog is None or not dialog.matches(req, incoming_request=True):
            self._reject(peer, req, 481)
            return
        if not dialog.accept_remote_seq(req.cseq.seq, req.method):
            self._reject(peer, req, 500)
            return
        if req.method == "BYE":
            self._send(peer, self._response(req, 200, peer, to_tag=None))
            call.ok_response = call.ok_resend_at = call.ok_give_up_at = None
            pending = call.reinvite_in
            if pending is not None:  # §15.1.2: the unanswered re-INVITE gets 487
                call.reinvite_in = None
                pending.apply(Input.FAILURE, now)
                self._send(peer, self._response(pending.request, 487, peer, to_tag=None))
            self._end_call(call, None, "Hung up by peer", by_peer=True, now=now)
        elif req.method == "INVITE":
            self._receive_reinvite(peer, call, dialog, req, now)
        elif req.method == "OPTIONS":
            self._answer_options(peer, req)
        else:
            self._reject_method(peer, req)

    def _receive_reinvite(
        self, peer: Address, call: _Call, dialog: Dialog, req: Request, now: float
    ) -> None:
        if call.state is not CallState.CONFIRMED or call.reinvite_out is not None:
            self._reject(peer, req, 491)  # glare (§14.2)
            return
        if call.reinvite_in is not None or call.ok_response is not None:
            self._reject(peer, req, 500, [("Retry-After", "1")])
            return
        dialog.refresh_target(req)
        tx = Transaction.start(Kind.INVITE_SERVER, req, peer, now)
        self._server[tx.key] = (tx, call.call_id)
        call.reinvite_in = tx
        self._send(peer, self._response(req, 100, peer, to_tag=None))
        self._events.append(ev.ReinviteReceived(call.call_id, req.body))

    def _receive_ack(self, req: Request, now: float) -> None:
        found = self._server.get((req.vias[0].branch or "", "INVITE"))
        if found is not None and found[0].state is State.COMPLETED:
            found[0].apply(Input.ACK, now)
            self._forget_server(found[0])
            return
        call = self._calls.get(req.call_id)
        if call is None or call.dialog is None or call.ok_response is None:
            return
        if req.cseq.seq != call.ok_response.cseq.seq:
            return
        call.ok_response = call.ok_resend_at = call.ok_give_up_at = None
        if call.bye_after_ack:
            call.bye_after_ack = False
            self._send_in_dialog(call, "BYE", now)
        elif call.state is CallState.ANSWERED:
            call.state = CallState.CONFIRMED
            self._events.append(ev.CallEstablished(call.call_id, req.body))

    def _receive_cancel(self, peer: Address, req: Request, now: float) -> None:
        found = self._server.get((req.vias[0].branch or "", "INVITE"))
        if found is None:
            self._reject(peer, req, 481)
            return
        tx, call_id = found
        self._send(peer, self._response(req, 200, peer, to_tag=None))
        call = self._calls.get(call_id)
        if call is None or tx.state is not State.PROCEEDING or call.state is not CallState.INCOMING:
            return
        self._respond_invite(call, 487, now)
        self._end_call(call, 487, "Cancelled", by_peer=True, now=now)

    def _receive_response(self, resp: Response, now: float) -> None:
        key = (resp.vias[0].branch or "", resp.cseq.method)
        ctx = self._client.get(key)
        if ctx is None:
            self._stray_response(resp, now)
            return
        tx = ctx.tx
        event = response_input(resp.status)
        if not tx.can(event):
            return
        tx.apply(event, now)
        if tx.terminated:
            del self._client[key]
            if tx.kind is Kind.INVITE_CLIENT and resp.status >= 300:
                self._send(tx.flow, self._make.ack_for_failure(tx.request, resp))
        self._client_result(ctx, resp, resp.reason, now)

    def _stray_response(self, resp: Response, now: float) -> None:
        """A 2xx to INVITE retransmitted after its transaction ended: ACK it again, or ACK
        and BYE if we had given the call up (§13.2.2.4)."""
        call = self._calls.get(resp.call_id)
        if resp.cseq.method != "INVITE" or not 200 <= resp.status < 300 or call is None:
            return
        if call.last_ack is not None and call.last_ack.cseq.seq == resp.cseq.seq:
            self._send(call.flow, call.last_ack)

    # ------------------------------------------------------------------ client results

    def _client_result(
        self, ctx: _ClientTx, resp: Response | None, reason: str, now: float
    ) -> None:
        if ctx.purpose == "register":
            self._register_result(ctx, resp, reason, now)
            return
        call = self._calls.get(ctx.call_id)
        if call is None:
            return
        if ctx.purpose == "invite":
            self._invite_result(call, resp, reason, now)
        elif ctx.purpose == "reinvite":
            self._reinvite_result(call, resp, reason, now)

    def _invite_result(self, call: _Call, resp: Response | None, reason: str, now: float) -> None:
        if resp is None:
            status = 408 if reason == "Request timeout" else 503
            self._end_call(call, status, reason, by_peer=False, now=now)
            return
        if resp.status < 200:
            call.provisional_seen = True  # §9.1: from now on a CANCEL may be sent
            if resp.status > 100 and call.state is CallState.CALLING:
                self._events.append(
                    ev.CallProgress(call.call_id, resp.status, resp.reason, resp.body or None)
                )
            if call.cancel_wanted:
                self._send_cancel(call, now)
            return
        if resp.status < 300:
            dialog = Dialog.as_uac(call.invite, resp)
            call.dialog = dialog
            ack = self._build_in_dialog(call, "ACK", seq=resp.cseq.seq)
            call.last_ack = ack
            self._send(call.flow, ack)
            if call.state is CallState.ENDED:
                self._send_in_dialog(call, "BYE", now)  # the 200 crossed our CANCEL
                return
            call.state = CallState.CONFIRMED
            self._events.append(ev.CallAnswered(call.call_id, resp.body))
            return
        if resp.status in (401, 407) and call.state is not CallState.ENDED:
            refused = self._retry_with_auth(call, resp, now)
            if refused is not None:
                self._end_call(call, resp.status, refused, by_peer=False, now=now)
            return
        if call.state is not CallState.ENDED:
            text = readable_reason(resp.status, reason)
            if 300 <= resp.status < 400 and resp.contacts:
                text += f" to {resp.contacts[0].uri}"  # we do not follow redirects
            self._end_call(call, resp.status, text, by_peer=True, now=now)

    def _retry_with_auth(self, call: _Call, resp: Response, now: float) -> str | None:
        """Send the INVITE again with credentials; or say why not."""
        refused = self._learn_challenge(call.invite, call.flow, resp)
        if refused is not None:
            return refused
        self._auth_everything = True
        call.auth_attempts += 1
        if call.auth_attempts > 2:
            return AUTH_FAILED
        old = call.invite
        self._send_invite(call, old.to, old.uri, old.body, now, seq=old.cseq.seq + 1)
        return None

    def _reinvite_result(self, call: _Call, resp: Response | None, reason: str, now: float) -> None:
        if resp is not None and resp.status < 200:
            return
        call.reinvite_out = None
        if resp is None or resp.status in (408, 481):
            status = resp.status if resp is not None else None
            self._end_call(call, status, readable_reason(status or 408, reason), False, now)
            return
        if resp.status < 300 and call.dialog is not None:
            call.dialog.refresh_target(resp)
            ack = self._build_in_dialog(call, "ACK", seq=resp.cseq.seq)
            call.last_ack = ack
            self._send(call.flow, ack)
            if call.state is CallState.ENDED:
                return
            self._events.append(ev.ReinviteAnswered(call.call_id, resp.body))
            return
        if resp.status == 491 and call.glare_retries < 3 and call.state is CallState.CONFIRMED:
            # §14.1: the owner of the Call-ID waits 2.1-4 s, the other side 0-2 s
            call.glare_retries += 1
            fraction = int.from_bytes(self._random(2), "big") / 65535
            delay = 2.1 + 1.9 * fraction if call.outgoing else 2.0 * fraction
            call.reinvite_retry_at = now + delay
            return
        self._events.append(ev.ReinviteFailed(call.call_id, resp.status, resp.reason))

    # ------------------------------------------------------------------ registration

    def _send_register(self, expires: int, now: float) -> None:
        registrar = self.config.registrar
        if registrar is None:
            raise LocalProtocolError("no registrar configured")
        reg = self._reg
        reg.state = RegState.UNREGISTERING if expires == 0 else RegState.REGISTERING

        def send(when: float) -> None:
            self._send_register_now(registrar, expires, when)

        def fail(reason: str, when: float) -> None:
            self._registration_failed(None, reason, when)

        self._when_connected(registrar, _Deferred(send, fail), now)

    def _send_register_now(self, registrar: Address, expires: int, now: float) -> None:
        reg = self._reg
        aor = self._aor
        request_uri = Uri(scheme=aor.scheme, host=aor.host, port=aor.port)
        contact = self._make.register_contact(self._local(registrar))
        headers: list[Header] = [
            ("Contact", str(contact)),
            ("Expires", str(expires)),
            ("Supported", SUPPORTED),
        ]
        request = self._new_request(
            "REGISTER",
            request_uri,
            registrar,
            from_=NameAddr(uri=aor, display_name=self.config.display_name).with_tag(reg.from_tag),
            to=NameAddr(uri=aor, display_name=self.config.display_name),
            call_id=reg.call_id,
            seq=reg.next_cseq(),
            routes=self._make.preloaded_route(),
            extra=headers,
        )
        self._start_client(request, registrar, "register", "", now)

    def _register_result(
        self, ctx: _ClientTx, resp: Response | None, reason: str, now: float
    ) -> None:
        reg = self._reg
        if resp is not None and resp.status < 200:
            return
        unregistering = ctx.tx.request.header("Expires") == "0"
        if unregistering != (reg.state is RegState.UNREGISTERING):
            return  # the answer to a REGISTER overtaken by unregister() (or the reverse)
        if unregistering and (resp is None or resp.status not in (401, 407)):
            reg.state = RegState.IDLE
            self._events.append(ev.Unregistered())
            return
        expires_asked = 0 if unregistering else reg.expires
        if resp is None:
            self._registration_failed(None, reason, now)
        elif resp.status < 300:
            self._registered(ctx, resp, now)
        elif resp.status in (401, 407):
            reg.auth_attempts += 1
            refused = self._learn_challenge(ctx.tx.request, ctx.tx.flow, resp)
            if reg.auth_attempts > 2:
                refused = AUTH_FAILED
            if refused is None:
                self._send_register(expires_asked, now)
            elif unregistering:
                reg.state = RegState.IDLE
                self._events.append(ev.Unregistered())
            else:
                self._registration_failed(resp.status, refused, now, retry=False)
        elif resp.status == 423:
            min_expires = resp.int_header("Min-Expires")
            if min_expires is None or min_expires <= reg.expires:
                self._registration_failed(423, "Interval Too Brief without Min-Expires", now)
                return
            reg.expires = min_expires
            self._send_register(min_expires, now)
        else:
            self._registration_failed(resp.status, resp.reason, now)

    def _registered(self, ctx: _ClientTx, resp: Response, now: float) -> None:
        reg = self._reg
        sent = ctx.tx.request.contacts[0]
        binding = our_binding(resp, sent, self._make.instance)
        granted: int | None = None
        value = binding.param("expires") if binding is not None else None
        if value is not None:
            try:
                granted = parse_number(value, "Contact expires")
            except SipParseError:
                granted = None  # the Expires header or what we asked for holds instead
        if granted is None:
            granted = resp.int_header("Expires")
        if granted is None:
            granted = reg.expires
        if binding is None and resp.contacts:
            self._registration_failed(resp.status, "our Contact is missing from the 200", now)
            return
        reg.succeeded(granted, now)
        contacts = tuple(str(c.uri) for c in resp.contacts if not c.wildcard)
        self._events.append(ev.Registered(granted, contacts))

    def _registration_failed(
        self, status: int | None, reason: str, now: float, *, retry: bool = True
    ) -> None:
        jitter = int.from_bytes(self._random(2), "big") / 65535
        retry_at = self._reg.failed(now, jitter, retry=retry)
        self._events.append(ev.RegistrationFailed(status, reason, retry_at))

    def _learn_challenge(self, request: Request, flow: Address, resp: Response) -> str | None:
        """Take the best challenge of a 401/407 that came on `flow`; None when the request can
        go again with credentials, else why it cannot (for the screen).

        The password answers only the account's registrar or outbound proxy (the flow whose
        server certificate TLS checked against it), and only in the account's realms: a
        response computed from it lets whoever holds it try passwords offline, and a host
        the user merely dialled, or a server behind the proxy, must get nothing of the sort.
        Among the acceptable challenges the strongest algorithm wins (RFC 8760)."""
        if self._credentials is None:
            return readable_reason(resp.status, resp.reason)
        if flow != self.config.registrar:
            return f"Password not sent to a stranger ({format_host(*flow)} is not your registrar)"
        proxy = resp.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges: list[Challenge] = []
        for value in resp.header_values(name):
            try:
                challenges.append(Challenge.parse(value, proxy=proxy))
            except SipParseError:
                continue
        ours = [c for c in challenges if c.realm.lower() in self._realms]
        if challenges and not ours:
            realm = _printable(challenges[0].realm)
            return f'Password not sent: other realm ("{realm}" is not yours)'
        best = best_challenge(ours)
        if best is None:
            return "Authentication failed: no digest challenge pidphone can answer"
        answered: set[str] = set()
        for value in request.header_values("Proxy-Authorization" if proxy else "Authorization"):
            try:
                params = parse_authorization(value)
            except SipParseError:
                continue
            if params.get("realm") == best.realm and "nonce" in params:
                answered.add(params["nonce"])
        learned = self._credentials.learn(best, flow=flow, answered_nonces=frozenset(answered))
        return None if learned else AUTH_FAILED

    # ------------------------------------------------------------------ building requests

    def _send_invite(
        self,
        call: _Call,
        to: str | NameAddr,
        uri: Uri,
        sdp: bytes,
        now: float,
        *,
        seq: int = 1,
    ) -> None:
        to_na = to if isinstance(to, NameAddr) else NameAddr.parse(to)
        headers: list[Header] = [
            ("Contact", str(self._contact(call))),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
        ]
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        request = self._new_request(
            "INVITE",
            uri,
            call.flow,
            from_=self._make.local_name_addr().with_tag(call.local_tag),
            to=to_na,
            call_id=call.call_id,
            seq=seq,
            routes=[] if call.direct else self._make.preloaded_route(),
            extra=headers,
            body=sdp,
        )
        call.invite = request
        call.invite_tx = self._start_client(request, call.flow, "invite", call.call_id, now)

    def _send_cancel(self, call: _Call, now: float) -> None:
        tx = call.invite_tx
        if tx is None or tx.terminated or call.cancel_sent:
            return
        call.cancel_sent = True
        tx.extend(now)
        self._start_client(self._make.cancel(call.invite), call.flow, "cancel", call.call_id, now)

    def _send_reinvite(self, call: _Call, now: float) -> None:
        request = self._build_in_dialog(
            call,
            "INVITE",
            body=call.reinvite_sdp,
            extra=[
                ("Contact", str(self._contact(call))),
                ("Allow", ALLOW),
                ("Supported", SUPPORTED),
                ("Content-Type", "application/sdp"),
            ],
        )
        call.reinvite_out = self._start_client(request, call.flow, "reinvite", call.call_id, now)

    def _send_in_dialog(self, call: _Call, method: str, now: float) -> None:
        request = self._build_in_dialog(call, method)
        self._start_client(request, call.flow, method.lower(), call.call_id, now)

    def _build_in_dialog(
        self,
        call: _Call,
        method: str,
        *,
        seq: int | None = None,
        body: bytes = b"",
        extra: list[Header] | None = None,
    ) -> Request:
        dialog = call.dialog
        if dialog is None:
            raise LocalProtocolError(f"call {call.call_id} has no dialog for {method}")
        uri, routes = dialog.request_target()
        return self._new_request(
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

    def _new_request(
        self,
        method: str,
        uri: Uri,
        flow: Address,
        *,
        from_: NameAddr,
        to: NameAddr,
        call_id: str,
        seq: int,
        routes: list[NameAddr],
        extra: list[Header],
        body: bytes = b"",
    ) -> Request:
        credentials: list[Header] = []
        if self._credentials is not None and (
            method == "REGISTER" or (self._auth_everything and method not in ("ACK", "CANCEL"))
        ):
            credentials = self._credentials.headers(flow, method, str(uri), self._token(12))
        return self._make.request(
            method,
            uri,
            self._local(flow),
            branch="z9hG4bK" + self._token(10),
            from_=from_,
            to=to,
            call_id=call_id,
            seq=seq,
            routes=routes,
            extra=credentials + extra,
            body=body,
        )

    def _start_client(
        self, request: Request, flow: Address, purpose: str, call_id: str, now: float
    ) -> Transaction:
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not sent in a client transaction")
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        tx = Transaction.start(kind, request, flow, now)
        self._client[tx.key] = _ClientTx(tx, purpose, call_id)
        self._send(flow, request)
        return tx

    # ------------------------------------------------------------------ building responses

    def _response(
        self,
        req: Request,
        status: int,
        peer: Address,
        *,
        to_tag: str | None,
        extra: list[Header] | None = None,
        body: bytes = b"",
        contact: bool = False,
    ) -> Response:
        return self._make.response(
            req,
            status,
            peer,
            to_tag=to_tag,
            extra=extra,
            body=body,
            contact_from=self._local(peer) if contact else None,
        )

    def _respond_invite(self, call: _Call, status: int, now: float, body: bytes = b"") -> None:
        tx = call.invite_tx
        if tx is None:
            raise LocalProtocolError(f"call {call.call_id} has no INVITE to answer")
        event = response_input(status)
        extra: list[Header] = []
        if status < 300:
            extra = [("Allow", ALLOW), ("Supported", SUPPORTED)]
        response = self._response(
            call.invite,
            status,
            call.flow,
            to_tag=call.local_tag,
            extra=extra,
            body=body,
            contact=100 < status < 300,
        )
        tx.apply(event, now)
        if tx.terminated:
            self._forget_server(tx)
        self._send(call.flow, response)
        if 200 <= status < 300:
            self._start_ok_retransmit(call, response, now)

    def _start_ok_retransmit(self, call: _Call, response: Response, now: float) -> None:
        call.ok_response = response
        call.ok_interval = T1
        call.ok_resend_at = now + T1
        call.ok_give_up_at = now + TIMER_H

    # ------------------------------------------------------------------ timers of calls

    def _call_timers(self, call: _Call, now: float) -> None:
        if call.ok_response is not None and call.ok_give_up_at is not None:
            if call.ok_give_up_at <= now:
                # §13.3.1.4: no ACK within 64·T1 — end the dialog with a BYE
                call.ok_response = call.ok_resend_at = call.ok_give_up_at = None
                self._send_in_dialog(call, "BYE", now)
                self._end_call(call, 408, "No ACK from the caller", by_peer=False, now=now)
            elif call.ok_resend_at is not None and call.ok_resend_at <= now:
                self._send(call.flow, call.ok_response)
                call.ok_interval = min(call.ok_interval * 2, T2)
                call.ok_resend_at = now + call.ok_interval
        if call.reinvite_retry_at is not None and call.reinvite_retry_at <= now:
            call.reinvite_retry_at = None
            if call.state is CallState.CONFIRMED:
                if call.reinvite_in is not None or call.ok_response is not None:
                    call.reinvite_retry_at = now + 1.0
                else:
                    self._send_reinvite(call, now)
        if call.purge_at is not None and call.purge_at <= now:
            del self._calls[call.call_id]

    # ------------------------------------------------------------------ helpers

    def _end_call(
        self, call: _Call, status: int | None, reason: str, by_peer: bool, now: float
    ) -> None:
        if call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        call.reinvite_retry_at = None
        call.purge_at = now + LINGER
        self._events.append(ev.CallEnded(call.call_id, status, reason, by_peer))

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise LocalProtocolError(f"no call {call_id!r}")
        return call

    def _incoming(self, call_id: str, action: str) -> _Call:
        call = self._call(call_id)
        if call.outgoing or call.state is not CallState.INCOMING:
            raise LocalProtocolError(f"cannot {action} call {call_id} in state {call.state.value}")
        return call

    def _pending_reinvite(self, call_id: str) -> tuple[_Call, Transaction]:
        call = self._call(call_id)
        tx = call.reinvite_in
        if tx is None:
            raise LocalProtocolError(f"call {call_id} has no re-INVITE to answer")
        return call, tx

    def _forget_server(self, tx: Transaction) -> None:
        self._server.pop(tx.key, None)

    def _when_connected(self, flow: Address, item: _Deferred, now: float) -> None:
        state = self._flows.get(flow)
        if state is not None and state.local is not None:
            item.send(now)
            return
        if state is None:
            state = self._flows[flow] = _Flow()
        if not state.pending:
            self._out.append((b"", flow))
        state.pending.append(item)

    def _send(self, flow: Address, message: Request | Response) -> None:
        self._flows.setdefault(flow, _Flow())  # if it is down, the driver reconnects for us
        self._out.append((bytes(message), flow))

    def _fail_flow(self, peer: Address, reason: str) -> None:
        self._close.append(peer)
        self._events.append(ev.FlowFailed(peer, reason))
        flow = self._flows.get(peer)
        if flow is not None:
            flow.framer = StreamFramer()

    def _local(self, flow: Address) -> Address:
        """The local address of `flow`; if it is down, the one it had (the driver reconnects
        to send, and rport brings answers back over the new connection)."""
        state = self._flows.get(flow)
        local = state.local if state is not None and state.local else self._last_local.get(flow)
        if local is None:
            raise LocalProtocolError(f"flow {flow} was never connected")
        return local

    def _target_uri(self, target: str) -> Uri:
        """A full URI, "user@host", or a bare user name in our own domain."""
        text = target.strip()
        if not text.lower().startswith(("sip:", "sips:", "<", '"')):
            if "@" not in text:
                text += "@" + format_host(self._aor.host, self._aor.port)
            text = f"{self._aor.scheme}:{text}"
        try:
            return NameAddr.parse(text).uri
        except SipParseError as exc:
            raise LocalProtocolError(f"cannot call {target!r}: {exc}") from None

    def _calls_direct(self, uri: Uri) -> bool:
        """Whether a call to `uri` bypasses the registrar (issue 5: "with the configured
        account, or direct, for a sips:user@host:port URI"). Without a registrar, always; with
        one, when the URI names a port at a host that is neither the account's domain nor the
        registrar: another phone's own listener. Everything else is the proxy's to route."""
        registrar = self.config.registrar
        if registrar is None:
            return True
        if uri.port is None:
            return False
        host = uri.host.strip("[]").lower()
        ours = {self._aor.host.strip("[]").lower(), registrar[0].lower()}
        return host not in ours

    def _contact(self, call: _Call) -> NameAddr:
        """The Contact of the call's INVITEs and answers; `;ob` only through the proxy."""
        local = self._local(call.flow)
        if call.direct:
            return NameAddr(uri=self._make.contact_uri(local, ob=False))
        return self._make.dialog_contact(local)

    def _default_port(self, uri: Uri) -> int:
        if uri.port is not None:
            return uri.port
        return 5061 if self.config.transport == "tls" else uri.default_port()

    def _token(self, nbytes: int) -> str:
        return self._random(nbytes).hex()


def _is_plain_sdp(req: Request) -> bool:
    """§8.2.3: the only body we understand is an uncompressed application/sdp."""
    media_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    encodings = [e.lower() for e in req.header_values("Content-Encoding")]
    return media_type == "application/sdp" and all(e == "identity" for e in encodings)
