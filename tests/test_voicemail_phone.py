"""The voicemail indicator on the phone: the reducer keeps the box's summary, the idle screen
shows the new messages (and the icon), and the "voicemail" key dials the box."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pidphone.app.phone_events import (
    PhoneSettings,
    PlaceCall,
    RegistrationChanged,
    VoicemailChanged,
)
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.drivers.draw import draw_screen
from pidphone.ports import KeyEvent
from pidphone.sip.events import VoicemailStatus

SETTINGS = PhoneSettings(account="alice@example.org", voicemail_number="*97")


def idle(settings: PhoneSettings = SETTINGS) -> PhoneState:
    state, _ = reduce(initial_state(settings), RegistrationChanged("registered"))
    return state


def told(state: PhoneState, status: VoicemailStatus | None) -> PhoneState:
    state, commands = reduce(state, VoicemailChanged(status))
    assert commands == []
    return state


def test_the_idle_screen_counts_the_new_messages() -> None:
    state = told(idle(), VoicemailStatus(True, 3, 5))
    screen = render(state, state.now)
    assert screen.lines == ("Registered", "Voicemail: 3 new")
    assert "voicemail" in screen.icons
    state = told(state, VoicemailStatus(True, 1, 7, urgent_new=1))
    assert render(state, state.now).lines[-1] == "Voicemail: 1 new (urgent)"


@pytest.mark.parametrize(
    "status", [None, VoicemailStatus(False, 0, 8), VoicemailStatus(False, 0, 0)]
)
def test_no_new_messages_no_line_and_no_icon(status: VoicemailStatus | None) -> None:
    state = told(told(idle(), VoicemailStatus(True, 2, 0)), status)
    screen = render(state, state.now)
    assert screen.lines == ("Registered",)
    assert "voicemail" not in screen.icons


def test_a_box_that_says_only_yes_and_a_huge_count_stay_on_one_line() -> None:
    state = told(idle(), VoicemailStatus(True, 0, 0))
    assert render(state, state.now).lines[-1] == "Voicemail waiting"
    state = told(state, VoicemailStatus(True, 999_999, 0))
    screen = render(state, state.now)
    assert screen.lines[-1] == "Voicemail: 999+ new"
    draw_screen(screen)  # fits the 128x64 display without raising


def test_the_count_keeps_its_place_beside_a_notice_and_do_not_disturb() -> None:
    state = told(idle(replace(SETTINGS, notice="Boot config ignored")), VoicemailStatus(True, 2, 0))
    state, _ = reduce(state, KeyEvent("dnd"))
    lines = render(state, state.now).lines
    assert len(lines) == 3 and "Voicemail: 2 new" in lines


def test_the_voicemail_key_dials_the_box() -> None:
    state, commands = reduce(idle(), KeyEvent("voicemail"))
    assert commands[0] == PlaceCall("*97")
    assert state.call is not None and state.call.number == "*97"


def test_without_a_voicemail_number_the_key_does_nothing() -> None:
    state, commands = reduce(idle(PhoneSettings()), KeyEvent("voicemail"))
    assert state.call is None and not any(isinstance(c, PlaceCall) for c in commands)
