"""Call transfer between three user agents back to back (RFC 3515 REFER and its NOTIFYs, RFC
3891 Replaces, RFC 4488 Refer-Sub, RFC 5589 flows), with time moved by hand: blind and
attended transfer, refusal and failure, the bounds on every wait, and what a transferee does
with a REFER it must not follow."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.ports import Address
from pidphone.sip import Request, Response, parse_message
from pidphone.sip import events as ev
from pidphone.sip.agent import UserAgent
from pidphone.sip.errors import SipParseError
from pidphone.sip.refer import NOTIFIER_TIME, REFER_DECISION_TIME, TRANSFER_TIME
from pidphone.sip.replaces import ReferTarget, Replaces
from pidphone.sip.sipfrag import parse_status_line, status_line
from tests.harness import ALICE_ADDR, ANSWER, BOB_ADDR, OFFER, REGISTRAR, make_agent, proxied_phones
from tests.harness import SipNetwork as Network
from tests.harness import agent_events as events

CAROL_ADDR: Address = ("127.0.0.1", 5063)
CAROL = "sips:carol@127.0.0.1:5063"


def three_phones() -> tuple[Network, UserAgent, UserAgent, UserAgent]:
    net = Network()
    alice = make_agent("sips:alice@127.0.0.1", 1, display_name="Alice A")
    bob = make_agent("sips:bob@127.0.0.1", 2)
    carol = make_agent("sips:carol@127.0.0.1", 3)
    for address, agent in ((ALICE_ADDR, alice), (BOB_ADDR, bob), (CAROL_ADDR, carol)):
        net.add(address, agent)
    return net, alice, bob, carol


def connect(net: Network, caller: UserAgent, callee: UserAgent, uri: str, now: float) -> str:
    call_id = caller.invite(uri, OFFER, now)
    net.run(now)
    (incoming,) = events(callee)
    assert isinstance(incoming, ev.IncomingCall) and incoming.replaces is None
    callee.answer(call_id, ANSWER, now)
    net.run(now)
    assert events(caller) == [ev.CallAnswered(call_id, ANSWER)]
    assert events(callee) == [ev.CallEstablished(call_id)]
    return call_id


def sent(net: Network, method: str) -> list[Request]:
    out = []
    for _, _, data in net.wire:
        if not data.strip():
            continue
        message = parse_message(data)
        if isinstance(message, Request) and message.method == method:
            out.append(message)
    return out


def answers(net: Network, method: str) -> list[Response]:
    out = []
    for _, _, data in net.wire:
        if not data.strip():
            continue
        message = parse_message(data)
        if isinstance(message, Response) and message.cseq.method == method:
            out.append(message)
    return out


def blind_refer(now: float = 2.0) -> tuple[Network, UserAgent, UserAgent, UserAgent, str]:
    net, alice, bob, carol = three_phones()
    call_id = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    alice.refer(call_id, CAROL, now)
    net.run(now)
    (received,) = events(bob)
    assert received == ev.ReferReceived(call_id, CAROL, None, "Alice A <sips:alice@127.0.0.1>")
    return net, alice, bob, carol, call_id


def test_blind_transfer_followed_to_the_end() -> None:
    net, alice, bob, carol, call_id = blind_refer()
    (refer,) = sent(net, "REFER")
    assert refer.header("Refer-To") == f"<{CAROL}>"
    assert refer.to.tag and refer.from_.tag  # in the call's dialog
    assert refer.contacts

    bob.accept_refer(call_id, 2.1)
    net.run(2.1)
    assert [a.status for a in answers(net, "REFER")] == [202]
    assert events(alice) == [ev.TransferProgress(call_id, 100, "Trying")]

    new_call = bob.invite_referred(CAROL, OFFER, 2.2)
    net.run(2.2)
    assert isinstance(events(carol)[0], ev.IncomingCall)
    carol.ringing(new_call, 2.3)
    net.run(2.3)
    bob.refer_progress(call_id, 180, "Ringing", 2.3)
    bob.refer_progress(call_id, 180, "Ringing", 2.3)  # the same status again: no NOTIFY
    net.run(2.3)
    assert events(alice) == [ev.TransferProgress(call_id, 180, "Ringing")]
    carol.answer(new_call, ANSWER, 3.0)
    net.run(3.0)
    bob.refer_progress(call_id, 200, "OK", 3.0)
    net.run(3.0)
    assert events(alice) == [ev.TransferEnded(call_id, True, 200, "OK")]

    notifies = sent(net, "NOTIFY")
    assert [parse_status_line(n.body) for n in notifies] == [
        (100, "Trying"),
        (180, "Ringing"),
        (200, "OK"),
    ]
    assert {n.header("Event") for n in notifies} == {f"refer;id={refer.cseq.seq}"}
    assert (notifies[0].header("Subscription-State") or "").startswith("active")
    assert notifies[-1].header("Subscription-State") == "terminated;reason=noresource"
    assert notifies[0].header("Content-Type") == "message/sipfrag;version=2.0"
    assert [a.status for a in answers(net, "NOTIFY")] == [200, 200, 200]

    assert [type(e) for e in events(bob)] == [ev.CallProgress, ev.CallAnswered]
    # the transferor hangs up the transferred call; a late NOTIFY finds no subscription
    alice.hangup(call_id, 3.5)
    net.run(3.5)
    assert events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    bob.refer_progress(call_id, 200, "OK", 3.6)
    net.run(3.6)
    assert len(sent(net, "NOTIFY")) == 3


def test_refused_refer_ends_the_transfer() -> None:
    net, alice, bob, _, call_id = blind_refer()
    bob.reject_refer(call_id, 603, 2.1)
    net.run(2.1)
    assert events(alice) == [ev.TransferEnded(call_id, False, 603, "Declined")]
    assert sent(net, "NOTIFY") == []
    with pytest.raises(LocalProtocolError):
        bob.accept_refer(call_id, 2.2)  # answered already
    # the call goes on: a new transfer may be tried
    alice.refer(call_id, CAROL, 2.5)
    net.run(2.5)
    assert isinstance(events(bob)[0], ev.ReferReceived)


def test_failed_new_call_fails_the_transfer() -> None:
    net, alice, bob, _, call_id = blind_refer()
    bob.accept_refer(call_id, 2.1)
    bob.refer_progress(call_id, 486, "Busy Here", 2.5)
    net.run(2.5)
    assert events(alice) == [
        ev.TransferProgress(call_id, 100, "Trying"),
        ev.TransferEnded(call_id, False, 486, "Busy Here"),
    ]


def test_unanswered_refer_is_declined_in_time() -> None:
    net, alice, bob, _, call_id = blind_refer(now=2.0)
    assert bob.get_timer() == pytest.approx(2.0 + REFER_DECISION_TIME)
    now = 2.0 + REFER_DECISION_TIME
    bob.handle_timer(now)
    net.run(now)
    assert events(alice) == [ev.TransferEnded(call_id, False, 603, "Declined")]
    assert REFER_DECISION_TIME < 32.0  # before the transferor's Timer F


def test_no_outcome_ends_both_sides_in_time() -> None:
    net, alice, bob, _, call_id = blind_refer(now=2.0)
    bob.accept_refer(call_id, 2.0)
    net.run(2.0)
    assert events(alice) == [ev.TransferProgress(call_id, 100, "Trying")]
    now = 2.0 + TRANSFER_TIME
    alice.handle_timer(now)
    net.run(now)
    assert events(alice) == [ev.TransferEnded(call_id, False, None, "No transfer outcome")]
    now = 2.0 + NOTIFIER_TIME
    bob.handle_timer(now)
    net.run(now)
    last = sent(net, "NOTIFY")[-1]
    assert parse_status_line(last.body) == (408, "Request Timeout")
    assert last.header("Subscription-State") == "terminated;reason=noresource"
    assert answers(net, "NOTIFY")[-1].status == 481  # the transferor gave up already
    timer = alice.get_timer()
    assert timer is None or timer > now  # nothing left to run


def test_attended_transfer_replaces_the_consultation_call() -> None:
    net, alice, bob, carol = three_phones()
    held = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    consult = connect(net, alice, carol, CAROL, 2.0)
    alice.refer_replacing(held, consult, 3.0)
    net.run(3.0)
    (received,) = events(bob)
    assert isinstance(received, ev.ReferReceived)
    assert received.target == CAROL
    assert received.replaces is not None
    replaces = Replaces.parse(received.replaces)
    assert replaces.call_id == consult
    (refer,) = sent(net, "REFER")
    assert "?Replaces=" in (refer.header("Refer-To") or "")
    assert "%3Bto-tag%3D" in (refer.header("Refer-To") or "")

    bob.accept_refer(held, 3.1)
    joined = bob.invite(received.target, OFFER, 3.2, replaces=received.replaces)
    net.run(3.2)
    (incoming,) = events(carol)
    assert isinstance(incoming, ev.IncomingCall)
    assert incoming.replaces == consult  # carol's own call with alice
    (invite,) = [r for r in sent(net, "INVITE") if r.call_id == joined]
    assert invite.header("Replaces") == received.replaces
    carol.answer(joined, ANSWER, 3.3)
    carol.hangup(consult, 3.3)  # the replaced call ends (RFC 3891 §3)
    net.run(3.3)
    bob.refer_progress(held, 200, "OK", 3.3)
    net.run(3.3)
    assert events(alice) == [
        ev.TransferProgress(held, 100, "Trying"),
        ev.CallEnded(consult, None, "Hung up by peer", True),
        ev.TransferEnded(held, True, 200, "OK"),
    ]


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (lambda r: r.with_tags("x", r.from_tag), 481),  # our tag wrong
        (lambda r: r.with_tags(r.to_tag, "x"), 481),  # the peer's tag wrong
        (lambda r: r.with_call_id("unknown"), 481),
        (lambda r: r.early(), 486),  # an established call is not early
    ],
)
def test_invite_with_replaces_must_name_an_established_call(
    mangle: Callable[[ReplacesEdit], ReplacesEdit], status: int
) -> None:
    net, alice, _, carol = three_phones()
    consult = connect(net, alice, carol, CAROL, 1.0)
    carol_call = next(r for r in sent(net, "INVITE") if r.call_id == consult)
    ok = next(a for a in answers(net, "INVITE") if a.status == 200)
    good = Replaces(consult, to_tag=ok.to.tag or "", from_tag=carol_call.from_.tag or "")
    mallory = make_agent("sips:mallory@127.0.0.1", 9)
    net.add(("127.0.0.1", 5066), mallory)
    mallory.invite(CAROL, OFFER, 2.0, replaces=str(mangle(ReplacesEdit(good)).value))
    net.run(2.0)
    assert answers(net, "INVITE")[-1].status == status
    assert all(not isinstance(e, ev.IncomingCall) for e in events(carol))
    # the right one is taken
    mallory.invite(CAROL, OFFER, 3.0, replaces=str(good))
    net.run(3.0)
    (incoming,) = [e for e in events(carol) if isinstance(e, ev.IncomingCall)]
    assert incoming.replaces == consult


class ReplacesEdit:
    def __init__(self, value: Replaces) -> None:
        self.value = value

    @property
    def to_tag(self) -> str:
        return self.value.to_tag

    @property
    def from_tag(self) -> str:
        return self.value.from_tag

    def with_tags(self, to_tag: str, from_tag: str) -> ReplacesEdit:
        return ReplacesEdit(Replaces(self.value.call_id, to_tag, from_tag))

    def with_call_id(self, call_id: str) -> ReplacesEdit:
        return ReplacesEdit(Replaces(call_id, self.value.to_tag, self.value.from_tag))

    def early(self) -> ReplacesEdit:
        return ReplacesEdit(Replaces(self.value.call_id, self.to_tag, self.from_tag, True))


def deliver_rewritten(
    net: Network, node: UserAgent, now: float, rewrite: Callable[[bytes], bytes]
) -> None:
    for data, peer in node.data_to_send():
        net.deliver(node, peer, rewrite(data), now)
    net.run(now)


@pytest.mark.parametrize(
    "refer_to",
    [
        "<tel:+15551234>",
        "<http://example.com/>",
        "<sips:127.0.0.1:5063>",  # no user
        "<sips:carol@127.0.0.1:5063;method=BYE>",
        "<sips:carol@127.0.0.1?Replaces=nonsense>",
        "not a uri",
    ],
)
def test_a_refer_the_phone_must_not_follow_is_answered_400(refer_to: str) -> None:
    net, alice, bob, _ = three_phones()
    call_id = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    alice.refer(call_id, CAROL, 2.0)
    deliver_rewritten(
        net,
        alice,
        2.0,
        lambda d: d.replace(f"Refer-To: <{CAROL}>".encode(), f"Refer-To: {refer_to}".encode()),
    )
    assert [a.status for a in answers(net, "REFER")] == [400]
    assert [type(e) for e in events(bob)] == [ev.RequestRejected]
    assert events(alice) == [ev.TransferEnded(call_id, False, 400, "Bad Request")]


def test_embedded_headers_other_than_replaces_are_dropped() -> None:
    target = ReferTarget.parse("<sips:carol@127.0.0.1?Route=%3Csips:evil.example%3E&Subject=hi>")
    assert str(target.uri) == "sips:carol@127.0.0.1"
    assert target.replaces is None


def test_one_transfer_at_a_time_and_a_bounded_number() -> None:
    net, alice, bob, _, call_id = blind_refer()
    with pytest.raises(LocalProtocolError):
        alice.refer(call_id, CAROL, 2.1)  # ours is still out
    with pytest.raises(LocalProtocolError):
        bob.refer(call_id, CAROL, 2.1)  # the peer's is undecided
    for attempt in range(2):
        bob.reject_refer(call_id, 603, 3.0 + attempt)
        net.run(3.0 + attempt)
        events(alice)
        alice.refer(call_id, CAROL, 3.5 + attempt)
        net.run(3.5 + attempt)
        assert isinstance(events(bob)[0], ev.ReferReceived)
    bob.reject_refer(call_id, 603, 6.0)
    net.run(6.0)
    events(alice)
    with pytest.raises(LocalProtocolError):
        alice.refer(call_id, CAROL, 6.5)  # MAX_REFERS reached


def test_notify_checks() -> None:
    net, alice, bob, _, call_id = blind_refer()
    bob.accept_refer(call_id, 2.1)
    deliver_rewritten(net, bob, 2.1, lambda d: d.replace(b"Event: refer", b"Event: dialog"))
    assert answers(net, "NOTIFY")[-1].status == 489
    bob.refer_progress(call_id, 180, "Ringing", 2.2)
    deliver_rewritten(
        net, bob, 2.2, lambda d: d.replace(b"SIP/2.0 180 Ringing", b"SIP/9.9 180 Ringing")
    )  # the same length: Content-Length still holds
    assert answers(net, "NOTIFY")[-1].status == 400
    assert [(type(e), getattr(e, "status", 0)) for e in events(alice)] == [
        (ev.RequestRejected, 489),
        (ev.RequestRejected, 400),
    ]
    bob.refer_progress(call_id, 183, "Session Progress", 2.3)
    net.run(2.3)
    assert events(alice) == [ev.TransferProgress(call_id, 183, "Session Progress")]


def test_refer_sub_false() -> None:
    net, alice, bob, _ = three_phones()
    call_id = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    alice.refer(call_id, CAROL, 2.0)
    deliver_rewritten(
        net, alice, 2.0, lambda d: d.replace(b"Refer-To:", b"Refer-Sub: false\r\nRefer-To:")
    )
    assert isinstance(events(bob)[0], ev.ReferReceived)
    bob.accept_refer(call_id, 2.1)
    net.run(2.1)
    (accepted,) = answers(net, "REFER")
    assert accepted.status == 202 and accepted.header("Refer-Sub") == "false"
    assert sent(net, "NOTIFY") == []
    assert events(alice) == [ev.TransferEnded(call_id, True, 202, "Transfer accepted")]


def test_sipfrag_status_lines() -> None:
    assert parse_status_line(b"SIP/2.0 200 OK\r\nContact: <sip:x@y>\r\n") == (200, "OK")
    assert parse_status_line(status_line(503)) == (503, "Service Unavailable")
    assert status_line(488, "No\r\nContact: x") == b"SIP/2.0 488 No  Contact: x\r\n"
    assert parse_status_line(status_line(486, "x" * 1000))[0] == 486
    for bad in (b"", b"SIP/2.0 2000 OK", b"SIP/2.0 099 Low", b"SIP/2.0 200 \x1b[2J", b"x" * 300):
        with pytest.raises(Exception) as info:
            parse_status_line(bad)
        assert type(info.value).__name__ == "SipParseError"


def test_the_dialog_outlives_the_call_while_the_transfer_runs() -> None:
    """The transferee hangs up the old call at once (some do, after the 202); its NOTIFYs
    still reach the transferor long after the call's own linger time."""
    net, alice, bob, _, call_id = blind_refer()
    bob.accept_refer(call_id, 2.1)
    bob.hangup(call_id, 2.2)
    net.run(2.2)
    assert [type(e) for e in events(alice)] == [ev.TransferProgress, ev.CallEnded]
    for now in (10.0, 40.0, 70.0):  # past LINGER (32 s) after the BYE
        alice.handle_timer(now)
        bob.handle_timer(now)
    bob.refer_progress(call_id, 200, "OK", 70.0)
    net.run(70.0)
    assert events(alice) == [ev.TransferEnded(call_id, True, 200, "OK")]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.binary(max_size=300))
def test_the_transfer_parsers_raise_only_their_parse_error(text: str, body: bytes) -> None:
    for parse in (ReferTarget.parse, Replaces.parse):
        with contextlib.suppress(SipParseError):
            parse(text)
    with contextlib.suppress(SipParseError):
        parse_status_line(body)
    quoted = f"<sips:carol@127.0.0.1?Replaces={quote(text, safe='')}>"
    try:
        target = ReferTarget.parse(quoted)
    except SipParseError:
        return
    assert target.uri.headers == ()  # nothing embedded reaches our INVITE but Replaces


def test_a_referred_call_goes_through_the_registrar_whatever_host_the_refer_names() -> None:
    _, _, bob, _ = proxied_phones()
    bob.invite_referred("sip:carol@192.0.2.9:5099", OFFER, 2.0)
    bob.invite("sip:dave@192.0.2.9:5099", OFFER, 2.0, replaces="x;to-tag=a;from-tag=b")
    assert {peer for _, peer in bob.data_to_send()} == {REGISTRAR}
    # a URI the user dials with a host and port of its own is called directly
    bob.invite("sip:carol@192.0.2.9:5099", OFFER, 3.0)
    assert ("192.0.2.9", 5099) in {peer for _, peer in bob.data_to_send()}


def referred_invite(net: Network, call_id: str) -> Request:
    (invite,) = [r for r in sent(net, "INVITE") if r.call_id == call_id]
    return invite


def test_the_call_a_refer_asked_for_carries_its_referred_by() -> None:
    """RFC 3892 §3: the transferee copies the REFER's Referred-By into the INVITE it sends, so
    the target's phone can say who transferred the caller; a call dialled by hand has none."""
    net, _, bob, _, call_id = blind_refer()
    (refer,) = sent(net, "REFER")
    assert refer.header("Referred-By") == "Alice A <sips:alice@127.0.0.1>"
    dialled = bob.invite(CAROL, OFFER, 2.05)  # before the transfer is accepted
    bob.accept_refer(call_id, 2.1)
    new_call = bob.invite_referred(CAROL, OFFER, 2.2)
    net.run(2.2)
    assert referred_invite(net, new_call).header("Referred-By") == (
        "Alice A <sips:alice@127.0.0.1>"
    )
    assert referred_invite(net, dialled).header("Referred-By") is None


def test_an_attended_transfer_carries_the_referred_by_too() -> None:
    net, alice, bob, carol = three_phones()
    held = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    consult = connect(net, alice, carol, CAROL, 2.0)
    alice.refer_replacing(held, consult, 3.0)
    net.run(3.0)
    (received,) = events(bob)
    assert isinstance(received, ev.ReferReceived)
    bob.accept_refer(held, 3.1)
    joined = bob.invite(received.target, OFFER, 3.2, replaces=received.replaces)
    net.run(3.2)
    invite = referred_invite(net, joined)
    assert invite.header("Referred-By") == "Alice A <sips:alice@127.0.0.1>"
    assert invite.header("Replaces") == received.replaces


@pytest.mark.parametrize(
    ("referred_by", "copied"),
    [
        (None, "Alice A <sips:alice@127.0.0.1>"),  # none: the REFER's From (no tag)
        (
            '"Boss" <sips:boss@example.org?Subject=x>;cid="<abc@example.org>";x=1',
            "Boss <sips:boss@example.org>;x=1",  # no URI headers, no token reference
        ),
        ("<tel:+15551234>", "Alice A <sips:alice@127.0.0.1>"),
        ("<<nonsense", "Alice A <sips:alice@127.0.0.1>"),
    ],
)
def test_a_referred_by_is_copied_only_in_a_clean_form(referred_by: str | None, copied: str) -> None:
    net, alice, bob, _ = three_phones()
    call_id = connect(net, alice, bob, "sips:bob@127.0.0.1:5062", 1.0)
    alice.refer(call_id, CAROL, 2.0)
    line = b"Referred-By: Alice A <sips:alice@127.0.0.1>\r\n"
    new = b"" if referred_by is None else f"Referred-By: {referred_by}\r\n".encode()
    deliver_rewritten(net, alice, 2.0, lambda d: d.replace(line, new))
    (received,) = events(bob)
    assert isinstance(received, ev.ReferReceived) and received.referred_by == copied
    bob.accept_refer(call_id, 2.1)
    new_call = bob.invite_referred(CAROL, OFFER, 2.2)
    net.run(2.2)
    assert referred_invite(net, new_call).header("Referred-By") == copied
