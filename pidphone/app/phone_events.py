"""The vocabulary of the phone reducer: the facts it is told and the commands it gives.

Input comes from three places: the keypad and hook switch (`KeyEvent`, `HookEvent` from
pidphone.ports), the clock (`Tick`), and the switchboard (registration and call facts below).
Output is a list of commands the controller runs against the switchboard and the media worker.
All of them are frozen dataclasses: one class per fact, compared by value in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pidphone.ports import HookEvent, KeyEvent

RegistrationState = Literal[
    "registered", "registering", "failed", "tls_error", "no_network", "disabled"
]
ToneKind = Literal["dial", "ringback", "busy", "congestion", "call_waiting"]


@dataclass(frozen=True)
class PhoneSettings:
    """The part of the config the phone logic reads (the config module maps the TOML here)."""

    account: str = ""
    """Shown on the idle screen: the account's display name or SIP user."""
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
    """Initial playback volume in percent."""
    volume_step: int = 10
    """Percent per press (or auto-repeat) of a volume key."""
    notice_time: float = 3.0
    """Seconds a "call ended" notice stays on the idle screen."""
    security_lost_timeout: float = 10.0
    """Seconds the SECURITY LOST warning gives the user to keep the line ("#") before the
    call ends by itself."""
    max_digits: int = 32
    """Longest number the keypad accepts."""
    notice: str = ""
    """A problem found before start (a boot-partition config that was not taken in): on the
    idle screen from the start until the handset is lifted."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Tick:
    """Time passes. `clock` is the wall-clock text for the idle screen ("14:05"), formatted
    by the controller (local time zone); empty keeps the previous one."""

    now: float
    clock: str = ""


@dataclass(frozen=True)
class RegistrationChanged:
    """The SIP registration changed; `reason` says why it is not registered ("403 Forbidden",
    "untrusted certificate", ...)."""

    state: RegistrationState
    reason: str = ""


@dataclass(frozen=True)
class IncomingCall:
    """An INVITE arrived."""

    call_id: str
    name: str
    number: str


@dataclass(frozen=True)
class OutgoingCall:
    """The phone started the call asked for by `PlaceCall` and tells its id."""

    call_id: str
    number: str


@dataclass(frozen=True)
class CallRinging:
    """The called party is alerting (180/183): play ringback."""

    call_id: str


@dataclass(frozen=True)
class CallAnswered:
    """The call is established (200 OK to our INVITE, or ACK for the one we answered)."""

    call_id: str


CallConnected = CallAnswered
"""Another name for `CallAnswered`."""


@dataclass(frozen=True)
class CallEnded:
    """The call is over: BYE, CANCEL, a final error response, or our own hangup done.
    `status` is the SIP status of a failed call (486 busy, 404, ...), 0 otherwise."""

    call_id: str
    reason: str = ""
    status: int = 0


@dataclass(frozen=True)
class CallSecure:
    """ZRTP finished: SRTP is keyed. `sas` is the short authentication string to read aloud:
    four characters for "B32", two PGP words for "B256"."""

    call_id: str
    sas: str
    sas_scheme: str
    verified: bool
    cipher: str = ""
    key_agreement: str = ""


@dataclass(frozen=True)
class CallNotSecure:
    """ZRTP failed under the "prefer" policy: audio flows in clear."""

    call_id: str
    reason: str = ""


@dataclass(frozen=True)
class CacheMismatch:
    """The peer's retained secret does not match ours: possible man in the middle, or the peer
    lost its cache. The user must verify the SAS aloud."""

    call_id: str


@dataclass(frozen=True)
class SecurityFailed:
    """ZRTP failed under the "require" policy: the call is ended."""

    call_id: str
    reason: str = ""


@dataclass(frozen=True)
class SecurityLost:
    """A call that was secure lost its security (the peer's GoClear, a failed new exchange):
    audio has stopped both ways. The phone warns, full screen and with a tone, and ends the
    call after `PhoneSettings.security_lost_timeout` unless the user keeps the line."""

    call_id: str
    reason: str = ""


@dataclass(frozen=True)
class CallHeld:
    """The call is on hold, by us (confirming `Hold`) or by the peer."""

    call_id: str
    by_peer: bool = False


@dataclass(frozen=True)
class CallResumed:
    """The call is off hold again, by us or by the peer."""

    call_id: str
    by_peer: bool = False


@dataclass(frozen=True)
class DtmfReceived:
    """The peer sent a DTMF digit (RFC 4733)."""

    call_id: str
    key: str


@dataclass(frozen=True)
class AudioFault:
    """The media thread failed (its calls were ended): the idle screen says so."""

    reason: str


CallFact = (
    RegistrationChanged
    | AudioFault
    | IncomingCall
    | OutgoingCall
    | CallRinging
    | CallAnswered
    | CallEnded
    | CallSecure
    | CallNotSecure
    | CacheMismatch
    | SecurityFailed
    | SecurityLost
    | CallHeld
    | CallResumed
    | DtmfReceived
)
PhoneEvent = KeyEvent | HookEvent | Tick | CallFact


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
    | Hangup
    | Hold
    | Resume
    | SendDtmf
    | ConfirmSas
    | SetMute
    | SetVolume
    | PlayTone
    | Ring
)
