"""The voicemail indicator: a message-summary subscription (RFC 3842 over RFC 6665) to the
account's voicemail box, kept up for as long as the phone watches it.

`watch` subscribes through the registrar (our outbound proxy) to the account's AOR, or to the
voicemail URI given; each NOTIFY's body becomes a `VoicemailStatus`; a subscription that
fails or ends is reported as `VoicemailUnavailable` and started again (after a backoff, after
the registrar's flow comes back, or at once when the notifier says so); `unwatch` ends it. The
moves are pidphone.sip.subscription's table.

A NOTIFY is believed only when it comes over the registrar's flow, in the dialog of the live
subscription (Call-ID, our From tag as its To tag, the notifier's tag once known), for the
message-summary event, with a CSeq above the last; anything else is answered 481 (or 489 for
another event) and changes nothing. A body that is not a well-formed summary is answered 400
and changes nothing either: the count on the screen stays as the last good NOTIFY left it.
"""

from __future__ import annotations

from pidphone.errors import LocalProtocolError, RemoteProtocolError
from pidphone.sip import events as ev
from pidphone.sip.account_auth import AUTH_FAILED, MAX_AUTH_ATTEMPTS
from pidphone.sip.dialog import Dialog
from pidphone.sip.errors import SipParseError
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.flows import WaitingSend
from pidphone.sip.message import Header, Request, Response
from pidphone.sip.message_summary import CONTENT_TYPE, EVENT_PACKAGE, MessageSummary
from pidphone.sip.methods import SERVED, Method
from pidphone.sip.registration import refresh_delay
from pidphone.sip.stack import SipStack
from pidphone.sip.subscription import (
    LIVE,
    MIN_REFRESH,
    RECONNECT_RETRY,
    SubInput,
    Subscription,
    SubscriptionStateHeader,
    SubState,
)
from pidphone.sip.transaction_layer import ClientTransaction, NoResponse, Subscribing
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]

DEFAULT_EXPIRES = 3600
"""Seconds of subscription asked for (RFC 3842 §4 suggests an hour)."""
SUBSCRIPTION_ALLOW = ", ".join(dict.fromkeys((*SERVED, Method.NOTIFY)))
"""The Allow of our SUBSCRIBEs: NOTIFY too, in the subscription's dialog."""
GIVE_UP_STATUSES = frozenset({403, 404, 405, 489, 501, 603})
"""Answers to SUBSCRIBE that will not change by asking again."""


class VoicemailClient:
    """The message-summary subscription of the account (module docstring)."""

    def __init__(self, stack: SipStack, expires: int = DEFAULT_EXPIRES) -> None:
        self._stack = stack
        self._target: Uri = stack.aor
        self._sub = self._new_subscription(expires)
        self._wanted = False

    @property
    def state(self) -> SubState:
        return self._sub.state

    def _new_subscription(self, expires: int) -> Subscription:
        stack = self._stack
        return Subscription(call_id=stack.token(16), from_tag=stack.token(8), expires=expires)

    # ------------------------------------------------------------------ API

    def watch(self, now: float, uri: str | None = None) -> None:
        """Subscribe to the message summary of `uri` (default: the account's AOR)."""
        if self._stack.config.registrar is None:
            raise LocalProtocolError("no registrar to subscribe through")
        if uri:
            self._target = NameAddr.parse(uri).uri
        self._wanted = True
        self._start(now, SubInput.START)

    def unwatch(self, now: float) -> None:
        """End the subscription (SUBSCRIBE with Expires: 0 if it has a dialog)."""
        self._wanted = False
        sub = self._sub
        established = sub.state in (SubState.ACTIVE, SubState.REFRESHING)
        if sub.apply(SubInput.STOP) and established:
            self._send(0, now)

    # ------------------------------------------------------------------ time and transport

    def deadlines(self) -> list[float]:
        return self._sub.deadlines()

    def handle_timer(self, now: float) -> None:
        sub = self._sub
        if sub.retry_at is not None and sub.retry_at <= now:
            self._start(now, SubInput.RETRY_DUE)
        if sub.refresh_at is not None and sub.refresh_at <= now:
            sub.refresh_at = None
            if sub.apply(SubInput.REFRESH_DUE):
                self._send(sub.expires, now)

    def flow_lost(self, peer: Address, now: float) -> None:
        """The registrar's flow went down: the notifier cannot reach us any more."""
        sub = self._sub
        if peer != self._stack.config.registrar or not sub.apply(SubInput.FLOW_LOST):
            return
        if sub.state is SubState.RECONNECTING:
            retry_at = sub.back_off(now, self._stack.fraction(), RECONNECT_RETRY)
            self._stack.report(ev.VoicemailUnavailable(None, "Connection lost", retry_at))

    def registered(self, now: float) -> None:
        """The account registered (again): a subscription waiting for its flow starts."""
        self._start(now, SubInput.REGISTERED)

    # ------------------------------------------------------------------ requests

    def _start(self, now: float, why: SubInput) -> None:
        """A new subscription (new Call-ID and tag, so nothing of the old one is believed),
        if the table lets `why` start one."""
        sub = self._sub
        if not self._wanted or not sub.apply(why):
            return
        sub.renew(self._stack.token(16), self._stack.token(8))
        self._send(sub.expires, now)

    def _send(self, expires: int, now: float) -> None:
        registrar = self._stack.config.registrar
        if registrar is None:
            raise LocalProtocolError("no registrar to subscribe through")
        call_id = self._sub.call_id

        def send(when: float) -> None:
            if self._sub.call_id == call_id:
                self._send_now(registrar, expires, when)

        def fail(why: NoResponse, when: float) -> None:
            if self._sub.call_id == call_id:
                self._failed(None, why.reason, when)

        self._stack.flows.when_connected(registrar, WaitingSend(send, fail), now)

    def _send_now(self, registrar: Address, expires: int, now: float) -> None:
        stack, sub = self._stack, self._sub
        headers: list[Header] = [
            ("Event", EVENT_PACKAGE),
            ("Accept", CONTENT_TYPE),
            ("Expires", str(expires)),
            ("Contact", str(stack.make.dialog_contact(stack.flows.local(registrar)))),
            ("Allow", SUBSCRIPTION_ALLOW),
            ("Supported", SUPPORTED),
        ]
        dialog = sub.dialog
        if dialog is not None:
            uri, routes = dialog.request_target()
            from_, to, seq = dialog.from_header(), dialog.to_header(), dialog.next_seq()
        else:
            local = NameAddr(uri=stack.aor, display_name=stack.config.display_name)
            uri, routes = self._target, stack.make.preloaded_route()
            from_, to = local.with_tag(sub.from_tag), NameAddr(uri=self._target)
            sub.cseq += 1
            seq = sub.cseq
        request = stack.new_request(
            Method.SUBSCRIBE,
            uri,
            registrar,
            from_=from_,
            to=to,
            call_id=sub.call_id,
            seq=seq,
            routes=routes,
            extra=headers,
        )
        sub.request = request
        stack.start_client(request, registrar, Subscribing(sub.call_id, expires), now)

    # ------------------------------------------------------------------ answers to SUBSCRIBE

    def on_outcome(
        self,
        ctx: ClientTransaction,
        purpose: Subscribing,
        resp: Response | NoResponse,
        now: float,
    ) -> None:
        sub = self._sub
        if purpose.call_id != sub.call_id or ctx.tx.request is not sub.request:
            return  # a superseded request's answer
        if isinstance(resp, NoResponse):
            self._failed(None, resp.reason, now)
            return
        status = resp.status
        if status < 200:
            return
        if status < 300:
            self._accepted(ctx.tx.request, resp, now)
        elif status in (401, 407):
            self._challenged(ctx, resp, now)
        elif status == 423:
            min_expires = _int_header(resp, "Min-Expires")
            if min_expires is None or min_expires <= sub.expires:
                self._failed(423, "Interval Too Brief without Min-Expires", now)
                return
            sub.expires = min_expires
            self._send(min_expires, now)
        elif status in GIVE_UP_STATUSES:
            self._failed(status, resp.reason, now, give_up=True)
        else:
            self._failed(status, resp.reason, now, retry_after=_int_header(resp, "Retry-After"))

    def _accepted(self, request: Request, resp: Response, now: float) -> None:
        sub = self._sub
        if sub.dialog is None and sub.state is SubState.SUBSCRIBING:
            try:
                sub.dialog = Dialog.as_uac(request, resp)
            except RemoteProtocolError as exc:
                self._failed(resp.status, str(exc), now)
                return
        granted = _int_header(resp, "Expires")
        asked = int(request.header("Expires") or 0)
        granted = asked if granted is None else min(granted, asked)
        if not sub.apply(SubInput.ACCEPTED):
            return
        sub.failures = sub.auth_attempts = 0
        if sub.state is SubState.ACTIVE:
            sub.refresh_at = now + max(refresh_delay(granted), MIN_REFRESH)

    def _challenged(self, ctx: ClientTransaction, resp: Response, now: float) -> None:
        sub, stack = self._sub, self._stack
        refused = stack.auth.learn(ctx.tx.request, ctx.tx.flow, resp)
        sub.auth_attempts += 1
        if refused is None and sub.auth_attempts > MAX_AUTH_ATTEMPTS:
            refused = AUTH_FAILED
        if refused is not None:
            self._failed(resp.status, refused, now, give_up=True)
            return
        stack.auth.wanted_on_everything()
        expires = 0 if sub.state is SubState.UNSUBSCRIBING else sub.expires
        self._send(expires, now)

    def _failed(
        self,
        status: int | None,
        reason: str,
        now: float,
        *,
        give_up: bool = False,
        retry_after: int | None = None,
    ) -> None:
        sub = self._sub
        if not sub.apply(SubInput.REFUSED if give_up else SubInput.FAILED):
            return
        retry_at: float | None = None
        if sub.state is SubState.BACKING_OFF:
            retry_at = sub.back_off(now, self._stack.fraction(), retry_after)
        elif sub.state is SubState.IDLE:
            self._wanted = self._wanted and not give_up
        else:
            return  # an unsubscription's answer: nothing to tell
        self._stack.report(ev.VoicemailUnavailable(status, reason, retry_at))

    # ------------------------------------------------------------------ NOTIFY

    def owns(self, req: Request) -> bool:
        """Whether `req` names our subscription's Call-ID (then `receive_notify` takes it)."""
        return req.call_id == self._sub.call_id

    def receive_notify(self, peer: Address, req: Request, now: float) -> None:
        """A request in our subscription's Call-ID: a NOTIFY is checked, answered and acted
        on; anything else is refused."""
        stack, sub = self._stack, self._sub
        if (
            Method.of(req.method) is not Method.NOTIFY
            or peer != stack.config.registrar
            or sub.state not in LIVE
            or req.to.tag != sub.from_tag
        ):
            stack.reject(peer, req, 481)
            return
        package = (req.header("Event") or "").split(";")[0].strip().lower()
        if package != EVENT_PACKAGE or _event_id(req) is not None:
            stack.reject(peer, req, 489)
            return
        dialog = sub.dialog
        if dialog is None:
            # §4.1.2.4: the NOTIFY overtook the 2xx and sets up the dialog.
            dialog = Dialog.as_uas(req, sub.from_tag)
            dialog.local_seq = sub.cseq
        elif req.from_.tag != dialog.remote_tag:
            stack.reject(peer, req, 481)  # another fork's notifier: one dialog is enough
            return
        elif not dialog.accept_remote_seq(req.cseq.seq, req.method):
            stack.reject(peer, req, 500)
            return
        header = req.header("Subscription-State")
        if header is None:
            raise SipParseError("NOTIFY without Subscription-State")
        state = SubscriptionStateHeader.parse(header)
        summary: MessageSummary | None = None
        if req.body:
            media_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
            if media_type != CONTENT_TYPE:
                stack.reject(peer, req, 415, [("Accept", CONTENT_TYPE)])
                return
            summary = MessageSummary.parse(req.body)
        sub.dialog = dialog
        stack.send(peer, stack.response(req, 200, peer, to_tag=None, contact=True))
        self._notified(state, now)
        if summary is not None:
            voice = summary.voice
            stack.report(
                ev.VoicemailStatus(
                    waiting=summary.waiting,
                    new=summary.new_voice,
                    old=voice.old if voice else 0,
                    urgent_new=voice.urgent_new if voice else 0,
                    urgent_old=voice.urgent_old if voice else 0,
                )
            )

    def _notified(self, state: SubscriptionStateHeader, now: float) -> None:
        sub = self._sub
        if state.state != "terminated":
            refresh_from = sub.state is SubState.SUBSCRIBING
            sub.apply(SubInput.NOTIFIED)
            if state.expires is not None and sub.state is SubState.ACTIVE:
                due = now + max(refresh_delay(state.expires), MIN_REFRESH)
                if refresh_from or sub.refresh_at is None or due < sub.refresh_at:
                    sub.refresh_at = due
            sub.failures = 0
            return
        if not sub.apply(SubInput.TERMINATED):
            return
        if sub.state is SubState.IDLE:
            return  # the end of our unsubscription
        reason = f"Subscription ended ({state.reason or 'no reason'})"
        if state.final:
            sub.apply(SubInput.STOP)
            self._wanted = False
            self._stack.report(ev.VoicemailUnavailable(None, reason, None))
            return
        if state.resubscribe_now and state.retry_after is None:
            sub.retry_at = now
        else:
            sub.back_off(now, self._stack.fraction(), state.retry_after)
        self._stack.report(ev.VoicemailUnavailable(None, reason, sub.retry_at))


def _int_header(resp: Response, name: str) -> int | None:
    try:
        return resp.int_header(name)
    except SipParseError:
        return None


def _event_id(req: Request) -> str | None:
    """The Event header's `id` parameter (RFC 6665 §8.2.1); we subscribe without one."""
    for part in (req.header("Event") or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "id":
            return value.strip()
    return None
