"""Every screen of the phone as a picture: `pidphone render-screens [DIR]` and the README.

The phone is driven through the real reducer into each situation (idle, dialling, a secure call,
the mismatch warning, ...), rendered and drawn exactly as the OLED would show it, and saved
scaled up 4x. The PNGs in images/screens/ double as the reference images of the display tests;
regenerate them with `pidphone render-screens images/screens` when a screen changes on purpose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from pidphone.app.screen import render
from pidphone.app.state import (
    CacheMismatch,
    CallAnswered,
    CallEnded,
    CallNotSecure,
    CallRinging,
    CallSecure,
    IncomingCall,
    OutgoingCall,
    PhoneEvent,
    PhoneSettings,
    PhoneState,
    RegistrationChanged,
    SecurityFailed,
    Tick,
    initial_state,
    reduce,
)
from pidphone.drivers.draw import draw_screen
from pidphone.ports import HookEvent, KeyEvent, Screen

from .common import EXIT_OK

SCALE = 4
START = 1000.0
SETTINGS = PhoneSettings(
    account="alice@example.org",
    speed_dials={"1": "+41446681800"},
    dim_after=600.0,
    blank_after=1200.0,
)


def _drive(state: PhoneState, *events: PhoneEvent) -> PhoneState:
    for event in events:
        state, _ = reduce(state, event, now=state.now)
    return state


def sample_states() -> dict[str, tuple[PhoneState, float]]:
    """Named phone states, each with the time it is looked at."""
    base = _drive(initial_state(SETTINGS, now=START), Tick(START, clock="09:41"))
    registered = _drive(base, RegistrationChanged("registered"))
    dialing = _drive(registered, HookEvent(off_hook=True))
    calling = _drive(dialing, KeyEvent("speed1"), OutgoingCall("c1", "+41446681800"))
    in_call = _drive(calling, CallRinging("c1"), CallAnswered("c1"))
    incoming = _drive(registered, IncomingCall("c2", "Bob Example", "+15551234567"))
    secure = _drive(in_call, CallSecure("c1", "4jw5", "B32", verified=False, cipher="AES1"))
    later = START + 83
    return {
        "idle_registered": (registered, START),
        "idle_registering": (base, START),
        "idle_failed": (_drive(base, RegistrationChanged("failed", "403 Forbidden")), START),
        "idle_tls_error": (
            _drive(base, RegistrationChanged("tls_error", "untrusted certificate")),
            START,
        ),
        "idle_no_network": (_drive(base, RegistrationChanged("no_network")), START),
        "idle_dnd": (_drive(registered, KeyEvent("dnd")), START),
        "dial_tone": (dialing, START),
        "dialing": (_drive(dialing, *(KeyEvent(k) for k in "0446681")), START),
        "calling": (calling, START),
        "ringback": (_drive(calling, CallRinging("c1")), START),
        "incoming": (incoming, START),
        "securing": (in_call, START + 2),
        "secure_b32": (secure, later),
        "secure_b256_verified": (
            _drive(in_call, CallSecure("c1", "aardvark bifocals", "B256", verified=True)),
            later,
        ),
        "not_secure": (_drive(in_call, CallNotSecure("c1", "peer has no ZRTP")), later),
        "mismatch": (_drive(secure, CacheMismatch("c1")), later),
        "security_failed": (_drive(in_call, SecurityFailed("c1", "no ZRTP Hello")), later),
        "hold": (_drive(secure, KeyEvent("hold"), KeyEvent("mute")), later),
        "call_waiting": (
            _drive(secure, IncomingCall("c2", "Bob Example", "+15551234567")),
            later,
        ),
        "busy": (_drive(calling, CallEnded("c1", "Busy Here", status=486)), START),
    }


def sample_screens() -> dict[str, Screen]:
    """The `Screen` of every sample state."""
    return {name: render(state, now) for name, (state, now) in sample_states().items()}


def render_screens(directory: Path) -> list[Path]:
    """Write every sample screen as `<name>.png`, scaled up 4x; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, screen in sample_screens().items():
        image = draw_screen(screen)
        big = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
        path = directory / f"{name}.png"
        big.save(path, optimize=True)
        written.append(path)
    return written


def cmd_render_screens(args: argparse.Namespace) -> int:
    for path in render_screens(args.directory):
        print(path)
    return EXIT_OK
