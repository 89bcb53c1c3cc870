"""The agent's live transactions (RFC 3261 §17): matching, deadlines, and what each client
transaction is for.

Client transactions are matched to responses by (top Via branch, CSeq method) (§17.1.3) and
server transactions to requests by (branch, method) (§17.2.3); each state change is the
§17 table's (`pidphone.sip.transaction`). A client transaction carries its `Purpose`, one
frozen dataclass per kind of request, which tells the agent where its outcome goes; one that
ends without a final response ends with a `NoResponse`, whose status is the one §8.1.3.1 says
to act on (408 after Timer B or F, 503 on a transport error).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError
from pidphone.sip.message import Request, Response
from pidphone.sip.methods import Method
from pidphone.sip.transaction import Input, Kind, Transaction, response_input

Address = tuple[str, int]


# ---- what a client transaction is for ------------------------------------------------------


@dataclass(frozen=True)
class Registering:
    """A REGISTER asking for `expires` seconds (0: removing our binding)."""

    expires: int


@dataclass(frozen=True)
class Inviting:
    """The INVITE that starts call `call_id` (§13.2)."""

    call_id: str


@dataclass(frozen=True)
class Reinviting:
    """A re-INVITE in call `call_id` (§14.1)."""

    call_id: str


@dataclass(frozen=True)
class Cancelling:
    """The CANCEL of call `call_id`'s INVITE (§9.1); its answer changes nothing."""

    call_id: str


@dataclass(frozen=True)
class Ending:
    """The BYE of call `call_id` (§15.1.1); its answer changes nothing."""

    call_id: str


@dataclass(frozen=True)
class Referring:
    """Our REFER in call `call_id` (RFC 3515 §2.4.1): a transfer of its peer."""

    call_id: str


@dataclass(frozen=True)
class Notifying:
    """Our NOTIFY of a transfer's progress in call `call_id` (RFC 3515 §2.4.5); only a 481
    or no answer at all changes something (the subscription is over)."""

    call_id: str


@dataclass(frozen=True)
class Subscribing:
    """A SUBSCRIBE of subscription `call_id` (RFC 6665 §4.1.2) asking for `expires` seconds
    (0: ending it)."""

    call_id: str
    expires: int


Purpose = (
    Registering | Inviting | Reinviting | Cancelling | Ending | Referring | Notifying | Subscribing
)


class NoResponse(enum.Enum):
    """Why a client transaction ended without a final response, and the status it stands
    for (§8.1.3.1)."""

    TIMEOUT = (408, "Request timeout")
    """Timer B or F fired."""
    CONNECTION_LOST = (503, "Connection lost")
    """The flow closed while the request was out."""
    CONNECTION_FAILED = (503, "Connection failed")
    """The flow the request waited for could not be opened."""

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]


@dataclass
class ClientTransaction:
    tx: Transaction
    purpose: Purpose


ClientOutcome = tuple[ClientTransaction, Response | NoResponse]
"""A client transaction and the response it got (a provisional one too), or why none came."""


# ---- the tables ----------------------------------------------------------------------------


class TransactionLayer:
    """The client transactions by key, and the server transactions with the call they
    belong to."""

    def __init__(self) -> None:
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._server: dict[tuple[str, str], tuple[Transaction, str]] = {}

    # ------------------------------------------------------------------ client side

    def start_client(
        self, request: Request, flow: Address, purpose: Purpose, now: float
    ) -> Transaction:
        if request.method == Method.ACK:
            raise LocalProtocolError("ACK is not sent in a client transaction")
        invite = request.method == Method.INVITE
        kind = Kind.INVITE_CLIENT if invite else Kind.NON_INVITE_CLIENT
        tx = Transaction.start(kind, request, flow, now)
        self._client[tx.key] = ClientTransaction(tx, purpose)
        return tx

    def client_for(self, resp: Response) -> ClientTransaction | None:
        """The client transaction `resp` answers, if any (§17.1.3)."""
        return self._client.get((resp.vias[0].branch or "", resp.cseq.method))

    def advance(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        """Move `ctx` along the §17 table on `resp` (a final one ends it); False if its state
        does not take that response."""
        event = response_input(resp.status)
        if not ctx.tx.can(event):
            return False
        ctx.tx.apply(event, now)
        if ctx.tx.terminated:
            del self._client[ctx.tx.key]
        return True

    def client_timeouts(self, now: float) -> Iterator[ClientOutcome]:
        """Client transactions whose Timer B or F fired, ended one by one (each outcome is
        handled before the next deadline is looked at)."""
        for key, ctx in list(self._client.items()):
            if ctx.tx.deadline is not None and ctx.tx.deadline <= now:
                ctx.tx.apply(Input.TIMEOUT, now)
                del self._client[key]
                yield ctx, NoResponse.TIMEOUT

    # ------------------------------------------------------------------ server side

    def start_server(
        self, request: Request, peer: Address, call_id: str, now: float
    ) -> Transaction:
        tx = Transaction.start(Kind.INVITE_SERVER, request, peer, now)
        self._server[tx.key] = (tx, call_id)
        return tx

    def server(self, request: Request, method: str) -> tuple[Transaction, str] | None:
        """The server transaction of `request`'s branch for `method` (an ACK or CANCEL names
        the INVITE's), with its call."""
        return self._server.get((request.vias[0].branch or "", method))

    def forget_server(self, tx: Transaction) -> None:
        self._server.pop(tx.key, None)

    def server_timeouts(self, now: float) -> None:
        """Timer H: an INVITE server transaction gives up waiting for the ACK of its failure."""
        for key, (tx, _) in list(self._server.items()):
            if tx.deadline is not None and tx.deadline <= now:
                tx.apply(Input.TIMEOUT, now)
                del self._server[key]

    # ------------------------------------------------------------------ both

    def client_flow_lost(self, flow: Address, now: float) -> Iterator[ClientOutcome]:
        """The client transactions on `flow` end with a transport error, one by one."""
        for key, ctx in list(self._client.items()):
            if ctx.tx.flow == flow and not ctx.tx.terminated:
                ctx.tx.apply(Input.TRANSPORT_ERROR, now)
                del self._client[key]
                yield ctx, NoResponse.CONNECTION_LOST

    def server_flow_lost(self, flow: Address) -> None:
        """The server transactions on `flow` are dropped: no answer can reach their peer."""
        for key, (tx, _) in list(self._server.items()):
            if tx.flow == flow:
                del self._server[key]

    def deadlines(self) -> Iterator[float]:
        for ctx in self._client.values():
            if ctx.tx.deadline is not None:
                yield ctx.tx.deadline
        for tx, _ in self._server.values():
            if tx.deadline is not None:
                yield tx.deadline
