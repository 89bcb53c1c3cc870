"""How the phone takes what its calls report: the reducer's half for the call layer's events.

The calls' events (pidphone.app.call_events) come here as the calls reported them, and so do
the two answers to the reducer's own `PlaceCall` (`OutgoingCall`, `OutgoingCallFailed`). A
fact names its call by id; it changes whichever of the phone's two calls has that id, and
facts about a call the phone does not show change nothing, with two exceptions: the first
word about an unknown call while an outgoing call still waits for its id is about that call
(the switchboard reports ids in order), and a call the user gave up before its id came is
hung up as soon as it is named.

Transfers: a call the phone is transferred into (`CallReferred`) takes the place of the call
whose peer asked for it, which waits as the second call until it ends (or comes back if the
new call fails); a call that replaces one of ours (`CallReplaced`) takes its place, answered.
Either starts over as far as security goes: negotiating, its own SAS, verified only if the
ZID cache says so.
"""

from __future__ import annotations

from dataclasses import replace

from .call_events import (
    CallConnected,
    CallDtmf,
    CallEvent,
    CallFinished,
    CallForwarded,
    CallHeld,
    CallIncoming,
    CallInsecure,
    CallMedia,
    CallMismatch,
    CallPlaced,
    CallReferred,
    CallReplaced,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallSecurityLost,
    CallTransferEnded,
    CallTransferProgress,
    CallVerified,
)
from .call_state import CallState, Security
from .contacts import lookup
from .phone_events import (
    Forward,
    Hangup,
    OutgoingCall,
    OutgoingCallFailed,
    PhoneSettings,
    Reject,
    ToneKind,
)
from .phone_state import CallView, PhoneState, Result, promote, show_ended

BUSY_STATUSES = frozenset({486, 600})

CallFact = CallEvent | OutgoingCall | OutgoingCallFailed
CallUpdate = (
    CallRinging
    | CallForwarded
    | CallConnected
    | CallMedia
    | CallSecure
    | CallInsecure
    | CallSecurityFailed
    | CallSecurityLost
    | CallMismatch
    | CallHeld
    | CallDtmf
    | CallTransferProgress
    | CallTransferEnded
)
"""The events that change one of the calls on the screen."""


NAME_CHARS = 64
"""The most of a caller's display name the phone keeps to show: it comes from the network,
and a screen line holds about twenty characters."""


def shown_name(name: str) -> str:
    """The caller's display name as the phone keeps it: at most `NAME_CHARS` characters."""
    return name[:NAME_CHARS]


def call_fact(state: PhoneState, fact: CallFact) -> Result:
    """The phone after one of its calls reported `fact`."""
    if isinstance(fact, CallPlaced | CallVerified):
        return state, []  # the reducer asked for both: `OutgoingCall` and its own key press
    if isinstance(fact, CallIncoming):
        return _incoming(state, fact)
    if isinstance(fact, CallReferred):
        return _referred(state, fact), []
    if isinstance(fact, CallReplaced):
        return _replaced(state, fact)
    if isinstance(fact, OutgoingCallFailed):
        return _not_placed(state, fact)
    if state.call is not None and state.call.call_id is None and _unknown(state, fact.call_id):
        # The first word from the switchboard about the call we placed carries its id.
        state = replace(state, call=replace(state.call, call_id=fact.call_id))
    elif state.cancel_outgoing and _unknown(state, fact.call_id):
        state = replace(state, cancel_outgoing=False)
        if not isinstance(fact, CallFinished):
            return state, [Hangup(fact.call_id)]
        return state, []
    if isinstance(fact, OutgoingCall):
        return state, []
    if isinstance(fact, CallFinished):
        return _call_ended(state, fact)
    if isinstance(fact, CallUpdate):
        return _update_call(state, fact), []
    return state, []


def _unknown(state: PhoneState, call_id: str) -> bool:
    return all(c is None or c.call_id != call_id for c in (state.call, state.other))


def _incoming(state: PhoneState, fact: CallIncoming) -> Result:
    if not _unknown(state, fact.call_id):
        return state, []
    settings = state.settings
    if state.forward_to:
        return state, [Forward(fact.call_id, state.forward_to)]
    if state.dnd:
        return state, [Reject(fact.call_id)]
    if state.call is not None and settings.forward_busy:
        return state, [Forward(fact.call_id, settings.forward_busy)]
    if state.call is not None and state.other is not None:
        return state, [Reject(fact.call_id)]
    contact = lookup(state.settings.contacts, fact.remote_uri)
    new = CallView(
        call_id=fact.call_id,
        number=fact.remote_uri,
        name=contact.name if contact is not None else shown_name(fact.remote_name),
        phase=CallState.INCOMING,
        contact=contact,
        forward_at=state.now + settings.forward_after if settings.forward_no_answer else None,
    )
    state = replace(state, last_input=state.now)
    if state.call is None:
        return replace(
            state, call=new, dialing=False, digits="", digit_deadline=None, notice=""
        ), []
    return replace(state, other=new), []


def _referred(state: PhoneState, fact: CallReferred) -> PhoneState:
    """The peer of one of our calls transferred us: the new call takes that call's place."""
    call, other = state.call, state.other
    old = call if call is not None and call.call_id == fact.call_id else None
    if old is None and (other is None or other.call_id != fact.call_id):
        return state
    by = old if old is not None else other
    new = CallView(
        call_id=fact.new_call_id,
        number=fact.target,
        outgoing=True,
        transfer=f"Transferred by {by.peer if by is not None else ''}",
        referred_by=fact.call_id,
    )
    state = replace(state, last_input=state.now)
    if old is None:
        return replace(state, other=new)
    return replace(state, call=new, other=old if other is None else other)


def _replaced(state: PhoneState, fact: CallReplaced) -> Result:
    """A transfer joined someone to us in place of one of our calls."""
    call, other = state.call, state.other
    old = call if call is not None and call.call_id == fact.replaces else other
    if old is None or old.call_id != fact.replaces:
        return state, [Hangup(fact.call_id)]  # not a call the phone shows: nothing to replace
    new = CallView(
        call_id=fact.call_id,
        number=fact.remote_uri,
        name=shown_name(fact.remote_name),
        phase=CallState.CONNECTED,
        connected_at=state.now,
        held=old.held,
        transfer=f"Transferred from {old.peer}",
    )
    state = replace(state, last_input=state.now)
    if old is call:
        return replace(state, call=new), []
    return replace(state, other=new), []


def _not_placed(state: PhoneState, fact: OutgoingCallFailed) -> Result:
    """The call the user dialled never started: say why, unless another call moves up."""
    call = state.call
    if call is not None and call.call_id is None:
        state = replace(state, call=None)
        if state.other is not None:
            return promote(state), []
        return show_ended(state, fact.reason or "Call ended", None), []
    if state.cancel_outgoing:
        return replace(state, cancel_outgoing=False), []
    return state, []


def _call_ended(state: PhoneState, fact: CallFinished) -> Result:
    call, other = state.call, state.other
    if other is not None and other.call_id == fact.call_id:
        return replace(state, other=None), []
    if call is None or call.call_id != fact.call_id:
        return state, []
    state = replace(state, call=None)
    if other is not None and other.call_id == call.referred_by:
        # the call we were transferred into failed: back to the old one, saying why
        why = call.security_note if call.security == Security.FAILED else ""
        failed = replace(other, transfer=f"Transfer failed: {why or _end_notice(call, fact)[0]}")
        return promote(replace(state, other=failed)), []
    if other is not None:
        return promote(state), []
    return show_ended(state, *_end_notice(call, fact)), []


def _end_notice(call: CallView, fact: CallFinished) -> tuple[str, ToneKind | None]:
    """What the user reads and hears when the handset's only call ends."""
    status = fact.status or 0
    if call.phase == CallState.INCOMING:
        return f"Missed: {call.peer}", None
    if call.security == Security.FAILED and call.security_fault != "peer":
        return call.security_note, "congestion"  # the media path failed, not the security
    if call.security == Security.FAILED:
        return f"Security failed: {call.security_note}", "congestion"
    if call.security == Security.LOST:
        return "Security lost: call ended", None
    if status in BUSY_STATUSES:
        return "Busy", "busy"
    if status >= 400:
        return f"Call failed: {fact.reason or status}", "congestion"
    return fact.reason or "Call ended", None


def _update_call(state: PhoneState, fact: CallUpdate) -> PhoneState:
    """Apply a fact about one call to whichever of the two calls it names."""
    call, other = state.call, state.other
    if call is not None and call.call_id == fact.call_id:
        updated, wake = _apply(call, fact, state.now, state.settings)
        state = replace(state, call=updated)
    elif other is not None and other.call_id == fact.call_id:
        updated, wake = _apply(other, fact, state.now, state.settings)
        state = replace(state, other=updated)
    else:
        return state
    return replace(state, last_input=state.now) if wake else state


def _apply(
    call: CallView, fact: CallUpdate, now: float, settings: PhoneSettings
) -> tuple[CallView, bool]:
    """The call after `fact`, and whether the user should look at the display now."""
    if isinstance(fact, CallForwarded):
        target = fact.redirected.target
        contact = lookup(settings.contacts, target)
        shown = contact.name if contact is not None else _plain(target)
        return replace(call, forwarded_to=shown), True
    if isinstance(fact, CallRinging):
        if call.phase == CallState.CALLING:
            return replace(call, phase=CallState.ALERTING), False
        return call, False
    if isinstance(fact, CallConnected):
        if call.phase == CallState.CONNECTED:
            return call, False
        return replace(call, phase=CallState.CONNECTED, connected_at=now), True
    if isinstance(fact, CallMedia):
        return replace(call, media=fact.params), False
    if isinstance(fact, CallSecure):
        secure = replace(
            call,
            security=Security.SECURE,
            secured=fact.secured,
            verified=fact.secured.verified,
            security_note="",
            lost_deadline=None,
        )
        return secure, True
    if isinstance(fact, CallInsecure | CallSecurityFailed):
        failure = fact.failure
        security = Security.FAILED if isinstance(fact, CallSecurityFailed) else Security.INSECURE
        failed = replace(
            call, security=security, security_note=failure.reason, security_fault=failure.fault
        )
        return failed, True
    if isinstance(fact, CallSecurityLost):
        deadline = now + settings.security_lost_timeout
        return replace(
            call, security=Security.LOST, security_note=fact.lost.reason, lost_deadline=deadline
        ), True
    if isinstance(fact, CallMismatch):
        return replace(call, mismatch=True, verified=False), True
    if isinstance(fact, CallHeld):
        return replace(call, held=fact.local_hold, held_by_peer=fact.remote_hold), False
    if isinstance(fact, CallTransferProgress):
        return replace(call, transfer=f"Transfer: {fact.progress.reason}"), False
    if isinstance(fact, CallTransferEnded):
        ended = fact.ended
        text = "Transferred" if ended.succeeded else f"Transfer failed: {ended.reason}"
        return replace(call, transfer=text, transferring=False), True
    return call, False  # CallDtmf: nothing to show


def _plain(uri: str) -> str:
    """A SIP URI as a person reads it: no scheme, no parameters ("carol@example.org")."""
    rest = uri.partition(":")[2] or uri
    return rest.split(";", 1)[0].split("?", 1)[0]
