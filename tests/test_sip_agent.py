"""Two user agents (and a test registrar) back to back over the harness's in-memory SIP
network (`tests.harness.SipNetwork`), with time moved by hand: registration with digest, calls,
CANCEL, BYE both ways, re-INVITE and glare, timeouts, and what the agent answers to bad
requests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.sip import Request, Response, parse_message
from pidphone.sip import events as ev
from pidphone.sip.agent import AgentConfig, Transport, UserAgent
from pidphone.sip.auth import DigestCredentials, parse_authorization
from tests.harness import (
    ALICE_ADDR,
    ANSWER,
    BOB_ADDR,
    HELD,
    HOLD,
    OFFER,
    REGISTRAR,
    SipNetwork,
    advance,
    agent_events,
    make_agent,
    proxied_phones,
    registered_alice,
    two_phones,
)
from tests.peers.sip_registrar import Proxy, Registrar

ALLOWED = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REFER", "NOTIFY"]

# ------------------------------------------------------------------ registration


def test_register_with_digest_then_refresh_then_unregister() -> None:
    net, alice, registrar = registered_alice()
    alice.register(0.0)
    net.run(0.0)
    assert agent_events(alice) == [ev.Registered(600, ("sip:alice@127.0.0.1:40000;transport=tls",))]
    first, second = registrar.requests
    assert "Authorization" not in dict(first.headers)
    auth = registrar.authorizations[0]
    assert (auth["algorithm"], auth["qop"], auth["nc"]) == ("SHA-256", "auth", "00000001")
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id
    contact = second.contacts[0]
    assert contact.uri.param("transport") == "tls"
    assert contact.param("reg-id") == "1"
    assert (contact.param("+sip.instance") or "").startswith('"<urn:uuid:')
    assert second.vias[0].param("rport") == ""
    assert second.header("Route") == "<sip:127.0.0.1:5070;transport=tls;lr>"
    assert second.header("User-Agent") == "pidphone/0.1.0"
    assert second.int_header("Max-Forwards") == 70
    # the refresh comes halfway through and reuses the credentials: no second challenge
    assert alice.get_timer() == 30.0  # the keep-alive comes first
    advance(net, [alice], 299.0)
    assert len(registrar.requests) == 2
    advance(net, [alice], 300.0)
    assert len(registrar.requests) == 3
    assert registrar.authorizations[-1]["nc"] == "00000002"
    assert agent_events(alice) == [ev.Registered(600, ("sip:alice@127.0.0.1:40000;transport=tls",))]
    alice.unregister(301.0)
    net.run(301.0)
    assert registrar.requests[-1].header("Expires") == "0"
    assert agent_events(alice) == [ev.Unregistered()]
    assert registrar.bindings == {}
    # the password never went on the wire, nor into a repr
    assert all(b"alicepw" not in data for _, _, data in net.wire)
    assert "alicepw" not in repr(alice.config)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
def test_register_with_each_digest_algorithm(algorithm: str) -> None:
    net, alice, registrar = registered_alice(algorithm=algorithm)
    alice.register(0.0)
    net.run(0.0)
    assert isinstance(agent_events(alice)[0], ev.Registered)
    assert registrar.authorizations[0]["algorithm"] == algorithm


def test_wrong_password_fails_without_retry() -> None:
    net, alice, _ = registered_alice(password="other")
    alice.register(0.0)
    net.run(0.0)
    assert agent_events(alice) == [ev.RegistrationFailed(401, "Authentication failed", None)]
    assert alice.get_timer() == 30.0  # keep-alive only, no retry


def test_interval_too_brief_uses_min_expires() -> None:
    net, alice, registrar = registered_alice(min_expires=1800)
    alice.register(0.0)
    net.run(0.0)
    assert agent_events(alice) == [
        ev.Registered(1800, ("sip:alice@127.0.0.1:40000;transport=tls",))
    ]
    assert registrar.requests[-1].header("Expires") == "1800"


def test_our_binding_found_among_others() -> None:
    net, alice, _ = registered_alice(other_bindings=("sip:alice@192.0.2.9:5061;transport=tls",))
    alice.register(0.0)
    net.run(0.0)
    (registered,) = agent_events(alice)
    assert isinstance(registered, ev.Registered)
    assert registered.expires == 600
    assert len(registered.contacts) == 2


def test_failure_retries_with_backoff() -> None:
    net, alice, registrar = registered_alice(fail_with=503)
    alice.register(0.0)
    net.run(0.0)
    (failed,) = agent_events(alice)
    assert isinstance(failed, ev.RegistrationFailed)
    assert failed.status == 503
    assert failed.retry_at is not None and 4.0 <= failed.retry_at <= 6.0
    advance(net, [alice], failed.retry_at)
    (again,) = agent_events(alice)
    assert isinstance(again, ev.RegistrationFailed)
    assert again.retry_at is not None and 8.0 <= again.retry_at - failed.retry_at <= 12.0
    registrar.fail_with = None
    advance(net, [alice], again.retry_at)
    assert isinstance(agent_events(alice)[-1], ev.Registered)


def test_timer_f_on_a_silent_registrar() -> None:
    net, alice, _ = registered_alice(silent=True)
    alice.register(0.0)
    net.run(0.0)
    advance(net, [alice], 31.9)
    assert agent_events(alice) == []
    advance(net, [alice], 32.0)
    (failed,) = agent_events(alice)
    assert isinstance(failed, ev.RegistrationFailed)
    assert (failed.status, failed.reason) == (None, "Request timeout")


def test_connection_loss_reregisters() -> None:
    net, alice, registrar = registered_alice()
    alice.register(0.0)
    net.run(0.0)
    agent_events(alice)
    net.cut(alice, REGISTRAR, 10.0)
    (lost,) = agent_events(alice)
    assert isinstance(lost, ev.RegistrationFailed)
    assert lost.reason == "Connection lost"
    assert lost.retry_at is not None
    advance(net, [alice], lost.retry_at)
    assert isinstance(agent_events(alice)[-1], ev.Registered)
    assert registrar.requests[-1].contacts[0].uri.port == 40001  # the new connection


def test_keepalive_ping_is_answered() -> None:
    net = SipNetwork()
    alice = make_agent("sip:alice@127.0.0.1", 1, transport=Transport.TLS)
    bob = make_agent("sip:bob@127.0.0.1", 2)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, bob)
    alice.invite("sip:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    advance(net, [alice, bob], 30.0)
    keepalives = [data for _, _, data in net.wire if data in (b"\r\n\r\n", b"\r\n")]
    assert keepalives == [b"\r\n\r\n", b"\r\n"]
    # once the peer has answered pings, a missing pong fails the flow (RFC 5626 §4.4.1)
    net.drop = lambda data: data == b"\r\n"
    advance(net, [alice, bob], 69.9)
    assert alice.flows_to_close() == []
    advance(net, [alice, bob], 70.0)
    assert alice.flows_to_close() == [BOB_ADDR]
    assert ev.FlowFailed(BOB_ADDR, "no answer to the keep-alive") in agent_events(alice)


# ------------------------------------------------------------------ calls


def ringing_call() -> tuple[SipNetwork, UserAgent, UserAgent, str]:
    net, alice, bob = two_phones()
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(bob) == [ev.IncomingCall(call_id, "sips:alice@127.0.0.1", "Alice A", OFFER)]
    bob.ringing(call_id, 0.1)
    net.run(0.1)
    assert agent_events(alice) == [ev.CallProgress(call_id, 180, "Ringing", None)]
    return net, alice, bob, call_id


def established_call() -> tuple[SipNetwork, UserAgent, UserAgent, str]:
    net, alice, bob, call_id = ringing_call()
    bob.answer(call_id, ANSWER, 1.0)
    net.run(1.0)
    assert agent_events(alice) == [ev.CallAnswered(call_id, ANSWER)]
    assert agent_events(bob) == [ev.CallEstablished(call_id)]
    return net, alice, bob, call_id


def test_call_answered_and_hung_up_by_caller() -> None:
    net, alice, bob, call_id = established_call()
    invite = next(parse_message(d) for _, _, d in net.wire if d.startswith(b"INVITE"))
    assert isinstance(invite, Request)
    assert str(invite.uri) == "sips:bob@127.0.0.1:5062"
    assert invite.contacts[0].uri.scheme == "sips"
    assert invite.header("Content-Type") == "application/sdp"
    assert invite.header_values("Allow") == ALLOWED
    trying = [d for _, _, d in net.wire if d.startswith(b"SIP/2.0 100")]
    assert len(trying) == 1
    alice.hangup(call_id, 5.0)
    net.run(5.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, None, "Hung up", False)]
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    assert net.wire[-1][2].startswith(b"SIP/2.0 200 OK")
    assert b"CSeq: 2 BYE" in net.wire[-1][2]


def test_call_hung_up_by_callee() -> None:
    net, alice, bob, call_id = established_call()
    bob.hangup(call_id, 5.0)
    net.run(5.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up", False)]
    bye = parse_message(next(d for _, _, d in net.wire if d.startswith(b"BYE")))
    assert isinstance(bye, Request)
    assert bye.from_.tag and bye.to.tag
    assert bye.cseq.seq == 1  # bob's first request in the dialog


@pytest.mark.parametrize(
    ("status", "reason"), [(486, "Busy Here"), (603, "Declined"), (488, "Not Acceptable Here")]
)
def test_call_rejected(status: int, reason: str) -> None:
    net, alice, bob, call_id = ringing_call()
    bob.reject(call_id, status, 1.0)
    net.run(1.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, status, reason, True)]
    assert agent_events(bob) == [ev.CallEnded(call_id, status, reason, False)]
    ack = parse_message(net.wire[-1][2])
    assert isinstance(ack, Request) and ack.method == "ACK"


def test_cancel_after_ringing() -> None:
    net, alice, bob, call_id = ringing_call()
    alice.hangup(call_id, 2.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, None, "Cancelled", False)]
    net.run(2.0)
    assert agent_events(bob) == [ev.CallEnded(call_id, 487, "Cancelled", True)]
    sent = [d.split(b"\r\n", 1)[0] for _, _, d in net.wire][-4:]
    assert sent == [
        b"CANCEL sips:bob@127.0.0.1:5062 SIP/2.0",
        b"SIP/2.0 200 OK",
        b"SIP/2.0 487 Request Terminated",
        b"ACK sips:bob@127.0.0.1:5062 SIP/2.0",
    ]
    assert agent_events(alice) == []


def test_cancel_crossing_the_200() -> None:
    net, alice, bob, call_id = ringing_call()
    bob.answer(call_id, ANSWER, 2.0)
    alice.hangup(call_id, 2.0)
    net.run(2.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, None, "Cancelled", False)]
    # bob's 200 won: alice ACKs it and hangs up with a BYE, the CANCEL gets 481
    assert agent_events(bob) == [
        ev.RequestRejected(481, "CANCEL: Call/Transaction Does Not Exist"),
        ev.CallEstablished(call_id),
        ev.CallEnded(call_id, None, "Hung up by peer", True),
    ]


def test_hold_and_resume_both_ways() -> None:
    net, alice, bob, call_id = established_call()
    alice.reinvite(call_id, HOLD, 10.0)
    net.run(10.0)
    assert agent_events(bob) == [ev.ReinviteReceived(call_id, HOLD)]
    bob.accept_reinvite(call_id, HELD, 10.5)
    net.run(10.5)
    assert agent_events(alice) == [ev.ReinviteAnswered(call_id, HELD)]
    assert agent_events(bob) == []
    bob.reinvite(call_id, ANSWER, 20.0)
    net.run(20.0)
    assert agent_events(alice) == [ev.ReinviteReceived(call_id, ANSWER)]
    alice.accept_reinvite(call_id, OFFER, 20.0)
    net.run(20.0)
    assert agent_events(bob) == [ev.ReinviteAnswered(call_id, OFFER)]
    # a refused re-INVITE leaves the call up
    alice.reinvite(call_id, HOLD, 30.0)
    net.run(30.0)
    agent_events(bob)
    bob.reject_reinvite(call_id, 488, 30.0)
    net.run(30.0)
    assert agent_events(alice) == [ev.ReinviteFailed(call_id, 488, "Not Acceptable Here")]
    alice.hangup(call_id, 40.0)
    net.run(40.0)
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]


def test_reinvite_glare_resolves() -> None:
    net, alice, bob, call_id = established_call()
    alice.reinvite(call_id, HOLD, 10.0)
    bob.reinvite(call_id, ANSWER, 10.0)
    net.run(10.0)
    # both got 491 and answered 491: nobody saw the other's offer yet
    assert [type(e) for e in agent_events(alice)] == [ev.RequestRejected]
    assert [type(e) for e in agent_events(bob)] == [ev.RequestRejected]
    # bob (not the Call-ID owner) retries within 2 s, alice only after 2.1 s
    advance(net, [alice, bob], 12.05)
    assert agent_events(alice) == [ev.ReinviteReceived(call_id, ANSWER)]
    alice.accept_reinvite(call_id, OFFER, 12.1)
    net.run(12.1)
    assert agent_events(bob) == [ev.ReinviteAnswered(call_id, OFFER)]
    advance(net, [alice, bob], 15.0)
    assert agent_events(bob) == [ev.ReinviteReceived(call_id, HOLD)]
    bob.accept_reinvite(call_id, HELD, 15.0)
    net.run(15.0)
    assert agent_events(alice) == [ev.ReinviteAnswered(call_id, HELD)]


def test_timer_b_on_a_silent_peer() -> None:
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1, keepalive_interval=0)
    silent = Registrar(silent=True)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, silent)
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert alice.get_timer() == 32.0
    advance(net, [alice], 32.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, 408, "Request timeout", False)]


def test_timers_b_and_f_start_when_the_request_goes_out_not_when_it_was_asked_for() -> None:
    """A TLS handshake may take seconds: the INVITE and the REGISTER wait for it, and their
    transactions give up 64*T1 after they really left (§17.1.1.2, §17.1.2.2)."""
    alice = make_agent("sips:alice@127.0.0.1", 1, keepalive_interval=0)
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    assert alice.data_to_send() == [(b"", BOB_ADDR)]
    assert alice.get_timer() is None
    alice.connection_made(BOB_ADDR, ("127.0.0.1", 40000), 5.0)
    assert [data[:7] for data, _ in alice.data_to_send()] == [b"INVITE "]
    assert alice.get_timer() == 37.0
    alice.handle_timer(36.9)
    assert agent_events(alice) == []
    alice.handle_timer(37.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, 408, "Request timeout", False)]

    carol = make_agent(
        "sip:carol@127.0.0.1", 3, password="pw", registrar=REGISTRAR, keepalive_interval=0
    )
    carol.register(0.0)
    assert carol.data_to_send() == [(b"", REGISTRAR)]
    carol.connection_made(REGISTRAR, ("127.0.0.1", 40001), 7.0)
    assert [data[:9] for data, _ in carol.data_to_send()] == [b"REGISTER "]
    assert carol.get_timer() == 39.0
    carol.handle_timer(38.9)
    assert agent_events(carol) == []
    carol.handle_timer(39.0)
    (failed,) = agent_events(carol)
    assert isinstance(failed, ev.RegistrationFailed)
    assert (failed.status, failed.reason) == (None, "Request timeout")


def test_unreachable_peer_ends_the_call() -> None:
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1)
    net.add(ALICE_ADDR, alice)
    call_id = alice.invite("sips:bob@127.0.0.1:5999", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, 503, "Connection failed", False)]


def test_200_is_repeated_until_ack_then_given_up() -> None:
    net, alice, bob, call_id = ringing_call()
    net.drop = lambda data: data.startswith(b"ACK")
    bob.answer(call_id, ANSWER, 1.0)
    net.run(1.0)
    assert agent_events(alice) == [ev.CallAnswered(call_id, ANSWER)]
    advance(net, [bob], 1.0 + 0.5 + 1.0 + 2.0)
    oks = [d for _, _, d in net.wire if d.startswith(b"SIP/2.0 200") and b"INVITE" in d]
    assert len(oks) == 4  # at 1.0, 1.5, 2.5, 4.5
    advance(net, [bob], 33.0)
    (ended,) = [e for e in agent_events(bob) if isinstance(e, ev.CallEnded)]
    assert ended == ev.CallEnded(call_id, 408, "No ACK from the caller", False)


def test_default_port_is_5061_for_tls() -> None:
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1)
    bob = make_agent("sips:bob@127.0.0.1", 2)
    net.add(ALICE_ADDR, alice)
    net.add(("127.0.0.2", 5061), bob)
    call_id = alice.invite("bob@127.0.0.2", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(bob)[0] == ev.IncomingCall(call_id, "sips:alice@127.0.0.1", "", OFFER)


def test_api_misuse_raises_local_protocol_error() -> None:
    _, alice, bob, call_id = established_call()
    with pytest.raises(LocalProtocolError):
        alice.answer(call_id, ANSWER, 2.0)
    with pytest.raises(LocalProtocolError):
        alice.accept_reinvite(call_id, ANSWER, 2.0)
    with pytest.raises(LocalProtocolError):
        alice.hangup("no-such-call", 2.0)
    with pytest.raises(LocalProtocolError):
        bob.reject(call_id, 200, 2.0)
    with pytest.raises(LocalProtocolError):
        alice.register(2.0)  # no registrar configured


# ------------------------------------------------------------------ bad and unusual requests


def raw_request(method: str, extra: str = "", to_tag: str = "") -> bytes:
    text = (
        f"{method} sips:bob@127.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:41000;branch=z9hG4bKraw1;rport\r\n"
        "From: <sips:eve@127.0.0.1>;tag=e1\r\n"
        f"To: <sips:bob@127.0.0.1>{to_tag}\r\n"
        "Call-ID: raw-1\r\n"
        f"CSeq: 7 {method}\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    )
    data = text.encode()
    if "Content-Type" in extra:
        data = data.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 3\r\n\r\nv=0")
    return data


def answer_to(bob: UserAgent, data: bytes) -> Response:
    peer = ("127.0.0.1", 41000)
    bob.connection_made(peer, BOB_ADDR, 0.0)
    bob.receive_data(data, peer, 0.0)
    ((sent, to),) = bob.data_to_send()
    assert to == peer
    response = parse_message(sent)
    assert isinstance(response, Response)
    return response


def test_options_answered_with_allow_and_accept() -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    response = answer_to(bob, raw_request("OPTIONS"))
    assert response.status == 200
    assert response.header_values("Allow") == ALLOWED
    assert response.header("Accept") == "application/sdp"
    assert response.vias[0].param("rport") == "41000"
    assert response.vias[0].param("received") == "127.0.0.1"
    assert agent_events(bob) == []


@pytest.mark.parametrize(
    ("method", "extra", "to_tag", "status"),
    [
        ("FROBNICATE", "", "", 501),
        ("SUBSCRIBE", "", "", 405),
        ("BYE", "", "", 481),
        ("BYE", "", ";tag=nope", 481),
        ("REFER", "Refer-To: <sips:carol@127.0.0.1>\r\n", "", 403),
        ("REFER", "Refer-To: <sips:carol@127.0.0.1>\r\n", ";tag=nope", 481),
        ("NOTIFY", "Event: refer\r\n", ";tag=nope", 481),
        ("NOTIFY", "Event: refer\r\n", "", 481),
        ("INVITE", "", ";tag=nope", 481),
        ("OPTIONS", "Require: 100rel\r\n", "", 420),
        ("INVITE", "Content-Type: text/plain\r\n", "", 415),
        ("INVITE", "Content-Type: application/sdp\r\ne: gzip\r\n", "", 415),
        ("OPTIONS", "Contact: <sips:broken\r\n", "", 400),
        ("OPTIONS", "Expires: soon\r\n", "", 400),
        ("INVITE", "Subject: a\x00b\r\n", "", 400),
        ("INVITE", 'Contact: "\x1b[2J" <sips:x@192.0.2.1>\r\n', "", 400),
    ],
)
def test_bad_requests_are_answered(method: str, extra: str, to_tag: str, status: int) -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    response = answer_to(bob, raw_request(method, extra, to_tag))
    assert response.status == status
    assert response.to.tag
    assert response.header("Call-ID") == "raw-1"
    (rejected,) = agent_events(bob)
    assert isinstance(rejected, ev.RequestRejected)
    assert rejected.status == status
    if status == 405:
        assert response.header_values("Allow") == ALLOWED
    if status == 420:
        assert response.header("Unsupported") == "100rel"


def test_bad_version_gets_505() -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    data = raw_request("OPTIONS").replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia")
    assert answer_to(bob, data).status == 505


def test_unframeable_stream_closes_the_flow() -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    peer = ("127.0.0.1", 41000)
    bob.connection_made(peer, BOB_ADDR, 0.0)
    bob.receive_data(raw_request("OPTIONS").replace(b"Content-Length: 0", b"l: x"), peer, 0.0)
    assert bob.flows_to_close() == [peer]
    (failed,) = agent_events(bob)
    assert isinstance(failed, ev.FlowFailed)
    bob.receive_data(b"A" * 70000, peer, 0.0)
    assert bob.flows_to_close() == [peer]


def test_garbage_never_raises() -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    peer = ("127.0.0.1", 41000)
    bob.connection_made(peer, BOB_ADDR, 0.0)
    seed = hashlib.sha256(b"seed").digest()
    for i in range(200):
        chunk = hashlib.sha256(seed + bytes([i])).digest()
        bob.receive_data(b"INVITE sip:x SIP/2.0\r\n" + chunk + b"\r\n\r\n", peer, float(i))
    bob.data_to_send()
    agent_events(bob)


def reachable(root: object, depth: int = 4) -> list[object]:
    """Every object `root` holds through its attributes, `depth` levels down."""
    found: list[object] = []
    level = [root]
    for _ in range(depth):
        level = [v for obj in level for v in getattr(obj, "__dict__", {}).values()]
        found += level
    return found


def test_agent_config_hides_the_password() -> None:
    config = AgentConfig(aor="sip:alice@example.org", password="s3cret")
    assert "s3cret" not in repr(config)
    held = {id(o): o for o in reachable(UserAgent(config)) if isinstance(o, DigestCredentials)}
    (credentials,) = held.values()
    assert "s3cret" not in repr(credentials)


# ------------------------------------------------------------------ fuzzing the agent


def recorded_traffic() -> list[bytes]:
    """Every message of a whole call (invite, ring, answer, hold, hang-up) as sent."""
    net, alice, bob, call_id = established_call()
    alice.reinvite(call_id, HOLD, 10.0)
    net.run(10.0)
    bob.accept_reinvite(call_id, HELD, 10.0)
    net.run(10.0)
    bob.hangup(call_id, 11.0)
    net.run(11.0)
    return [data for _, _, data in net.wire if data.strip()]


TRAFFIC = recorded_traffic()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_agent_survives_mutated_traffic(data: st.DataObject) -> None:
    """Replay a call's messages to fresh agents with random damage: nothing may raise."""
    net, alice, bob = two_phones()
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    peer_of = {id(alice): ("127.0.0.1", 5062), id(bob): ("127.0.0.1", 40000)}
    for _ in range(data.draw(st.integers(1, 6))):
        message = bytearray(data.draw(st.sampled_from(TRAFFIC)))
        for _ in range(data.draw(st.integers(0, 4))):
            pos = data.draw(st.integers(0, len(message) - 1))
            message[pos] = data.draw(st.sampled_from(b' \t\r\n:;,<>"@%=0123456789abcXYZ\xff'))
        target = data.draw(st.sampled_from([alice, bob]))
        target.receive_data(bytes(message), peer_of[id(target)], 1.0)
        net.run(1.0)
    for agent in (alice, bob):
        agent_events(agent)
        if agent.get_timer() is not None:
            agent.handle_timer(100.0)
    assert call_id


# ------------------------------------------------------------------ through a proxy


def test_call_through_a_record_routing_proxy() -> None:
    net, alice, bob, proxy = proxied_phones()
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    (incoming,) = agent_events(bob)
    assert incoming == ev.IncomingCall(call_id, "sip:alice@127.0.0.1", "", OFFER)
    invite = proxy.forwarded[0]
    assert str(invite.uri) == "sip:bob@127.0.0.1"
    assert invite.header("Route") is None  # the preloaded route was the proxy's own
    assert (invite.contacts[0].uri.param("ob"), invite.contacts[0].uri.param("transport")) == (
        "",
        "tls",
    )
    bob.ringing(call_id, 1.1)
    bob.answer(call_id, ANSWER, 2.0)
    net.run(2.0)
    assert agent_events(alice) == [
        ev.CallProgress(call_id, 180, "Ringing", None),
        ev.CallAnswered(call_id, ANSWER),
    ]
    assert agent_events(bob) == [ev.CallEstablished(call_id)]
    ack = next(r for r in proxy.forwarded if r.method == "ACK")
    assert ack.uri.port == 40001  # bob's Contact: the remote target
    # hold from the callee, then BYE from the caller, all along the route set
    bob.reinvite(call_id, HELD, 3.0)
    net.run(3.0)
    assert agent_events(alice) == [ev.ReinviteReceived(call_id, HELD)]
    alice.accept_reinvite(call_id, HOLD, 3.0)
    net.run(3.0)
    assert agent_events(bob) == [ev.ReinviteAnswered(call_id, HOLD)]
    alice.hangup(call_id, 4.0)
    net.run(4.0)
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    in_dialog = [r for r in proxy.forwarded if r.method in ("ACK", "BYE", "INVITE")][1:]
    assert all(r.header("Route") is None for r in in_dialog)  # the proxy popped itself
    sent_bye = next(d for s, _, d in net.wire if d.startswith(b"BYE"))
    assert b"Route: <sip:127.0.0.1:5070;transport=tls;lr>\r\n" in sent_bye


def test_cancel_through_a_proxy() -> None:
    net, alice, bob, _ = proxied_phones()
    call_id = alice.invite("sip:bob@127.0.0.1", OFFER, 1.0)
    net.run(1.0)
    bob.ringing(call_id, 1.0)
    net.run(1.0)
    alice.hangup(call_id, 2.0)
    net.run(2.0)
    assert agent_events(bob)[-1] == ev.CallEnded(call_id, 487, "Cancelled", True)
    assert agent_events(alice)[-1] == ev.CallEnded(call_id, None, "Cancelled", False)


class ChallengingPeer(Registrar):
    """Answers INVITE with 407 until it carries Proxy-Authorization, then 486."""

    def handle(self, req: Request) -> Response:
        if req.method == "ACK":
            return self.reply(req, 200)  # never sent: ACKs are not answered
        auth = req.header("Proxy-Authorization")
        if auth is None:
            value = f'Digest realm="proxy", nonce="{self.nonce}", algorithm=MD5'
            return self.reply(req, 407, (("Proxy-Authenticate", value),))
        self.authorizations.append(parse_authorization(auth))
        return self.reply(req, 486)

    def answers(self, request: Request) -> bool:
        return request.method != "ACK"


def test_a_directly_called_peer_that_challenges_gets_no_credentials() -> None:
    """Only the registrar gets answers computed from the password (tests/test_sip_credentials.py
    has the whole story); a direct call that is challenged ends with the reason."""
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1, password="pw")
    peer = ChallengingPeer(password="pw")
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, peer)
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert [r.method for r in peer.requests] == ["INVITE", "ACK"]
    first, ack = peer.requests
    assert ack.cseq.seq == 1 and ack.to.tag == "reg1" and ack.vias[0].branch == first.vias[0].branch
    assert peer.authorizations == []
    reason = "Password not sent to a stranger (127.0.0.1:5062 is not your registrar)"
    assert agent_events(alice) == [ev.CallEnded(call_id, 407, reason, False)]


def test_unregister_while_the_first_register_is_out() -> None:
    net, alice, registrar = registered_alice()
    alice.register(0.0)
    alice.unregister(0.0)
    net.run(0.0)
    assert agent_events(alice) == [ev.Unregistered()]
    assert registrar.bindings == {}
    assert alice.get_timer() == 30.0  # no refresh planned


class Redirector(ChallengingPeer):
    def handle(self, req: Request) -> Response:
        return self.reply(req, 302, (("Contact", "<sips:bob@192.0.2.44>"),))


def test_redirect_ends_the_call_with_its_target() -> None:
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, Redirector())
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(alice) == [
        ev.CallEnded(call_id, 302, "Moved Temporarily to sips:bob@192.0.2.44", True)
    ]


def test_bye_during_a_reinvite_answers_it_487() -> None:
    net, alice, bob, call_id = established_call()
    alice.reinvite(call_id, HOLD, 10.0)
    net.run(10.0)
    assert agent_events(bob) == [ev.ReinviteReceived(call_id, HOLD)]
    alice.hangup(call_id, 11.0)
    net.run(11.0)
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    firsts = [d.split(b"\r\n", 1)[0] for _, _, d in net.wire][-4:]
    assert firsts == [
        b"BYE sips:bob@127.0.0.1:5062 SIP/2.0",
        b"SIP/2.0 200 OK",
        b"SIP/2.0 487 Request Terminated",
        b"ACK sips:bob@127.0.0.1:5062 SIP/2.0",
    ]
    with pytest.raises(LocalProtocolError):
        bob.accept_reinvite(call_id, HELD, 12.0)


def test_hangup_after_the_connection_dropped_reconnects() -> None:
    net, alice, bob, call_id = established_call()
    net.cut(alice, BOB_ADDR, 5.0)
    alice.hangup(call_id, 6.0)
    net.run(6.0)
    assert agent_events(alice) == [ev.CallEnded(call_id, None, "Hung up", False)]
    assert agent_events(bob) == [ev.CallEnded(call_id, None, "Hung up by peer", True)]
    bye = next(d for s, _, d in net.wire if d.startswith(b"BYE"))
    assert b"rport" in bye
    advance(net, [alice, bob], 36.0)
    assert b"\r\n\r\n" in [d for _, _, d in net.wire]  # the new connection is kept alive


def test_offerless_invite_gets_the_answer_in_the_ack() -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2)
    peer = ("127.0.0.1", 41000)
    bob.connection_made(peer, BOB_ADDR, 0.0)
    bob.receive_data(raw_request("INVITE"), peer, 0.0)
    (incoming,) = agent_events(bob)
    assert isinstance(incoming, ev.IncomingCall) and incoming.sdp == b""
    bob.answer("raw-1", OFFER, 1.0)
    sent = [parse_message(d) for d, _ in bob.data_to_send()]
    ok = sent[-1]
    assert isinstance(ok, Response) and ok.status == 200 and ok.body == OFFER
    ack = (
        raw_request("ACK", to_tag=f";tag={ok.to.tag}")
        .replace(b"z9hG4bKraw1", b"z9hG4bKraw2")
        .replace(b"CSeq: 7 ACK", b"CSeq: 7 ACK\r\nContent-Type: application/sdp")
        .replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: %d\r\n\r\n" % len(ANSWER))
        + ANSWER
    )
    bob.receive_data(ack, peer, 1.1)
    assert agent_events(bob) == [ev.CallEstablished("raw-1", ANSWER)]


def test_with_an_account_a_uri_with_host_and_port_elsewhere_is_called_directly() -> None:
    """Issue 5: `pidphone call` uses the account, or calls directly for sips:user@host:port."""
    net = SipNetwork()
    proxy = Proxy(password="pw")
    alice = make_agent("sips:alice@example.org", 1, password="pw", registrar=REGISTRAR)
    bob = make_agent("sips:bob@127.0.0.2", 2)
    net.add(ALICE_ADDR, alice)
    net.add(REGISTRAR, proxy)
    net.add(("127.0.0.2", 5062), bob)
    call_id = alice.invite("sips:bob@127.0.0.2:5062", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(bob) == [ev.IncomingCall(call_id, "sips:alice@example.org", "", OFFER)]
    assert proxy.forwarded == []
    invite = parse_message(next(d for _, _, d in net.wire if d.startswith(b"INVITE")))
    assert isinstance(invite, Request)
    assert invite.header("Route") is None  # no preloaded route towards the proxy
    assert invite.contacts[0].uri.param("ob") is None
    bob.answer(call_id, ANSWER, 1.0)
    net.run(1.0)
    assert agent_events(alice) == [ev.CallAnswered(call_id, ANSWER)]
    alice.hangup(call_id, 2.0)
    net.run(2.0)
    assert agent_events(bob) == [
        ev.CallEstablished(call_id),
        ev.CallEnded(call_id, None, "Hung up by peer", True),
    ]
    assert all(to != REGISTRAR for _, to, _ in net.wire)
    # In the account's own domain (even with a port), or with no port, the proxy routes it.
    for target in ("sips:carol@example.org:5061", "sips:carol@127.0.0.2", "carol"):
        dave = make_agent("sips:dave@example.org", 3, password="pw", registrar=REGISTRAR)
        dave.invite(target, OFFER, 3.0)
        assert [peer for _, peer in dave.data_to_send()] == [REGISTRAR], target
