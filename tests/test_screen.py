"""The pure screen model: what each phone state shows, and display power."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import replace

import pytest

from pidphone.app.call_events import (
    CallConnected,
    CallFinished,
    CallIncoming,
    CallMedia,
    CallMismatch,
    CallSecure,
    CallSecurityFailed,
)
from pidphone.app.phone_events import OutgoingCall, PhoneSettings, RegistrationChanged, Tick
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.phone_ui import PhoneUi
from pidphone.app.screen import render
from pidphone.app.state import next_deadline, reduce
from pidphone.cli.render_screens import sample_screens
from pidphone.ports import HookEvent, KeyEvent, Screen
from pidphone.sdp import MediaParams
from tests.test_state import secured, security_failed

SCREENS = sample_screens()


def test_idle_registered_shows_clock_account_and_registration() -> None:
    screen = SCREENS["idle_registered"]
    assert screen.status == "09:41"
    assert screen.title == "alice@example.org"
    assert screen.lines == ("Registered",)
    assert screen.icons == {"registered"}


@pytest.mark.parametrize(
    ("name", "title", "reason", "icon"),
    [
        ("idle_failed", "Not registered", "403 Forbidden", "unregistered"),
        ("idle_tls_error", "TLS error", "untrusted certificate", "tls_error"),
    ],
)
def test_registration_errors_name_the_reason(name: str, title: str, reason: str, icon: str) -> None:
    screen = SCREENS[name]
    assert screen.title == title
    assert screen.lines[0] == reason
    assert icon in screen.icons


def test_no_network_and_do_not_disturb() -> None:
    assert SCREENS["idle_no_network"].lines == ("No network",)
    assert "dnd" in SCREENS["idle_dnd"].icons
    assert "Do not disturb" in SCREENS["idle_dnd"].lines


def test_dialling_shows_the_digits_large() -> None:
    assert SCREENS["dial_tone"].title == "Dial"
    assert SCREENS["dialing"].big == "0446681"


def test_calling_and_incoming_show_the_peer() -> None:
    assert SCREENS["calling"].title == "Calling"
    assert SCREENS["ringback"].title == "Ringing"
    assert SCREENS["calling"].lines == ("+41446681800",)
    incoming = SCREENS["incoming"]
    assert incoming.title == "Incoming call"
    assert incoming.lines[:2] == ("Bob Example", "+15551234567")


def test_secure_call_shows_the_sas_large_and_the_call_timer() -> None:
    screen = SCREENS["secure_b32"]
    assert screen.big == "4jw5"
    assert not screen.verified
    assert screen.status == "01:23"
    assert "secure" in screen.icons
    verified = SCREENS["secure_b256_verified"]
    assert verified.big == "aardvark:bifocals"  # as the CLI, the JSON and the peer spell it
    assert verified.verified
    # the two words take the title's room: the peer moves up beside the timer
    assert (verified.status, verified.title) == ("01:23  +41446681800", "")


def test_post_quantum_call_shows_pq_beside_the_lock() -> None:
    assert "pq" not in SCREENS["secure_b32"].icons
    screen = SCREENS["secure_pq"]
    assert {"secure", "pq"} <= screen.icons
    assert screen.big == "9fhg"


def test_not_secure_is_large_and_inverse() -> None:
    screen = SCREENS["not_secure"]
    assert (screen.big, screen.big_inverse) == ("NOT SECURE", True)
    assert "insecure" in screen.icons


def test_mismatch_and_security_failure_take_the_whole_screen() -> None:
    mismatch = SCREENS["mismatch"]
    assert mismatch.alert
    assert mismatch.status == "SECRET MISMATCH"
    assert mismatch.big == "4jw5"
    assert mismatch.icons == frozenset()  # no padlock on the warning
    failed = SCREENS["security_failed"]
    assert failed.alert
    assert "no ZRTP Hello" in failed.lines


def test_mismatch_hint_names_the_two_keys_that_settle_it() -> None:
    """The hint pages through what to do: read aloud, same -> SAS matches, differs -> SAS
    differs; no "# = OK" that only closes the warning."""
    state = _in_call()
    state, _ = reduce(state, CallMismatch("c1"))
    state, _ = reduce(state, CallSecure("c1", secured("4jw5", "B32", verified=False)))
    hints = [render(state, state.now + t).lines for t in range(0, 6, 2)]
    assert hints == [
        ("Read the SAS aloud",),
        ("Same: SAS matches key",),
        ("Differs: SAS differs key",),
    ]
    assert render(state, state.now + 6).lines == hints[0]


def test_a_call_that_ended_for_its_security_leaves_an_inverse_notice() -> None:
    state = _in_call()
    state, _ = reduce(state, CallSecurityFailed("c1", security_failed("no ZRTP Hello")))
    state, _ = reduce(state, CallFinished("c1", "security", by_peer=False))
    screen = render(state, state.now)
    assert screen.alert and screen.title == "Security failed: no"
    assert screen.lines == ("ZRTP Hello", "Hang up to dial again")
    state, _ = reduce(state, HookEvent(False))
    assert not render(state, state.now).alert  # the notice is gone, and so is the alert


def test_hold_mute_and_call_waiting() -> None:
    hold = SCREENS["hold"]
    assert {"hold", "muted"} <= hold.icons
    assert hold.title.startswith("Hold:")
    assert SCREENS["call_waiting"].lines == ("Waiting: Bob Example",)


def test_busy_after_a_call_tells_to_hang_up() -> None:
    assert SCREENS["busy"].title == "Busy"


def test_mismatch_without_sas_still_explains() -> None:
    state = _in_call()
    state, _ = reduce(state, CallSecure("c1", secured("", "B32", verified=False)))
    call = state.call
    assert call is not None
    state = replace(state, call=replace(call, mismatch=True))
    screen = render(state, state.now)
    assert screen.alert
    assert screen.title == "SECRET MISMATCH"
    assert "Wait for the SAS, then" in screen.lines


def _in_call() -> PhoneState:
    state = initial_state(PhoneSettings(dim_after=10.0, blank_after=60.0), now=0.0)
    for event in (HookEvent(True), KeyEvent("1"), KeyEvent("#"), OutgoingCall("c1", "1")):
        state, _ = reduce(state, event)
    state, _ = reduce(state, CallConnected("c1"))
    return state


def test_wideband_call_shows_hd_beside_the_timer() -> None:
    state = _in_call()
    assert "HD" not in render(state, 5.0).status  # codec not known yet
    narrow = MediaParams(("127.0.0.1", 4000), 0, "PCMU", 101, "sendrecv", None, 20)
    state, _ = reduce(state, CallMedia("c1", narrow))
    assert render(state, 5.0).status == "00:05"
    wide = replace(narrow, payload_type=111, codec="opus", clock_rate=48000)
    state, _ = reduce(state, CallMedia("c1", wide))
    assert render(state, 5.0).status == "00:05 HD"
    # a peer that asks for 8 kHz Opus (maxplaybackrate) gets narrowband: no HD
    capped = replace(wide, fmtp={"maxplaybackrate": "8000"})
    state, _ = reduce(state, CallMedia("c1", capped))
    assert render(state, 5.0).status == "00:05"
    state, _ = reduce(state, CallMedia("c1", replace(narrow, payload_type=9, codec="G722")))
    assert render(state, 5.0).status == "00:05 HD"


def test_call_timer_counts_hours() -> None:
    state = _in_call()
    assert render(state, 3723.0).status == "1:02:03"


def test_display_dims_then_blanks_and_any_key_wakes_it() -> None:
    state = initial_state(PhoneSettings(dim_after=10.0, blank_after=60.0), now=0.0)
    assert render(state, 9.0).brightness == "normal"
    assert render(state, 10.0).brightness == "dim"
    assert render(state, 60.0).brightness == "off"
    state, _ = reduce(state, Tick(61.0))
    state, _ = reduce(state, KeyEvent("volume_up"))
    assert render(state, 61.0).brightness == "normal"


def test_zero_means_never_dim_or_blank() -> None:
    state = initial_state(PhoneSettings(dim_after=0.0, blank_after=0.0), now=0.0)
    assert render(state, 1e6).brightness == "normal"
    assert next_deadline(state) is None


def test_incoming_call_wakes_the_display_and_keeps_it_on() -> None:
    state = initial_state(PhoneSettings(dim_after=10.0, blank_after=60.0), now=0.0)
    state, _ = reduce(state, CallIncoming("c2", remote_uri="1", remote_name="Bob"), now=100.0)
    assert render(state, 1000.0).brightness == "normal"


def test_screens_are_values() -> None:
    assert SCREENS["secure_b32"] == sample_screens()["secure_b32"]
    assert isinstance(SCREENS["secure_b32"], Screen)


def test_without_an_account_no_registration_icon_is_shown() -> None:
    state = initial_state(PhoneSettings(account="alice"), 0.0, False)
    state, _ = reduce(state, RegistrationChanged("disabled"), 0.0)
    screen = render(state, 0.0)
    assert screen.icons == frozenset()  # direct calls only: nothing is "unregistered"
    assert screen.lines == ("No account",)
    failed, _ = reduce(state, RegistrationChanged("failed", "403 Forbidden"), 0.0)
    assert render(failed, 0.0).icons == {"unregistered"}


def test_a_phone_without_account_starts_on_no_account_never_registering() -> None:
    """Start and every reload make a new state: "Registering..." must not flash by first."""
    state = initial_state(PhoneSettings(account="Desk", registers=False), now=0.0)
    assert render(state, 0.0).lines == ("No account",)
    with_account = initial_state(PhoneSettings(account="Desk"), now=0.0)
    assert render(with_account, 0.0).lines == ("Registering...",)


def test_the_idle_screen_names_the_account_once() -> None:
    """Before the first clock tick the status bar stays empty rather than repeat the name."""
    state = initial_state(PhoneSettings(account="Alice Example"), now=0.0)
    screen = render(state, 0.0)
    assert screen.title == "Alice Example"
    assert screen.status == ""
    state, _ = reduce(state, Tick(1.0, clock="09:41"))
    assert render(state, 1.0).status == "09:41"


def test_the_first_screen_drawn_at_start_already_has_the_clock() -> None:
    """At start and on every reload the status bar was blank until the first tick, a second
    later: a flash of an empty bar. The first screen drawn has the time."""

    class Panel:
        def __init__(self) -> None:
            self.drawn: list[Screen] = []
            self.first = threading.Event()

        def show(self, screen: Screen) -> None:
            self.drawn.append(screen)
            self.first.set()

        def close(self) -> None:
            pass

    panel = Panel()

    async def main() -> None:
        ui = PhoneUi(PhoneSettings(account="alice"), lambda command: None, display=panel)
        ui.start()
        await asyncio.to_thread(panel.first.wait, 5)
        ui.stop()

    asyncio.run(main())
    assert re.fullmatch(r"\d\d:\d\d", panel.drawn[0].status), panel.drawn[0]
