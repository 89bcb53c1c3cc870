"""The phone's own words: what the reducer is told that no layer below knows, and its commands.

The reducer (pidphone.app.state) takes the keypad and the hook switch (`KeyEvent`,
`HookEvent` from pidphone.ports), the call layer's events as the calls report them
(pidphone.app.call_events: the reducer keeps no copy of them), and the `PhoneEvent`s below,
the facts only the phone has: time passing, the registration as the screen shows it, a fault
of the media thread, the voicemail box's summary, and what became of the `PlaceCall` it asked
for. Its commands go to the
controller (calls, the handset's audio) and the phone UI (ringer, volume). All of them are
frozen dataclasses: one class per fact, compared by value in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pidphone.ports import Contact, HookEvent, KeyEvent
from pidphone.sip.events import VoicemailStatus

from .call_events import CallEvent

RegistrationState = Literal[
    "registered", "registering", "failed", "tls_error", "no_network", "disabled"
]
ToneKind = Literal["dial", "ringback", "busy", "congestion", "call_waiting", "ring"]
"""The handset's tones; "ring" rings in the handset when the ringer has failed."""
DeviceName = Literal["ringer", "display"]


@dataclass(frozen=True)
class PhoneSettings:
    """The part of the config the phone logic reads (the config module maps the TOML here)."""

    account: str = ""
    """Shown on the idle screen: the account's display name or SIP user."""
    registers: bool = True
    """The phone has an account to register: it starts on "Registering...", else on "No
    account" (direct calls only), so neither flashes by before the other."""
    speed_dials: Mapping[str, str] = field(default_factory=dict)
    """Slot "1".."9" -> number or SIP URI: dialled by holding that digit down (the keypad's
    repeat event), or by the function keys "speed1".."speed9"."""
    inter_digit_timeout: float = 4.0
    """Seconds after the last digit (handset lifted) before the number is dialled."""
    dim_after: float = 30.0
    """Seconds without input before the display dims (burn-in protection); 0: never."""
    blank_after: float = 300.0
    """Seconds without input before the display goes dark; 0: never."""
    volume: int = 70
    """Initial playback volume in percent: set on the mixer at start."""
    ring_volume: int = 80
    """The ringer's level in percent of the standard ring tone (audio.ring_volume): its own,
    apart from the handset's mixer volume."""
    volume_step: int = 10
    """Percent per press (or auto-repeat) of a volume key."""
    notice_time: float = 3.0
    """Seconds a "call ended" notice stays on the idle screen."""
    security_lost_timeout: float = 10.0
    """Seconds the SECURITY LOST warning gives the user to keep the line ("#") before the
    call ends by itself."""
    recall_after: float = 60.0
    """Seconds a call left on hold rings back (the handset down) before it is ended."""
    max_digits: int = 32
    contacts: tuple[Contact, ...] = ()
    """The phone book: names for callers and numbers, found by name with the "contacts" key."""
    forward_always: str = ""
    """Where every call goes (302) when nothing else was set on the keypad; "" for none."""
    forward_busy: str = ""
    """Where a call goes while another call is up, instead of call waiting; "" for none."""
    forward_no_answer: str = ""
    """Where a call goes after ringing `forward_after` seconds unanswered; "" for none."""
    forward_after: float = 20.0
    history_size: int = 100
    """Calls the history keeps (the oldest go first)."""
    voicemail_number: str = ""
    """Dialled by the "voicemail" key: the number or SIP URI of the voicemail box. Empty:
    the key does nothing."""
    """Longest number the keypad accepts."""
    notice: str = ""
    """A problem found before start (a boot-partition config that was not taken in): on the
    idle screen from the start until the handset is lifted."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class PhoneEvent:
    """Base of the facts only the phone has (the calls' own come as `CallEvent`s)."""


@dataclass(frozen=True)
class Tick(PhoneEvent):
    """Time passes. `clock` is the wall-clock text for the idle screen ("14:05"), formatted
    by the phone UI (local time zone); empty keeps the previous one."""

    now: float
    clock: str = ""
    wall: float = 0.0
    """The wall clock, seconds since the epoch (0: unchanged): what call records are dated by."""
    utc_offset: float = 0.0
    """Seconds the local time zone is ahead of UTC, for the history's dates."""


@dataclass(frozen=True)
class RegistrationChanged(PhoneEvent):
    """The SIP registration changed, as the screen shows it; `reason` says why it is not
    registered ("403 Forbidden", "untrusted certificate", ...)."""

    state: RegistrationState
    reason: str = ""


@dataclass(frozen=True)
class MediaFault(PhoneEvent):
    """The media thread died (`reason`) and its calls were ended; `restarted` says whether a
    new one took over. The idle screen says so."""

    reason: str
    restarted: bool


@dataclass(frozen=True)
class DeviceFailed(PhoneEvent):
    """The ringer or the display does not work (`reason`, one line): the phone says so (the
    screen, the journal, systemd's STATUS=) and does what it can without it."""

    device: DeviceName
    reason: str


@dataclass(frozen=True)
class DeviceRecovered(PhoneEvent):
    """The ringer or the display works again."""

    device: DeviceName


@dataclass(frozen=True)
class VoicemailChanged(PhoneEvent):
    """What the voicemail box last said (`status`); None: the phone cannot know any more
    (the server does not serve it, or refused), so the screen shows no count."""

    status: VoicemailStatus | None


@dataclass(frozen=True)
class OutgoingCall(PhoneEvent):
    """The call asked for by `PlaceCall` was placed: its id."""

    call_id: str
    number: str


@dataclass(frozen=True)
class OutgoingCallFailed(PhoneEvent):
    """The call asked for by `PlaceCall` could not be placed (no media socket, a number the
    agent cannot route ...): `reason` is for the screen."""

    reason: str


ReducerInput = (
    KeyEvent
    | HookEvent
    | Tick
    | RegistrationChanged
    | MediaFault
    | DeviceFailed
    | DeviceRecovered
    | VoicemailChanged
    | OutgoingCall
    | OutgoingCallFailed
    | CallEvent
)
"""Everything `state.reduce` takes."""


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class PlaceCall:
    """Dial `number`; the controller answers with `OutgoingCall` carrying the new call's id."""

    number: str


@dataclass(frozen=True)
class Answer:
    call_id: str


@dataclass(frozen=True)
class Reject:
    """Decline an incoming call (486 Busy Here, or 603 under do-not-disturb)."""

    call_id: str


@dataclass(frozen=True)
class Forward:
    """Send an incoming call elsewhere (302 Moved Temporarily) instead of taking it."""

    call_id: str
    target: str


@dataclass(frozen=True)
class Hangup:
    """End a call in any state (CANCEL before the answer, BYE after)."""

    call_id: str


@dataclass(frozen=True)
class Hold:
    call_id: str


@dataclass(frozen=True)
class Resume:
    call_id: str


@dataclass(frozen=True)
class SendDtmf:
    call_id: str
    key: str


@dataclass(frozen=True)
class ConfirmSas:
    """The user compared the SAS aloud: store (or clear) the verified flag in the ZID cache."""

    call_id: str
    verified: bool


@dataclass(frozen=True)
class Transfer:
    """Blind transfer: ask the peer of `call_id` (on hold) to call `number`."""

    call_id: str
    number: str


@dataclass(frozen=True)
class TransferToCall:
    """Attended transfer: the peer of `call_id` (on hold) takes our place in call
    `consultation_id`."""

    call_id: str
    consultation_id: str


@dataclass(frozen=True)
class SetMute:
    muted: bool


@dataclass(frozen=True)
class SetVolume:
    percent: int


@dataclass(frozen=True)
class PlayTone:
    """Play a call-progress tone in the handset until told otherwise; None stops it."""

    kind: ToneKind | None


@dataclass(frozen=True)
class Ring:
    """Start or stop the ringer."""

    on: bool


Command = (
    PlaceCall
    | Answer
    | Reject
    | Forward
    | Hangup
    | Hold
    | Resume
    | SendDtmf
    | ConfirmSas
    | Transfer
    | TransferToCall
    | SetMute
    | SetVolume
    | PlayTone
    | Ring
)
