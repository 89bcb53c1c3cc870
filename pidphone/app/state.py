"""What the phone does when something happens: `reduce(state, event) -> (state, commands)`.

The reducer is pure: the handset, the keys, the clock, the registration and the calls' own
events come in (`phone_events.ReducerInput`), commands for the calls and the audio come out,
and time is only what the last `Tick` said. This module takes what the user and time do;
pidphone.app.call_facts takes what the calls report; the state both change, and the two
transitions they share, are in pidphone.app.phone_state.

Rules worth knowing:
- At most two calls: `call` is the one on the handset; `other` is a second incoming call
  waiting to be answered, or the call put on hold to take it. A third caller gets `Reject`.
- Tones and the ringer are not set by the handlers: `_sound(state)` derives them from the
  state after every event, and only changes are emitted (`PlayTone`, `Ring`). While the
  ringer has failed (`DeviceFailed`), a call rings in the handset too, as a desk phone whose
  bell is broken still rings in its earpiece; the ringer keeps trying.
- The cached-secret mismatch warning stays until the user has read the SAS aloud and settled
  it: "sas_confirm" (SAS matches) closes the warning, marks the SAS verified and keeps the
  secret the mismatched exchange made; "sas_reject" (SAS differs) ends the call. No other key
  closes it (a "#" that only closed it read as if it confirmed the SAS).
- Transfer ("transfer" key, RFC 3515): in a call, it holds the call and takes the target's
  digits; "#" (or "transfer" again) transfers blind, "answer" calls the target first with the
  call on hold, "hangup" goes back to the call. With a consultation call up and the first call
  on hold, "transfer" joins them (attended); while the consultation call still rings, it is
  given up and the held call transferred to its number. What becomes of it shows on screen.
- A call on hold is never dropped by the handset going down (while keying in a transfer
  target, after a consultation call, or after "hold"): it stays on hold and rings back
  ("Call on hold", `recall`) until the handset is lifted (or "answer") to take it back, or
  "hangup" ends it, or `recall_after` seconds pass ("Held call ended"). A call whose blind
  transfer is under way is hung up as before. Once the two calls are being joined, the
  handset going down completes the transfer: the consultation call is kept (the microphone
  muted) until the join ends them both.
- A transfer that fails gives its call back: taken off hold if the handset is up and no
  other call is talking, else left on hold (ringing back while the handset is down, the
  consultation call then ended). A call is never taken off hold by the phone itself while
  the handset is down.
- A call that loses its security (`CallSecurityLost`) has no audio either way. The SECURITY LOST
  warning (full screen, congestion tone) counts down `security_lost_timeout` seconds, then the
  call ends; one of the same keys keeps the line (silent, marked NO AUDIO), "hangup" ends it.
"""

from __future__ import annotations

from dataclasses import replace

from pidphone.ports import KEYPAD_KEYS, HookEvent, KeyEvent

from .call_events import CallIncoming, CallTransferEnded
from .call_facts import call_fact
from .call_state import CallState, Security
from .contacts import lookup, search
from .history import add, missed_record, record_of
from .phone_events import (
    Answer,
    Command,
    ConfirmSas,
    DeviceFailed,
    DeviceRecovered,
    Forward,
    Hangup,
    Hold,
    MediaFault,
    PlaceCall,
    PlayTone,
    ReducerInput,
    RegistrationChanged,
    Reject,
    Resume,
    Ring,
    SendDtmf,
    SetMute,
    SetVolume,
    Tick,
    ToneKind,
    Transfer,
    TransferToCall,
    VoicemailChanged,
)
from .phone_state import CallView, PhoneState, Result, promote, show_ended

DIAL_KEYS = frozenset(KEYPAD_KEYS)
"""Keys that are DTMF digits in a call."""
SPEED_DIAL_DIGITS = frozenset("123456789")
"""Digits whose long press (a repeat event from the keypad) dials `speed_dials[digit]`."""
ACK_KEYS = frozenset({"#", "answer", "sas_confirm"})
"""Keys that keep a call whose security was lost (silent, marked NO AUDIO)."""
DTMF_SHOWN = 12
"""How many of the last DTMF digits a call remembers for the screen."""


def reduce(state: PhoneState, event: ReducerInput, now: float | None = None) -> Result:
    """Apply one event. `now`, when given, first advances the clock like a `Tick`."""
    before = state
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
    elif isinstance(event, RegistrationChanged):
        state = replace(state, registration=event.state, registration_reason=event.reason)
        more = []
    elif isinstance(event, MediaFault):
        state, more = _media_fault(state, event), []
    elif isinstance(event, VoicemailChanged):
        state, more = replace(state, voicemail=event.status), []
    elif isinstance(event, DeviceFailed | DeviceRecovered):
        state, more = _device(state, event), []
    else:
        state, more = call_fact(state, event)
        if isinstance(event, CallTransferEnded) and not event.ended.succeeded:
            state, after = _transfer_failed(state, event.call_id)
            more = [*more, *after]
    commands += more
    state = _record_calls(before, state, event, commands)
    call = state.call
    if state.transfer_from is not None and (call is None or call.call_id != state.transfer_from):
        state = replace(state, transfer_from=None, digits="")  # the call went: so did its transfer
    if state.hushed and (state.off_hook or not _talking(state)):
        state = replace(state, hushed=False, muted=False)  # no call to keep quiet, or picked up
        commands.append(SetMute(False))
    if call is not None and call.recall and (state.off_hook or not call.held):
        state = replace(state, call=replace(call, recall=False, recall_until=None))  # taken back
    return _with_sound(state, commands)


def next_deadline(state: PhoneState) -> float | None:
    """The next time a `Tick` changes something other than the clock and the call timer."""
    candidates = [state.digit_deadline, state.notice_until]
    candidates += [c.lost_deadline for c in (state.call, state.other) if c is not None]
    candidates += [c.forward_at for c in (state.call, state.other) if c is not None]
    candidates += [c.recall_until for c in (state.call, state.other) if c is not None]
    for after in (state.settings.dim_after, state.settings.blank_after):
        if after > 0:
            candidates.append(state.last_input + after)
    future = [t for t in candidates if t is not None and t > state.now]
    return min(future, default=None)


# --------------------------------------------------------------------------- history


def _record_calls(
    before: PhoneState, state: PhoneState, event: ReducerInput, commands: list[Command]
) -> PhoneState:
    """Every call that left the phone's state with this event becomes a record (and so does
    an incoming call refused before it reached the screen). The phone UI keeps the history
    whenever it changes."""
    shown = [c for c in (before.call, before.other) if c is not None and c.call_id is not None]
    left = {c.call_id for c in (state.call, state.other) if c is not None}
    records = [record_of(c, state.now, state.wall) for c in shown if c.call_id not in left]
    if (
        isinstance(event, CallIncoming)
        and event.call_id not in left
        and all(c.call_id != event.call_id for c in shown)
        and any(isinstance(c, Reject | Forward) and c.call_id == event.call_id for c in commands)
    ):
        records.append(missed_record(event.remote_uri, event.remote_name, state.wall))
    if not records:
        return state
    history, missed = state.history, state.missed
    for record in records:
        history = add(history, record, state.settings.history_size)
        missed += record.kind == "missed"
    browsing = state.browsing
    if browsing is not None:
        browsing = min(browsing + len(records), max(0, len(history) - 1))
    return replace(state, history=history, missed=missed, browsing=browsing)


def _without(state: PhoneState, call: CallView) -> PhoneState:
    """`state` with `call` gone from whichever line it was on."""
    if state.call is call:
        return replace(state, call=None)
    return replace(state, other=None)


def _forward_key(state: PhoneState) -> PhoneState:
    """Forwarding off if it was on; else on, to the digits typed (or phone.forward_always)."""
    if state.forward_to:
        return replace(state, forward_to="")
    target = state.digits or state.settings.forward_always
    return replace(state, forward_to=target, digits="", digit_deadline=None, dialing=state.off_hook)


def _browse_key(state: PhoneState, key: str) -> Result:
    """The history is open: 8 older, 2 newer, answer/#/redial call back, back/hangup close."""
    index = state.browsing or 0
    last = len(state.history) - 1
    if key in {"back", "hangup", "history"} or last < 0:
        return replace(state, browsing=None), []
    if key == "8":
        return replace(state, browsing=min(index + 1, last)), []
    if key == "2":
        return replace(state, browsing=max(index - 1, 0)), []
    if key in {"answer", "#", "redial"}:
        return _place(replace(state, browsing=None), state.history[index].number)
    return state, []


def _find_key(state: PhoneState, key: str) -> Result:
    """The phone book is open: 2-9 type letters (T9), * next, 0 previous, back deletes (or
    closes), answer/# dial the contact's first number, hangup closes."""
    typed = state.finding or ""
    found = search(state.settings.contacts, typed)
    if key == "hangup" or (key == "back" and not typed) or key == "contacts":
        return replace(state, finding=None, found=0), []
    if key == "back":
        return replace(state, finding=typed[:-1], found=0), []
    if key in "23456789" and len(key) == 1 and len(typed) < 16:
        return replace(state, finding=typed + key, found=0), []
    if key == "*" and found:
        return replace(state, found=(state.found + 1) % len(found)), []
    if key == "0" and found:
        return replace(state, found=(state.found - 1) % len(found)), []
    if key in {"answer", "#"} and found:
        contact = found[min(state.found, len(found) - 1)]
        return _place(replace(state, finding=None, found=0), contact.numbers[0])
    return state, []


# --------------------------------------------------------------------------- sound


def _sound(state: PhoneState) -> tuple[ToneKind | None, bool]:
    """The tone in the handset and the ringer, as the state implies."""
    call, other = state.call, state.other
    ring = (
        call is not None
        and (call.phase == CallState.INCOMING or call.recall)
        and not state.off_hook
    )
    if other is not None and other.phase == CallState.INCOMING:
        return "call_waiting", ring
    if call is not None:
        if call.lost_deadline is not None:
            return "congestion", ring  # SECURITY LOST: heard as well as seen
        if call.phase == CallState.ALERTING:
            return "ringback", ring
        if call.phase == CallState.INCOMING and state.off_hook:
            return "call_waiting", ring
        if ring and state.ringer_fault:
            return "ring", ring  # the ringer failed: the handset rings (the ringer retries)
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
    if tick.wall:
        state = replace(state, wall=tick.wall, utc_offset=tick.utc_offset)
    if state.notice_until is not None and tick.now >= state.notice_until:
        state = replace(state, notice="", notice_until=None)
    if state.digit_deadline is not None and tick.now >= state.digit_deadline:
        return _place(state, state.digits)
    for unanswered in (state.call, state.other):
        if (
            unanswered is not None
            and unanswered.phase == CallState.INCOMING
            and unanswered.call_id is not None
            and unanswered.forward_at is not None
            and tick.now >= unanswered.forward_at
        ):
            target = state.settings.forward_no_answer
            state = promote(_without(state, unanswered))
            return state, [Forward(unanswered.call_id, target)]
    other = state.other
    if other is not None and other.lost_deadline is not None and tick.now >= other.lost_deadline:
        state = replace(state, other=None)
        if other.call_id is not None:
            return state, [Hangup(other.call_id)]
    call = state.call
    if call is not None and call.lost_deadline is not None and tick.now >= call.lost_deadline:
        return _hang_up(state, call, notice="Security lost: call ended")
    if call is not None and call.recall_until is not None and tick.now >= call.recall_until:
        state, commands = _hang_up(state, call, notice="Held call ended")
        if state.call is None:  # nobody was there: it stays until someone is
            state = replace(state, notice_until=None)
        return state, commands
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
        if state.browsing is not None and state.history:
            return _place(replace(state, browsing=None), state.history[state.browsing].number)
        if state.finding is not None:
            return _find_key(state, "answer")
        if state.dialing and state.digits:
            return _place(state, state.digits)
        return replace(state, dialing=True, digits="", notice="", notice_until=None), []
    # handset put down
    if call is not None and _may_recall(call):  # also while keying in a transfer target
        recall = _recalling(state, call)
        return replace(state, call=recall, transfer_from=None, digits="", digit_deadline=None), []
    if call is not None and _joining(state, call):
        # The held call is being joined to this one: its success ends both (as a desk phone
        # completes an attended transfer on hang-up); hanging up now would make it fail.
        return replace(state, muted=True, hushed=not state.muted), (
            [] if state.muted else [SetMute(True)]
        )
    if call is not None and call.phase != CallState.INCOMING:
        return _hang_up_and_recall(state, call)  # the consultation ended: the held call
    return replace(
        state, dialing=False, digits="", digit_deadline=None, notice="", notice_until=None
    ), []


# --------------------------------------------------------------------------- keys


def _may_recall(call: CallView) -> bool:
    """A call we put on hold, with no transfer of it under way: the handset going down
    leaves it on hold, ringing back, instead of ending it."""
    return (
        call.held
        and call.call_id is not None
        and call.phase == CallState.CONNECTED
        and not call.transferring
    )


def _recalling(state: PhoneState, call: CallView) -> CallView:
    """`call`, left on hold with the handset down: it rings back for `recall_after`."""
    return replace(call, recall=True, recall_until=state.now + state.settings.recall_after)


def _hang_up_and_recall(state: PhoneState, call: CallView) -> Result:
    """End `call` with the handset down: the held call it leaves behind rings back."""
    state, commands = _hang_up(state, call)
    held = state.call
    if held is not None and _may_recall(held):
        state = replace(state, call=_recalling(state, held))
    return state, commands


def _joining(state: PhoneState, call: CallView) -> bool:
    """`call` is a consultation call the held call is being joined to (attended transfer)."""
    other = state.other
    return (
        other is not None
        and other.transferring
        and other.held
        and call.call_id is not None
        and call.phase == CallState.CONNECTED
    )


def _talking(state: PhoneState) -> bool:
    """A call has our microphone: connected, and not on hold."""
    return any(
        c is not None and c.call_id is not None and c.phase == CallState.CONNECTED and not c.held
        for c in (state.call, state.other)
    )


def _transfer_failed(state: PhoneState, call_id: str) -> Result:
    """Our transfer of `call_id` failed: the call is ours again (module docstring)."""
    call, other = state.call, state.other
    if other is not None and other.call_id == call_id and call is not None:
        if state.off_hook:
            return state, []  # the user talks to the consultation call: it stays on hold
        # the handset went down while the two were being joined: end the consultation
        # call and ring back with the held one
        return _hang_up_and_recall(state, call)
    if call is None or call.call_id != call_id or not _may_recall(call):
        return state, []
    if state.off_hook and not _talking(state):
        return replace(state, call=replace(call, held=False)), [Resume(call_id)]
    if not state.off_hook:
        return replace(state, call=_recalling(state, call)), []
    return state, []


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
    if key == "forward" and not event.repeat and call is None:
        return _forward_key(state), []
    if event.repeat:
        # A digit held down dials its speed dial (it was typed as the first digit on press).
        number = state.settings.speed_dials.get(key, "")
        if call is None and key in SPEED_DIAL_DIGITS and state.digits == key and number:
            return _place(state, number)
        return state, []
    if call is None and state.browsing is not None:
        return _browse_key(state, key)
    if call is None and state.finding is not None:
        return _find_key(state, key)
    if call is None:
        return _idle_key(state, key)
    if call.mismatch and key in {"sas_confirm", "sas_reject"}:
        return _settle_mismatch(state, call, key == "sas_confirm")
    if call.lost_deadline is not None and key != "hangup":
        if key in ACK_KEYS:  # keep the line, silent: the warning and its countdown go
            return replace(state, call=replace(call, lost_deadline=None)), []
        return state, []
    if call.phase == CallState.INCOMING:
        return _incoming_key(state, call, key)
    if state.transfer_from is not None and call.call_id == state.transfer_from:
        return _transfer_key(state, call, state.transfer_from, key)
    return _in_call_key(state, call, key)


def _idle_key(state: PhoneState, key: str) -> Result:
    settings = state.settings
    if key == "redial":
        return _place(state, state.last_number)
    if key == "voicemail":
        return _place(state, settings.voicemail_number)
    if key == "history":
        return replace(state, browsing=0, missed=0, digits="", digit_deadline=None), []
    if key == "contacts":
        return replace(state, finding="", found=0, digits="", digit_deadline=None), []
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


def _incoming_key(state: PhoneState, call: CallView, key: str) -> Result:
    if call.call_id is None:
        return state, []
    if key == "answer":
        return _answer(state, call, call.call_id)
    if key in {"hangup", "sas_reject"}:
        return promote(replace(state, call=None)), [Reject(call.call_id)]
    if key == "dnd" and not state.dnd:
        return promote(replace(state, call=None, dnd=True)), [Reject(call.call_id)]
    return state, []


def _in_call_key(state: PhoneState, call: CallView, key: str) -> Result:
    other = state.other
    call_id = call.call_id
    if other is not None and other.phase == CallState.INCOMING and other.call_id is not None:
        if key == "answer":
            return _take_waiting(state, call, other, other.call_id)
        if key == "hangup":
            return replace(state, other=None), [Reject(other.call_id)]
    if key == "hangup":
        return _hang_up(state, call)
    if key == "answer" and call.recall and call_id is not None:  # taken back without lifting
        return replace(state, call=replace(call, held=False)), [Resume(call_id)]
    if key == "transfer" and call.phase in {CallState.CALLING, CallState.ALERTING}:
        return _transfer_unanswered(state, call)
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
    if key == "transfer" and connected:
        return _transfer_start(state, call, call_id)
    if key == "sas_confirm" and call.security == Security.SECURE and not call.verified:
        return replace(state, call=replace(call, verified=True)), [ConfirmSas(call_id, True)]
    if key == "sas_reject" and call.security == Security.SECURE:
        state, commands = _hang_up(state, call, notice="SAS rejected")
        return state, [ConfirmSas(call_id, False), *commands]
    return state, []


def _settle_mismatch(state: PhoneState, call: CallView, same: bool) -> Result:
    """The user read the SAS aloud on the mismatch warning: the same (the warning goes, the
    SAS is verified and the new secret kept) or different (the call ends)."""
    if call.call_id is None or call.secured is None:
        if same:
            return state, []  # nothing to confirm before the SAS is on the screen
        return _hang_up(state, call, notice="SAS rejected")
    if same:
        return replace(state, call=replace(call, mismatch=False, verified=True)), [
            ConfirmSas(call.call_id, True)
        ]
    state, commands = _hang_up(state, call, notice="SAS rejected")
    return state, [ConfirmSas(call.call_id, False), *commands]


def _hold_key(state: PhoneState, call: CallView, call_id: str) -> Result:
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


def _transfer_start(state: PhoneState, call: CallView, call_id: str) -> Result:
    """Join the call on hold to this one (attended), or hold this one and key in a target."""
    other = state.other
    if other is not None and other.held and other.call_id is not None:
        if other.phase != CallState.CONNECTED:
            return state, []
        joining = replace(call, transfer=f"Transferring {other.peer}")
        state = replace(state, other=replace(other, transferring=True))
        return replace(state, call=joining), [TransferToCall(other.call_id, call_id)]
    if other is not None:
        return state, []  # a call waiting: answer or refuse it first
    commands: list[Command] = [] if call.held else [Hold(call_id)]
    held = replace(call, held=True, transfer="")
    return replace(state, call=held, transfer_from=call_id, digits="", digit_deadline=None), (
        commands
    )


def _transfer_unanswered(state: PhoneState, call: CallView) -> Result:
    """The consultation call still rings: give it up and transfer the held call to its
    number instead (RFC 5589 §7, semi-attended)."""
    held = state.other
    if held is None or not held.held or held.call_id is None:
        return state, []
    if held.phase != CallState.CONNECTED:
        return state, []
    commands: list[Command] = [] if call.call_id is None else [Hangup(call.call_id)]
    commands.append(Transfer(held.call_id, call.number))
    going = replace(held, transfer=f"Transferring to {call.number}", transferring=True)
    return replace(state, call=going, other=None, cancel_outgoing=call.call_id is None), commands


def _transfer_key(state: PhoneState, call: CallView, call_id: str, key: str) -> Result:
    """Keying in where the held call goes (module docstring)."""
    digits = state.digits
    if key in DIAL_KEYS - {"#"}:
        if len(digits) >= state.settings.max_digits:
            return state, []
        return replace(state, digits=digits + key), []
    if key == "back":
        return replace(state, digits=digits[:-1]), []
    if key == "hangup":
        back = replace(call, held=False)
        return replace(state, call=back, transfer_from=None, digits=""), [Resume(call_id)]
    if not digits:
        return state, []
    if key in {"#", "transfer"}:
        going = replace(call, transfer=f"Transferring to {digits}", transferring=True)
        return replace(state, call=going, transfer_from=None, digits=""), [
            Transfer(call_id, digits)
        ]
    if key == "answer":  # talk to the target first; "transfer" joins them later
        consultation = CallView(call_id=None, number=digits, outgoing=True)
        return replace(
            state, call=consultation, other=call, transfer_from=None, digits="", last_number=digits
        ), [PlaceCall(digits)]
    return state, []


def _take_waiting(state: PhoneState, call: CallView, waiting: CallView, waiting_id: str) -> Result:
    commands: list[Command] = []
    if call.call_id is not None and call.phase == CallState.CONNECTED:
        if not call.held:
            commands.append(Hold(call.call_id))
        parked: CallView | None = replace(call, held=True)
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
    contact = lookup(state.settings.contacts, number)
    name = contact.name if contact is not None else ""
    call = CallView(call_id=None, number=number, name=name, outgoing=True, contact=contact)
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


def _answer(state: PhoneState, call: CallView, call_id: str) -> Result:
    answered = replace(call, phase=CallState.CONNECTED, connected_at=state.now)
    return replace(state, call=answered, dialing=False, digits=""), [Answer(call_id)]


def _hang_up(state: PhoneState, call: CallView, notice: str = "Call ended") -> Result:
    """The user ends the handset's call; a held or waiting second call moves up."""
    commands: list[Command] = [] if call.call_id is None else [Hangup(call.call_id)]
    state = replace(state, call=None, cancel_outgoing=call.call_id is None)
    if state.other is None:
        state = show_ended(state, notice, None)
    return promote(state), commands


def _device(state: PhoneState, event: DeviceFailed | DeviceRecovered) -> PhoneState:
    """The ringer's health as the screen and `_sound` need it (the display's is for the
    journal and systemd: it cannot show its own fault)."""
    if event.device != "ringer":
        return state
    fault = event.reason if isinstance(event, DeviceFailed) else ""
    return replace(state, ringer_fault=fault)


def _media_fault(state: PhoneState, fault: MediaFault) -> PhoneState:
    """The media thread failed (its calls end by themselves): the idle screen says so."""
    until = None if state.off_hook else state.now + state.settings.notice_time
    notice = f"Audio failed: {fault.reason}"
    return replace(state, notice=notice, notice_until=until, last_input=state.now)
