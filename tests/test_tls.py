"""The TLS transport over real ssl sockets on loopback with a PKI made by the test.

Each test checks what a person would: bytes arrive, a bad certificate is refused with its
reason, and nothing is written in clear when verification fails."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from pidphone.drivers.certs import Pki, issue, make_ca, make_test_pki, pem_fingerprint, write_pair
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.errors import ConfigError
from pidphone.ports import Address, LinkError
from pidphone.sip.callers import CallerPolicy, PeerCertificate

ANYONE = CallerPolicy(anyone=True)
"""For tests of the client side: a listener that lets any TLS client in."""

Event = tuple[str, Address, object]


class Recorder:
    """A SipTransportHandler that keeps everything it is told, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.certificates: dict[Address, PeerCertificate | None] = {}
        self.changed = asyncio.Event()

    def connection_made(
        self, peer: Address, local: Address, certificate: PeerCertificate | None = None
    ) -> None:
        self.events.append(("made", peer, local))
        self.certificates[peer] = certificate
        self.changed.set()

    def data_received(self, data: bytes, peer: Address) -> None:
        self.events.append(("data", peer, data))
        self.changed.set()

    def connection_lost(self, peer: Address, error: LinkError | None) -> None:
        self.events.append(("lost", peer, error))
        self.changed.set()

    def received(self) -> bytes:
        return b"".join(e[2] for e in self.events if e[0] == "data")  # type: ignore[misc]

    def errors(self) -> list[LinkError]:
        return [e[2] for e in self.events if e[0] == "lost" and isinstance(e[2], LinkError)]

    async def until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


async def listener(pki: Pki, **kwargs: Any) -> tuple[TlsTransport, Recorder, Address]:
    """A listener; one that lets any TLS client in unless `callers` or `ca_file` says."""
    if "ca_file" not in kwargs:
        kwargs.setdefault("callers", ANYONE)
    config = TlsServerConfig(str(pki.server_cert), str(pki.server_key), port=0, **kwargs)
    server = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), config)
    recorder = Recorder()
    await server.start(recorder)
    assert server.listening is not None
    return server, recorder, server.listening


async def client(config: TlsClientConfig) -> tuple[TlsTransport, Recorder]:
    transport = TlsTransport(config)
    recorder = Recorder()
    await transport.start(recorder)
    return transport, recorder


def test_bytes_flow_both_ways_once_verified(pki: Pki) -> None:
    async def main() -> None:
        server, at_server, address = await listener(pki)
        alice, at_alice = await client(TlsClientConfig(ca_file=str(pki.ca_cert)))
        alice.send(b"REGISTER sip:127.0.0.1 SIP/2.0\r\n", address)  # queued until verified
        alice.send(b"\r\n\r\n", address)
        await at_server.until(lambda: at_server.received().endswith(b"\r\n\r\n"))
        assert at_server.received() == b"REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n\r\n"
        made = [e for e in at_alice.events if e[0] == "made"]
        assert made[0][1] == address
        (peer_at_server,) = [e[1] for e in at_server.events if e[0] == "made"]
        assert peer_at_server == made[0][2]  # the server sees our local address
        server.send(b"SIP/2.0 200 OK\r\n", peer_at_server)
        await at_alice.until(lambda: at_alice.received() == b"SIP/2.0 200 OK\r\n")
        assert alice.is_open(address)
        server.close(peer_at_server)
        await at_alice.until(lambda: any(e[0] == "lost" for e in at_alice.events))
        assert not alice.is_open(address)
        await alice.aclose()
        await server.aclose()

    run(main())


def test_localhost_name_is_checked_with_sni(pki: Pki) -> None:
    async def main() -> None:
        server, at_server, address = await listener(pki)
        alice, _ = await client(TlsClientConfig(ca_file=str(pki.ca_cert), server_name="localhost"))
        alice.send(b"OPTIONS\r\n", address)
        await at_server.until(lambda: at_server.received() == b"OPTIONS\r\n")
        await alice.aclose()
        await server.aclose()

    run(main())


async def refused_by_client(
    pki: Pki, config: TlsClientConfig, server_cert: Path | None = None
) -> list[LinkError]:
    """Connect with `config` to a listener; return the errors and check no SIP got through."""
    kwargs: dict[str, Any] = {}
    if server_cert is not None:
        kwargs = {"cert_file": str(server_cert), "key_file": str(server_cert.with_suffix(".key"))}
    server_config = TlsServerConfig(
        kwargs.get("cert_file", str(pki.server_cert)),
        kwargs.get("key_file", str(pki.server_key)),
        port=0,
        callers=ANYONE,
    )
    server = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), server_config)
    at_server = Recorder()
    await server.start(at_server)
    assert server.listening is not None
    alice, at_alice = await client(config)
    alice.send(b"REGISTER sip:secret SIP/2.0\r\n", server.listening)
    await at_alice.until(lambda: bool(at_alice.errors()))
    await asyncio.sleep(0.05)
    assert at_server.received() == b""
    assert not alice.is_open(server.listening)
    await alice.aclose()
    await server.aclose()
    return at_alice.errors()


def test_unknown_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    other = make_test_pki(tmp_path / "other")
    (error,) = asyncio.run(refused_by_client(pki, TlsClientConfig(ca_file=str(other.ca_cert))))
    assert error.reason == "untrusted"
    assert "unable to get local issuer certificate" in error.detail


def test_system_store_does_not_trust_a_private_ca(pki: Pki) -> None:
    (error,) = asyncio.run(refused_by_client(pki, TlsClientConfig()))
    assert error.reason == "untrusted"


def test_certificate_for_another_host_is_refused(pki: Pki, tmp_path: Path) -> None:
    (error,) = asyncio.run(
        refused_by_client(
            pki, TlsClientConfig(ca_file=str(pki.ca_cert), server_name="sip.example.org")
        )
    )
    assert error.reason == "wrong host"
    assert "sip.example.org" in error.detail


def test_certificate_for_another_ip_is_refused(pki: Pki, tmp_path: Path) -> None:
    ca = make_ca()
    write_pair(ca, tmp_path / "ca.pem", tmp_path / "ca.key")
    write_pair(issue(ca, ["192.0.2.1"]), tmp_path / "s.pem", tmp_path / "s.key")
    (error,) = asyncio.run(
        refused_by_client(
            pki, TlsClientConfig(ca_file=str(tmp_path / "ca.pem")), tmp_path / "s.pem"
        )
    )
    assert error.reason == "wrong host"
    assert "IP address mismatch" in error.detail


def test_expired_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    ca = make_ca()
    write_pair(ca, tmp_path / "ca.pem", tmp_path / "ca.key")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=60)
    expired = issue(ca, ["127.0.0.1"], not_before=long_ago, valid_days=30)
    write_pair(expired, tmp_path / "s.pem", tmp_path / "s.key")
    (error,) = asyncio.run(
        refused_by_client(
            pki, TlsClientConfig(ca_file=str(tmp_path / "ca.pem")), tmp_path / "s.pem"
        )
    )
    assert error.reason == "expired"
    assert "TLS connection to 127.0.0.1" in error.detail


def test_pinned_fingerprint(pki: Pki) -> None:
    good = pem_fingerprint(pki.server_cert.read_bytes())

    async def pinned_ok() -> None:
        server, at_server, address = await listener(pki)
        alice, _ = await client(TlsClientConfig(ca_file=str(pki.ca_cert), pinned_sha256=good))
        alice.send(b"hello", address)
        await at_server.until(lambda: at_server.received() == b"hello")
        await alice.aclose()
        await server.aclose()

    run(pinned_ok())
    wrong = "00" * 32
    (error,) = asyncio.run(
        refused_by_client(pki, TlsClientConfig(ca_file=str(pki.ca_cert), pinned_sha256=wrong))
    )
    assert error.reason == "pin mismatch"
    assert good.replace(":", "").lower() in error.detail


def test_bad_pin_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pinned_sha256"):
        TlsTransport(TlsClientConfig(pinned_sha256="abc"))


def test_client_certificate_required_by_listener(pki: Pki) -> None:
    """The listener's default: a client certificate its CA file verifies."""

    async def main() -> None:
        server, at_server, address = await listener(pki, ca_file=str(pki.ca_cert))
        anonymous, at_anonymous = await client(TlsClientConfig(ca_file=str(pki.ca_cert)))
        anonymous.send(b"anonymous", address)
        with_cert, _ = await client(
            TlsClientConfig(
                ca_file=str(pki.ca_cert),
                client_cert=str(pki.client_cert),
                client_key=str(pki.client_key),
            )
        )
        with_cert.send(b"known", address)
        await at_server.until(lambda: at_server.received() == b"known")
        # TLS 1.3: the client learns of the refusal only when the server's alert arrives
        await at_anonymous.until(lambda: any(e[0] == "lost" for e in at_anonymous.events))
        assert at_server.received() == b"known"
        for transport in (anonymous, with_cert, server):
            await transport.aclose()

    run(main())


def test_nothing_is_sent_in_clear_to_a_server_that_does_not_speak_tls() -> None:
    async def main() -> None:
        seen = bytearray()

        async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.extend(await reader.read(4096))
            writer.write(b"SIP/2.0 200 OK\r\n\r\n")  # a plaintext answer, as a bad server would
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        alice, at_alice = await client(TlsClientConfig(connect_timeout=5.0))
        alice.send(b"REGISTER sip:secret SIP/2.0\r\n", ("127.0.0.1", port))
        await at_alice.until(lambda: bool(at_alice.errors()))
        assert at_alice.errors()[0].reason == "handshake failed"
        assert seen[:1] == b"\x16"  # a TLS handshake record: the ClientHello
        assert b"REGISTER" not in seen
        await alice.aclose()
        server.close()
        await server.wait_closed()

    run(main())


NO_ROUTE = "192.0.2.1"
"""TEST-NET-1: the test's network namespace has no route to it (only loopback)."""


def test_refused_connection_and_resolver_failover(pki: Pki) -> None:
    async def main() -> None:
        server, at_server, address = await listener(pki)
        dead = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        dead_port = dead.sockets[0].getsockname()[1]
        dead.close()
        await dead.wait_closed()

        alice, at_alice = await client(TlsClientConfig(ca_file=str(pki.ca_cert)))
        alice.send(b"x", ("127.0.0.1", dead_port))
        await at_alice.until(lambda: bool(at_alice.errors()))
        assert at_alice.errors()[0].reason == "refused"  # the host is up, nothing listens
        alice.send(b"x", (NO_ROUTE, 5061))
        await at_alice.until(lambda: len(at_alice.errors()) == 2)
        assert at_alice.errors()[1].reason == "unreachable"  # no route to the host

        async def both(peer: Address) -> list[Address]:
            return [(NO_ROUTE, 5061), ("127.0.0.1", dead_port)]

        failing = TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert)), resolver=both)
        at_failing = Recorder()
        await failing.start(at_failing)
        failing.connect(("sip.example.org", 5061))
        await at_failing.until(lambda: bool(at_failing.errors()))
        assert at_failing.errors()[0].reason == "refused"  # says more than "unreachable"
        await failing.aclose()

        async def resolve(peer: Address) -> list[Address]:
            return [("127.0.0.1", dead_port), address]

        resolved = TlsTransport(
            TlsClientConfig(ca_file=str(pki.ca_cert), server_name="127.0.0.1"), resolver=resolve
        )
        at_resolved = Recorder()
        await resolved.start(at_resolved)
        resolved.send(b"via SRV", ("sip.example.org", 5061))
        await at_server.until(lambda: at_server.received() == b"via SRV")
        assert at_resolved.events[0][:2] == ("made", ("sip.example.org", 5061))

        async def nothing(peer: Address) -> list[Address]:
            return []

        empty = TlsTransport(TlsClientConfig(), resolver=nothing)
        at_empty = Recorder()
        await empty.start(at_empty)
        empty.connect(("nowhere.example", 5061))
        await at_empty.until(lambda: bool(at_empty.errors()))
        assert at_empty.errors()[0].reason == "unreachable"
        for transport in (alice, resolved, empty, server):
            await transport.aclose()

    run(main())


def test_ipv6_loopback(pki: Pki, tmp_path: Path) -> None:
    v6 = make_test_pki(tmp_path / "v6", hosts=["::1"])

    async def main() -> None:
        server = TlsTransport(
            TlsClientConfig(),
            TlsServerConfig(str(v6.server_cert), str(v6.server_key), "::1", 0, callers=ANYONE),
        )
        at_server = Recorder()
        try:
            await server.start(at_server)
        except OSError:
            pytest.skip("no IPv6 loopback here")
        assert server.listening is not None
        alice, _ = await client(TlsClientConfig(ca_file=str(v6.ca_cert)))
        alice.send(b"v6", server.listening)
        await at_server.until(lambda: at_server.received() == b"v6")
        await alice.aclose()
        await server.aclose()

    run(main())


def test_bad_certificate_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        TlsTransport(TlsClientConfig(ca_file=str(tmp_path / "missing.pem")))

    async def main() -> None:
        server = TlsTransport(
            TlsClientConfig(), TlsServerConfig("nope.pem", "nope.key", port=0, callers=ANYONE)
        )
        with pytest.raises(ConfigError, match="listener certificate"):
            await server.start(Recorder())
        with pytest.raises(ConfigError, match="CA file"):
            await TlsTransport(TlsClientConfig(), TlsServerConfig("a", "b", port=0)).start(
                Recorder()
            )

    run(main())


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_listener_on_every_interface_takes_ipv4_and_ipv6_callers(
    tmp_path: Path, wildcard: str
) -> None:
    """server.listen = "0.0.0.0:5061" (or "[::]:5061") answers on ::1 as well as 127.0.0.1,
    on the one port; an IPv4 caller keeps its plain address (not ::ffff:127.0.0.1)."""
    both = make_test_pki(tmp_path / "both", hosts=["127.0.0.1", "::1"])

    async def main() -> None:
        server = TlsTransport(
            TlsClientConfig(),
            TlsServerConfig(
                str(both.server_cert), str(both.server_key), wildcard, 0, callers=ANYONE
            ),
        )
        at_server = Recorder()
        await server.start(at_server)
        assert server.listening is not None
        port = server.listening[1]

        async def call_from(host: str) -> None:
            hello = f"hello from {host}".encode()
            caller, at_caller = await client(TlsClientConfig(ca_file=str(both.ca_cert)))
            caller.send(hello, (host, port))
            await at_server.until(lambda: hello in at_server.received())
            peer = next(e[1] for e in reversed(at_server.events) if e[0] == "made")
            local = next(e[2] for e in at_caller.events if e[0] == "made")
            assert peer == local and peer[0] == host  # the caller's own address, plain
            server.send(b"welcome", peer)
            await at_caller.until(lambda: at_caller.received() == b"welcome")
            await caller.aclose()

        try:
            for host in ("127.0.0.1", "::1"):
                await call_from(host)
        finally:
            await server.aclose()

    run(main())


def test_a_listener_on_one_address_stays_on_it(pki: Pki) -> None:
    """An explicit address is bound as given: a listener on 127.0.0.1 is not reached on ::1."""

    async def main() -> None:
        server, at_server, address = await listener(pki, host="127.0.0.1")
        caller, at_caller = await client(TlsClientConfig(ca_file=str(pki.ca_cert)))
        caller.send(b"hello", ("::1", address[1]))
        await at_caller.until(lambda: bool(at_caller.errors()))
        assert at_caller.errors()[0].reason == "refused"  # nothing listens on ::1 there
        assert at_server.received() == b"" and not at_server.events
        await caller.aclose()
        await server.aclose()

    run(main())
