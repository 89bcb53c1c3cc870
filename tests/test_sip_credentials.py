"""Digest credentials go only to the account's registrar (or outbound proxy), for the account's
realms; nobody else ever receives a response computed from the password.

A digest response is a hash of the password with the challenger's nonce: whoever gets one can
try passwords offline at leisure. Before, every protection space ever learnt was attached to
every request, so a host the user merely dialled, answering 407 with a realm and nonce of its
choosing, received such a response and the registrar realm's live Authorization besides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pidphone import wiring
from pidphone.config import parse_config
from pidphone.errors import ConfigError
from pidphone.ports import Address
from pidphone.sip import Request, Response, parse_message
from pidphone.sip import events as ev
from pidphone.sip.agent import UserAgent
from pidphone.sip.auth import Challenge, DigestCredentials, digest_response, parse_authorization
from pidphone.sip.message import reason_phrase
from tests.harness import (
    ALICE_ADDR,
    OFFER,
    REGISTRAR,
    SipNetwork,
    agent_events,
    make_agent,
)
from tests.peers.sip_registrar import Proxy, Registrar

STRANGER: Address = ("127.0.0.2", 5062)
CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization")


class Stranger(Registrar):
    """A host the user dials that answers each INVITE with the next of `challenges` (status,
    header value) in turn, and records everything it is sent."""

    def __init__(self, challenges: list[tuple[int, str]]) -> None:
        super().__init__()
        self.challenges = challenges

    def answers(self, request: Request) -> bool:
        return request.method != "ACK"

    def handle(self, req: Request) -> Response:
        invites = sum(r.method == "INVITE" for r in self.requests)
        status, value = self.challenges[(invites - 1) % len(self.challenges)]
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        return self.reply(req, status, ((name, value),))


class ChallengingProxy(Proxy):
    """The registrar-proxy (tests/peers/sip_registrar.py), which also wants proxy credentials on
    INVITE, as Kamailio's `proxy_challenge` does, in the account realm and with its own
    nonce. It checks the response with the password it knows."""

    def forward_request(self, peer: Address, req: Request) -> None:
        self.requests.append(req)
        if req.method == "INVITE" and req.to.tag is None:
            auth = req.header("Proxy-Authorization")
            if auth is None or not self.valid(req, parse_authorization(auth)):
                value = f'Digest realm="{self.realm}", nonce="proxy-nonce", qop="auth"'
                self.out.append(
                    (bytes(self.reply(req, 407, (("Proxy-Authenticate", value),))), peer)
                )
                return
        super().forward_request(peer, req)

    def valid(self, req: Request, params: dict[str, str]) -> bool:
        self.authorizations.append(params)
        challenge = Challenge(realm=self.realm, nonce="proxy-nonce", qop=("auth",))
        expected = digest_response(
            challenge,
            username=params["username"],
            password=self.password,
            method=req.method,
            uri=params["uri"],
            cnonce=params["cnonce"],
            nc=int(params["nc"], 16),
        )
        return params["response"] == expected


def registered(
    proxy: Registrar, aor: str = "sip:alice@127.0.0.1", **kwargs: object
) -> tuple[SipNetwork, UserAgent]:
    net = SipNetwork()
    alice = make_agent(aor, 1, password="alicepw", registrar=REGISTRAR, **kwargs)
    net.add(ALICE_ADDR, alice)
    net.add(REGISTRAR, proxy)
    alice.register(0.0)
    net.run(0.0)
    return net, alice


def credentials_on_the_wire(net: SipNetwork, to: Address) -> list[bytes]:
    """Every request delivered to `to` that carries an (Proxy-)Authorization header."""
    out: list[bytes] = []
    for _, target, data in net.wire:
        if target != to or not data.strip():
            continue
        message = parse_message(data)
        if isinstance(message, Request) and any(message.header(h) for h in CREDENTIAL_HEADERS):
            out.append(data)
    return out


# ------------------------------------------------------------------ the registrar gets them


def test_the_registrar_challenging_an_invite_in_the_account_realm_is_answered() -> None:
    """Kamailio's `proxy_challenge` on INVITE: the call goes through with credentials."""
    proxy = ChallengingProxy(password="alicepw")
    net, alice = registered(proxy)
    bob = make_agent("sip:bob@127.0.0.1", 2, password="alicepw", registrar=REGISTRAR)
    net.add(("127.0.0.1", 5063), bob)
    bob.register(0.0)
    net.run(0.0)
    assert isinstance(agent_events(alice)[0], ev.Registered)
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    assert [type(e) for e in agent_events(bob)] == [ev.Registered, ev.IncomingCall]
    invites = [r for r in proxy.requests if r.method == "INVITE"]
    auth = parse_authorization(invites[-1].header("Proxy-Authorization") or "")
    assert (auth["realm"], auth["nonce"], auth["username"]) == ("127.0.0.1", "proxy-nonce", "alice")
    assert proxy.authorizations[-1] == auth
    assert call_id


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
def test_the_registrar_may_use_any_algorithm_and_the_strongest_offered_wins(
    algorithm: str,
) -> None:
    class Offering(Registrar):
        def challenge(self, req: Request) -> Response:
            values = [
                f'Digest realm="127.0.0.1", nonce="{self.nonce}", qop="auth", algorithm={a}'
                for a in ("MD5", algorithm)
            ]
            return self.reply(req, 401, tuple(("WWW-Authenticate", v) for v in values))

    registrar = Offering(algorithm=algorithm)
    _, alice = registered(registrar)
    assert isinstance(agent_events(alice)[0], ev.Registered)
    assert registrar.authorizations[0]["algorithm"] == algorithm


def test_a_realm_listed_in_the_config_is_answered_and_an_unlisted_one_is_not() -> None:
    """A provider whose realm is not its domain: `account.auth_realms` names it."""
    listed = Registrar(realm="sip.provider.net")
    _, alice = registered(listed, "sip:alice@example.org", auth_realms=("SIP.provider.net",))
    assert isinstance(agent_events(alice)[0], ev.Registered)

    unlisted = Registrar(realm="sip.provider.net")
    net, alice = registered(unlisted, "sip:alice@example.org")
    (failed,) = agent_events(alice)
    assert failed == ev.RegistrationFailed(
        401, 'Password not sent: other realm ("sip.provider.net" is not yours)', None
    )
    assert credentials_on_the_wire(net, REGISTRAR) == []


# ------------------------------------------------------------------ nobody else does


class Relay(Registrar):
    """A registrar that passes INVITEs on (the test plays the far end's answers)."""

    def answers(self, request: Request) -> bool:
        return request.method == "REGISTER"


def relayed_challenge(invite: Request, status: int, realm: str, algorithm: str) -> bytes:
    """What a server behind the proxy answers, relayed unchanged by the proxy."""
    headers = [(n, v) for n, v in invite.headers if n in ("Via", "From", "Call-ID", "CSeq")]
    headers.append(("To", f"{invite.header('To')};tag=far"))
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    headers.append((name, f'Digest realm="{realm}", nonce="far-nonce", algorithm={algorithm}'))
    return bytes(Response(status, reason_phrase(status), tuple(headers)))


@pytest.mark.parametrize("status", [401, 407])
def test_a_challenge_relayed_by_the_registrar_in_a_foreign_realm_is_refused(status: int) -> None:
    """The registrar flow is trusted, the realm is not enough: a server behind the proxy
    (the callee's domain, a stranger's phone) challenging in its own realm gets nothing."""
    registrar = Relay()
    net, alice = registered(registrar)
    agent_events(alice)
    call_id = alice.invite("sip:mallory@evil.example", OFFER, 1.0)
    net.run(1.0)
    invite = registrar.requests[-1]
    assert invite.method == "INVITE"
    alice.receive_data(relayed_challenge(invite, status, "evil.example", "MD5"), REGISTRAR, 2.0)
    net.run(2.0)
    reason = 'Password not sent: other realm ("evil.example" is not yours)'
    assert agent_events(alice) == [ev.CallEnded(call_id, status, reason, False)]
    assert [r.method for r in registrar.requests[-2:]] == ["INVITE", "ACK"]
    assert credentials_on_the_wire(net, REGISTRAR) == [
        d for d in credentials_on_the_wire(net, REGISTRAR) if d.startswith(b"REGISTER")
    ]


REALMS = ["127.0.0.1", "127.0.0.2", "evil.example", ""]
ALGORITHMS = ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256"]
QOPS = ['qop="auth"', 'qop="auth,auth-int"', ""]


def every_challenge() -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for status in (401, 407):
        for realm in REALMS:
            for algorithm in ALGORITHMS:
                for qop in QOPS:
                    value = f'Digest realm="{realm}", nonce="n-{len(out)}", algorithm={algorithm}'
                    out.append((status, f"{value}, {qop}" if qop else value))
    return out


def test_a_dialled_stranger_gets_no_credential_whatever_it_asks() -> None:
    """Alice is registered, and her registrar challenged a call (so credentials go up front to
    it from then on). She dials a stranger directly (sips: URI of another host:port) that
    answers each INVITE with another challenge: realm of the account or not, every algorithm,
    with and without qop. Not one (Proxy-)Authorization reaches it, and each call ends with
    the reason; the registrar still gets its credentials."""
    proxy = ChallengingProxy(password="alicepw")
    net, alice = registered(proxy)
    bob = make_agent("sip:bob@127.0.0.1", 2, password="alicepw", registrar=REGISTRAR)
    net.add(("127.0.0.1", 5063), bob)
    bob.register(0.0)
    net.run(0.0)
    alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    agent_events(alice)
    challenges = every_challenge()
    stranger = Stranger(challenges)
    net.add(STRANGER, stranger)
    reason = "Password not sent to a stranger (127.0.0.2:5062 is not your registrar)"
    for n, (status, _) in enumerate(challenges):
        call_id = alice.invite("sips:bob@127.0.0.2:5062", OFFER, 2.0 + n)
        net.run(2.0 + n)
        assert agent_events(alice) == [ev.CallEnded(call_id, status, reason, False)]
    assert len(stranger.requests) == 2 * len(challenges)  # each INVITE and its ACK
    assert credentials_on_the_wire(net, STRANGER) == []
    assert all(b"alicepw" not in data for _, _, data in net.wire)
    assert all(b"response=" not in data for _, to, data in net.wire if to == STRANGER)
    # the registrar flow still carries credentials (up front, since it challenged an INVITE)
    alice.invite("bob", OFFER, 1000.0)
    net.run(1000.0)
    assert proxy.requests[-1].header("Proxy-Authorization") is not None


def test_a_direct_call_after_the_registrar_challenged_carries_no_credentials() -> None:
    """Credentials sent up front (§22.3) stay on the registrar's flow: a direct call, its
    ACK and its BYE carry none."""
    proxy = ChallengingProxy(password="alicepw")
    net, alice = registered(proxy)
    bob = make_agent("sip:bob@127.0.0.1", 2, password="alicepw", registrar=REGISTRAR)
    net.add(("127.0.0.1", 5063), bob)
    bob.register(0.0)
    net.run(0.0)
    alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    carol = make_agent("sips:carol@127.0.0.2", 3)
    net.add(STRANGER, carol)
    call_id = alice.invite("sips:carol@127.0.0.2:5062", OFFER, 2.0)
    net.run(2.0)
    carol.answer(call_id, OFFER, 3.0)
    net.run(3.0)
    alice.hangup(call_id, 4.0)
    net.run(4.0)
    methods = [parse_message(d) for _, to, d in net.wire if to == STRANGER and d.strip()]
    assert [m.method for m in methods if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    assert credentials_on_the_wire(net, STRANGER) == []


def test_protection_spaces_are_bound_to_their_flow() -> None:
    credentials = DigestCredentials("alice", "alicepw")
    challenge = Challenge(realm="127.0.0.1", nonce="n1", algorithm="SHA-256", qop=("auth",))
    assert credentials.learn(challenge, flow=REGISTRAR)
    assert credentials.headers(STRANGER, "INVITE", "sip:x@127.0.0.2", "c") == []
    ((name, value),) = credentials.headers(REGISTRAR, "INVITE", "sip:x@127.0.0.1", "c")
    assert name == "Authorization" and parse_authorization(value)["nc"] == "00000001"


# ------------------------------------------------------------------ the config key


def test_account_auth_realms_reach_the_agent(tmp_path: Path) -> None:
    text = (
        '[account]\naor = "sip:alice@example.org"\npassword = "alicepw"\n'
        'auth_realms = ["sip.provider.net"]\n'
    )
    config = parse_config(text.encode(), tmp_path / "pidphone.toml")
    assert wiring.user_agent(config).config.auth_realms == ("sip.provider.net",)
    for bad, problem in (
        ('[""]', "account.auth_realms[0]: the realm is empty"),
        ('["a\\"b"]', "account.auth_realms[0]:"),
        ('"sip.provider.net"', "account.auth_realms: expected an array of strings"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)):
            parse_config(f"[account]\nauth_realms = {bad}\n".encode(), tmp_path / "p.toml")


def test_a_port_in_unicode_digits_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.registrar: .* is not a port number"):
        parse_config(
            '[server]\nregistrar = "sip.example.org:506\u0661"\n'.encode(), tmp_path / "p.toml"
        )


class TryingThenChallengingProxy(ChallengingProxy):
    """Says "100 Trying" before its 407, as a stateful proxy (Kamailio's t_newtran) does: the
    first INVITE has had its provisional response when the challenge comes."""

    def forward_request(self, peer: Address, req: Request) -> None:
        if req.method == "INVITE" and req.header("Proxy-Authorization") is None:
            self.out.append((bytes(self.reply(req, 100)), peer))
        super().forward_request(peer, req)


def test_a_hang_up_right_after_the_retry_with_credentials_waits_for_its_provisional() -> None:
    """The INVITE sent again with credentials is a new transaction that has had no
    provisional response yet: a hang-up must not CANCEL it (RFC 3261 §9.1)."""
    proxy = TryingThenChallengingProxy(password="alicepw")
    net, alice = registered(proxy)
    bob = make_agent("sip:bob@127.0.0.1", 2, password="alicepw", registrar=REGISTRAR)
    net.add(("127.0.0.1", 5063), bob)
    bob.register(0.0)
    net.run(0.0)
    lost: list[bytes] = []  # the INVITE with credentials, lost on its way: no 1xx for it

    def drop(data: bytes) -> bool:
        if data.startswith(b"INVITE ") and b"Proxy-Authorization" in data:
            lost.append(data)
            return True
        return False

    net.drop = drop
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    assert len(lost) == 1  # challenged after its 100 Trying, and sent again
    alice.hangup(call_id, 1.1)
    net.run(1.1)
    ended = [e for e in agent_events(alice) if isinstance(e, ev.CallEnded)]
    assert ended and ended[-1].reason == "Cancelled"
    assert not any(data.startswith(b"CANCEL ") for _, _, data in net.wire)
