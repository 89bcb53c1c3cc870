"""The reducer and the screen during a transfer, told as stories: the "transfer" key, keying in
the target, blind and attended transfer, a failure that returns to the held call, and the
calls a transfer brings in (referred, replacing), each starting over on security."""

from __future__ import annotations

from pidphone.app.call_events import (
    CallConnected,
    CallFinished,
    CallHeld,
    CallReferred,
    CallReplaced,
    CallSecure,
    CallSecurityFailed,
    CallTransferEnded,
    CallTransferProgress,
)
from pidphone.app.call_state import CallState, Security
from pidphone.app.phone_events import (
    Hangup,
    Hold,
    OutgoingCall,
    PlaceCall,
    Resume,
    Ring,
    SendDtmf,
    SetMute,
    Transfer,
    TransferToCall,
)
from pidphone.app.screen import render
from pidphone.app.state import next_deadline
from pidphone.ports import HookEvent, Screen
from pidphone.sip.events import TransferEnded, TransferProgress
from tests.test_state import SETTINGS, Phone, call_of, connected_call, key, secured, security_failed


def screen(phone: Phone) -> Screen:
    return render(phone.state, phone.state.now)


def test_transfer_key_holds_the_call_and_takes_the_target() -> None:
    phone = connected_call("c1")
    assert phone.do(key("transfer")) == [Hold("c1")]
    assert call_of(phone).held and phone.state.transfer_from == "c1"
    assert screen(phone).title == "Transfer"
    phone.do(key("1"), key("0"), key("2"), key("back"), key("3"))
    assert screen(phone).big == "103"
    assert phone.do(key("#")) == [Transfer("c1", "103")]
    after = phone.state
    assert after.transfer_from is None and after.digits == ""
    assert screen(phone).lines[-1] == "Transferring to 103"
    phone.do(CallTransferProgress("c1", TransferProgress("c1", 180, "Ringing")))
    assert screen(phone).lines[-1] == "Transfer: Ringing"


def test_hangup_while_keying_in_goes_back_to_the_call() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"))
    assert phone.do(key("hangup")) == [Resume("c1")]
    assert not call_of(phone).held and phone.state.transfer_from is None
    assert phone.do(key("#")) == [SendDtmf("c1", "#")]  # a DTMF key again, not a transfer


def test_a_failed_blind_transfer_says_why_and_the_call_comes_back() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("7"), key("transfer"))
    ended = TransferEnded("c1", False, 486, "Busy Here")
    phone.do(CallTransferEnded("c1", ended))
    assert screen(phone).lines[-1] == "Transfer failed: Busy Here"
    phone.do(CallHeld("c1", local_hold=False, remote_hold=False))  # the switchboard resumed it
    assert not call_of(phone).held
    assert "hold" not in screen(phone).icons


def test_consultation_then_join() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"))
    assert phone.do(key("answer")) == [PlaceCall("5")]
    other = phone.state.other
    assert other is not None and other.call_id == "c1" and other.held
    phone.do(OutgoingCall("c2", "5"), CallConnected("c2"))
    assert call_of(phone).call_id == "c2"
    assert screen(phone).lines[-1].startswith("On hold: ")
    assert phone.do(key("transfer")) == [TransferToCall("c1", "c2")]
    assert screen(phone).lines[-1].startswith("Transferring ")
    phone.do(CallFinished("c2", "Transferred", by_peer=False))
    phone.do(CallFinished("c1", "Transferred", by_peer=False))
    assert phone.state.call is None and phone.state.other is None
    assert "Transferred" in (screen(phone).title, *screen(phone).lines)


def test_the_transfer_key_does_nothing_while_a_call_waits() -> None:
    phone = connected_call("c1")
    from pidphone.app.call_events import CallIncoming

    phone.do(CallIncoming("c9", "sips:x@y", "X"))
    assert phone.do(key("transfer")) == []
    assert phone.state.transfer_from is None


def test_being_transferred_shows_the_new_call_and_keeps_the_old_one_until_it_ends() -> None:
    phone = connected_call("c1")
    phone.do(CallSecure("c1", secured("ab12", "B32", verified=True)))
    phone.do(CallReferred("c1", "sips:carol@example.org", "c3"))
    new = call_of(phone)
    assert new.call_id == "c3" and new.phase == CallState.CALLING
    assert new.security == Security.NEGOTIATING and not new.verified and new.sas == ""
    assert screen(phone).lines[-1].startswith("Transferred by ")
    assert phone.state.other is not None and phone.state.other.call_id == "c1"
    # the new call fails: the old one moves back, and the screen says why
    phone.do(CallFinished("c3", "Busy Here", by_peer=True, status=486))
    assert call_of(phone).call_id == "c1"
    assert screen(phone).lines[-1] == "Transfer failed: Busy"


def test_being_transferred_to_a_phone_without_zrtp_says_so_under_require() -> None:
    phone = connected_call("c1")
    phone.do(CallReferred("c1", "sips:carol@example.org", "c3"), CallConnected("c3"))
    failure = security_failed("Peer does not support ZRTP")
    phone.do(CallSecurityFailed("c3", failure))
    assert screen(phone).title == "NOT SECURE"
    phone.do(CallFinished("c3", "Peer does not support ZRTP", by_peer=False))
    assert call_of(phone).call_id == "c1"
    assert screen(phone).lines[-1] == "Transfer failed: Peer does not support ZRTP"


def test_a_replacing_call_starts_over_on_security() -> None:
    phone = connected_call("c1")
    phone.do(CallSecure("c1", secured("ab12", "B32", verified=True)))
    phone.do(CallReplaced("c4", "c1", "sips:bob@example.org", "Bob"))
    new = call_of(phone)
    assert new.call_id == "c4" and new.phase == CallState.CONNECTED
    assert new.security == Security.NEGOTIATING and not new.verified
    assert screen(phone).title == "Bob"
    assert screen(phone).big == ""  # no SAS until its own exchange ends
    phone.do(CallFinished("c1", "Replaced by transfer", by_peer=False))  # the old one: gone
    assert call_of(phone).call_id == "c4"
    phone.do(CallSecure("c4", secured("zz99", "B32", verified=False)))
    assert screen(phone).big == "zz99" and not screen(phone).verified


def test_a_replacing_call_for_a_call_not_shown_is_hung_up() -> None:
    from pidphone.app.phone_events import Hangup

    phone = connected_call("c1")
    assert phone.do(CallReplaced("c4", "nope", "sips:x@y", "")) == [Hangup("c4")]


def test_transfer_while_the_consultation_still_rings_gives_it_up_and_transfers_blind() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"), key("answer"), OutgoingCall("c2", "5"))
    assert phone.do(key("transfer")) == [Hangup("c2"), Transfer("c1", "5")]
    assert call_of(phone).call_id == "c1" and phone.state.other is None
    assert screen(phone).lines[-1] == "Transferring to 5"
    phone.do(CallFinished("c2", "Cancelled", by_peer=False))  # the consultation: gone
    assert call_of(phone).call_id == "c1"


# --------------------------------------------------------------------------- the handset goes down


def test_the_handset_put_down_while_keying_a_target_leaves_the_call_on_hold_ringing_back() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"))
    assert phone.do(HookEvent(off_hook=False)) == [Ring(True)]  # no Hangup: the caller waits
    held = call_of(phone)
    assert held.held and held.recall and phone.state.transfer_from is None
    assert phone.state.digits == ""
    assert screen(phone).title == "Call on hold"
    assert screen(phone).lines == ("+41446681800", "Lift handset to resume")
    assert phone.do(HookEvent(off_hook=True)) == [Resume("c1"), Ring(False)]
    assert not call_of(phone).held and not call_of(phone).recall
    assert phone.do(key("5")) == [SendDtmf("c1", "5")]  # back in the call


def test_the_handset_put_down_during_a_consultation_ends_it_and_the_held_call_rings_back() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"), key("answer"), OutgoingCall("c2", "5"))
    phone.do(CallConnected("c2"))
    assert phone.do(HookEvent(off_hook=False)) == [Hangup("c2"), Ring(True)]
    assert call_of(phone).call_id == "c1" and call_of(phone).recall
    assert screen(phone).title == "Call on hold"
    assert phone.do(key("answer")) == [Resume("c1"), Ring(False)]  # or taken back by key
    assert not call_of(phone).held


def test_a_held_call_ringing_back_ends_by_hangup_or_when_its_peer_leaves() -> None:
    phone = connected_call("c1")
    phone.do(key("hold"))
    assert phone.do(HookEvent(off_hook=False)) == [Ring(True)]
    assert phone.do(CallFinished("c1", "", by_peer=True)) == [Ring(False)]
    assert phone.state.call is None
    phone = connected_call("c1")
    phone.do(key("hold"), HookEvent(off_hook=False))
    assert phone.do(key("hangup")) == [Hangup("c1"), Ring(False)]


def test_the_handset_put_down_after_a_blind_transfer_is_sent_still_hangs_up() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("7"), key("#"))
    assert phone.do(HookEvent(off_hook=False)) == [Hangup("c1")]
    assert_no_open_microphone(phone)
    # once a transfer failed with the handset up, the call is taken back at once: the
    # handset going down after that ends it like any call
    phone = connected_call("c1")
    phone.do(key("transfer"), key("7"), key("#"))
    assert phone.do(busy("c1")) == [Resume("c1")]
    phone.do(CallHeld("c1", local_hold=False, remote_hold=False))  # the switchboard says so
    assert phone.do(HookEvent(off_hook=False)) == [Hangup("c1")]
    assert_no_open_microphone(phone)


def busy(call_id: str) -> CallTransferEnded:
    return CallTransferEnded(call_id, TransferEnded(call_id, False, 486, "Busy Here"))


def assert_no_open_microphone(phone: Phone) -> None:
    """No call is taken off hold while the handset is down (and nothing rings to call the
    user to it), unless the microphone is muted."""
    state = phone.state
    live = [c for c in (state.call, state.other) if c is not None and c.call_id is not None]
    live = [c for c in live if c.phase == CallState.CONNECTED and not c.held]
    assert not (live and not state.off_hook and not state.ringing and not state.muted), state


def joining(phone: Phone) -> None:
    """c1 on hold, consultation call c2 up, and "transfer" pressed to join them."""
    phone.do(key("transfer"), key("5"), key("answer"), OutgoingCall("c2", "5"))
    phone.do(CallConnected("c2"))
    assert phone.do(key("transfer")) == [TransferToCall("c1", "c2")]


def test_the_handset_put_down_while_joining_completes_the_transfer() -> None:
    phone = connected_call("c1")
    joining(phone)
    # no Hangup of the consultation call (the transfer needs it): the microphone is muted
    assert phone.do(HookEvent(off_hook=False)) == [SetMute(True)]
    assert phone.state.muted and call_of(phone).call_id == "c2"
    assert_no_open_microphone(phone)
    phone.do(CallTransferEnded("c1", TransferEnded("c1", True, 200, "OK")))
    phone.do(CallFinished("c1", "Transferred", by_peer=False))
    assert phone.do(CallFinished("c2", "Transferred", by_peer=False)) == [SetMute(False)]
    after = phone.state
    assert after.call is None and after.other is None and not after.muted and not after.ringing
    assert "Transferred" in (screen(phone).title, *screen(phone).lines)


def test_a_join_that_fails_with_the_handset_down_ends_the_consultation_and_rings_back() -> None:
    phone = connected_call("c1")
    joining(phone)
    phone.do(HookEvent(off_hook=False))
    ended = CallTransferEnded("c1", TransferEnded("c1", False, 481, "Call Does Not Exist"))
    assert phone.do(ended) == [Hangup("c2"), SetMute(False), Ring(True)]  # no Resume
    held = call_of(phone)
    assert held.call_id == "c1" and held.held and held.recall and not phone.state.muted
    assert screen(phone).title == "Call on hold"
    assert_no_open_microphone(phone)
    assert phone.do(HookEvent(off_hook=True)) == [Resume("c1"), Ring(False)]


def test_a_join_that_fails_with_the_handset_up_keeps_the_consultation() -> None:
    phone = connected_call("c1")
    joining(phone)
    ended = CallTransferEnded("c1", TransferEnded("c1", False, 481, "Call Does Not Exist"))
    assert phone.do(ended) == []  # the user talks to c2; c1 stays on hold
    other = phone.state.other
    assert call_of(phone).call_id == "c2" and other is not None and other.held
    assert not other.transferring


def test_lifting_the_handset_while_joining_unmutes() -> None:
    phone = connected_call("c1")
    joining(phone)
    phone.do(HookEvent(off_hook=False))
    assert phone.do(HookEvent(off_hook=True)) == [SetMute(False)]
    assert not phone.state.muted and call_of(phone).call_id == "c2"


def test_a_transfer_sent_on_hook_that_fails_rings_back_instead_of_resuming() -> None:
    phone = connected_call("c1")
    phone.do(key("hold"), HookEvent(off_hook=False))  # on hold, ringing back
    phone.do(key("transfer"), key("7"), key("#"))  # transferred from the keys, on hook
    assert phone.log[-1] == Transfer("c1", "7")
    commands = phone.do(busy("c1"))
    assert Resume("c1") not in commands
    assert call_of(phone).held and call_of(phone).recall and phone.state.ringing
    assert_no_open_microphone(phone)


def test_a_failed_transfer_with_the_consultation_gone_rings_back_with_the_handset_down() -> None:
    phone = connected_call("c1")
    joining(phone)
    phone.do(HookEvent(off_hook=False))
    phone.do(CallFinished("c2", "", by_peer=True))  # the target hung up meanwhile
    assert call_of(phone).call_id == "c1" and not phone.state.muted
    assert phone.do(busy("c1")) == [Ring(True)]
    assert call_of(phone).recall
    assert_no_open_microphone(phone)


# --------------------------------------------------------------------------- recall ends


def test_a_held_call_rings_back_for_recall_after_then_ends_as_held_call_ended() -> None:
    phone = connected_call("c1")
    phone.do(CallSecure("c1", secured("ab12", "B32", verified=True)))
    phone.do(key("hold"))
    start = phone.state.now
    assert phone.do(HookEvent(off_hook=False)) == [Ring(True)]
    limit = start + SETTINGS.recall_after
    assert phone.at(limit - 0.1) == []  # still ringing back
    assert next_deadline(phone.state) == limit  # the loop wakes up for it
    assert phone.at(limit) == [Hangup("c1"), Ring(False)]
    assert phone.state.call is None
    assert "Held call ended" in (screen(phone).title, *screen(phone).lines)
    assert phone.at(limit + 600) == []  # nobody was there: the notice stays until someone is
    assert phone.state.notice == "Held call ended"
    record = phone.state.history[0]
    assert record.kind == "dialled" and record.duration == limit - 100.0
    assert_no_open_microphone(phone)


def test_a_recall_taken_back_in_time_has_no_time_limit_any_more() -> None:
    phone = connected_call("c1")
    phone.do(key("hold"), HookEvent(off_hook=False))
    limit = phone.state.now + SETTINGS.recall_after
    phone.do(HookEvent(off_hook=True))
    assert call_of(phone).recall_until is None
    assert phone.at(limit + 1) == []
    assert call_of(phone).call_id == "c1"


def test_a_consultation_ended_on_hook_starts_the_held_calls_time_limit() -> None:
    phone = connected_call("c1")
    phone.do(key("transfer"), key("5"), key("answer"), OutgoingCall("c2", "5"))
    phone.do(CallConnected("c2"), HookEvent(off_hook=False))
    assert call_of(phone).recall_until == phone.state.now + SETTINGS.recall_after
    assert phone.at(phone.state.now + SETTINGS.recall_after) == [Hangup("c1"), Ring(False)]
