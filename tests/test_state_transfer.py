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
    Transfer,
    TransferToCall,
)
from pidphone.app.screen import render
from pidphone.ports import HookEvent, Screen
from pidphone.sip.events import TransferEnded, TransferProgress
from tests.test_state import Phone, call_of, connected_call, key, secured, security_failed


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
    # and once a transfer failed, the call is ours again: it rings back
    phone = connected_call("c1")
    phone.do(key("transfer"), key("7"), key("#"))
    phone.do(CallTransferEnded("c1", TransferEnded("c1", False, 486, "Busy Here")))
    assert phone.do(HookEvent(off_hook=False)) == [Ring(True)]
