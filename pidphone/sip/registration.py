"""Registration (RFC 3261 §10, RFC 5626 outbound): the REGISTER requests, when to refresh,
how long to back off after a failure, and which binding in a 200 is ours.

`Registration` is the bookkeeping between requests; `RegistrationClient` sends them through
the agent's `SipStack` and reads their outcomes: `Registered`, `RegistrationFailed` (with when
it tries again by itself) or `Unregistered`. A 401/407 from the registrar is answered with the
account's credentials at most twice; a 423 raises the interval to the Min-Expires asked for.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.account_auth import AUTH_FAILED, MAX_AUTH_ATTEMPTS
from pidphone.sip.errors import SipParseError
from pidphone.sip.factory import SUPPORTED
from pidphone.sip.flows import WaitingSend
from pidphone.sip.grammar import parse_number
from pidphone.sip.message import Header, Response
from pidphone.sip.methods import Method
from pidphone.sip.stack import SipStack
from pidphone.sip.transaction_layer import ClientTransaction, NoResponse, Registering
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]

RETRY_BASE = 5.0
"""First retry delay after a failed REGISTER, seconds; doubled per failure."""
RETRY_MAX = 300.0
"""The longest wait between two attempts, seconds."""


class RegState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"


@dataclass
class Registration:
    call_id: str
    from_tag: str
    expires: int
    """What we ask for; raised by a 423's Min-Expires."""
    cseq: int = 0
    state: RegState = RegState.IDLE
    refresh_at: float | None = None
    retry_at: float | None = None
    failures: int = 0
    auth_attempts: int = 0
    granted: int = 0
    """The expiry the registrar gave our binding in its last 200."""

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq

    def succeeded(self, granted: int, now: float) -> None:
        self.state = RegState.REGISTERED
        self.granted = granted
        self.failures = 0
        self.auth_attempts = 0
        self.retry_at = None
        self.refresh_at = now + refresh_delay(granted)

    def failed(self, now: float, jitter: float, *, retry: bool = True) -> float | None:
        """Record a failure; returns when to try again (None: do not)."""
        self.state = RegState.IDLE
        self.refresh_at = None
        self.auth_attempts = 0
        if not retry:
            self.retry_at = None
            return None
        self.failures += 1
        delay = min(RETRY_BASE * 2 ** (self.failures - 1), RETRY_MAX)
        self.retry_at = now + delay * (0.8 + 0.4 * jitter)
        return self.retry_at


def refresh_delay(expires: int) -> float:
    """Refresh at most halfway through or 30 s before expiry, whichever comes first, but never
    sooner than a quarter of the interval (short grants would otherwise refresh at once)."""
    return max(min(expires / 2, expires - 30), expires / 4)


def our_binding(response: Response, contact: NameAddr, instance: str) -> NameAddr | None:
    """Find our Contact among the bindings a registrar returns (§10.2.4): by `+sip.instance`
    (RFC 5626) or else by the URI's user, host and port."""
    ours_key = contact.uri.address_key()
    for binding in response.contacts:
        if binding.wildcard:
            continue
        inst = binding.param("+sip.instance")
        if inst is not None and inst.strip('"') == f"<{instance}>":
            return binding
        if _same_uri(binding.uri, ours_key):
            return binding
    return None


def _same_uri(uri: Uri, key: tuple[str, str, str, int | None]) -> bool:
    return uri.address_key() == key


class RegistrationClient:
    """Registers the account's Contact with the registrar and keeps it registered."""

    def __init__(self, stack: SipStack) -> None:
        self._stack = stack
        self.state = Registration(
            call_id=stack.token(16), from_tag=stack.token(8), expires=stack.config.register_expires
        )

    # ------------------------------------------------------------------ API

    def register(self, now: float) -> None:
        if self._stack.config.registrar is None:
            raise LocalProtocolError("no registrar configured")
        if self.state.state in (RegState.REGISTERING, RegState.UNREGISTERING):
            return
        self.state.retry_at = None
        self._send(self.state.expires, now)

    def unregister(self, now: float) -> None:
        reg = self.state
        reg.refresh_at = reg.retry_at = None
        registrar = self._stack.config.registrar
        if (
            registrar is None
            or reg.state is RegState.IDLE
            or not self._stack.flows.is_open(registrar)
        ):
            reg.state = RegState.IDLE
            self._stack.report(ev.Unregistered())
            return
        self._send(0, now)

    # ------------------------------------------------------------------ time and transport

    def deadlines(self) -> list[float]:
        return [t for t in (self.state.refresh_at, self.state.retry_at) if t is not None]

    def handle_timer(self, now: float) -> None:
        reg = self.state
        if reg.retry_at is not None and reg.retry_at <= now:
            reg.retry_at = None
            self._send(reg.expires, now)
        if reg.refresh_at is not None and reg.refresh_at <= now:
            reg.refresh_at = None
            self._send(reg.expires, now)

    def flow_lost(self, peer: Address, now: float) -> None:
        """The registrar's flow went down while we were registered: register again soon."""
        if peer == self._stack.config.registrar and self.state.state is RegState.REGISTERED:
            self._failed(None, NoResponse.CONNECTION_LOST.reason, now)

    # ------------------------------------------------------------------ requests

    def _send(self, expires: int, now: float) -> None:
        registrar = self._stack.config.registrar
        if registrar is None:
            raise LocalProtocolError("no registrar configured")
        self.state.state = RegState.UNREGISTERING if expires == 0 else RegState.REGISTERING

        def send(when: float) -> None:
            self._send_now(registrar, expires, when)

        def fail(why: NoResponse, when: float) -> None:
            self._failed(None, why.reason, when)

        self._stack.flows.when_connected(registrar, WaitingSend(send, fail), now)

    def _send_now(self, registrar: Address, expires: int, now: float) -> None:
        stack, reg, aor = self._stack, self.state, self._stack.aor
        request_uri = Uri(scheme=aor.scheme, host=aor.host, port=aor.port)
        contact = stack.make.register_contact(stack.flows.local(registrar))
        headers: list[Header] = [
            ("Contact", str(contact)),
            ("Expires", str(expires)),
            ("Supported", SUPPORTED),
        ]
        name = NameAddr(uri=aor, display_name=stack.config.display_name)
        request = stack.new_request(
            Method.REGISTER,
            request_uri,
            registrar,
            from_=name.with_tag(reg.from_tag),
            to=name,
            call_id=reg.call_id,
            seq=reg.next_cseq(),
            routes=stack.make.preloaded_route(),
            extra=headers,
        )
        stack.start_client(request, registrar, Registering(expires), now)

    # ------------------------------------------------------------------ outcomes

    def on_outcome(
        self, ctx: ClientTransaction, purpose: Registering, resp: Response | NoResponse, now: float
    ) -> None:
        reg = self.state
        if isinstance(resp, Response) and resp.status < 200:
            return
        unregistering = purpose.expires == 0
        if unregistering != (reg.state is RegState.UNREGISTERING):
            return  # the answer to a REGISTER overtaken by unregister() (or the reverse)
        if unregistering and (isinstance(resp, NoResponse) or resp.status not in (401, 407)):
            reg.state = RegState.IDLE
            self._stack.report(ev.Unregistered())
            return
        expires_asked = 0 if unregistering else reg.expires
        if isinstance(resp, NoResponse):
            self._failed(None, resp.reason, now)
        elif resp.status < 300:
            self._registered(ctx, resp, now)
        elif resp.status in (401, 407):
            reg.auth_attempts += 1
            refused = self._stack.auth.learn(ctx.tx.request, ctx.tx.flow, resp)
            if reg.auth_attempts > MAX_AUTH_ATTEMPTS:
                refused = AUTH_FAILED
            if refused is None:
                self._send(expires_asked, now)
            elif unregistering:
                reg.state = RegState.IDLE
                self._stack.report(ev.Unregistered())
            else:
                self._failed(resp.status, refused, now, retry=False)
        elif resp.status == 423:
            min_expires = resp.int_header("Min-Expires")
            if min_expires is None or min_expires <= reg.expires:
                self._failed(423, "Interval Too Brief without Min-Expires", now)
                return
            reg.expires = min_expires
            self._send(min_expires, now)
        else:
            self._failed(resp.status, resp.reason, now)

    def _registered(self, ctx: ClientTransaction, resp: Response, now: float) -> None:
        reg = self.state
        sent = ctx.tx.request.contacts[0]
        binding = our_binding(resp, sent, self._stack.make.instance)
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
            self._failed(resp.status, "our Contact is missing from the 200", now)
            return
        reg.succeeded(granted, now)
        contacts = tuple(str(c.uri) for c in resp.contacts if not c.wildcard)
        self._stack.report(ev.Registered(granted, contacts))

    def _failed(self, status: int | None, reason: str, now: float, *, retry: bool = True) -> None:
        retry_at = self.state.failed(now, self._stack.fraction(), retry=retry)
        self._stack.report(ev.RegistrationFailed(status, reason, retry_at))
