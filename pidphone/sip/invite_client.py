"""The caller's side of a call (RFC 3261 §13.2, §9.1, §22.3 for the registrar's challenge).

`invite` -> `CallProgress`* -> `CallAnswered` (the ACK already queued) or `CallEnded`. A call
goes through the registrar (the outbound proxy), or straight to the called host when the
target names another phone's own listener (`calls_direct`). A hang-up before the answer sends
a CANCEL, at once if a provisional response came, else when the first one does; a 2xx that
crosses it is ACKed and ended with a BYE. A registrar's 401/407 is answered with the
account's credentials (at most twice); anyone else's ends the call with the reason.

Redirects (§8.1.3.4): a 300/301/302 to a call through the registrar is followed, the same call
(Call-ID, From, To) sent on with a new CSeq to the Contacts in q order, then to the next one
left when a redirected INVITE fails. The policy, whoever wrote the 3xx:
- the new INVITE goes through the account's registrar, never straight to the host a Contact
  names, so the password answers the registrar's challenge only (a call we made direct, to
  another phone's listener, is not redirected at all: it ends naming the Contact);
- a sips: call is never redirected to a sip: Contact, nor anywhere but sip/sips;
- a Contact's URI headers (?Replaces=...) are dropped, and no URI is tried twice (no loops);
- at most `MAX_REDIRECTS` INVITEs on redirects per call, of the first `MAX_CONTACTS` Contacts
  of each 3xx. 305 Use Proxy and 380 are never followed.
"""

from __future__ import annotations

from dataclasses import replace

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.account_auth import AUTH_FAILED, MAX_AUTH_ATTEMPTS
from pidphone.sip.dialog import Dialog
from pidphone.sip.errors import SipParseError
from pidphone.sip.events import readable_reason
from pidphone.sip.flows import WaitingSend
from pidphone.sip.in_dialog import dialog_request, send_bye, session_headers
from pidphone.sip.invite_usage import CallInput, InviteState, InviteUsage, InviteUsages, Role
from pidphone.sip.message import Header, Request, Response
from pidphone.sip.methods import Method
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction_layer import Cancelling, Inviting, NoResponse
from pidphone.sip.uri import NameAddr, Uri, format_host

Address = tuple[str, int]

FOLLOWED = frozenset({300, 301, 302})
"""Redirects a call follows (§8.1.3.4); 305 Use Proxy would name our next hop: never."""
MAX_REDIRECTS = 3
"""INVITEs one call sends on redirects: a forward of a forward of a forward, and no more."""
MAX_CONTACTS = 8
"""Contacts of one 3xx looked at."""


class InviteClient:
    """Outgoing calls until they are confirmed (module docstring)."""

    def __init__(self, stack: SipStack, calls: InviteUsages) -> None:
        self._stack = stack
        self._calls = calls

    # ------------------------------------------------------------------ API

    def invite(
        self,
        target: str,
        sdp: bytes,
        now: float,
        *,
        headers: tuple[Header, ...] = (),
        via_registrar: bool = False,
    ) -> str:
        uri = self.target_uri(target)
        registrar = self._stack.config.registrar
        direct = registrar is None or (self.calls_direct(uri) and not via_registrar)
        flow = (uri.host.strip("[]"), self._default_port(uri))
        if registrar is not None and not direct:
            flow = registrar
        stack = self._stack
        call_id = stack.token(16)
        tag = stack.token(8)
        placeholder = Request(method=Method.INVITE, uri=uri)
        call = InviteUsage(
            call_id,
            Role.UAC,
            flow,
            InviteState.CALLING,
            placeholder,
            tag,
            direct=direct,
            invite_headers=headers,
        )
        self._calls.add(call)
        to = NameAddr(uri=uri)

        def send(when: float) -> None:
            if call.state is InviteState.CALLING:
                self._send_invite(call, to, uri, sdp, when)

        def fail(why: NoResponse, when: float) -> None:
            self._calls.end(
                call, CallInput.REFUSED, why.status, why.reason, by_peer=False, now=when
            )

        stack.flows.when_connected(flow, WaitingSend(send, fail), now)
        return call_id

    def next_hop(self, target: str) -> Address:
        """Where an INVITE to `target` goes first: the registrar, or the called host."""
        uri = self.target_uri(target)
        registrar = self._stack.config.registrar
        if registrar is not None and not self.calls_direct(uri):
            return registrar
        return (uri.host.strip("[]"), self._default_port(uri))

    def cancel(self, call: InviteUsage, now: float) -> None:
        """Hung up before the final response: CANCEL now, or at the first provisional."""
        self._calls.end(call, CallInput.HANGUP, None, "Cancelled", by_peer=False, now=now)
        if call.state is InviteState.CANCELLED:
            self._send_cancel(call, now)

    # ------------------------------------------------------------------ our INVITE's outcome

    def on_outcome(self, call: InviteUsage, resp: Response | NoResponse, now: float) -> None:
        if isinstance(resp, NoResponse):
            self._calls.end(
                call, CallInput.REFUSED, resp.status, resp.reason, by_peer=False, now=now
            )
        elif resp.status < 200:
            self._provisional(call, resp, now)
        elif resp.status < 300:
            self._accepted(call, resp, now)
        elif call.over:  # the answer to our CANCEL (487), or a failure that crossed it
            if call.can(CallInput.REFUSED):
                call.apply(CallInput.REFUSED)
        elif resp.status in (401, 407):
            refused = self._retry_with_auth(call, resp, now)
            if refused is not None:
                self._calls.end(
                    call, CallInput.REFUSED, resp.status, refused, by_peer=False, now=now
                )
        elif not self._redirect(call, resp, now):
            text = readable_reason(resp.status, resp.reason)
            contacts = _contacts(resp) if 300 <= resp.status < 400 else []
            if contacts:
                text += f" to {contacts[0].uri}"  # where it pointed, though not followed
            self._calls.end(call, CallInput.REFUSED, resp.status, text, by_peer=True, now=now)

    def stray_response(self, resp: Response) -> None:
        """A 2xx to INVITE retransmitted after its transaction ended: ACK it again
        (§13.2.2.4)."""
        call = self._calls.get(resp.call_id)
        if resp.cseq.method != Method.INVITE or not 200 <= resp.status < 300 or call is None:
            return
        if call.last_ack is not None and call.last_ack.cseq.seq == resp.cseq.seq:
            self._stack.send(call.flow, call.last_ack)

    def _provisional(self, call: InviteUsage, resp: Response, now: float) -> None:
        if not call.can(CallInput.PROVISIONAL):
            return
        before = call.state
        call.apply(CallInput.PROVISIONAL)
        if before is InviteState.CANCEL_DUE:
            self._send_cancel(call, now)  # §9.1: from now on a CANCEL may be sent
        elif resp.status > 100 and not call.over:
            self._stack.report(
                ev.CallProgress(call.call_id, resp.status, resp.reason, resp.body or None)
            )

    def _accepted(self, call: InviteUsage, resp: Response, now: float) -> None:
        call.dialog = Dialog.as_uac(call.invite, resp)
        ack = dialog_request(self._stack, call, Method.ACK, seq=resp.cseq.seq)
        call.last_ack = ack
        self._stack.send(call.flow, ack)
        if call.over:  # the 200 crossed our CANCEL
            if call.can(CallInput.ACCEPTED):
                call.apply(CallInput.ACCEPTED)
            send_bye(self._stack, call, now)
            return
        call.apply(CallInput.ACCEPTED)
        self._stack.report(ev.CallAnswered(call.call_id, resp.body))

    def _retry_with_auth(self, call: InviteUsage, resp: Response, now: float) -> str | None:
        """Send the INVITE again with credentials; or say why not."""
        refused = self._stack.auth.learn(call.invite, call.flow, resp)
        if refused is not None:
            return refused
        self._stack.auth.wanted_on_everything()
        call.auth_attempts += 1
        if call.auth_attempts > MAX_AUTH_ATTEMPTS:
            return AUTH_FAILED
        old = call.invite
        call.apply(CallInput.RESENT)  # a hang-up now waits for the new INVITE's 1xx (§9.1)
        self._send_invite(call, old.to, old.uri, old.body, now, seq=old.cseq.seq + 1)
        return None

    def _redirect(self, call: InviteUsage, resp: Response, now: float) -> bool:
        """Send the call on to its next redirect target (module docstring), if it has one:
        after a 3xx its Contacts come first; after a redirected INVITE failed, the rest."""
        if call.direct:
            return False
        if resp.status in FOLLOWED:
            self._learn_targets(call, resp)
        elif not call.redirects:
            return False  # the call's own target failed: nothing was redirected
        if not call.redirect_targets or call.redirects >= MAX_REDIRECTS:
            return False
        target = call.redirect_targets.pop(0)
        call.apply(CallInput.RESENT)  # a hang-up now waits for the new INVITE's 1xx
        call.redirects += 1
        call.tried_targets.add(_key(target))
        self._stack.report(ev.CallRedirected(call.call_id, resp.status, str(target)))
        old = call.invite
        self._send_invite(call, old.to, target, old.body, now, seq=old.cseq.seq + 1)
        return True

    def _learn_targets(self, call: InviteUsage, resp: Response) -> None:
        """Add the 3xx's Contacts the policy allows, best q first, before those left."""
        original = call.invite.to.uri
        call.tried_targets |= {_key(original), _key(call.invite.uri), _key(self._stack.aor)}
        pending = {_key(uri) for uri in call.redirect_targets}
        ranked = sorted(enumerate(_contacts(resp)[:MAX_CONTACTS]), key=lambda c: (-_q(c[1]), c[0]))
        fresh: list[Uri] = []
        for _, contact in ranked:
            uri = contact.uri
            if contact.wildcard or uri.scheme not in ("sip", "sips") or not uri.host:
                continue
            if original.scheme == "sips" and uri.scheme != "sips":
                continue  # never a downgrade from sips
            uri = replace(uri, headers=(), password=None)
            key = _key(uri)
            if key not in call.tried_targets and key not in pending:
                pending.add(key)
                fresh.append(uri)
        call.redirect_targets[:0] = fresh

    # ------------------------------------------------------------------ requests

    def _send_invite(
        self, call: InviteUsage, to: NameAddr, uri: Uri, sdp: bytes, now: float, *, seq: int = 1
    ) -> None:
        stack = self._stack
        headers: list[Header] = [*session_headers(stack, call), *call.invite_headers]
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        request = stack.new_request(
            Method.INVITE,
            uri,
            call.flow,
            from_=stack.make.local_name_addr().with_tag(call.local_tag),
            to=to,
            call_id=call.call_id,
            seq=seq,
            routes=[] if call.direct else stack.make.preloaded_route(),
            extra=headers,
            body=sdp,
        )
        call.invite = request
        call.invite_tx = stack.start_client(request, call.flow, Inviting(call.call_id), now)

    def _send_cancel(self, call: InviteUsage, now: float) -> None:
        tx = call.invite_tx
        if tx is None or tx.terminated:
            return
        tx.extend(now)
        cancel = self._stack.make.cancel(call.invite)
        self._stack.start_client(cancel, call.flow, Cancelling(call.call_id), now)

    # ------------------------------------------------------------------ where calls go

    def target_uri(self, target: str) -> Uri:
        """A full URI, "user@host", or a bare user name in our own domain."""
        aor = self._stack.aor
        text = target.strip()
        if not text.lower().startswith(("sip:", "sips:", "<", '"')):
            if "@" not in text:
                text += "@" + format_host(aor.host, aor.port)
            text = f"{aor.scheme}:{text}"
        try:
            return NameAddr.parse(text).uri
        except SipParseError as exc:
            raise LocalProtocolError(f"cannot call {target!r}: {exc}") from None

    def calls_direct(self, uri: Uri) -> bool:
        """Whether a call to `uri` bypasses the registrar (issue 5: "with the configured
        account, or direct, for a sips:user@host:port URI"). Without a registrar, always; with
        one, when the URI names a port at a host that is neither the account's domain nor the
        registrar: another phone's own listener. Everything else is the proxy's to route."""
        registrar = self._stack.config.registrar
        if registrar is None:
            return True
        if uri.port is None:
            return False
        host = uri.host.strip("[]").lower()
        ours = {self._stack.aor.host.strip("[]").lower(), registrar[0].lower()}
        return host not in ours

    def _default_port(self, uri: Uri) -> int:
        if uri.port is not None:
            return uri.port
        return self._stack.config.transport.default_port or uri.default_port()


def _contacts(resp: Response) -> list[NameAddr]:
    """A response's Contacts; none when one of them does not parse (the 3xx is not followed)."""
    try:
        return resp.contacts
    except SipParseError:
        return []


def _q(contact: NameAddr) -> int:
    """A Contact's q in thousandths (RFC 3261 §20.10: 0 to 1, three decimals at most); 1000
    without one, 0 for one that does not read."""
    for name, value in contact.params:
        if name.lower() == "q":
            whole, _, decimals = (value or "").partition(".")
            if (
                whole not in ("0", "1")
                or len(decimals) > 3
                or not all(c in "0123456789" for c in decimals)
            ):
                return 0
            q = int(whole) * 1000 + int((decimals + "000")[:3])
            return q if q <= 1000 else 0
    return 1000


def _key(uri: Uri) -> str:
    """What makes two targets the same one, for loop detection (sip: and sips: alike)."""
    return f"{(uri.user or '')}@{uri.host.lower()}:{uri.port or ''}"
