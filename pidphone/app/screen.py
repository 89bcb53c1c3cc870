"""What the display shows for a phone state: the pure `render(state, now) -> Screen`.

The layout is fixed by `Screen` (pidphone.ports): a status bar (clock or call timer, icons), a
title, up to three small lines, or one small line under a line in large type (the SAS, NOT
SECURE, the number being dialled). Security comes first: the cached-secret mismatch, a
failed key agreement and a lost security (with its countdown) take the whole screen in inverse
until dealt with.
"""

from __future__ import annotations

import math
import textwrap
from typing import Literal

from pidphone.ports import Screen

from .call_state import CallState, Security
from .contacts import search
from .history import KIND_TITLE, duration_text, security_text, when
from .phone_state import CallView, PhoneState

REGISTRATION_TEXT = {
    "registered": "Registered",
    "registering": "Registering...",
    "failed": "Not registered",
    "tls_error": "TLS error",
    "no_network": "No network",
    "disabled": "No account",
}
REGISTRATION_ICON = {"registered": "registered", "tls_error": "tls_error", "disabled": None}
"""The status bar's registration icon ("unregistered" for states not named). No account
(direct calls only) shows none: nothing is wrong with a phone that need not register."""


def render(state: PhoneState, now: float) -> Screen:
    """The screen for `state` at time `now` (the call timer and display power depend on it)."""
    call = state.call
    if call is None and state.browsing is not None:
        screen = _history(state)
    elif call is None and state.finding is not None:
        screen = _phone_book(state)
    elif call is None:
        screen = _dialing(state) if state.dialing else _idle(state)
    elif call.mismatch:
        screen = _mismatch(call, now)
    elif call.lost_deadline is not None:
        left = max(0, math.ceil(call.lost_deadline - now))
        screen = Screen(
            alert=True,
            title="SECURITY LOST",
            lines=("Audio stopped.", f"Call ends in {left} s", "# = stay on the line"),
        )
    elif call.security == Security.FAILED:
        screen = Screen(alert=True, title="NOT SECURE", lines=_failure_lines(call))
    elif call.phase == CallState.INCOMING:
        screen = _incoming(state, call)
    elif call.recall:  # on hold, the handset down: it rings back
        lines = (*_peer_lines(call), "Lift handset to resume")
        screen = Screen(title="Call on hold", lines=lines)
    elif state.transfer_from is not None and call.call_id == state.transfer_from:
        screen = _transfer_target(state, call)
    elif call.phase in {CallState.CALLING, CallState.ALERTING}:
        title = "Ringing" if call.phase == CallState.ALERTING else "Calling"
        lines = _peer_lines(call) + ((call.transfer,) if call.transfer else ())
        if call.forwarded_to:  # the caller followed a redirect: where the call went now
            lines += ("Forwarded to:", call.forwarded_to)
        screen = Screen(title=title, lines=lines[-3:])
    else:
        screen = _in_call(state, call, now)
    return Screen(
        status=screen.status or state.clock,
        icons=frozenset() if screen.alert and screen.big else _icons(state),
        title=screen.title,
        lines=screen.lines,
        big=screen.big,
        big_inverse=screen.big_inverse,
        verified=screen.verified,
        alert=screen.alert,
        brightness=_brightness(state, now),
    )


CONFIG_ERROR_WIDTH = 20
"""Characters of small type that surely fit across the 128-pixel display."""
NOTICE_WIDTH = 22
"""Characters per line of a notice on the idle screen: most lines of 22 fit; a rare wide one
ends in an ellipsis."""
CONFIG_ERROR_LINES = 4
"""Small lines under the status bar when there is no title."""
PAGE_SECONDS = 3.0
"""How long each page of a text too long for the screen stays."""


def config_error_pages(message: str) -> tuple[Screen, ...]:
    """A configuration the phone cannot start with ("keypad.rows[0]: GPIO 40 does not ..."),
    whole, in as many pages as it needs; the key comes first, so the first page names it."""
    lines = textwrap.wrap(message, CONFIG_ERROR_WIDTH, break_long_words=True) or ["(no reason)"]
    chunks = [lines[i : i + CONFIG_ERROR_LINES] for i in range(0, len(lines), CONFIG_ERROR_LINES)]
    count = len(chunks)
    return tuple(
        Screen(
            status="Config error" + (f" {n}/{count}" if count > 1 else ""),
            lines=tuple(chunk),
            alert=True,
        )
        for n, chunk in enumerate(chunks, 1)
    )


def config_error_screen(message: str, now: float = 0.0) -> Screen:
    """The page of `config_error_pages` to show at time `now`."""
    pages = config_error_pages(message)
    return pages[int(now // PAGE_SECONDS) % len(pages)]


SECURITY_NOTICES = ("Security failed", "Security lost", "SAS rejected")
"""How the notices begin that say a call ended for its security: shown inverse, as the
warnings in the call were."""


def _idle(state: PhoneState) -> Screen:
    alert = state.notice.startswith(SECURITY_NOTICES)
    if state.off_hook and state.notice:  # the whole reason, wrapped; the hint stays last
        wrapped = textwrap.wrap(state.notice, NOTICE_WIDTH, break_long_words=True)
        hint = (*wrapped[1:3], "Hang up to dial again")
        return Screen(title=wrapped[0], lines=hint, alert=alert)
    account = state.settings.account or "pidphone"
    reason = state.registration_reason
    lines: list[str] = []
    if state.notice:  # two lines at a time: a long one (a refused boot file) pages through,
        # from its start whenever it is set or the user does something
        wrapped = textwrap.wrap(state.notice, NOTICE_WIDTH, break_long_words=True)
        pages = max(1, math.ceil(len(wrapped) / 2))
        page = int(max(0.0, state.now - state.last_input) // PAGE_SECONDS) % pages
        lines += wrapped[2 * page : 2 * page + 2]
    if state.registration in {"failed", "tls_error"}:
        title = REGISTRATION_TEXT[state.registration]
        lines += [reason or "no reason given", account]
    else:
        title = account
        lines.append(REGISTRATION_TEXT[state.registration] + (f": {reason}" if reason else ""))
    if state.forward_to:
        lines.insert(min(len(lines), 1), f"Forward: {state.forward_to}")
    if state.dnd:
        lines.append("Do not disturb")
    waiting = voicemail_line(state)
    if waiting:
        lines.insert(min(len(lines), 2), waiting)
    if state.missed:
        lines.insert(min(len(lines), 1), f"{state.missed} missed call{'s' * (state.missed > 1)}")
    if state.ringer_fault:  # calls ring in the handset only: hard to hear with it down
        lines.insert(min(len(lines), 1), RINGER_FAILED)
    return Screen(title=title, lines=tuple(lines[:3]), alert=alert)


def _phone_book(state: PhoneState) -> Screen:
    """The contact found so far by the letters typed (T9)."""
    typed = state.finding or ""
    found = search(state.settings.contacts, typed)
    if not found:
        hint = "No such name" if typed else "The phone book is empty"
        return Screen(title="Contacts", lines=(hint, "back deletes"))
    index = min(state.found, len(found) - 1)
    contact = found[index]
    where = f"{index + 1}/{len(found)}" + (f"  [{typed}]" if typed else "")
    return Screen(title=contact.name, lines=(contact.numbers[0], where, "# calls, * next"))


def _history(state: PhoneState) -> Screen:
    """One record of the call history, as the keypad pages through it."""
    history = state.history
    if not history:
        return Screen(title="Call history", lines=("No calls yet", "back closes"))
    index = min(state.browsing or 0, len(history) - 1)
    record = history[index]
    lines = [record.name] if record.name and record.name != record.number else []
    lines.append(record.number or "unknown number")
    stamp = when(record, state.utc_offset)
    if record.duration > 0:
        stamp += f" {duration_text(record.duration)}"
    lines.append(stamp)
    security = security_text(record)
    if security:
        lines.append(security)
    return Screen(
        title=f"{KIND_TITLE[record.kind]} {index + 1}/{len(history)}",
        lines=tuple(lines[:3]),
        verified=record.verified,
    )


MAX_SHOWN_COUNT = 999
"""A count above this shows as "999+": the line stays one line."""


def voicemail_line(state: PhoneState) -> str:
    """The idle screen's voicemail line: the new messages, or none when there are none."""
    status = state.voicemail
    if status is None or not (status.waiting or status.new):
        return ""
    new = status.new
    if new <= 0:
        return "Voicemail waiting"
    count = f"{MAX_SHOWN_COUNT}+" if new > MAX_SHOWN_COUNT else str(new)
    urgent = " (urgent)" if status.urgent_new else ""
    return f"Voicemail: {count} new{urgent}"


def _dialing(state: PhoneState) -> Screen:
    if not state.digits:
        return Screen(title="Dial", lines=("Enter a number", "# calls, back deletes"))
    hint = "# to call now" if state.off_hook else "Lift handset or # to call"
    return Screen(title="Dial", big=state.digits, lines=(hint,))


def _transfer_target(state: PhoneState, call: CallView) -> Screen:
    if not state.digits:
        return Screen(title="Transfer", lines=(call.peer, "# now, answer: talk", "hangup: back"))
    return Screen(title="Transfer", big=state.digits, lines=("# now, answer: talk",))


RINGER_FAILED = "Ringer failed!"


def _incoming(state: PhoneState, call: CallView) -> Screen:
    hint = "Press answer" if state.off_hook else "Lift handset to answer"
    if state.ringer_fault:  # it rings in the handset: say why the bell is silent
        return Screen(title="Incoming call", lines=(_peer_lines(call)[0], RINGER_FAILED, hint))
    return Screen(title="Incoming call", lines=(*_peer_lines(call), hint))


def _failure_lines(call: CallView) -> tuple[str, ...]:
    """Why the call could not be secured: the peer's fault under "Encryption failed:", a media
    path that never worked in its own words, split at its colon ("No audio from peer:",
    "check network"), so that the other phone is not blamed for ours or the network's."""
    note = call.security_note
    if call.security_fault == "peer":
        return ("Encryption failed:", note)
    head, colon, tail = note.partition(": ")
    return (head + colon.rstrip(), tail) if colon else (note,)


def _insecure_line(call: CallView) -> str:
    """The one line under NOT SECURE: the reason, or the part of it before the colon when the
    media path is at fault (its head says whose side: "No audio from peer")."""
    note = call.security_note
    if not note:
        return "Audio is not encrypted"
    return note if call.security_fault == "peer" else note.partition(": ")[0]


def _in_call(state: PhoneState, call: CallView, now: float) -> Screen:
    started = call.connected_at if call.connected_at is not None else now
    timer = _duration(now - started)
    if call.wideband:
        timer = f"{timer} HD"  # wideband audio (G.722, Opus): what phones call HD voice
    if call.held:
        title = f"Hold: {call.peer}"
    elif call.held_by_peer:
        title = f"Held by {call.peer}"
    else:
        title = call.peer
    other = state.other
    note = call.transfer
    if other is not None and not note:
        verb = "Waiting" if other.phase == CallState.INCOMING else "On hold"
        note = f"{verb}: {other.peer}"
    if call.security == Security.SECURE:
        hint = "SAS verified" if call.verified else "Compare SAS aloud"
        if _two_words(call):  # the title moves up beside the timer: the words need its room
            timer, title = f"{timer}  {title}", ""
        if call.identity_changed and call.contact is not None:
            hint = "NEW ID: read the SAS"
        elif call.known_as and call.verified:
            hint = f"Verified: {call.known_as}"
        return Screen(
            status=timer, title=title, big=call.sas, verified=call.verified, lines=(note or hint,)
        )
    if call.security == Security.LOST:
        return Screen(
            status=timer,
            title=title,
            big="NO AUDIO",
            big_inverse=True,
            lines=(note or "Security lost",),
        )
    if call.security == Security.INSECURE:
        return Screen(
            status=timer,
            title=title,
            big="NOT SECURE",
            big_inverse=True,
            lines=(note or _insecure_line(call),),
        )
    lines = [*_peer_lines(call)[1:], "Securing..."]
    if call.dtmf:
        lines.append(f"Sent: {call.dtmf}")
    if note:
        lines.append(note)
    return Screen(status=timer, title=title, lines=tuple(lines[-3:]))


MISMATCH_TITLE = "SECRET MISMATCH"
MISMATCH_HINTS = ("Read the SAS aloud", "Same: SAS matches key", "Differs: SAS differs key")
"""The mismatch warning's hint, one line at a time (`HINT_PAGE` seconds each): what to do,
and the two keys that settle it. SAS matches also verifies the SAS and keeps the new secret;
SAS differs ends the call."""
HINT_PAGE = 2.0


def _mismatch(call: CallView, now: float) -> Screen:
    """The whole screen inverse, the SAS in large type under the warning's name (in the status
    bar, so that two words have room), and which key to press."""
    if call.sas:
        hint = MISMATCH_HINTS[int(now // HINT_PAGE) % len(MISMATCH_HINTS)]
        return Screen(alert=True, status=MISMATCH_TITLE, big=call.sas, lines=(hint,))
    return Screen(
        alert=True,
        title=MISMATCH_TITLE,
        lines=("Possible eavesdropper.", "Wait for the SAS, then", "read it aloud."),
    )


def _two_words(call: CallView) -> bool:
    """A B256 SAS: two PGP words, drawn one above the other."""
    return call.secured is not None and call.secured.sas_scheme == "B256"


def _peer_lines(call: CallView) -> tuple[str, ...]:
    if call.name and call.name != call.number:
        return (call.name, call.number)
    return (call.number,)


def _icons(state: PhoneState) -> frozenset[str]:
    registration = REGISTRATION_ICON.get(state.registration, "unregistered")
    icons = set() if registration is None else {registration}
    if state.dnd:
        icons.add("dnd")
    if voicemail_line(state):
        icons.add("voicemail")
    call = state.call
    if call is not None and call.phase == CallState.CONNECTED:
        if state.muted:
            icons.add("muted")
        if call.held or call.held_by_peer:
            icons.add("hold")
        if call.security == Security.SECURE:
            icons.add("secure")
            if call.secured is not None and call.secured.post_quantum:
                icons.add("pq")
        elif call.security in {Security.INSECURE, Security.CLEAR, Security.FAILED, Security.LOST}:
            icons.add("insecure")
    return frozenset(icons)


def _brightness(state: PhoneState, now: float) -> Literal["normal", "dim", "off"]:
    call, other = state.call, state.other
    if call is not None and (
        call.phase == CallState.INCOMING or call.mismatch or call.lost_deadline is not None
    ):
        return "normal"
    if other is not None and other.phase == CallState.INCOMING:
        return "normal"
    idle = now - state.last_input
    settings = state.settings
    if 0 < settings.blank_after <= idle:
        return "off"
    if 0 < settings.dim_after <= idle:
        return "dim"
    return "normal"


def _duration(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
