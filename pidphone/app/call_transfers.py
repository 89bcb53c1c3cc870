"""Transfers (RFC 3515, RFC 3891, RFC 5589): what joins two calls, on the switchboard's behalf.

- As transferor, `transfer` (blind) and `transfer_to_call` (attended) send the REFER; once
  the transferee's new call is answered our calls in it are hung up ("Transferred"). A
  transfer that fails leaves its call as it is (on hold): whether it comes back is the
  phone's choice (pidphone.app.state), which knows where the handset is.
- As transferee, a REFER is taken only from the peer of an established call (the SIP layer
  refuses any other), and only when the phone has room for one more call; the new call is
  placed through the registrar, shown on the screen (`CallReferred`), runs its own ZRTP
  exchange, and is reported to the transferor: "200 OK" once its media is secure (or, under
  "prefer", once NOT SECURE was shown), else its failure with the reason (488 "Peer does not
  support ZRTP" when it was answered but not secured under "require"). Nothing the old call
  proved about its peer carries over.
- As target, an INVITE that replaces one of our established calls is answered at once in its
  place (`CallReplaced`) and the replaced call is hung up; its SAS is its own.

Every map here is bounded by the calls it names: an entry goes when its call's transfer ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.sip import events as sip

from .call import Call
from .call_events import (
    CallEvent,
    CallFinished,
    CallInsecure,
    CallReferred,
    CallReplaced,
    CallRinging,
    CallSecure,
    CallTransferEnded,
)
from .call_state import CallState

log = logging.getLogger(__name__)

BUSY_HERE = 486
DECLINE = 603
NOT_NOW = "Cannot transfer this call now"
"""Why a transfer we could not even ask for failed (the call is not established, a transfer
of it is under way, or it was transferred too often)."""


class TransferAgent(Protocol):
    """The part of the SIP user agent transfers use."""

    def invite(
        self, target: str, sdp: bytes, now: float, *, replaces: str | None = None
    ) -> str: ...

    def invite_referred(self, target: str, sdp: bytes, now: float) -> str: ...

    def refer(self, call_id: str, target: str, now: float) -> None: ...

    def refer_replacing(self, call_id: str, other_call_id: str, now: float) -> None: ...

    def accept_refer(self, call_id: str, now: float) -> None: ...

    def reject_refer(self, call_id: str, status: int, now: float) -> None: ...

    def refer_progress(self, call_id: str, status: int, reason: str, now: float) -> None: ...


class TransferBoard(Protocol):
    """What transfers need of the switchboard."""

    def now(self) -> float: ...

    def call(self, call_id: str) -> Call | None: ...

    def calls(self) -> list[Call]: ...

    def has_room(self) -> bool: ...

    async def place_call(
        self, target: str, *, referred: bool = False, replaces: str | None = None
    ) -> Call: ...

    def flush_call(self, call: Call) -> None: ...

    def report(self, call: Call | None, event: CallEvent) -> None: ...

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None: ...


class Transfers:
    """The transfers of one switchboard (module docstring)."""

    def __init__(self, board: TransferBoard, agent: TransferAgent, flush: Callable[[], None]):
        self._board = board
        self._agent = agent
        self._flush_agent = flush
        """Drains the SIP agent after a direct call of its API (`Signalling.flush`)."""
        self._referred: dict[str, str] = {}
        """Our calls a REFER asked for -> the call whose peer sent it (still to be told)."""
        self._referring: set[str] = set()
        """Calls whose peer's REFER we took and whose new call is being set up."""
        self._joining: dict[str, str] = {}
        """Attended transfers of ours: the transferred call -> the consultation call."""

    # ------------------------------------------------------------------ as transferor

    def transfer(self, call_id: str, target: str) -> None:
        """Blind transfer: ask the peer of `call_id` to call `target` (a full target)."""
        self._refer(call_id, lambda now: self._agent.refer(call_id, target, now))

    def transfer_to_call(self, call_id: str, consultation_id: str) -> None:
        """Attended transfer: ask the peer of `call_id` to take our place in call
        `consultation_id` (REFER with Replaces); both our calls end once it is done."""
        self._joining[call_id] = consultation_id
        self._refer(call_id, lambda now: self._agent.refer_replacing(call_id, consultation_id, now))

    def _refer(self, call_id: str, send: Callable[[float], None]) -> None:
        """Send a REFER in an established call; one that cannot go ends the transfer now."""
        call = self._board.call(call_id)
        if call is None:
            self._joining.pop(call_id, None)
            return
        try:
            if call.state != CallState.CONNECTED:
                raise LocalProtocolError(f"cannot transfer a call in state {call.state}")
            send(self._board.now())
        except LocalProtocolError as exc:  # the screen gets our words, the journal the detail
            log.info("transfer of %s not sent: %s", call_id, exc)
            ended = sip.TransferEnded(call_id, False, None, NOT_NOW)
            self._board.report(call, CallTransferEnded(call_id, ended))
        self._board.flush_call(call)

    def _over(self, call: Call, event: CallTransferEnded) -> None:
        """Our transfer of `call` is over: on success our calls in it end. On failure the
        call stays on hold: taking it back with the handset down would open the microphone
        to the caller, so the phone decides (`Resume` when the handset is up)."""
        board = self._board
        consultation = self._joining.pop(call.call_id, None)
        if not event.ended.succeeded:
            return
        for call_id in (call.call_id, consultation):
            other = board.call(call_id or "")
            if other is not None and other.state != CallState.ENDED:
                other.hangup(board.now(), "Transferred")
                if other is not call:
                    board.flush_call(other)

    # ------------------------------------------------------------------ as transferee

    def on_refer(self, event: sip.ReferReceived) -> None:
        """The peer of an established call transfers us (the policy in the module docstring)."""
        board = self._board
        call = board.call(event.call_id)
        now = board.now()
        if call is None or call.state != CallState.CONNECTED or event.call_id in self._referring:
            self._agent.reject_refer(event.call_id, DECLINE, now)
        elif not board.has_room():
            self._agent.reject_refer(event.call_id, BUSY_HERE, now)
        else:
            log.info(
                "transferred to %s by %s",
                event.target,
                event.referred_by or call.remote_uri,
                extra={"CALL_ID": call.call_id, "PEER": call.remote_uri},
            )
            self._agent.accept_refer(event.call_id, now)
            self._referring.add(event.call_id)
            board.spawn(self._place_referred(call, event))
        self._flush_agent()

    def referred_invite(self, replaces: str | None) -> Callable[[str, bytes, float], str]:
        """How a call a REFER asked for is sent: through the registrar, with its Replaces."""
        agent = self._agent
        if replaces is None:
            return agent.invite_referred
        return lambda target, sdp, now: agent.invite(target, sdp, now, replaces=replaces)

    async def _place_referred(self, old: Call, event: sip.ReferReceived) -> None:
        board = self._board
        try:
            new = await board.place_call(event.target, referred=True, replaces=event.replaces)
        except (OSError, ProtocolError) as exc:
            log.warning("the transfer to %s could not be placed: %s", event.target, exc)
            self._referring.discard(old.call_id)
            self._agent.refer_progress(old.call_id, 503, "Service Unavailable", board.now())
            self._flush_agent()
            return
        self._referred[new.call_id] = old.call_id
        board.report(None, CallReferred(old.call_id, event.target, new.call_id))

    def _tell_transferor(self, call: Call, event: CallEvent) -> None:
        """Report the progress of a call a REFER asked for to the transferor (RFC 3515 NOTIFY)."""
        old_id = self._referred.get(call.call_id)
        if old_id is None:
            return
        board = self._board
        final: tuple[int, str] | None = None
        if isinstance(event, CallRinging):
            self._agent.refer_progress(old_id, 180, "Ringing", board.now())
        elif isinstance(event, CallSecure | CallInsecure):
            final = (200, "OK")
        elif isinstance(event, CallFinished):
            # answered, then ended before it was secure: its security failed (RFC 3261 §21)
            status = event.status or (488 if call.answered_at is not None else 480)
            final = (status, event.reason or "Call ended")
        if final is None:
            return
        del self._referred[call.call_id]
        self._referring.discard(old_id)
        self._agent.refer_progress(old_id, *final, board.now())
        old = board.call(old_id)
        if final[0] == 200 and old is not None:
            old.hangup(board.now(), "Transferred")
            board.flush_call(old)

    # ------------------------------------------------------------------ as target

    def replace(self, old: Call, new: Call) -> None:
        """A transfer joins `new`'s caller to us in place of `old` (RFC 3891 §3): answered
        at once, and the replaced call hung up."""
        board = self._board
        log.info(
            "call replaced by one from %s",
            new.remote_uri,
            extra={"CALL_ID": new.call_id, "PEER": new.remote_uri},
        )
        board.report(new, CallReplaced(new.call_id, old.call_id, new.remote_uri, new.remote_name))
        new.answer(board.now())
        board.flush_call(new)
        old.hangup(board.now(), "Replaced by transfer")
        board.flush_call(old)

    # ------------------------------------------------------------------ every call event

    def on_call_event(self, call: Call, event: CallEvent) -> None:
        """A call's event, before the phone hears of it."""
        if call.call_id in self._referred:
            self._tell_transferor(call, event)
        if isinstance(event, CallTransferEnded):
            self._over(call, event)
