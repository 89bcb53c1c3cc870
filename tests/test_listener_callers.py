"""Who may call the phone's own TLS listener: by default only a caller whose client certificate
the configured CA file verifies, under an identity that certificate names. Real TLS on
loopback.

What a stranger gets: without such a certificate, nothing past the TLS handshake (no SIP byte
is read, the phone does not ring); with a certificate for someone else, 403 for an identity it
does not carry; only `server.listen_anyone = true` lets any TLS client ring."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import re
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pidphone.cli.call import _answer, _call
from pidphone.config import Config, SecurityConfig, ServerConfig, SimConfig, parse_config
from pidphone.drivers.certs import Issued, issue, make_ca, write_pair
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.errors import ConfigError
from pidphone.sip import Response, parse_message
from pidphone.sip import events as ev
from pidphone.sip.callers import CallerPolicy, PeerCertificate
from pidphone.sip.uri import Uri
from pidphone.wiring import caller_policy
from tests.harness import agent_events, make_agent
from tests.test_tls import Recorder


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path

    @property
    def sha256(self) -> bytes:
        certificate = x509.load_pem_x509_certificate(self.cert.read_bytes())
        return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()

    def client(self, ca: Path) -> TlsClientConfig:
        return TlsClientConfig(
            ca_file=str(ca), client_cert=str(self.cert), client_key=str(self.key)
        )


@dataclass(frozen=True)
class Certs:
    ca: Path
    server: Pair
    alice: Pair
    """From the callers' CA, names sips:alice@127.0.0.1."""
    mallory: Pair
    """From the callers' CA too, names sips:mallory@127.0.0.1."""
    stranger: Pair
    """From another CA, names sips:alice@127.0.0.1."""
    me: Pair
    """From the callers' CA, names sips:pidphone@127.0.0.1: who `pidphone call` is without
    an account."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    root = tmp_path_factory.mktemp("callers")
    ca, other = make_ca(), make_ca("another CA")
    write_pair(ca, root / "ca.pem", root / "ca.key")

    def pair(name: str, by: Issued, hosts: list[str], uri: str = "") -> Pair:
        out = Pair(root / f"{name}.pem", root / f"{name}.key")
        issued = issue(by, hosts, client=bool(uri), uris=[uri] if uri else [])
        write_pair(issued, out.cert, out.key)
        return out

    return Certs(
        ca=root / "ca.pem",
        server=pair("server", ca, ["127.0.0.1"]),
        alice=pair("alice", ca, ["alice.example"], "sips:alice@127.0.0.1"),
        mallory=pair("mallory", ca, ["mallory.example"], "sips:mallory@127.0.0.1"),
        stranger=pair("stranger", other, ["alice.example"], "sips:alice@127.0.0.1"),
        me=pair("me", ca, ["me.example"], "sips:pidphone@127.0.0.1"),
    )


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


async def knock(
    certs: Certs, client: TlsClientConfig, callers: CallerPolicy
) -> tuple[Recorder, bytes]:
    """Connect `client` to a listener with `callers` and send a line: what the listener's
    handler saw, and what it received."""
    server = TlsTransport(
        TlsClientConfig(),
        TlsServerConfig(
            str(certs.server.cert), str(certs.server.key), port=0, ca_file=str(certs.ca),
            callers=callers,
        ),
    )  # fmt: skip
    at_server = Recorder()
    await server.start(at_server)
    assert server.listening is not None
    caller = TlsTransport(client)
    at_caller = Recorder()
    await caller.start(at_caller)
    caller.send(b"OPTIONS sips:bob@127.0.0.1 SIP/2.0\r\n", server.listening)
    with contextlib.suppress(TimeoutError):  # a refused caller: nothing arrives
        await at_server.until(lambda: bool(at_server.received()), timeout=1.5)
    await caller.aclose()
    await server.aclose()
    return at_server, at_server.received()


def test_by_default_a_caller_needs_a_certificate_from_the_listeners_ca(certs: Certs) -> None:
    default = CallerPolicy()
    for client in (
        TlsClientConfig(ca_file=str(certs.ca)),  # no certificate at all
        certs.stranger.client(certs.ca),  # names alice, but another CA signed it
    ):
        at_server, received = asyncio.run(knock(certs, client, default))
        assert received == b""
        assert not any(e[0] == "made" for e in at_server.events)
    at_server, received = asyncio.run(knock(certs, certs.alice.client(certs.ca), default))
    assert received.startswith(b"OPTIONS")
    (certificate,) = at_server.certificates.values()
    assert certificate == PeerCertificate(
        certs.alice.sha256, uris=("sips:alice@127.0.0.1",), dns_names=("alice.example",)
    )


def test_an_allow_list_narrows_the_ca(certs: Certs) -> None:
    by_fingerprint = CallerPolicy(fingerprints=frozenset({certs.mallory.sha256}))
    by_identity = CallerPolicy(identities=(Uri.parse("sips:alice@127.0.0.1"),))
    for policy, admitted, refused in (
        (by_fingerprint, certs.mallory, certs.alice),
        (by_identity, certs.alice, certs.mallory),
    ):
        _, received = asyncio.run(knock(certs, refused.client(certs.ca), policy))
        assert received == b""
        _, received = asyncio.run(knock(certs, admitted.client(certs.ca), policy))
        assert received.startswith(b"OPTIONS")


def test_listen_anyone_lets_a_client_without_certificate_in(certs: Certs) -> None:
    _, received = asyncio.run(
        knock(certs, TlsClientConfig(ca_file=str(certs.ca)), CallerPolicy(anyone=True))
    )
    assert received.startswith(b"OPTIONS")


# ------------------------------------------------------------------ the From the agent takes

INVITE = (
    "INVITE sips:bob@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 127.0.0.1:41000;branch=z9hG4bK{n};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: {who};tag=f{n}\r\n"
    "To: <sips:bob@127.0.0.1>\r\n"
    "Call-ID: c{n}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n\r\n"
)
ALICE_CERT = PeerCertificate(b"a" * 32, uris=("sips:alice@127.0.0.1",), dns_names=("a.example",))
DOMAIN_CERT = PeerCertificate(b"d" * 32, uris=("sips:example.org",), dns_names=("example.net",))


@pytest.mark.parametrize(
    ("policy", "certificate", "who", "status"),
    [
        (CallerPolicy(), ALICE_CERT, "<sips:alice@127.0.0.1>", 100),
        (CallerPolicy(), ALICE_CERT, '"Alice" <sip:alice@127.0.0.1>', 100),
        (CallerPolicy(), ALICE_CERT, "<sips:mallory@127.0.0.1>", 403),
        (CallerPolicy(), ALICE_CERT, "<sips:alice@a.example>", 100),  # the DNS name: a domain
        (CallerPolicy(), DOMAIN_CERT, "<sips:carol@example.org>", 100),
        (CallerPolicy(), DOMAIN_CERT, "<sips:carol@example.net>", 100),
        (CallerPolicy(), DOMAIN_CERT, "<sips:carol@example.com>", 403),
        (CallerPolicy(), None, "<sips:alice@127.0.0.1>", 403),
        (
            CallerPolicy(identities=(Uri.parse("sips:dave@example.org"),)),
            DOMAIN_CERT,
            "<sips:carol@example.org>",
            403,
        ),
        (
            CallerPolicy(identities=(Uri.parse("sips:example.org"),)),
            DOMAIN_CERT,
            "<sips:carol@example.org>",
            100,
        ),
        (
            CallerPolicy(fingerprints=frozenset({b"a" * 32})),
            ALICE_CERT,
            "<sips:anyone@example.com>",
            100,
        ),
        (CallerPolicy(anyone=True), None, "<sips:anyone@example.com>", 100),
    ],
)
def test_the_from_of_a_direct_call_must_be_named_by_the_certificate(
    policy: CallerPolicy, certificate: PeerCertificate | None, who: str, status: int
) -> None:
    bob = make_agent("sips:bob@127.0.0.1", 2, callers=policy)
    peer = ("127.0.0.1", 41000)
    bob.connection_made(peer, ("127.0.0.1", 5061), 0.0, certificate)
    bob.receive_data(INVITE.format(n=1, who=who).encode(), peer, 0.0)
    ((data, to),) = bob.data_to_send()
    answer = parse_message(data)
    assert to == peer and isinstance(answer, Response)
    assert answer.status == status
    (event,) = agent_events(bob)
    assert isinstance(event, ev.IncomingCall if status == 100 else ev.RequestRejected)


def test_requests_relayed_by_the_registrar_are_not_the_listeners_business() -> None:
    """Calls that come through the registrar's flow (which we opened) are not checked
    against a client certificate: the registrar authenticates its own users."""
    registrar = ("127.0.0.1", 5070)
    bob = make_agent("sip:bob@127.0.0.1", 2, callers=CallerPolicy(), registrar=registrar)
    bob.register(0.0)
    bob.data_to_send()
    bob.connection_made(registrar, ("127.0.0.1", 40000), 0.0)
    bob.data_to_send()
    bob.receive_data(INVITE.format(n=2, who="<sip:x@y.example>").encode(), registrar, 0.0)
    assert isinstance(agent_events(bob)[-1], ev.IncomingCall)


# ------------------------------------------------------------------ the config, end to end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def phones(
    tmp_path: Path, certs: Certs, caller: Pair | None, **listener: Any
) -> tuple[Config, Config, int]:
    port = free_port()
    callee = Config(
        hardware="simulated",
        server=ServerConfig(
            listen=f"127.0.0.1:{port}",
            client_cert=str(certs.server.cert),
            client_key=str(certs.server.key),
            keepalive_interval=0,
            **listener,
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "bob-zid.json")),
        sim=SimConfig(tone_frequency=700),
    )
    calling = Config(
        hardware="simulated",
        server=ServerConfig(
            ca_file=str(certs.ca),
            client_cert=str(caller.cert) if caller else "",
            client_key=str(caller.key) if caller else "",
            keepalive_interval=0,
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "alice-zid.json")),
        sim=SimConfig(tone_frequency=1000),
    )
    return calling, callee, port


async def call(caller: Config, callee: Config, port: int) -> tuple[dict[str, Any], str]:
    """`pidphone call` to `pidphone answer --count 1`: the caller's JSON report, and what the
    callee printed (it stops waiting when no call came)."""
    answer_out, call_out = io.StringIO(), io.StringIO()
    answering = asyncio.create_task(
        _answer(argparse.Namespace(count=1, duration=1.0, json=True), callee, answer_out)
    )
    await asyncio.sleep(0.3)
    await _call(
        argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=1.0, json=True),
        caller,
        call_out,
    )
    try:
        await asyncio.wait_for(asyncio.shield(answering), 3)
    except TimeoutError:
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
    report: dict[str, Any] = json.loads(call_out.getvalue())
    return report, answer_out.getvalue()


def test_pidphone_answer_takes_calls_only_from_certificates_its_ca_signed(
    tmp_path: Path, certs: Certs
) -> None:
    """`pidphone call` without a client certificate, then with one for another identity
    (it calls as sips:pidphone@127.0.0.1), then with its own: only the last rings."""
    outcomes = []
    for caller in (None, certs.mallory, certs.me):
        calling, callee, port = phones(tmp_path, certs, caller, listen_ca_file=str(certs.ca))
        outcomes.append(asyncio.run(call(calling, callee, port)))
    (nobody, nobody_heard), (mallory, mallory_heard), (me, me_heard) = outcomes
    assert nobody["state"] == "failed" and nobody["reason"].startswith("Connection lost")
    assert nobody_heard == ""
    assert mallory["state"] == "failed" and mallory["reason"] == "Forbidden"
    assert mallory_heard == ""
    assert me["state"] == "secure", me
    assert json.loads(me_heard)["state"] == "secure"


def test_listen_anyone_takes_calls_without_certificate(tmp_path: Path, certs: Certs) -> None:
    calling, callee, port = phones(tmp_path, certs, None, listen_anyone=True)
    report, heard = asyncio.run(call(calling, callee, port))
    assert report["state"] == "secure", report
    assert json.loads(heard)["state"] == "secure"


def test_listener_config(tmp_path: Path, certs: Certs) -> None:
    base = (
        f'[server]\nlisten = "127.0.0.1:5062"\nclient_cert = "{certs.server.cert}"\n'
        f'client_key = "{certs.server.key}"\n'
    )
    with pytest.raises(ConfigError, match=r"server\.listen_ca_file: say who may call"):
        parse_config(base.encode(), tmp_path / "p.toml")
    fingerprint = certs.mallory.sha256.hex()
    config = parse_config(
        (
            base + f'listen_ca_file = "{certs.ca}"\n'
            f'listen_allow = ["sips:alice@127.0.0.1", "{fingerprint}"]\n'
        ).encode(),
        tmp_path / "p.toml",
    )
    policy = caller_policy(config)
    assert policy == CallerPolicy(
        fingerprints=frozenset({certs.mallory.sha256}),
        identities=(Uri.parse("sips:alice@127.0.0.1"),),
    )
    for extra, problem in (
        ('listen_allow = ["sips:a@b"]\n', "server.listen_allow: needs server.listen_ca_file"),
        (
            f'listen_ca_file = "{certs.ca}"\nlisten_anyone = true\nlisten_allow = ["sips:a@b"]\n',
            "server.listen_allow: has no effect",
        ),
        (f'listen_ca_file = "{certs.ca}"\nlisten_allow = ["bob"]\n', "listen_allow[0]"),
        (
            f'listen_ca_file = "{certs.ca}"\nlisten_allow = ["sips:a@b;transport=tls"]\n',
            "not a plain SIP identity",
        ),
        ('listen_ca_file = "/nonexistent.pem"\n', "server.listen_ca_file"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)):
            parse_config((base + extra).encode(), tmp_path / "p.toml")
