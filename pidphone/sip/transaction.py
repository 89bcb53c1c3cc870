"""RFC 3261 §17 transactions over a reliable transport (TLS), as a state table.

Everything that changes a transaction's state lives in `TRANSITIONS`: (kind, state, input) →
new state. Over a reliable transport nothing is retransmitted by the transaction layer and
timers D, I, J and K are zero, so the timers left are B and F (the client gives up after
64·T1) and H (an INVITE server waits 64·T1 for the ACK of its non-2xx final response).
Deadlines are absolute times; the agent fires `Input.TIMEOUT` when one passes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError
from pidphone.sip.message import Request

T1 = 0.5
"""RTT estimate (§17.1.1.1), seconds."""
T2 = 4.0
"""Maximum retransmit interval for 2xx to INVITE (§13.3.1.4), seconds."""
TIMER_B = TIMER_F = TIMER_H = 64 * T1


class Kind(enum.Enum):
    INVITE_CLIENT = "invite client"
    NON_INVITE_CLIENT = "non-invite client"
    INVITE_SERVER = "invite server"
    NON_INVITE_SERVER = "non-invite server"


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Input(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    ACK = "ACK"
    TIMEOUT = "timer"
    TRANSPORT_ERROR = "transport error"


K, S, In = Kind, State, Input
TRANSITIONS: dict[tuple[Kind, State, Input], State] = {
    # §17.1.1 INVITE client (Timer D = 0: COMPLETED ends at once, the ACK is sent on the way)
    (K.INVITE_CLIENT, S.CALLING, In.PROVISIONAL): S.PROCEEDING,
    (K.INVITE_CLIENT, S.CALLING, In.SUCCESS): S.TERMINATED,
    (K.INVITE_CLIENT, S.CALLING, In.FAILURE): S.TERMINATED,
    (K.INVITE_CLIENT, S.CALLING, In.TIMEOUT): S.TERMINATED,
    (K.INVITE_CLIENT, S.CALLING, In.TRANSPORT_ERROR): S.TERMINATED,
    (K.INVITE_CLIENT, S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
    (K.INVITE_CLIENT, S.PROCEEDING, In.SUCCESS): S.TERMINATED,
    (K.INVITE_CLIENT, S.PROCEEDING, In.FAILURE): S.TERMINATED,
    (K.INVITE_CLIENT, S.PROCEEDING, In.TIMEOUT): S.TERMINATED,  # 64·T1 after a CANCEL (§9.1)
    (K.INVITE_CLIENT, S.PROCEEDING, In.TRANSPORT_ERROR): S.TERMINATED,
    # §17.1.2 non-INVITE client (Timer K = 0)
    (K.NON_INVITE_CLIENT, S.TRYING, In.PROVISIONAL): S.PROCEEDING,
    (K.NON_INVITE_CLIENT, S.TRYING, In.SUCCESS): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.TRYING, In.FAILURE): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.TRYING, In.TIMEOUT): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.TRYING, In.TRANSPORT_ERROR): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
    (K.NON_INVITE_CLIENT, S.PROCEEDING, In.SUCCESS): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.PROCEEDING, In.FAILURE): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.PROCEEDING, In.TIMEOUT): S.TERMINATED,
    (K.NON_INVITE_CLIENT, S.PROCEEDING, In.TRANSPORT_ERROR): S.TERMINATED,
    # §17.2.1 INVITE server (100 Trying sent on creation; Timer I = 0; the 2xx is the TU's)
    (K.INVITE_SERVER, S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
    (K.INVITE_SERVER, S.PROCEEDING, In.SUCCESS): S.TERMINATED,
    (K.INVITE_SERVER, S.PROCEEDING, In.FAILURE): S.COMPLETED,
    (K.INVITE_SERVER, S.PROCEEDING, In.TRANSPORT_ERROR): S.TERMINATED,
    (K.INVITE_SERVER, S.COMPLETED, In.ACK): S.TERMINATED,
    (K.INVITE_SERVER, S.COMPLETED, In.TIMEOUT): S.TERMINATED,  # Timer H: no ACK came
    (K.INVITE_SERVER, S.COMPLETED, In.TRANSPORT_ERROR): S.TERMINATED,
    # §17.2.2 non-INVITE server (Timer J = 0)
    (K.NON_INVITE_SERVER, S.TRYING, In.PROVISIONAL): S.PROCEEDING,
    (K.NON_INVITE_SERVER, S.TRYING, In.SUCCESS): S.TERMINATED,
    (K.NON_INVITE_SERVER, S.TRYING, In.FAILURE): S.TERMINATED,
    (K.NON_INVITE_SERVER, S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
    (K.NON_INVITE_SERVER, S.PROCEEDING, In.SUCCESS): S.TERMINATED,
    (K.NON_INVITE_SERVER, S.PROCEEDING, In.FAILURE): S.TERMINATED,
}
del K, S, In

INITIAL = {
    Kind.INVITE_CLIENT: State.CALLING,
    Kind.NON_INVITE_CLIENT: State.TRYING,
    Kind.INVITE_SERVER: State.PROCEEDING,
    Kind.NON_INVITE_SERVER: State.TRYING,
}


def response_input(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    return Input.SUCCESS if status < 300 else Input.FAILURE


@dataclass
class Transaction:
    """One transaction: its request, the flow it uses and where it stands."""

    kind: Kind
    request: Request
    flow: tuple[str, int]
    state: State
    deadline: float | None = None

    @classmethod
    def start(cls, kind: Kind, request: Request, flow: tuple[str, int], now: float) -> Transaction:
        client = kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT)
        deadline = now + (TIMER_B if kind is Kind.INVITE_CLIENT else TIMER_F) if client else None
        return cls(kind=kind, request=request, flow=flow, state=INITIAL[kind], deadline=deadline)

    @property
    def key(self) -> tuple[str, str]:
        """(branch, method): how §17.1.3 and §17.2.3 match messages to transactions."""
        return transaction_key(self.request)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def can(self, event: Input) -> bool:
        return (self.kind, self.state, event) in TRANSITIONS

    def apply(self, event: Input, now: float) -> State:
        """Move along the table; an input the state does not allow is our own bug."""
        try:
            new = TRANSITIONS[(self.kind, self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{self.kind.value} transaction in state {self.state.value} "
                f"cannot take {event.value}"
            ) from None
        self.state = new
        if new is State.COMPLETED and self.kind is Kind.INVITE_SERVER:
            self.deadline = now + TIMER_H
        elif new is State.TERMINATED:
            self.deadline = None
        return new

    def extend(self, now: float) -> None:
        """Restart the 64·T1 wait (after a CANCEL, §9.1)."""
        self.deadline = now + TIMER_B


def transaction_key(request: Request) -> tuple[str, str]:
    """The top Via branch and the method (§17.1.3, §17.2.3). Matching an ACK or CANCEL to the
    INVITE it concerns is the caller's business."""
    branch = request.vias[0].branch or ""
    return branch, request.method
