"""What every part of the user agent shares: its flows, its transactions, the account's
credentials, how its messages are built and sent, and the events it reports.

The registration (§10), the INVITE usage (§13-§15) and the server core (§8.2) each hold the
one `SipStack` of their agent and act through it; none of them holds another's state.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.account_auth import AccountAuth
from pidphone.sip.agent_config import AgentConfig
from pidphone.sip.factory import MessageFactory, uuid_urn
from pidphone.sip.flows import Flows
from pidphone.sip.message import Header, Request, Response
from pidphone.sip.methods import Method
from pidphone.sip.transaction import Transaction
from pidphone.sip.transaction_layer import Purpose, TransactionLayer
from pidphone.sip.uri import NameAddr, Uri

Address = tuple[str, int]


class SipStack:
    """The agent's shared machinery (module docstring)."""

    def __init__(
        self, config: AgentConfig, random_bytes: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self.config = config
        self._random = random_bytes
        self.aor = NameAddr.parse(config.aor).uri
        if self.aor.opaque is not None or not self.aor.user:
            raise LocalProtocolError(
                f"the AOR must be a sip: or sips: URI with a user: {config.aor!r}"
            )
        self.make = MessageFactory(
            aor=self.aor,
            display_name=config.display_name,
            transport=config.transport,
            user_agent=config.user_agent,
            instance=config.instance_id or uuid_urn(self._random(16)),
            outbound_proxy=config.registrar,
        )
        self.events: deque[ev.SipEvent] = deque()
        self.flows = Flows(self.events, config.keepalive_interval)
        self.transactions = TransactionLayer()
        self.auth = AccountAuth(config, self.aor)

    # ------------------------------------------------------------------ randomness

    def token(self, nbytes: int) -> str:
        """Tags, branches, Call-IDs and cnonces: `nbytes` random bytes in hex."""
        return self._random(nbytes).hex()

    def fraction(self) -> float:
        """A random number in [0, 1], for jittered delays."""
        return int.from_bytes(self._random(2), "big") / 65535

    # ------------------------------------------------------------------ output

    def report(self, event: ev.SipEvent) -> None:
        self.events.append(event)

    def send(self, flow: Address, message: Request | Response) -> None:
        self.flows.send(flow, bytes(message))

    # ------------------------------------------------------------------ requests

    def new_request(
        self,
        method: Method,
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
        """A request leaving on `flow` (§8.1.1), with the account's credentials if due."""
        credentials: list[Header] = []
        if self.auth.applies_to(method):
            credentials = self.auth.headers(flow, method, uri, self.token(12))
        return self.make.request(
            method,
            uri,
            self.flows.local(flow),
            branch="z9hG4bK" + self.token(10),
            from_=from_,
            to=to,
            call_id=call_id,
            seq=seq,
            routes=routes,
            extra=credentials + extra,
            body=body,
        )

    def start_client(
        self, request: Request, flow: Address, purpose: Purpose, now: float
    ) -> Transaction:
        """Send `request` in a new client transaction (§17.1)."""
        tx = self.transactions.start_client(request, flow, purpose, now)
        self.send(flow, request)
        return tx

    # ------------------------------------------------------------------ responses

    def response(
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
        """Our response to `req` from `peer` (§8.2.6); with `contact`, the Contact of a
        response that can set up a dialog."""
        return self.make.response(
            req,
            status,
            peer,
            to_tag=to_tag,
            extra=extra,
            body=body,
            contact_from=self.flows.local(peer) if contact else None,
        )

    def reject(
        self,
        peer: Address,
        req: Request,
        status: int,
        extra: list[Header] | None = None,
        *,
        why: str = "",
    ) -> None:
        """Answer `req` with a failure and report it (with `why`, when given)."""
        response = self.response(req, status, peer, to_tag=self.token(8), extra=extra or [])
        self.send(peer, response)
        self.report(ev.RequestRejected(status, f"{req.method}: {why or response.reason}"))
