"""What the phone does when something happens: `reduce(state, event) -> (state, commands)`.

Everything that affects the phone's behaviour lives in this module and is pure: the handset,
the keys, the clock and the switchboard's facts come in as events (pidphone.app.phone_events),
and commands for the calls and the audio come out. Time is only what the last `Tick` said.

Rules worth knowing:
- At most two calls: `call` is the one on the handset; `other` is a second incoming call
  waiting to be answered, or the call put on hold to take it. A third caller gets `Reject`.
- Tones and the ringer are not set by the handlers: `_sound(state)` derives them from the
  state after every event, and only changes are emitted (`PlayTone`, `Ring`).
- The cached-secret mismatch warning stays until the user acknowledges it ("#", "answer" or
  "sas_confirm"); that key press does nothing else.
- A call that loses its security (`SecurityLost`) has no audio either way. The SECURITY LOST
  warning (full screen, congestion tone) counts down `security_lost_timeout` seconds, then the
  call ends; one of the same keys keeps the line (silent, marked NO AUDIO), "hangup" ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pidphone.ports import KEYPAD_KEYS, HookEvent, KeyEvent

from .call_state import CallState, Security
from .phone_events import (
    Answer,
    AudioFault,
    CacheMismatch,
    CallAnswered,
    CallConnected,
    CallEnded,
    CallFact,
    CallHeld,
    CallNotSecure,
    CallResumed,
    CallRinging,
    CallSecure,
    Command,
    ConfirmSas,
    DtmfReceived,
    Hangup,
    Hold,
    IncomingCall,
    OutgoingCall,
    PhoneEvent,
    PhoneSettings,
    PlaceCall,
    PlayTone,
    RegistrationChanged,
    RegistrationState,
    Reject,
    Resume,
    Ring,
    SecurityFailed,
    SecurityLost,
    SendDtmf,
    SetMute,
    SetVolume,
    Tick,
    ToneKind,
)

DIAL_KEYS = frozenset(KEYPAD_KEYS)
"""Keys that are DTMF digits in a call."""
SPEED_DIAL_DIGITS = frozenset("123456789")
"""Digits whose long press (a repeat event from the keypad) dials `speed_dials[digit]`."""
ACK_KEYS = frozenset({"#", "answer", "sas_confirm"})
"""Keys that acknowledge the cached-secret mismatch warning."""
DTMF_SHOWN = 12
"""How many of the last DTMF digits a call remembers for the screen."""
BUSY_STATUSES = frozenset({486, 600})

CallPhase = CallState
"""The states a call has on the screen: CALLING, ALERTING, INCOMING, CONNECTED."""


@dataclass(frozen=True)
class Call:
    """One call as the user sees it."""

    call_id: str | None
    """The call's id; None for an outgoing call until the switchboard reports it."""
    number: str
    name: str = ""
    outgoing: bool = False
    phase: CallState = CallState.CALLING
    connected_at: float | None = None
    held: bool = False
    """We put it on hold."""
    held_by_peer: bool = False
    security: Security = Security.NEGOTIATING
    sas: str = ""
    sas_scheme: str = ""
    verified: bool = False
    security_note: str = ""
    """The cipher when secure, the reason when not."""
    mismatch: bool = False
    """The cached-secret mismatch warning is shown until acknowledged."""
    lost_deadline: float | None = None
    """While the SECURITY LOST warning is up: when the call ends unless the user keeps it."""
    dtmf: str = ""
    """The last DTMF digits sent in this call."""

    @property
    def peer(self) -> str:
        """Who the user is talking to: the display name, else the number."""
        return self.name or self.number


@dataclass(frozen=True)
class PhoneState:
    """Everything the phone remembers; `reduce` makes the next one."""

    settings: PhoneSettings
    now: float = 0.0
    clock: str = ""
    registration: RegistrationState = "registering"
    registration_reason: str = ""
    off_hook: bool = False
    dnd: bool = False
    muted: bool = False
    volume: int = 70
    dialing: bool = False
    """Collecting digits (handset lifted, or a digit typed on hook to dial before lifting)."""
    digits: str = ""
    digit_deadline: float | None = None
    call: Call | None = None
    other: Call | None = None
    last_number: str = ""
    notice: str = ""
    """After a call: why it ended. Stays while the handset is up, for notice_time on hook."""
    notice_until: float | None = None
    end_tone: ToneKind | None = None
    """The tone after a failed call while the handset is still up (busy, congestion)."""
    cancel_outgoing: bool = False
    """The user gave up on an outgoing call before the switchboard told its id."""
    tone: ToneKind | None = None
    ringing: bool = False
    last_input: float = 0.0
    """When the user last did something (or a call needed attention): display power."""


def initial_state(settings: PhoneSettings, now: float = 0.0, off_hook: bool = False) -> PhoneState:
    """The phone at start-up; `off_hook` is the hook switch read from the keypad driver."""
    return PhoneState(
        settings=settings,
        now=now,
        volume=settings.volume,
        last_input=now,
        off_hook=off_hook,
        dialing=off_hook,
        notice=settings.notice,
    )


Result = tuple[PhoneState, list[Command]]


def reduce(state: PhoneState, event: PhoneEvent, now: float | None = None) -> Result:
    """Apply one event. `now`, when given, first advances the clock like a `Tick`."""
    commands: list[Command] = []
    if now is not None and not isinstance(event, Tick):
        state, commands = _tick(state, Tick(now))
    if isinstance(event, Tick):
        state, more = _tick(state, event)
    elif isinstance(event, HookEvent):
        state, more = _hook(replace(state, last_input=state.now), event.off_hook)
    elif isinstance(event, KeyEvent):
        if not event.pressed:
            return _with_sound(state, commands)
        state, more = _key(replace(state, last_input=state.now), event)
    else:
        state, more = _fact(state, event)
    return _with_sound(state, commands + more)


def next_deadline(state: PhoneState) -> float | None:
    """The next time a `Tick` changes something other than the clock and the call timer."""
    candidates = [state.digit_deadline, state.notice_until]
    candidates += [c.lost_deadline for c in (state.call, state.other) if c is not None]
    for after in (state.settings.dim_after, state.settings.blank_after):
        if after > 0:
            candidates.append(state.last_input + after)
    future = [t for t in candidates if t is not None and t > state.now]
    return min(future, default=None)


# --------------------------------------------------------------------------- sound


def _sound(state: PhoneState) -> tuple[ToneKind | None, bool]:
    """The tone in the handset and the ringer, as the state implies."""
    call, other = state.call, state.other
    ring = call is not None and call.phase == CallState.INCOMING and not state.off_hook
    if other is not None and other.phase == CallState.INCOMING:
        return "call_waiting", ring
    if call is not None:
        if call.lost_deadline is not None:
            return "congestion", ring  # SECURITY LOST: heard as well as seen
        if call.phase == CallState.ALERTING:
            return "ringback", ring
        if call.phase == CallState.INCOMING and state.off_hook:
            return "call_waiting", ring
        return None, ring
    if state.off_hook and state.notice:
        return state.end_tone, False
    if state.off_hook and state.dialing and not state.digits:
        return "dial", False
    return None, False


def _with_sound(state: PhoneState, commands: list[Command]) -> Result:
    """Emit the tone, ringer and mute changes the new state implies."""
    if state.muted and state.call is None and state.other is None:
        state = replace(state, muted=False)
        commands.append(SetMute(False))
    tone, ring = _sound(state)
    if tone != state.tone:
        commands.append(PlayTone(tone))
    if ring != state.ringing:
        commands.append(Ring(ring))
    return replace(state, tone=tone, ringing=ring), commands


# --------------------------------------------------------------------------- time


def _tick(state: PhoneState, tick: Tick) -> Result:
    state = replace(state, now=tick.now, clock=tick.clock or state.clock)
    if state.notice_until is not None and tick.now >= state.notice_until:
        state = replace(state, notice="", notice_until=None)
    if state.digit_deadline is not None and tick.now >= state.digit_deadline:
        return _place(state, state.digits)
    other = state.other
    if other is not None and other.lost_deadline is not None and tick.now >= other.lost_deadline:
        state = replace(state, other=None)
        if other.call_id is not None:
            return state, [Hangup(other.call_id)]
    call = state.call
    if call is not None and call.lost_deadline is not None and tick.now >= call.lost_deadline:
        return _hang_up(state, call, notice="Security lost: call ended")
    return state, []


# --------------------------------------------------------------------------- hook


def _hook(state: PhoneState, off_hook: bool) -> Result:
    if off_hook == state.off_hook:
        return state, []
    state = replace(state, off_hook=off_hook)
    call = state.call
    if off_hook:
        if call is not None and call.call_id is not None:
            if call.phase == CallState.INCOMING:
                return _answer(state, call, call.call_id)
            if call.held:  # a call left on hold comes back to the handset
                return replace(state, call=replace(call, held=False)), [Resume(call.call_id)]
            return state, []
        if call is not None:
            return state, []
        if state.dialing and state.digits:
            return _place(state, state.digits)
        return replace(state, dialing=True, digits="", notice="", notice_until=None), []
    # handset put down
    if call is not None and call.phase != CallState.INCOMING:
        return _hang_up(state, call)
    return replace(
        state, dialing=False, digits="", digit_deadline=None, notice="", notice_until=None
    ), []


# --------------------------------------------------------------------------- keys


def _key(state: PhoneState, event: KeyEvent) -> Result:
    key = event.key
    if key in {"volume_up", "volume_down"}:
        step = state.settings.volume_step * (1 if key == "volume_up" else -1)
        volume = max(0, min(100, state.volume + step))
        return replace(state, volume=volume), (
            [SetVolume(volume)] if volume != state.volume else []
        )
    call = state.call
    if key == "dnd" and not event.repeat and (call is None or call.phase != CallState.INCOMING):
        return replace(state, dnd=not state.dnd), []
    if event.repeat:
        # A digit held down dials its speed dial (it was typed as the first digit on press).
        number = state.settings.speed_dials.get(key, "")
        if call is None and key in SPEED_DIAL_DIGITS and state.digits == key and number:
            return _place(state, number)
        return state, []
    if call is None:
        return _idle_key(state, key)
    if call.mismatch and key in ACK_KEYS:
        return replace(state, call=replace(call, mismatch=False)), []
    if call.lost_deadline is not None and key != "hangup":
        if key in ACK_KEYS:  # keep the line, silent: the warning and its countdown go
            return replace(state, call=replace(call, lost_deadline=None)), []
        return state, []
    if call.phase == CallState.INCOMING:
        return _incoming_key(state, call, key)
    return _in_call_key(state, call, key)


def _idle_key(state: PhoneState, key: str) -> Result:
    settings = state.settings
    if key == "redial":
        return _place(state, state.last_number)
    if key.startswith("speed"):
        return _place(state, settings.speed_dials.get(key.removeprefix("speed"), ""))
    if state.off_hook and not state.dialing:
        # After a call the handset must go down (or "hangup" gives a fresh dial tone).
        if key == "hangup":
            return replace(state, dialing=True, notice="", end_tone=None), []
        return state, []
    if key in {"#", "answer"}:
        return _place(state, state.digits)
    if key in DIAL_KEYS:
        if len(state.digits) >= settings.max_digits:
            return state, []
        deadline = state.now + settings.inter_digit_timeout if state.off_hook else None
        return replace(
            state,
            dialing=True,
            digits=state.digits + key,
            digit_deadline=deadline,
            notice="",
            notice_until=None,
        ), []
    if key in {"back", "hangup"}:
        digits = state.digits[:-1] if key == "back" else ""
        deadline = state.digit_deadline if digits else None
        return replace(
            state, digits=digits, digit_deadline=deadline, dialing=state.off_hook or bool(digits)
        ), []
    return state, []


def _incoming_key(state: PhoneState, call: Call, key: str) -> Result:
    if call.call_id is None:
        return state, []
    if key == "answer":
        return _answer(state, call, call.call_id)
    if key in {"hangup", "sas_reject"}:
        return _promote(replace(state, call=None)), [Reject(call.call_id)]
    if key == "dnd" and not state.dnd:
        return _promote(replace(state, call=None, dnd=True)), [Reject(call.call_id)]
    return state, []


def _in_call_key(state: PhoneState, call: Call, key: str) -> Result:
    other = state.other
    call_id = call.call_id
    if other is not None and other.phase == CallState.INCOMING and other.call_id is not None:
        if key == "answer":
            return _take_waiting(state, call, other, other.call_id)
        if key == "hangup":
            return replace(state, other=None), [Reject(other.call_id)]
    if key == "hangup":
        return _hang_up(state, call)
    if call_id is None:
        return state, []
    connected = call.phase == CallState.CONNECTED
    if key == "mute":
        return replace(state, muted=not state.muted), [SetMute(not state.muted)]
    if key in DIAL_KEYS and connected:
        dtmf = (call.dtmf + key)[-DTMF_SHOWN:]
        return replace(state, call=replace(call, dtmf=dtmf)), [SendDtmf(call_id, key)]
    if key == "hold" and connected:
        return _hold_key(state, call, call_id)
    if key == "sas_confirm" and call.security == Security.SECURE and not call.verified:
        return replace(state, call=replace(call, verified=True)), [ConfirmSas(call_id, True)]
    if key == "sas_reject" and call.security == Security.SECURE:
        state, commands = _hang_up(state, call, notice="SAS rejected")
        return state, [ConfirmSas(call_id, False), *commands]
    return state, []


def _hold_key(state: PhoneState, call: Call, call_id: str) -> Result:
    other = state.other
    if other is not None and other.held and other.call_id is not None:
        # Swap: the held call comes back, the current one waits on hold.
        commands: list[Command] = [] if call.held else [Hold(call_id)]
        commands.append(Resume(other.call_id))
        return replace(state, call=replace(other, held=False), other=replace(call, held=True)), (
            commands
        )
    command: Command = Resume(call_id) if call.held else Hold(call_id)
    return replace(state, call=replace(call, held=not call.held)), [command]


def _take_waiting(state: PhoneState, call: Call, waiting: Call, waiting_id: str) -> Result:
    commands: list[Command] = []
    if call.call_id is not None and call.phase == CallState.CONNECTED:
        if not call.held:
            commands.append(Hold(call.call_id))
        parked: Call | None = replace(call, held=True)
    else:
        # A call that never connected cannot be held: give it up.
        if call.call_id is not None:
            commands.append(Hangup(call.call_id))
        parked = None
    answered = replace(waiting, phase=CallState.CONNECTED, connected_at=state.now)
    commands.append(Answer(waiting_id))
    return replace(state, call=answered, other=parked, last_input=state.now), commands


# --------------------------------------------------------------------------- call actions


def _place(state: PhoneState, number: str) -> Result:
    state = replace(state, digit_deadline=None)
    if not number:
        return state, []
    call = Call(call_id=None, number=number, outgoing=True)
    return replace(
        state,
        call=call,
        dialing=False,
        digits="",
        last_number=number,
        notice="",
        notice_until=None,
        end_tone=None,
    ), [PlaceCall(number)]


def _answer(state: PhoneState, call: Call, call_id: str) -> Result:
    answered = replace(call, phase=CallState.CONNECTED, connected_at=state.now)
    return replace(state, call=answered, dialing=False, digits=""), [Answer(call_id)]


def _hang_up(state: PhoneState, call: Call, notice: str = "Call ended") -> Result:
    """The user ends the handset's call; a held or waiting second call moves up."""
    commands: list[Command] = [] if call.call_id is None else [Hangup(call.call_id)]
    state = replace(state, call=None, cancel_outgoing=call.call_id is None)
    if state.other is None:
        state = _ended(state, notice, None)
    return _promote(state), commands


def _promote(state: PhoneState) -> PhoneState:
    """With the handset's call gone, the second call (waiting or held) takes its place."""
    if state.call is not None or state.other is None:
        return state
    return replace(state, call=state.other, other=None, last_input=state.now)


def _ended(state: PhoneState, notice: str, tone: ToneKind | None) -> PhoneState:
    until = None if state.off_hook else state.now + state.settings.notice_time
    return replace(
        state,
        notice=notice,
        notice_until=until,
        end_tone=tone,
        dialing=False,
        digits="",
        digit_deadline=None,
        last_input=state.now,
    )


# --------------------------------------------------------------------------- call facts


def _fact(state: PhoneState, fact: CallFact) -> Result:
    if isinstance(fact, RegistrationChanged):
        return replace(state, registration=fact.state, registration_reason=fact.reason), []
    if isinstance(fact, AudioFault):
        until = None if state.off_hook else state.now + state.settings.notice_time
        notice = f"Audio failed: {fact.reason}"
        return replace(state, notice=notice, notice_until=until, last_input=state.now), []
    if isinstance(fact, IncomingCall):
        return _incoming(state, fact)
    if state.call is not None and state.call.call_id is None and _unknown(state, fact.call_id):
        # The first word from the switchboard about the call we placed carries its id.
        state = replace(state, call=replace(state.call, call_id=fact.call_id))
    elif state.cancel_outgoing and _unknown(state, fact.call_id):
        state = replace(state, cancel_outgoing=False)
        if not isinstance(fact, CallEnded):
            return state, [Hangup(fact.call_id)]
        return state, []
    if isinstance(fact, OutgoingCall):
        return state, []
    if isinstance(fact, CallEnded):
        return _call_ended(state, fact)
    return _update_call(state, fact), []


def _unknown(state: PhoneState, call_id: str) -> bool:
    return all(c is None or c.call_id != call_id for c in (state.call, state.other))


def _incoming(state: PhoneState, fact: IncomingCall) -> Result:
    if not _unknown(state, fact.call_id):
        return state, []
    if state.dnd or (state.call is not None and state.other is not None):
        return state, [Reject(fact.call_id)]
    new = Call(call_id=fact.call_id, number=fact.number, name=fact.name, phase=CallState.INCOMING)
    state = replace(state, last_input=state.now)
    if state.call is None:
        return replace(
            state, call=new, dialing=False, digits="", digit_deadline=None, notice=""
        ), []
    return replace(state, other=new), []


def _call_ended(state: PhoneState, fact: CallEnded) -> Result:
    call, other = state.call, state.other
    if other is not None and other.call_id == fact.call_id:
        return replace(state, other=None), []
    if call is None or call.call_id != fact.call_id:
        return state, []
    state = replace(state, call=None)
    if other is not None:
        return _promote(state), []
    return _ended(state, *_end_notice(call, fact)), []


def _end_notice(call: Call, fact: CallEnded) -> tuple[str, ToneKind | None]:
    """What the user reads and hears when the handset's only call ends."""
    if call.phase == CallState.INCOMING:
        return f"Missed: {call.peer}", None
    if call.security == Security.FAILED:
        return f"Security failed: {call.security_note}", "congestion"
    if call.security == Security.LOST:
        return "Security lost: call ended", None
    if fact.status in BUSY_STATUSES:
        return "Busy", "busy"
    if fact.status >= 400:
        return f"Call failed: {fact.reason or fact.status}", "congestion"
    return fact.reason or "Call ended", None


CallUpdate = (
    CallRinging
    | CallAnswered
    | CallSecure
    | CallNotSecure
    | SecurityFailed
    | SecurityLost
    | CacheMismatch
    | CallHeld
    | CallResumed
    | DtmfReceived
)


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


def _apply(call: Call, fact: CallUpdate, now: float, settings: PhoneSettings) -> tuple[Call, bool]:
    """The call after `fact`, and whether the user should look at the display now."""
    if isinstance(fact, CallRinging):
        return (
            replace(call, phase=CallState.ALERTING) if call.phase == CallState.CALLING else call
        ), False
    if isinstance(fact, CallAnswered):
        if call.phase == CallState.CONNECTED:
            return call, False
        return replace(call, phase=CallState.CONNECTED, connected_at=now), True
    if isinstance(fact, CallSecure):
        secure = replace(
            call,
            security=Security.SECURE,
            sas=fact.sas,
            sas_scheme=fact.sas_scheme,
            verified=fact.verified,
            security_note=fact.cipher,
            lost_deadline=None,
        )
        return secure, True
    if isinstance(fact, CallNotSecure):
        return replace(call, security=Security.INSECURE, security_note=fact.reason), True
    if isinstance(fact, SecurityFailed):
        return replace(call, security=Security.FAILED, security_note=fact.reason), True
    if isinstance(fact, SecurityLost):
        deadline = now + settings.security_lost_timeout
        return replace(
            call, security=Security.LOST, security_note=fact.reason, lost_deadline=deadline
        ), True
    if isinstance(fact, CacheMismatch):
        return replace(call, mismatch=True, verified=False), True
    if isinstance(fact, CallHeld | CallResumed):
        held = isinstance(fact, CallHeld)
        if fact.by_peer:
            return replace(call, held_by_peer=held), False
        return replace(call, held=held), False
    return call, False  # DtmfReceived: nothing to show


__all__ = [
    "Answer",
    "AudioFault",
    "CacheMismatch",
    "Call",
    "CallAnswered",
    "CallConnected",
    "CallEnded",
    "CallFact",
    "CallHeld",
    "CallNotSecure",
    "CallPhase",
    "CallResumed",
    "CallRinging",
    "CallSecure",
    "Command",
    "ConfirmSas",
    "DtmfReceived",
    "Hangup",
    "Hold",
    "IncomingCall",
    "OutgoingCall",
    "PhoneEvent",
    "PhoneSettings",
    "PhoneState",
    "PlaceCall",
    "PlayTone",
    "RegistrationChanged",
    "RegistrationState",
    "Reject",
    "Resume",
    "Ring",
    "Security",
    "SecurityFailed",
    "SecurityLost",
    "SendDtmf",
    "SetMute",
    "SetVolume",
    "Tick",
    "ToneKind",
    "initial_state",
    "next_deadline",
    "reduce",
]
