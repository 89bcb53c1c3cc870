"""Where a ZRTP exchange stands and what may move it: every rule that decides state is here.

Two tables, in the manner of `pidphone.sip.transaction`:

- `DISPATCH`: (state, message type) -> `ZrtpStep`, what a received message means in that state.
  A pair that is absent has no place in the exchange now: the message is dropped, counted as
  "after_secure" once SECURE and as "unexpected" otherwise. A step's handler still checks what
  only the message can prove (a=zrtp-hash, hash chain, MAC) and drops it if that fails.
- `TRANSITIONS`: (state, `ZrtpInput`) -> next state, the only way the state changes. An input the
  table does not allow is a bug of ours (`LocalProtocolError`), never the peer's doing.

The path of an exchange (RFC 6189 §4; DH mode §4.4.1, Multistream §4.4.3 skips the DHParts; a
KEM key agreement takes the DH path with other contents in Commit and the DHParts):

    IDLE -START-> DISCOVERY -COMMIT-> COMMIT_SENT -DHPART1-> DHPART2_SENT -CONFIRM1->
        CONFIRM2_SENT -CONF2ACK (or SRTP from the responder)-> SECURE           initiator
    DISCOVERY | COMMIT_SENT -DH_COMMIT-> DHPART1_SENT -DHPART2-> CONFIRM1_SENT -CONFIRM2->
        SECURE                                                                  responder
    Multistream: COMMIT_SENT -CONFIRM1-> CONFIRM2_SENT;
        DISCOVERY | COMMIT_SENT -MULTISTREAM_COMMIT-> CONFIRM1_SENT
    any state but FAILED, CLOSED -FAILURE-> FAILED (§5.9 Error, §6 timeouts); any -CLOSE-> CLOSED

Who may change what: after SECURE only messages keyed by the session count (a copy of the
peer's Confirm2, GoClear, SASrelay), so an Error, forged or not, never ends a secured stream;
a FAILED stream still reads the peer's Error and the ErrorACK to ours.
"""

from __future__ import annotations

import enum
from typing import Literal

from pidphone.errors import LocalProtocolError
from pidphone.zrtp.messages import (
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    SasRelay,
)


class ZrtpState(enum.Enum):
    """Where the exchange stands; the value is what `ZrtpSession.state` shows."""

    # the tables are keyed by members, looked up per packet: hash by identity (C) rather
    # than Enum's own __hash__ (Python, over the name): 2% of an X255 exchange (bench.zrtp)
    __hash__ = object.__hash__

    IDLE = "idle"
    DISCOVERY = "discovery"
    COMMIT_SENT = "initiator sent Commit"
    DHPART1_SENT = "responder sent DHPart1"
    DHPART2_SENT = "initiator sent DHPart2"
    CONFIRM1_SENT = "responder sent Confirm1"
    CONFIRM2_SENT = "initiator sent Confirm2"
    SECURE = "secure"
    FAILED = "failed"
    CLOSED = "closed"


class ZrtpInput(enum.Enum):
    """What happened to the exchange: the inputs of `TRANSITIONS`."""

    __hash__ = object.__hash__  # as ZrtpState's

    START = "start()"
    COMMIT = "our Commit sent"
    DH_COMMIT = "the peer's DH-mode Commit answered with DHPart1"
    MULTISTREAM_COMMIT = "the peer's Multistream Commit answered with Confirm1"
    DHPART1 = "the responder's DHPart1 taken"
    DHPART2 = "the initiator's DHPart2 taken"
    CONFIRM1 = "the responder's Confirm1 taken"
    CONFIRM2 = "the initiator's Confirm2 taken"
    CONF2ACK = "Conf2ACK, or the responder's first SRTP, taken"
    FAILURE = "failure"
    CLOSE = "close()"


class ZrtpStep(enum.Enum):
    """What a received message means in the state it arrives in (a handler each)."""

    __hash__ = object.__hash__  # as ZrtpState's

    HELLO = "the peer's Hello: bind or hold it, acknowledge it, maybe commit (§4.1)"
    HELLO_AFTER_COMMIT = "a Hello after our Commit: bind or hold it, no more (§4.1)"
    HELLO_AGAIN = "a copy of the bound Hello, or a forger's (§4.1)"
    HELLO_ACK = "HelloACK to our Hello: maybe commit (§4.1)"
    IGNORE = "a late copy that changes nothing and is no drop (HelloACK after a Commit)"
    COMMIT = "the peer's Commit: answer it as responder (§4.2)"
    COMMIT_CONTENTION = "the peer's Commit while ours is out: §4.2 picks the initiator"
    COMMIT_AGAIN = "a copy of the Commit we answered: our answer again (§6)"
    DHPART1 = "the responder's DHPart1 (§4.4.1)"
    DHPART1_AGAIN = "a copy of the DHPart1 we took: our DHPart2 is retransmitted anyway"
    DHPART2 = "the initiator's DHPart2 (§4.4.1)"
    DHPART2_AGAIN = "a copy of the DHPart2 we took: our Confirm1 again (§6)"
    CONFIRM1 = "the responder's Confirm1 (§4.6)"
    MULTISTREAM_CONFIRM1 = "the responder's Confirm1 to our Multistream Commit (§4.4.3)"
    CONFIRM1_AGAIN = "a copy of the Confirm1 we took: our Confirm2 is retransmitted anyway"
    CONFIRM2 = "the initiator's Confirm2 (§4.6)"
    CONFIRM2_AGAIN = "a copy of the Confirm2 we took: our Conf2ACK was lost (§6)"
    CONF2ACK = "Conf2ACK (§4.6)"
    ERROR = "Error: the exchange in progress ends (§5.9)"
    ERROR_ACK = "ErrorACK to our Error (§5.9)"
    GOCLEAR = "GoClear: refused (§4.7.2)"
    SASRELAY = "SASrelay: acknowledged, its SAS never shown (§5.13)"
    PING = "Ping: answered (§5.16)"


RUNNING = (
    ZrtpState.DISCOVERY,
    ZrtpState.COMMIT_SENT,
    ZrtpState.DHPART1_SENT,
    ZrtpState.DHPART2_SENT,
    ZrtpState.CONFIRM1_SENT,
    ZrtpState.CONFIRM2_SENT,
)
"""The states of an exchange in progress."""
_ANSWERED = (
    ZrtpState.DHPART1_SENT,
    ZrtpState.DHPART2_SENT,
    ZrtpState.CONFIRM1_SENT,
    ZrtpState.CONFIRM2_SENT,
)
"""Past the Commit: the peer's Hello is bound in all of them."""

S = ZrtpState
DISPATCH: dict[tuple[ZrtpState, type[Message]], ZrtpStep] = {
    (S.DISCOVERY, Hello): ZrtpStep.HELLO,
    (S.COMMIT_SENT, Hello): ZrtpStep.HELLO_AFTER_COMMIT,
    **{(state, Hello): ZrtpStep.HELLO_AGAIN for state in _ANSWERED},
    (S.DISCOVERY, HelloAck): ZrtpStep.HELLO_ACK,
    **{(state, HelloAck): ZrtpStep.IGNORE for state in (S.COMMIT_SENT, *_ANSWERED)},
    (S.DISCOVERY, Commit): ZrtpStep.COMMIT,
    (S.COMMIT_SENT, Commit): ZrtpStep.COMMIT_CONTENTION,
    (S.DHPART1_SENT, Commit): ZrtpStep.COMMIT_AGAIN,
    (S.CONFIRM1_SENT, Commit): ZrtpStep.COMMIT_AGAIN,
    (S.COMMIT_SENT, DHPart1): ZrtpStep.DHPART1,
    (S.DHPART2_SENT, DHPart1): ZrtpStep.DHPART1_AGAIN,
    (S.DHPART1_SENT, DHPart2): ZrtpStep.DHPART2,
    (S.CONFIRM1_SENT, DHPart2): ZrtpStep.DHPART2_AGAIN,
    (S.COMMIT_SENT, Confirm1): ZrtpStep.MULTISTREAM_CONFIRM1,
    (S.DHPART2_SENT, Confirm1): ZrtpStep.CONFIRM1,
    (S.CONFIRM2_SENT, Confirm1): ZrtpStep.CONFIRM1_AGAIN,
    (S.CONFIRM1_SENT, Confirm2): ZrtpStep.CONFIRM2,
    (S.SECURE, Confirm2): ZrtpStep.CONFIRM2_AGAIN,
    (S.CONFIRM2_SENT, Conf2Ack): ZrtpStep.CONF2ACK,
    **{(state, Error): ZrtpStep.ERROR for state in (*RUNNING, S.FAILED)},
    (S.FAILED, ErrorAck): ZrtpStep.ERROR_ACK,
    **{(state, GoClear): ZrtpStep.GOCLEAR for state in (*RUNNING, S.SECURE)},
    **{(state, SasRelay): ZrtpStep.SASRELAY for state in (*RUNNING, S.SECURE)},
    **{(state, Ping): ZrtpStep.PING for state in RUNNING},
}
"""(state, message type) -> step. PingACK, ClearACK and RelayACK answer requests this phone
never sends: they have no step anywhere."""

In = ZrtpInput
TRANSITIONS: dict[tuple[ZrtpState, ZrtpInput], ZrtpState] = {
    (S.IDLE, In.START): S.DISCOVERY,
    (S.DISCOVERY, In.COMMIT): S.COMMIT_SENT,
    (S.DISCOVERY, In.DH_COMMIT): S.DHPART1_SENT,
    (S.COMMIT_SENT, In.DH_COMMIT): S.DHPART1_SENT,  # §4.2: the peer's Commit won
    (S.DISCOVERY, In.MULTISTREAM_COMMIT): S.CONFIRM1_SENT,
    (S.COMMIT_SENT, In.MULTISTREAM_COMMIT): S.CONFIRM1_SENT,
    (S.COMMIT_SENT, In.DHPART1): S.DHPART2_SENT,
    (S.DHPART1_SENT, In.DHPART2): S.CONFIRM1_SENT,
    (S.COMMIT_SENT, In.CONFIRM1): S.CONFIRM2_SENT,  # Multistream
    (S.DHPART2_SENT, In.CONFIRM1): S.CONFIRM2_SENT,
    (S.CONFIRM1_SENT, In.CONFIRM2): S.SECURE,
    (S.CONFIRM2_SENT, In.CONF2ACK): S.SECURE,
    **{(state, In.FAILURE): S.FAILED for state in (S.IDLE, *RUNNING, S.SECURE)},
    **{(state, In.CLOSE): S.CLOSED for state in ZrtpState},
}
del S, In


def next_state(state: ZrtpState, event: ZrtpInput) -> ZrtpState:
    """The state `event` leads to from `state`; an input the table does not allow is ours."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise LocalProtocolError(
            f"ZRTP exchange in state {state.value} cannot take {event.value}"
        ) from None


DropReason = Literal[
    "oversize",
    "closed",
    "crc",
    "malformed",
    "foreign_ssrc",
    "unauthenticated",
    "unexpected",
    "after_secure",
]
"""Why a packet was dropped, the key of `ZrtpSession.drops`:
oversize: longer than MAX_PACKET_LEN (checked before the CRC); closed: session not running;
crc / malformed: fails the CRC or the message format; foreign_ssrc: not the bound peer's SSRC;
unauthenticated: a=zrtp-hash, hash chain or MAC fails; unexpected: no place for it in the
exchange now; after_secure: not keyed by the session, after SECURE."""


def unplaced(state: ZrtpState) -> DropReason:
    """Why a message with no step in `state` is dropped."""
    return "after_secure" if state is ZrtpState.SECURE else "unexpected"


ERROR_REASONS = {
    0x10: "Malformed packet",
    0x20: "Critical software error",
    0x30: "Unsupported ZRTP version",
    0x40: "Hello components mismatch",
    0x51: "Hash type not supported",
    0x52: "Cipher type not supported",
    0x53: "Public key exchange not supported",
    0x54: "SRTP auth tag not supported",
    0x55: "SAS rendering scheme not supported",
    0x56: "No shared secret available, DH mode required",
    0x61: "DH error: bad pvi or pvr",
    0x62: "DH error: hvi != hashed data",
    0x63: "Received relayed SAS from untrusted MiTM",
    0x70: "Auth error: bad Confirm MAC",
    0x80: "Nonce reuse",
    0x90: "Equal ZIDs in Hello",
    0x91: "SSRC collision",
    0xA0: "Service unavailable",
    0xB0: "Protocol timeout error",
    0x100: "GoClear message received, but not allowed",
}
"""§5.9 Table 6: what each Error code means."""


def error_reason(code: int) -> str:
    """The meaning of a §5.9 Error code, or its number if it has none."""
    return ERROR_REASONS.get(code, f"Error 0x{code:x}")


class DropError(Exception):
    """The packet is ignored and counted in `drops` under `reason`."""

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason)
        self.reason: DropReason = reason


class FailError(Exception):
    """The exchange fails with a §5.9 Error code, sent to the peer."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.reason = reason or error_reason(code)
        super().__init__(self.reason)
        self.code = code
