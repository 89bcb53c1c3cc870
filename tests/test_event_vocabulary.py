"""One word per fact: each layer's events carry the lower layer's event, they never copy it.

The security fact is ZRTP's `Secured`; the media session reports it inside `MediaSecured`, the
call inside `CallSecure`, and the phone's reducer keeps that same object for the screen. So a
field added to `Secured` reaches the screen code with no other class changing: the first test
adds one (as a subclass) and follows the object from the media session's event to the screen.
The second test checks the whole vocabulary: no event class re-declares the fields of an event
of another module.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
from dataclasses import dataclass

from pidphone.app.call import Call, CallSettings
from pidphone.app.call_events import CallConnected, CallSecure
from pidphone.app.media_events import MediaSecured
from pidphone.app.media_messages import MediaUpdate
from pidphone.app.phone_events import OutgoingCall, PhoneEvent, PhoneSettings
from pidphone.app.phone_state import initial_state
from pidphone.app.screen import render
from pidphone.app.state import reduce
from pidphone.ports import HookEvent, KeyEvent
from pidphone.zrtp.events import Secured

EVENT_MODULES = (
    "pidphone.sip.events",
    "pidphone.zrtp.events",
    "pidphone.app.signalling",
    "pidphone.app.media_events",
    "pidphone.app.media_messages",
    "pidphone.app.call_events",
    "pidphone.app.phone_events",
    "pidphone.app.switchboard",
    "pidphone.app.controller",
)
"""Every module that declares events or messages, from the cores up to the controller."""

IDENTITIES = frozenset({"call_id", "media_id"})
"""Fields that name what an event is about: every event of a layer has its own."""

OWN_FACTS = {
    ("pidphone.app.call_events.CallFinished", "pidphone.sip.events.CallEnded"),
    ("pidphone.app.call_events.CallFinished", "pidphone.sip.events.ReinviteFailed"),
    ("pidphone.app.call_events.CallFinished", "pidphone.sip.events.RegistrationFailed"),
    ("pidphone.app.call_events.CallFinished", "pidphone.sip.events.TransferEnded"),
    ("pidphone.app.call_events.CallFinished", "pidphone.sip.events.VoicemailUnavailable"),
}
"""Pairs that share fields without one being the other. A call's end has causes the SIP
dialog does not know (an offer it cannot take, ZRTP failing, the user's key), so it is a fact
of its own; its `status` and `reason` are SIP's words for how a request ended."""


@dataclass(frozen=True)
class SecuredWithRank(Secured):
    """ZRTP's `Secured` with one more field, as if it had been added to the class."""

    rank: int = 7


def test_a_field_added_to_secured_reaches_the_screen_code_unchanged() -> None:
    secured = SecuredWithRank(
        sas="4jw5",
        sas_scheme="B32",
        verified=False,
        cipher="AES1",
        auth_tag="HS80",
        key_agreement="X255",
        hash="S256",
        role="initiator",
        peer_zid=bytes(12),
        cache_mismatch=False,
    )
    agent = _Agent()
    call = Call.place(
        agent,
        settings=CallSettings(),
        media_id=1,
        hello_hash="1.10 " + "ab" * 32,
        media_port=40000,
        target="sips:bob@example.org",
        now=0.0,
    )
    call.on_media(MediaUpdate(1, MediaSecured(secured)), now=1.0)
    event = call.next_event()
    assert isinstance(event, CallSecure) and event.secured is secured

    state = initial_state(PhoneSettings(), now=0.0)
    for fact in (HookEvent(True), KeyEvent("1"), KeyEvent("#"), OutgoingCall(call.call_id, "1")):
        state, _ = reduce(state, fact)
    state, _ = reduce(state, CallConnected(call.call_id))
    state, _ = reduce(state, event)
    assert state.call is not None
    shown = state.call.secured
    assert shown is secured and isinstance(shown, SecuredWithRank) and shown.rank == 7
    assert render(state, state.now).big == "4jw5"


def test_no_event_class_copies_the_fields_of_another() -> None:
    classes = [cls for name in EVENT_MODULES for cls in _dataclasses_of(name)]
    copies = []
    for upper, lower in itertools.combinations(classes, 2):
        if upper.__module__ == lower.__module__:
            continue
        shared = _fields(upper) & _fields(lower)
        names = (_name(upper), _name(lower))
        if len(shared) >= 2 and names not in OWN_FACTS and names[::-1] not in OWN_FACTS:
            copies.append(f"{names[0]} and {names[1]} both declare {sorted(shared)}")
    assert copies == []


def test_the_phone_names_a_call_only_in_the_answer_to_its_own_place_call() -> None:
    """The phone's own events are about what the call layer does not know (keys, time, the
    registration as the screen shows it, a media fault): the calls' facts reach the reducer
    as the call layer's events."""
    naming_a_call = [
        cls.__name__
        for cls in _dataclasses_of("pidphone.app.phone_events")
        if issubclass(cls, PhoneEvent) and "call_id" in {f.name for f in dataclasses.fields(cls)}
    ]
    assert naming_a_call == ["OutgoingCall"]


class _Agent:
    """The SIP agent's API as a call uses it; what the call sends is of no interest here."""

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        return "call-1@example.org"

    def ringing(self, call_id: str, now: float) -> None: ...

    def answer(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def reject(self, call_id: str, status: int, now: float) -> None: ...

    def redirect(self, call_id: str, target: str, now: float) -> None: ...

    def hangup(self, call_id: str, now: float) -> None: ...

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None: ...


def _dataclasses_of(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module_name and dataclasses.is_dataclass(cls)
    ]


def _fields(cls: type) -> set[tuple[str, str]]:
    return {(f.name, str(f.type)) for f in dataclasses.fields(cls) if f.name not in IDENTITIES}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
