"""The smaller SIP pieces on their own: stream framing and keep-alives, digest vectors, the
transaction table, dialog routing and registration timing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.sip import (
    Frame,
    KeepAlivePing,
    KeepAlivePong,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    parse_message,
)
from pidphone.sip.auth import Challenge, DigestCredentials, best_challenge, digest_response
from pidphone.sip.dialog import Dialog
from pidphone.sip.invite_usage import OVER, CallInput, InviteState, InviteUsage, Role
from pidphone.sip.invite_usage import TRANSITIONS as CALL_TRANSITIONS
from pidphone.sip.registration import refresh_delay
from pidphone.sip.transaction import TRANSITIONS, Input, Kind, State, Transaction

MSG = (
    b"OPTIONS sip:b@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKf1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
    b"Call-ID: f1\r\nCSeq: 1 OPTIONS\r\nl: 5\r\n\r\nhello"
)


def drain(framer: StreamFramer) -> list[object]:
    out: list[object] = []
    while (item := framer.next_item()) is not None:
        out.append(item)
    return out


# ------------------------------------------------------------------ framing


def test_framing_with_keepalives_between_messages() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n" + MSG + b"\r\n" + MSG + b"\r\n")
    assert drain(framer) == [KeepAlivePing(), Frame(MSG), Frame(MSG)]  # a stray CRLF is skipped
    assert framer.buffered == 2  # a lone CRLF may be half a ping
    framer.ping_sent()
    framer.feed(MSG)
    assert drain(framer) == [KeepAlivePong(), Frame(MSG)]
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), max_size=40))
def test_framing_survives_any_split(cuts: list[int]) -> None:
    stream = MSG + b"\r\n\r\n" + MSG + MSG
    framer = StreamFramer()
    items: list[object] = []
    pos = 0
    for cut in cuts:
        framer.feed(stream[pos : pos + cut])
        pos += cut
        items += drain(framer)
    framer.feed(stream[pos:])
    items += drain(framer)
    assert items == [Frame(MSG), KeepAlivePing(), Frame(MSG), Frame(MSG)]


def test_framing_cap_and_bad_length() -> None:
    framer = StreamFramer(max_message=100)
    framer.feed(MSG)
    with pytest.raises(SipParseError) as info:
        framer.next_item()
    assert info.value.error_status_hint == 513
    framer = StreamFramer(max_message=100)
    framer.feed(b"X" * 101)
    with pytest.raises(SipParseError):
        framer.next_item()
    framer = StreamFramer()
    framer.feed(MSG.replace(b"l: 5", b"l: -5"))
    with pytest.raises(SipParseError):
        framer.next_item()


# ------------------------------------------------------------------ digest


RFC7616 = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "nc": 1,
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    challenge = Challenge.parse(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert challenge.qop == ("auth", "auth-int")
    assert digest_response(challenge, **RFC7616) == expected  # type: ignore[arg-type]


def test_rfc2617_vector_without_cnonce_reuse() -> None:
    # RFC 2617 §3.5 (MD5, qop=auth)
    challenge = Challenge(
        realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=("auth",)
    )
    response = digest_response(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
        nc=1,
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_sha512_256_and_choice_of_the_strongest() -> None:
    offered = [
        Challenge(realm="r", nonce="n", algorithm="MD5"),
        Challenge(realm="r", nonce="n", algorithm="SHA-512-256", qop=("auth",)),
        Challenge(realm="r", nonce="n", algorithm="SHA-256"),
        Challenge(realm="r", nonce="n", algorithm="AKAv1-MD5"),
    ]
    best = best_challenge(offered)
    assert best is not None and best.algorithm == "SHA-512-256"
    value = digest_response(best, username="u", password="p", method="REGISTER",
                            uri="sip:r", cnonce="c", nc=1)  # fmt: skip
    assert len(value) == 64
    assert best_challenge([Challenge(realm="r", nonce="n", algorithm="AKAv1-MD5")]) is None


def test_credentials_count_nonces_and_handle_stale() -> None:
    flow = ("sip.example.org", 5061)
    creds = DigestCredentials("alice", "pw")
    first = Challenge(realm="r", nonce="n1", qop=("auth",))
    assert creds.learn(first, flow=flow)
    ((name, value),) = creds.headers(flow, "REGISTER", "sip:r", "c1")
    assert name == "Authorization"
    assert "nc=00000001" in value
    ((_, value),) = creds.headers(flow, "REGISTER", "sip:r", "c2")
    assert "nc=00000002" in value
    # the same nonce rejected again: the password is wrong
    assert not creds.learn(first, flow=flow, answered_nonces=frozenset({"n1"}))
    assert creds.learn(Challenge(realm="r", nonce="n2", qop=("auth",), stale=True), flow=flow,
                       answered_nonces=frozenset({"n1"}))  # fmt: skip
    # a 407 reusing the 401's nonce is a new protection space, and the nonce count goes on
    assert creds.learn(Challenge(realm="r", nonce="n2", qop=("auth",), proxy=True), flow=flow)
    www, proxy = creds.headers(flow, "INVITE", "sip:b@r", "c3")
    assert (www[0], proxy[0]) == ("Authorization", "Proxy-Authorization")
    assert "nc=00000001" in www[1]
    assert "nc=00000002" in proxy[1]
    assert "pw" not in repr(creds)


@pytest.mark.parametrize("bad", ["Basic realm=x", "Digest nonce=1", 'Digest realm="x, nonce=1'])
def test_bad_challenges(bad: str) -> None:
    with pytest.raises(SipParseError):
        Challenge.parse(bad)


# ------------------------------------------------------------------ transactions


def test_every_kind_can_reach_terminated() -> None:
    for kind in Kind:
        states = {s for (k, s, _), _ in TRANSITIONS.items() if k is kind}
        assert any(TRANSITIONS[(k, s, i)] is State.TERMINATED
                   for (k, s, i) in TRANSITIONS if k is kind)  # fmt: skip
        assert states


# ------------------------------------------------------------------ a call's state table


def test_every_call_state_is_reached_and_every_call_can_end() -> None:
    """From a new call (ours: CALLING, the peer's: INCOMING) the table reaches every state,
    and from every state some input leads to ENDED."""
    reached = {InviteState.CALLING, InviteState.INCOMING}
    while True:
        more = {new for (state, _), new in CALL_TRANSITIONS.items() if state in reached}
        if more <= reached:
            break
        reached |= more
    assert reached == set(InviteState)
    for state in InviteState:
        ends = {CALL_TRANSITIONS.get((state, i)) for i in CallInput} - {None}
        assert InviteState.ENDED in ends, state


def test_a_call_the_app_was_told_ended_never_comes_back() -> None:
    for (state, event), new in CALL_TRANSITIONS.items():
        if state in OVER:
            assert new in OVER, (state, event)


def test_an_input_the_state_does_not_take_is_our_own_mistake() -> None:
    call = InviteUsage("c1", Role.UAS, ("127.0.0.1", 5061), InviteState.INCOMING, invite(), "t")
    assert not call.can(CallInput.ACK)
    with pytest.raises(LocalProtocolError):
        call.apply(CallInput.ACK)
    assert call.state is InviteState.INCOMING
    assert call.apply(CallInput.ANSWER) is InviteState.ANSWERED
    assert call.apply(CallInput.HANGUP) is InviteState.BYE_DUE and call.over


def invite() -> Request:
    message = parse_message(
        b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKt\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: t\r\n"
        b"CSeq: 1 INVITE\r\n\r\n"
    )
    assert isinstance(message, Request)
    return message


def test_invite_server_waits_timer_h_for_ack() -> None:
    tx = Transaction.start(Kind.INVITE_SERVER, invite(), ("h", 1), 10.0)
    assert tx.key == ("z9hG4bKt", "INVITE")
    assert not tx.deadline
    tx.apply(Input.FAILURE, 11.0)
    assert (tx.state, tx.deadline) == (State.COMPLETED, 43.0)
    tx.apply(Input.ACK, 12.0)
    assert tx.terminated
    with pytest.raises(LocalProtocolError):
        tx.apply(Input.ACK, 13.0)


def test_client_timers_b_and_f() -> None:
    tx = Transaction.start(Kind.INVITE_CLIENT, invite(), ("h", 1), 0.0)
    assert tx.deadline == 32.0
    tx.apply(Input.PROVISIONAL, 1.0)
    assert tx.state is State.PROCEEDING
    tx.apply(Input.SUCCESS, 2.0)
    assert tx.terminated
    assert not tx.deadline
    nit = Transaction.start(Kind.NON_INVITE_CLIENT, invite(), ("h", 1), 5.0)
    assert nit.deadline == 37.0
    assert nit.can(Input.TIMEOUT) and not nit.can(Input.ACK)


# ------------------------------------------------------------------ dialogs


def ok_with_record_route(rr: str) -> Response:
    message = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKt\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: t\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sip:b@192.0.2.2:5061;transport=tls>\r\n"
        + rr.encode()
        + b"\r\n"
    )
    assert isinstance(message, Response)
    return message


def test_uac_route_set_is_reversed_and_loose() -> None:
    ok = ok_with_record_route("Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n")
    dialog = Dialog.as_uac(invite(), ok)
    uri, routes = dialog.request_target()
    assert str(uri) == "sip:b@192.0.2.2:5061;transport=tls"
    assert [str(r.uri) for r in routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert dialog.next_seq() == 2
    assert str(dialog.to_header()) == "<sip:b@example.com>;tag=2"


def test_strict_router_takes_the_request_uri() -> None:
    ok = ok_with_record_route("Record-Route: <sip:strict.example.com>\r\n")
    dialog = Dialog.as_uac(invite(), ok)
    uri, routes = dialog.request_target()
    assert str(uri) == "sip:strict.example.com"
    assert [str(r.uri) for r in routes] == ["sip:b@192.0.2.2:5061;transport=tls"]


def test_remote_cseq_must_grow() -> None:
    dialog = Dialog.as_uas(invite(), "9")
    assert not dialog.accept_remote_seq(1, "BYE")
    assert dialog.accept_remote_seq(1, "ACK")
    assert dialog.accept_remote_seq(2, "BYE")


# ------------------------------------------------------------------ registration timing


@pytest.mark.parametrize(
    ("expires", "delay"), [(600, 300.0), (3600, 1800.0), (50, 20.0), (40, 10.0), (20, 5.0)]
)
def test_refresh_delay(expires: int, delay: float) -> None:
    assert refresh_delay(expires) == delay
