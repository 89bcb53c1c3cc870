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

from pidphone.app.call_events import (
    CallConnected,
    CallFinished,
    CallForwarded,
    CallHeld,
    CallIncoming,
    CallInsecure,
    CallMismatch,
    CallReferred,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallTransferEnded,
)
from pidphone.app.media_events import MediaSecurityFailed
from pidphone.app.media_security import NO_MEDIA_REASON
from pidphone.app.phone_events import (
    DeviceFailed,
    OutgoingCall,
    PhoneSettings,
    ReducerInput,
    RegistrationChanged,
    Tick,
    VoicemailChanged,
)
from pidphone.app.phone_state import PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.drivers.draw import draw_screen
from pidphone.ports import Contact, HookEvent, KeyEvent, Screen
from pidphone.sip.events import CallRedirected, TransferEnded, VoicemailStatus
from pidphone.zrtp.algorithms import POST_QUANTUM
from pidphone.zrtp.events import Secured

from .common import EXIT_OK, CommandError

SCALE = 4
START = 1000.0
BOB_ZID = bytes.fromhex("4f1c0b9e2d7a63a0c1e5b8d2")
SETTINGS = PhoneSettings(
    account="alice@example.org",
    contacts=(
        Contact("Bob Example", ("+15551234567",), BOB_ZID),
        Contact("Carol Smith", ("sip:carol@example.org",)),
    ),
    speed_dials={"1": "+41446681800"},
    dim_after=600.0,
    blank_after=1200.0,
)


def _drive(state: PhoneState, *events: ReducerInput) -> PhoneState:
    for event in events:
        state, _ = reduce(state, event, now=state.now)
    return state


def _secured(
    sas: str,
    scheme: str,
    *,
    verified: bool,
    cipher: str = "AES1",
    key_agreement: str = "X255",
    zid: bytes = bytes(12),
) -> Secured:
    return Secured(
        sas=sas,
        sas_scheme=scheme,
        verified=verified,
        cipher=cipher,
        auth_tag="HS80",
        key_agreement=key_agreement,
        hash="S512" if key_agreement in POST_QUANTUM else "S256",
        role="initiator",
        peer_zid=zid,
        cache_mismatch=False,
        post_quantum=key_agreement in POST_QUANTUM,
    )


def _failed(reason: str, *, fatal: bool) -> MediaSecurityFailed:
    return MediaSecurityFailed(reason, None, fatal=fatal, peer_without_zrtp=True)


def sample_states() -> dict[str, tuple[PhoneState, float]]:
    """Named phone states, each with the time it is looked at."""
    base = _drive(initial_state(SETTINGS, now=START), Tick(START, clock="09:41"))
    registered = _drive(base, RegistrationChanged("registered"))
    dialing = _drive(registered, HookEvent(off_hook=True))
    calling = _drive(dialing, KeyEvent("speed1"), OutgoingCall("c1", "+41446681800"))
    in_call = _drive(calling, CallRinging("c1"), CallConnected("c1"))
    incoming = _drive(
        registered, CallIncoming("c2", remote_uri="+15551234567", remote_name="Bob Example")
    )
    secure = _drive(
        in_call, CallSecure("c1", _secured("4jw5", "B32", verified=False, cipher="AES1"))
    )
    later = START + 83
    missed = _drive(
        registered,
        Tick(START, clock="09:41", wall=1_765_099_260.0),  # 7 Dec 09:21 UTC
        CallIncoming("c3", remote_uri="+15551234567", remote_name="Bob Example"),
        CallFinished("c3", "Cancelled", by_peer=True),
        Tick(START + 20, clock="09:41"),
    )
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
        "idle_missed": (missed, START + 20),
        "history": (_drive(missed, KeyEvent("history")), START + 20),
        "contacts": (_drive(registered, KeyEvent("contacts"), KeyEvent("2")), START),
        "verified_contact": (
            _drive(
                incoming,
                HookEvent(off_hook=True),
                CallConnected("c2"),
                CallSecure("c2", _secured("4jw5", "B32", verified=True, zid=BOB_ZID)),
            ),
            START + 30,
        ),
        "identity_changed": (
            _drive(
                incoming,
                HookEvent(off_hook=True),
                CallConnected("c2"),
                CallSecure("c2", _secured("7fqk", "B32", verified=False)),
            ),
            START + 30,
        ),
        "idle_forward": (
            _drive(registered, *(KeyEvent(k) for k in "4455"), KeyEvent("forward")),
            START,
        ),
        "idle_voicemail": (
            _drive(registered, VoicemailChanged(VoicemailStatus(True, 3, 5))),
            START,
        ),
        "dial_tone": (dialing, START),
        "dialing": (_drive(dialing, *(KeyEvent(k) for k in "0446681")), START),
        "calling": (calling, START),
        "ringback": (_drive(calling, CallRinging("c1")), START),
        "incoming": (incoming, START),
        "incoming_ringer_failed": (
            _drive(
                registered,
                DeviceFailed("ringer", "ALSA playback 'ringer' (audio.ring_device): busy"),
                CallIncoming("c2", remote_uri="+15551234567", remote_name="Bob Example"),
            ),
            START,
        ),
        "call_on_hold_recall": (
            _drive(in_call, KeyEvent("hold"), HookEvent(off_hook=False)),
            START + 30,
        ),
        "securing": (in_call, START + 2),
        "secure_b32": (secure, later),
        "secure_pq": (
            _drive(
                in_call,
                CallSecure(
                    "c1",
                    _secured("9fhg", "B32", verified=False, cipher="AES3", key_agreement="X3M3"),
                ),
            ),
            later,
        ),
        "secure_b256_verified": (
            _drive(in_call, CallSecure("c1", _secured("aardvark:bifocals", "B256", verified=True))),
            later,
        ),
        "secure_b256_widest": (  # the widest word of each row: every other pair fits as well
            _drive(
                in_call, CallSecure("c1", _secured("watchword:chambermaid", "B256", verified=True))
            ),
            later,
        ),
        "not_secure": (
            _drive(in_call, CallInsecure("c1", _failed("peer has no ZRTP", fatal=False))),
            later,
        ),
        "mismatch": (_drive(secure, CallMismatch("c1")), later),
        "mismatch_b256": (
            _drive(
                in_call,
                CallMismatch("c1"),
                CallSecure("c1", _secured("aardvark:bifocals", "B256", verified=False)),
            ),
            later + 3,
        ),
        "security_failed": (
            _drive(in_call, CallSecurityFailed("c1", _failed("no ZRTP Hello", fatal=True))),
            later,
        ),
        "no_audio_from_peer": (
            _drive(
                in_call,
                CallSecurityFailed(
                    "c1", MediaSecurityFailed(NO_MEDIA_REASON, None, True, False, "network")
                ),
                CallFinished("c1", NO_MEDIA_REASON, by_peer=False),
            ),
            later,
        ),
        "hold": (_drive(secure, KeyEvent("hold"), KeyEvent("mute")), later),
        "call_waiting": (
            _drive(
                secure, CallIncoming("c2", remote_uri="+15551234567", remote_name="Bob Example")
            ),
            later,
        ),
        "busy": (_drive(calling, CallFinished("c1", "Busy Here", by_peer=True, status=486)), START),
        "transfer": (_drive(secure, *(KeyEvent(k) for k in ("transfer", "2", "0", "1"))), later),
        "transfer_failed": (
            _drive(
                secure,
                *(KeyEvent(k) for k in ("transfer", "2", "0", "1", "#")),
                CallTransferEnded("c1", TransferEnded("c1", False, 486, "Busy Here")),
                CallHeld("c1", local_hold=False, remote_hold=False),
            ),
            later,
        ),
        "forwarded": (
            _drive(
                calling,
                CallForwarded("c1", CallRedirected("c1", 302, "sip:dave@example.org")),
                CallRinging("c1"),
            ),
            START,
        ),
        "transferred_by": (
            _drive(secure, CallReferred("c1", "+41446681801", "c3"), CallRinging("c3")),
            later,
        ),
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
    try:
        written = render_screens(args.directory)
    except OSError as exc:
        raise CommandError(
            f"cannot write the screens to {args.directory}: {exc.strerror or exc}"
        ) from None
    for path in written:
        print(path)
    return EXIT_OK
