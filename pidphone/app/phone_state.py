"""What the phone remembers between two events: `PhoneState` and the calls it shows.

The reducer (pidphone.app.state, with pidphone.app.call_facts for the calls' events) makes
each new state from the last; the screen (pidphone.app.screen) is drawn from it. Nothing here
changes a state in place: every field is frozen, `replace` makes the next one. The two
transitions both halves of the reducer need, a call ending and the second call moving up,
live here with the state they change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pidphone.ports import CallRecord, Contact, Preferences
from pidphone.sdp.offer_answer import MediaParams
from pidphone.sip.events import VoicemailStatus
from pidphone.zrtp.events import Secured

from .call_state import CallState, Security
from .media_events import Fault
from .phone_events import Command, PhoneSettings, RegistrationState, ToneKind


@dataclass(frozen=True)
class CallView:
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
    secured: Secured | None = None
    """ZRTP's result, as the call reported it (the SAS and its scheme, the algorithms)."""
    verified: bool = False
    """The SAS counts as verified: the cache said so when ZRTP finished, or the user confirmed
    it since; a cached-secret mismatch clears it."""
    security_note: str = ""
    """Why the call is not secure (the media's reason), when it is not."""
    security_fault: Fault = "peer"
    """Whose side that reason lies on: only a peer fault reads "Encryption failed"."""
    mismatch: bool = False
    """The cached-secret mismatch warning is shown until acknowledged."""
    lost_deadline: float | None = None
    """While the SECURITY LOST warning is up: when the call ends unless the user keeps it."""
    dtmf: str = ""
    """The last DTMF digits sent in this call."""
    media: MediaParams | None = None
    """What the offer/answer settled (the codec), as the call reported it."""
    transferring: bool = False
    """We asked the peer to go elsewhere (blind, or joined to our consultation call) and the
    transfer has not ended yet."""
    recall: bool = False
    """The handset went down with this call on hold: it rings back until the handset is
    lifted (a held caller is never dropped by a handset put down)."""
    recall_until: float | None = None
    """While it rings back: when the phone gives up and ends it ("Held call ended"), so a
    caller left on hold at an empty desk is not kept waiting for ever."""
    transfer: str = ""
    """What a transfer of (or into) this call is doing, for the screen ("Transfer: Ringing",
    "Transfer failed: Busy Here", "Transferred by Alice")."""
    forwarded_to: str = ""
    """Where a redirect (3xx) sent the call we placed: a contact's name, or the address."""
    referred_by: str | None = None
    """The call whose peer transferred us into this one, while that call lasts."""
    forward_at: float | None = None
    """An incoming call rings until then, and is forwarded if still unanswered."""
    contact: Contact | None = None
    """Who the phone book says this is (by the number), if anyone."""

    @property
    def identity_changed(self) -> bool:
        """The call is from a contact's number, but ZRTP met another phone than the one the
        contact is linked to: a reinstalled phone, or someone else. The SAS must be read."""
        contact, secured = self.contact, self.secured
        return (
            contact is not None
            and contact.zid is not None
            and secured is not None
            and secured.peer_zid != contact.zid
        )

    @property
    def known_as(self) -> str:
        """The contact's name when ZRTP met the very phone the contact is linked to."""
        contact, secured = self.contact, self.secured
        if contact is None or contact.zid is None or secured is None:
            return ""
        return contact.name if secured.peer_zid == contact.zid else ""

    @property
    def peer(self) -> str:
        """Who the user is talking to: the display name, else the number."""
        return self.name or self.number

    @property
    def wideband(self) -> bool:
        """The call carries wideband audio: "HD" on the screen."""
        return self.media is not None and self.media.wideband

    @property
    def sas(self) -> str:
        """The short authentication string to read aloud ("" before ZRTP finished): four
        characters for "B32", two PGP words for "B256"."""
        return "" if self.secured is None else self.secured.sas


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
    hushed: bool = False
    """The handset went down while the held call was being joined to the consultation call:
    the microphone is muted (`muted`) until the join is over or the handset is lifted."""
    volume: int = 70
    dialing: bool = False
    """Collecting digits (handset lifted, or a digit typed on hook to dial before lifting)."""
    digits: str = ""
    digit_deadline: float | None = None
    transfer_from: str | None = None
    """The call (on hold) whose transfer target is being keyed in: `digits` are the target."""
    call: CallView | None = None
    other: CallView | None = None
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
    ringer_fault: str = ""
    """Why the ringer failed the last time it rang ("" while it works): incoming calls ring
    in the handset instead, and the screen says the ringer failed."""
    voicemail: VoicemailStatus | None = None
    """The voicemail box's summary, as its notifier last told it; None: not known."""
    wall: float = 0.0
    """The wall clock at the last `Tick` that told it (seconds since the epoch)."""
    utc_offset: float = 0.0
    history: tuple[CallRecord, ...] = ()
    """The call history, newest first."""
    missed: int = 0
    """Missed calls since the user last opened the history (the idle screen's notice)."""
    browsing: int | None = None
    """The history is open at this record (0: the newest)."""
    forward_to: str = ""
    """Every call is forwarded here (keyed in, or phone.forward_always); "" for none."""
    finding: str | None = None
    """The phone book is open; the digits typed to find a name (T9)."""
    found: int = 0
    """The contact shown among those `finding` matches."""


Result = tuple[PhoneState, list[Command]]
"""A new state and the commands that come with it."""


def initial_state(
    settings: PhoneSettings,
    now: float = 0.0,
    off_hook: bool = False,
    history: tuple[CallRecord, ...] = (),
    preferences: Preferences | None = None,
) -> PhoneState:
    """The phone at start-up; `off_hook` is the hook switch read from the keypad driver,
    `history` the calls kept from before, `preferences` what was set on the keypad before
    (None: never anything, so forwarding is phone.forward_always)."""
    if preferences is None:
        preferences = Preferences(forward_to=settings.forward_always)
    return PhoneState(
        dnd=preferences.dnd,
        forward_to=preferences.forward_to,
        history=history[: settings.history_size],
        settings=settings,
        now=now,
        registration="registering" if settings.registers else "disabled",
        volume=settings.volume,
        last_input=now,
        off_hook=off_hook,
        dialing=off_hook,
        notice=settings.notice,
    )


def promote(state: PhoneState) -> PhoneState:
    """With the handset's call gone, the second call (waiting or held) takes its place."""
    if state.call is not None or state.other is None:
        return state
    return replace(state, call=state.other, other=None, last_input=state.now)


def show_ended(state: PhoneState, notice: str, tone: ToneKind | None) -> PhoneState:
    """The handset's only call is over: say why (and play `tone` while the handset is up)."""
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
