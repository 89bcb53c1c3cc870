"""The phone reducer, told as stories: what the user does, what the engine reports, what the
phone commands in return."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.app.call_events import (
    CallConnected,
    CallDtmf,
    CallFinished,
    CallHeld,
    CallIncoming,
    CallInsecure,
    CallMismatch,
    CallPlaced,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallSecurityLost,
    CallVerified,
)
from pidphone.app.call_state import Security
from pidphone.app.media_events import MediaDtmf, MediaSecurityFailed, MediaSecurityLost
from pidphone.app.phone_events import (
    Answer,
    Command,
    ConfirmSas,
    Hangup,
    Hold,
    MediaFault,
    OutgoingCall,
    OutgoingCallFailed,
    PhoneSettings,
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
)
from pidphone.app.phone_state import CallView, PhoneState, initial_state
from pidphone.app.screen import render
from pidphone.app.state import next_deadline, reduce
from pidphone.ports import HookEvent, KeyEvent
from pidphone.zrtp.events import Secured

SETTINGS = PhoneSettings(
    account="alice",
    speed_dials={"1": "+41446681800"},
    inter_digit_timeout=4.0,
    dim_after=30.0,
    blank_after=300.0,
    volume=50,
    volume_step=10,
)

LIFT = HookEvent(off_hook=True)
BOB_CALLS = CallIncoming("c2", remote_uri="+1555", remote_name="Bob")
PUT_DOWN = HookEvent(off_hook=False)


def key(name: str) -> KeyEvent:
    return KeyEvent(name)


def secured(sas: str, scheme: str, *, verified: bool, cipher: str = "AES1") -> Secured:
    """ZRTP's result as the call layer carries it to the phone."""
    return Secured(
        sas=sas,
        sas_scheme=scheme,
        verified=verified,
        cipher=cipher,
        auth_tag="HS80",
        key_agreement="X255",
        hash="S256",
        role="initiator",
        peer_zid=bytes(12),
        cache_mismatch=False,
    )


def finished(call_id: str, reason: str = "", status: int | None = None) -> CallFinished:
    return CallFinished(call_id, reason, by_peer=True, status=status)


def not_secure(reason: str) -> MediaSecurityFailed:
    """What the media says under "prefer" for a peer without ZRTP: not fatal."""
    return MediaSecurityFailed(reason, None, fatal=False, peer_without_zrtp=True)


def security_failed(reason: str) -> MediaSecurityFailed:
    return MediaSecurityFailed(reason, None, fatal=True, peer_without_zrtp=True)


class Phone:
    """A phone state plus everything it commanded, with time moved by hand."""

    def __init__(self, settings: PhoneSettings = SETTINGS) -> None:
        self.state = initial_state(settings, now=100.0)
        self.log: list[Command] = []

    def do(self, *events: ReducerInput) -> list[Command]:
        out: list[Command] = []
        for event in events:
            self.state, commands = reduce(self.state, event)
            out += commands
        self.log += out
        return out

    def at(self, now: float) -> list[Command]:
        return self.do(Tick(now))


def call_of(phone: Phone) -> CallView:
    call = phone.state.call
    assert call is not None
    return call


def connected_call(call_id: str = "c1") -> Phone:
    phone = Phone()
    phone.do(RegistrationChanged("registered"), LIFT, key("speed1"), OutgoingCall(call_id, "x"))
    phone.do(CallRinging(call_id), CallConnected(call_id))
    return phone


def test_lifting_the_handset_gives_dial_tone_and_putting_it_down_stops_it() -> None:
    phone = Phone()
    assert phone.do(LIFT) == [PlayTone("dial")]
    assert phone.state.dialing
    assert phone.do(PUT_DOWN) == [PlayTone(None)]
    assert not phone.state.dialing


def test_digits_stop_the_dial_tone_and_dial_after_the_inter_digit_timeout() -> None:
    phone = Phone()
    phone.do(LIFT)
    assert phone.do(key("0")) == [PlayTone(None)]
    phone.do(key("4"), key("4"))
    assert phone.state.digits == "044"
    assert next_deadline(phone.state) == 104.0
    assert phone.at(103.9) == []
    assert phone.at(104.0) == [PlaceCall("044")]
    assert call_of(phone).outgoing
    assert phone.state.last_number == "044"


def test_hash_dials_at_once_and_backspace_deletes() -> None:
    phone = Phone()
    phone.do(LIFT, key("1"), key("2"), key("3"), key("back"))
    assert phone.state.digits == "12"
    assert phone.do(key("#")) == [PlaceCall("12")]


def test_backspace_to_nothing_brings_back_the_dial_tone() -> None:
    phone = Phone()
    phone.do(LIFT, key("1"))
    assert phone.do(key("back")) == [PlayTone("dial")]
    assert phone.state.digit_deadline is None


def test_digits_typed_on_hook_are_dialled_by_lifting_the_handset() -> None:
    phone = Phone()
    phone.do(key("5"), key("5"))
    assert phone.state.digit_deadline is None  # no timeout before the handset is up
    assert phone.do(LIFT) == [PlaceCall("55")]


def test_speed_dial_and_redial() -> None:
    phone = Phone()
    assert phone.do(key("speed1")) == [PlaceCall("+41446681800")]
    phone.do(OutgoingCall("c1", "+41446681800"), finished("c1"))
    phone.at(200.0)
    assert phone.do(key("redial")) == [PlaceCall("+41446681800")]
    assert phone.do(key("speed9")) == []  # no such slot, and a call is already up


def test_holding_a_digit_dials_its_speed_dial() -> None:
    phone = Phone()
    phone.do(LIFT, key("1"))
    assert phone.do(KeyEvent("1", repeat=True)) == [PlaceCall("+41446681800")]
    assert phone.state.digits == ""


def test_holding_a_digit_after_others_or_without_a_speed_dial_does_nothing() -> None:
    phone = Phone()
    phone.do(LIFT, key("2"), key("1"))
    assert phone.do(KeyEvent("1", repeat=True)) == []
    phone.do(key("hangup"), key("7"))
    assert phone.do(KeyEvent("7", repeat=True)) == []
    assert phone.state.digits == "7"
    assert phone.state.digit_deadline is not None  # still dialled after the timeout


def test_unknown_speed_dial_does_nothing() -> None:
    assert Phone().do(key("speed7")) == []


def test_outgoing_call_ringback_answer_and_hang_up_by_hook() -> None:
    phone = Phone()
    phone.do(LIFT)
    assert phone.do(key("speed1")) == [PlaceCall("+41446681800"), PlayTone(None)]
    phone.do(OutgoingCall("c1", "+41446681800"))
    assert phone.do(CallRinging("c1")) == [PlayTone("ringback")]
    phone.at(110.0)
    assert phone.do(CallConnected("c1")) == [PlayTone(None)]
    assert call_of(phone).connected_at == 110.0
    assert phone.do(PUT_DOWN) == [Hangup("c1")]
    assert phone.state.call is None
    assert phone.state.notice == "Call ended"
    phone.do(finished("c1"))  # the engine confirms: nothing more happens
    assert phone.state.notice == "Call ended"
    phone.at(110.0 + SETTINGS.notice_time)
    assert phone.state.notice == ""


def test_first_fact_about_a_placed_call_gives_it_its_id() -> None:
    phone = Phone()
    phone.do(LIFT, key("speed1"))
    phone.do(CallRinging("x9"))
    assert call_of(phone).call_id == "x9"
    assert call_of(phone).phase == "alerting"


def test_hanging_up_before_the_engine_names_the_call_cancels_it_later() -> None:
    phone = Phone()
    phone.do(LIFT, key("speed1"))
    assert phone.do(PUT_DOWN) == []
    assert phone.do(OutgoingCall("c1", "+41446681800")) == [Hangup("c1")]
    assert not phone.state.cancel_outgoing


def test_busy_plays_the_busy_tone_until_the_handset_goes_down() -> None:
    phone = Phone()
    phone.do(LIFT, key("speed1"), OutgoingCall("c1", "n"))
    assert phone.do(finished("c1", "Busy Here", status=486)) == [PlayTone("busy")]
    assert phone.state.notice == "Busy"
    assert phone.do(key("5")) == []  # no dialling until hung up
    assert phone.do(PUT_DOWN) == [PlayTone(None)]


def test_failed_call_plays_congestion_and_names_the_reason() -> None:
    phone = Phone()
    phone.do(LIFT, key("speed1"), OutgoingCall("c1", "n"))
    assert phone.do(finished("c1", "Not Found", status=404)) == [PlayTone("congestion")]
    assert phone.state.notice == "Call failed: Not Found"
    assert phone.do(key("hangup")) == [PlayTone("dial")]  # fresh dial tone


def test_incoming_call_rings_and_is_answered_by_lifting_the_handset() -> None:
    phone = Phone()
    assert phone.do(BOB_CALLS) == [Ring(True)]
    assert phone.do(LIFT) == [Answer("c2"), Ring(False)]
    assert call_of(phone).phase == "connected"
    phone.do(CallConnected("c2"))
    assert call_of(phone).connected_at == 100.0


def test_incoming_call_answered_by_key_then_ended_by_key() -> None:
    phone = Phone()
    phone.do(BOB_CALLS)
    assert phone.do(key("answer")) == [Answer("c2"), Ring(False)]
    assert phone.do(key("hangup")) == [Hangup("c2")]


def test_incoming_call_rejected() -> None:
    phone = Phone()
    phone.do(BOB_CALLS)
    assert phone.do(key("hangup")) == [Reject("c2"), Ring(False)]
    assert phone.state.call is None


def test_missed_call_is_shown() -> None:
    phone = Phone()
    phone.do(BOB_CALLS)
    assert phone.do(finished("c2", "cancelled")) == [Ring(False)]
    assert phone.state.notice == "Missed: Bob"


def test_incoming_call_while_dialling_plays_a_tone_instead_of_ringing() -> None:
    phone = Phone()
    phone.do(LIFT, key("1"))
    assert phone.do(BOB_CALLS) == [PlayTone("call_waiting")]
    assert phone.state.digits == ""
    assert phone.do(PUT_DOWN) == [PlayTone(None), Ring(True)]


def test_do_not_disturb_rejects_calls() -> None:
    phone = Phone()
    phone.do(key("dnd"))
    assert phone.state.dnd
    assert phone.do(BOB_CALLS) == [Reject("c2")]
    phone.do(key("dnd"))
    assert phone.do(CallIncoming("c3", remote_uri="+1555", remote_name="Bob")) == [Ring(True)]
    assert phone.do(key("dnd")) == [Reject("c3"), Ring(False)]


def test_secure_call_sas_confirmed() -> None:
    phone = connected_call()
    phone.do(CallSecure("c1", secured("4jw5", "B32", verified=False, cipher="AES1")))
    call = phone.state.call
    assert call is not None
    assert (call.security, call.sas, call.verified) == ("secure", "4jw5", False)
    assert phone.do(key("sas_confirm")) == [ConfirmSas("c1", True)]
    assert call_of(phone).verified
    assert phone.do(key("sas_confirm")) == []  # once is enough


def test_sas_rejected_ends_the_call_and_clears_the_flag() -> None:
    phone = connected_call()
    phone.do(CallSecure("c1", secured("4jw5", "B32", verified=True)))
    assert phone.do(key("sas_reject")) == [ConfirmSas("c1", False), Hangup("c1")]
    assert phone.state.notice == "SAS rejected"


def test_sas_keys_do_nothing_before_the_call_is_secure() -> None:
    phone = connected_call()
    assert phone.do(key("sas_confirm"), key("sas_reject")) == []


def test_not_secure_under_prefer() -> None:
    phone = connected_call()
    phone.do(CallInsecure("c1", not_secure("no ZRTP")))
    assert call_of(phone).security == Security.INSECURE


def test_security_failure_is_named_when_the_call_ends() -> None:
    phone = connected_call()
    phone.do(CallSecurityFailed("c1", security_failed("no Hello")))
    assert phone.do(finished("c1", "security")) == [PlayTone("congestion")]
    assert phone.state.notice == "Security failed: no Hello"


def test_cache_mismatch_warning_stays_until_the_sas_is_settled() -> None:
    phone = connected_call()
    phone.do(CallSecure("c1", secured("4jw5", "B32", verified=True)))
    phone.do(CallMismatch("c1"))
    call = phone.state.call
    assert call is not None
    assert call.mismatch
    assert not call.verified
    held_by_peer = CallHeld("c1", local_hold=False, remote_hold=True)
    assert phone.do(key("1"), Tick(500.0), held_by_peer) == [SendDtmf("c1", "1")]
    assert call_of(phone).mismatch
    # "#" reads as "OK" but confirms nothing: it stays a DTMF digit and the warning stays
    assert phone.do(key("#")) == [SendDtmf("c1", "#")]
    assert call_of(phone).mismatch


def test_sas_matches_on_the_mismatch_warning_closes_it_and_verifies_at_once() -> None:
    """One press: the warning goes, the SAS is verified and the cache keeps the new secret
    (the switchboard's ConfirmSas); a second press has nothing left to do."""
    phone = connected_call()
    phone.do(CallMismatch("c1"), CallSecure("c1", secured("4jw5", "B32", verified=False)))
    assert call_of(phone).mismatch
    assert phone.do(key("sas_confirm")) == [ConfirmSas("c1", True)]
    call = call_of(phone)
    assert not call.mismatch and call.verified
    assert render(phone.state, phone.state.now).verified
    assert phone.do(key("sas_confirm")) == []


def test_sas_differs_on_the_mismatch_warning_ends_the_call() -> None:
    phone = connected_call()
    phone.do(CallMismatch("c1"), CallSecure("c1", secured("4jw5", "B32", verified=False)))
    assert phone.do(key("sas_reject")) == [ConfirmSas("c1", False), Hangup("c1")]
    assert phone.state.call is None
    assert phone.state.notice == "SAS rejected"
    assert render(phone.state, phone.state.now).alert


def test_sas_matches_before_the_sas_is_known_confirms_nothing() -> None:
    phone = connected_call()
    phone.do(CallMismatch("c1"))
    assert phone.do(key("sas_confirm")) == []
    assert call_of(phone).mismatch and not call_of(phone).verified
    assert phone.do(key("sas_reject")) == [Hangup("c1")]


def test_hold_resume_mute_volume_and_dtmf() -> None:
    phone = connected_call()
    assert phone.do(key("hold")) == [Hold("c1")]
    assert call_of(phone).held
    assert phone.do(key("hold")) == [Resume("c1")]
    assert phone.do(key("mute")) == [SetMute(True)]
    assert phone.do(key("volume_up")) == [SetVolume(60)]
    assert phone.do(KeyEvent("volume_down", repeat=True)) == [SetVolume(50)]
    assert phone.do(key("5"), key("#")) == [SendDtmf("c1", "5"), SendDtmf("c1", "#")]
    assert call_of(phone).dtmf == "5#"
    # mute does not outlive the call
    assert phone.do(key("hangup")) == [Hangup("c1"), SetMute(False)]


def test_volume_stays_between_0_and_100() -> None:
    phone = Phone()
    for _ in range(20):
        phone.do(key("volume_up"))
    assert phone.state.volume == 100
    assert phone.do(key("volume_up")) == []


def test_hold_by_the_engine_and_by_the_peer() -> None:
    phone = connected_call()
    phone.do(CallHeld("c1", local_hold=False, remote_hold=True))
    assert call_of(phone).held_by_peer and not call_of(phone).held
    phone.do(CallHeld("c1", local_hold=False, remote_hold=False))
    phone.do(CallHeld("c1", local_hold=True, remote_hold=False))
    assert call_of(phone).held and not call_of(phone).held_by_peer
    phone.do(CallHeld("c1", local_hold=False, remote_hold=False))
    assert not call_of(phone).held and not call_of(phone).held_by_peer


def test_call_waiting_answer_holds_the_first_call_and_hold_swaps() -> None:
    phone = connected_call()
    assert phone.do(BOB_CALLS) == [PlayTone("call_waiting")]
    assert phone.do(key("answer")) == [Hold("c1"), Answer("c2"), PlayTone(None)]
    assert call_of(phone).call_id == "c2"
    assert phone.state.other is not None
    assert phone.state.other.held
    assert phone.do(key("hold")) == [Hold("c2"), Resume("c1")]
    assert call_of(phone).call_id == "c1"
    # the first call ends: the held one moves up, still held
    phone.do(finished("c1"))
    assert call_of(phone).call_id == "c2"
    assert call_of(phone).held
    assert phone.do(key("hold")) == [Resume("c2")]


def test_a_held_call_comes_back_when_the_handset_is_lifted() -> None:
    phone = Phone()
    phone.do(BOB_CALLS, key("answer"))  # answered on hook, by key
    assert phone.do(key("hold")) == [Hold("c2")]
    assert phone.do(LIFT) == [Resume("c2")]
    assert not call_of(phone).held


def test_do_not_disturb_can_be_set_during_a_call() -> None:
    phone = connected_call()
    phone.do(key("dnd"))
    assert phone.state.dnd
    assert phone.do(BOB_CALLS) == [Reject("c2")]


def test_call_waiting_rejected_and_a_third_call_refused() -> None:
    phone = connected_call()
    phone.do(BOB_CALLS)
    assert phone.do(CallIncoming("c3", remote_uri="+666", remote_name="Eve")) == [Reject("c3")]
    assert phone.do(key("hangup")) == [Reject("c2"), PlayTone(None)]
    assert call_of(phone).call_id == "c1"


def test_hanging_up_with_a_call_waiting_lets_it_ring() -> None:
    phone = connected_call()
    phone.do(BOB_CALLS)
    assert phone.do(PUT_DOWN) == [Hangup("c1"), PlayTone(None), Ring(True)]
    assert phone.do(LIFT) == [Answer("c2"), Ring(False)]


def test_waiting_caller_gives_up() -> None:
    phone = connected_call()
    phone.do(BOB_CALLS)
    assert phone.do(finished("c2")) == [PlayTone(None)]
    assert phone.state.other is None


def test_registration_changes_are_kept_with_the_reason() -> None:
    phone = Phone()
    phone.do(RegistrationChanged("failed", "403 Forbidden"))
    assert (phone.state.registration, phone.state.registration_reason) == (
        "failed",
        "403 Forbidden",
    )


def test_facts_about_unknown_calls_are_ignored() -> None:
    phone = connected_call()
    before = phone.state
    assert phone.do(CallRinging("zz"), finished("zz"), CallDtmf("c1", MediaDtmf("5"))) == []
    assert phone.state == before


def test_releases_and_repeats_of_ordinary_keys_are_ignored() -> None:
    phone = Phone()
    phone.do(LIFT)
    assert phone.do(KeyEvent("1", pressed=False), KeyEvent("1", repeat=True)) == []
    assert phone.state.digits == ""


def test_now_argument_advances_the_clock() -> None:
    phone = Phone()
    state, _ = reduce(phone.state, LIFT, now=150.0)
    assert state.now == 150.0
    assert state.last_input == 150.0


def test_display_deadlines_follow_the_last_input() -> None:
    phone = Phone()
    assert next_deadline(phone.state) == 130.0
    phone.at(130.0)
    assert next_deadline(phone.state) == 400.0
    phone.at(400.0)
    assert next_deadline(phone.state) is None


EVENTS = st.one_of(
    st.sampled_from(
        [
            LIFT,
            PUT_DOWN,
            *(
                key(k)
                for k in [
                    *"0123456789*#",
                    "answer",
                    "hangup",
                    "hold",
                    "mute",
                    "sas_confirm",
                    "sas_reject",
                    "back",
                    "redial",
                    "speed1",
                    "dnd",
                    "volume_up",
                ]
            ),
        ]
    ),
    st.builds(Tick, st.floats(100, 1000)),
    st.builds(CallIncoming, st.sampled_from(["c1", "c2", "c3"]), st.just("1"), st.just("B")),
    st.builds(OutgoingCall, st.sampled_from(["c1", "c4"]), st.just("1")),
    st.builds(OutgoingCallFailed, st.just("Cannot call: no route")),
    st.builds(CallPlaced, st.sampled_from(["c1", "c4"]), st.just("1")),
    st.builds(CallRinging, st.sampled_from(["c1", "c2", "c4"])),
    st.builds(CallConnected, st.sampled_from(["c1", "c2", "c4"])),
    st.builds(
        finished, st.sampled_from(["c1", "c2", "c3", "c4"]), status=st.sampled_from([None, 486])
    ),
    st.builds(
        CallSecure,
        st.sampled_from(["c1", "c2", "c4"]),
        st.builds(secured, st.just("abcd"), st.just("B32"), verified=st.booleans()),
    ),
    st.builds(CallMismatch, st.sampled_from(["c1", "c2", "c4"])),
    st.builds(CallInsecure, st.sampled_from(["c1", "c4"]), st.just(not_secure("no ZRTP"))),
    st.builds(
        CallSecurityLost, st.sampled_from(["c1", "c2"]), st.just(MediaSecurityLost("GoClear"))
    ),
    st.builds(CallHeld, st.sampled_from(["c1", "c2"]), st.booleans(), st.booleans()),
    st.builds(CallVerified, st.sampled_from(["c1", "c2"]), st.booleans()),
    st.builds(MediaFault, st.just("capture failed"), st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_any_sequence_keeps_the_phone_consistent(events: list[ReducerInput]) -> None:
    state: PhoneState = initial_state(SETTINGS, now=100.0)
    for event in events:
        state, commands = reduce(state, event)
        ids = [c.call_id for c in (state.call, state.other) if c is not None and c.call_id]
        assert len(ids) == len(set(ids))
        if state.other is not None:
            assert state.call is not None
        assert 0 <= state.volume <= 100
        tones = [c for c in commands if isinstance(c, PlayTone)]
        assert len(tones) <= 1
        if not state.off_hook and state.call is None:
            assert state.tone is None
        screen = render(state, state.now)
        assert screen.brightness in {"normal", "dim", "off"}


# --------------------------------------------------------------------------- security lost


def lost_call() -> Phone:
    phone = connected_call()
    phone.do(CallSecure("c1", secured("4jw5", "B32", verified=False, cipher="AES1")))
    phone.do(Tick(110.0))
    commands = phone.do(
        CallSecurityLost("c1", MediaSecurityLost("the peer asked to stop encryption (GoClear)"))
    )
    assert PlayTone("congestion") in commands  # heard, not only seen
    assert call_of(phone).security == "lost"
    return phone


def test_security_lost_warns_full_screen_then_ends_the_call() -> None:
    phone = lost_call()
    screen = render(phone.state, 110.0)
    assert screen.alert and screen.title == "SECURITY LOST"
    assert screen.lines == ("Audio stopped.", "Call ends in 10 s", "# = stay on the line")
    assert render(phone.state, 116.2).lines[1] == "Call ends in 4 s"
    assert next_deadline(phone.state) == 120.0
    assert phone.at(119.9) == []  # other keys do nothing meanwhile
    assert phone.do(KeyEvent("5")) == [] and phone.do(KeyEvent("hold")) == []
    commands = phone.at(120.0)
    assert Hangup("c1") in commands and PlayTone(None) in commands
    assert phone.state.call is None and phone.state.notice == "Security lost: call ended"


def test_security_lost_hash_keeps_the_line_silent() -> None:
    phone = lost_call()
    assert phone.do(KeyEvent("#")) == [PlayTone(None)]
    assert call_of(phone).lost_deadline is None and call_of(phone).security == "lost"
    assert phone.at(200.0) == [] and phone.state.call is not None
    screen = render(phone.state, 200.0)
    assert not screen.alert and screen.big == "NO AUDIO" and screen.big_inverse
    assert "insecure" in screen.icons and "secure" not in screen.icons
    # a new exchange restores it
    phone.do(CallSecure("c1", secured("4jw5", "B32", verified=False, cipher="AES1")))
    assert call_of(phone).security == "secure" and render(phone.state, 201.0).big == "4jw5"


def test_security_lost_hangup_key_ends_the_call_at_once() -> None:
    phone = lost_call()
    commands = phone.do(KeyEvent("hangup"))
    assert Hangup("c1") in commands and phone.state.call is None
