"""SIP over TLS (RFC 3261 §26.2.1, RFC 5922 §7) on asyncio: client flows and a listener.

`TlsTransport` implements the `SipTransport` port. Client connections use TLS 1.2 or newer,
verify the server certificate against the system store or a CA file, check the host name (SNI
is sent for names; an IP literal is checked against the iPAddress entries), and optionally a
pinned SHA-256 fingerprint of the server certificate and a client certificate. Nothing is ever
written before the handshake and the pin check have passed, and there is no plaintext
fallback. A failure becomes a `TlsError` whose `reason` names it ("untrusted", "expired",
"wrong host", "pin mismatch", ...) and is reported to the handler as a `LinkError`.

Flows are keyed by the (host, port) the SIP agent addresses: the registrar's address for
outgoing flows, the peer's source address for accepted ones. Reconnecting is the signalling
runner's job: it calls `connect` again with its own backoff.

A listener on every interface ("0.0.0.0" or "::") is dual-stack where the system has IPv6: one
AF_INET6 socket with IPV6_V6ONLY off takes IPv4 and IPv6 callers on the one port, as the media
socket does (pidphone.drivers.udp). IPv4 callers keep their plain form ("::ffff:192.0.2.1" is
unmapped). An explicit address is bound as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from pidphone.drivers.certs import parse_fingerprint
from pidphone.errors import ConfigError, DeviceError
from pidphone.ports import Address, LinkError, SipTransportHandler
from pidphone.sip.callers import CallerPolicy, PeerCertificate

log = logging.getLogger(__name__)

Resolver = Callable[[Address], Awaitable[Sequence[Address]]]
"""Turns the address a flow is keyed by into the addresses to try in order (RFC 3263)."""

ANY_ADDRESS = frozenset({"0.0.0.0", "::"})
"""Listener addresses that mean every interface: dual-stack where IPv6 is there."""
MAPPED = "::ffff:"
MAX_PENDING_BYTES = 256 * 1024
"""Bytes held either way for a flow that is still being set up: beyond this an outgoing send
is dropped, and a peer that sends that much before its certificate is checked is cut off."""


@dataclass(frozen=True)
class TlsClientConfig:
    """How outgoing TLS connections verify the server and present themselves."""

    ca_file: str | None = None
    """PEM file of the CAs to trust; None means the system's CA store."""
    pinned_sha256: str | None = None
    """If set, the server certificate's SHA-256 fingerprint must equal it (hex, colons ok)."""
    client_cert: str | None = None
    """PEM certificate (chain) to present when the server asks; with `client_key`."""
    client_key: str | None = None
    server_name: str | None = None
    """The name to send as SNI and check the certificate for, instead of the flow's host
    (RFC 5922: the SIP domain when RFC 3263 led to another host)."""
    connect_timeout: float = 10.0
    """Seconds for TCP connect plus handshake."""


@dataclass(frozen=True)
class TlsServerConfig:
    """The listener for direct calls without a registrar (sips:bob@192.0.2.7:5062).

    By default a caller must present a client certificate that `ca_file` verifies, and one
    `callers` admits; a client without one never gets past the handshake. Only
    `CallerPolicy(anyone=True)` lets any TLS client in."""

    cert_file: str
    key_file: str
    host: str = "127.0.0.1"
    port: int = 5061
    """0 lets the system pick; `TlsTransport.listening` tells which."""
    ca_file: str | None = None
    """The CAs of the callers' client certificates, or those (self-signed) certificates
    themselves. Needed unless `callers.anyone`."""
    callers: CallerPolicy = field(default_factory=CallerPolicy)
    """Which verified certificates are let in (an allow-list), or anyone at all."""
    handshake_timeout: float = 10.0


class TlsError(DeviceError):
    """A TLS connection could not be set up safely; `reason` says why in a word or two."""

    def __init__(self, peer: Address, reason: str, detail: str) -> None:
        super().__init__(f"TLS connection to {peer[0]}:{peer[1]}", "sip.tls", f"{reason}: {detail}")
        self.peer = peer
        self.reason = reason
        self.detail = detail

    def link_error(self) -> LinkError:
        return LinkError(self.reason, str(self))


# OpenSSL X509_V_ERR_* codes (openssl/x509_vfy.h) worth a name of their own.
_VERIFY_REASONS = {
    9: "not yet valid",
    10: "expired",
    18: "untrusted",
    19: "untrusted",
    20: "untrusted",
    21: "untrusted",
    62: "wrong host",
    64: "wrong host",
}


VAGUENESS = {"refused": 1, "reset": 1, "unreachable": 2, "timeout": 2}
"""How little a failure says about the server (0: a TLS or certificate problem)."""


def _classify(peer: Address, exc: BaseException) -> TlsError:
    if isinstance(exc, TlsError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_REASONS.get(exc.verify_code, "untrusted")
        return TlsError(peer, reason, exc.verify_message or str(exc))
    if isinstance(exc, ssl.SSLError):
        return TlsError(peer, "handshake failed", exc.reason or str(exc))
    if isinstance(exc, TimeoutError):
        return TlsError(peer, "timeout", "no TLS session within the connect timeout")
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return TlsError(peer, "reset", str(exc) or type(exc).__name__)
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
    ):  # the host answered: nothing listens on that port
        return TlsError(peer, "refused", "connection refused")
    if isinstance(exc, OSError):  # no route, host or network unreachable
        return TlsError(peer, "unreachable", exc.strerror or str(exc))
    return TlsError(peer, "failed", repr(exc))


def client_context(config: TlsClientConfig) -> ssl.SSLContext:
    """A verifying client context: TLS 1.2+, CERT_REQUIRED, host name checked."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file)
        if config.client_cert is not None:
            context.load_cert_chain(config.client_cert, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("sip.tls", f"cannot load certificates: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def server_context(config: TlsServerConfig) -> ssl.SSLContext:
    """The listener's context: TLS 1.2+, our certificate, and a client certificate that
    `ca_file` verifies (optional only when the policy admits anyone)."""
    if not config.callers.anyone and config.ca_file is None:
        raise ConfigError(
            "server.listen_ca_file",
            "authenticating direct callers needs the CA file of their certificates",
        )
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.ca_file)
        context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("sip.tls", f"cannot load the listener certificate: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not config.callers.anyone:
        context.verify_mode = ssl.CERT_REQUIRED
    elif config.ca_file is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def _address(sockaddr: object) -> Address:
    """A socket address as the SIP agent knows it: an IPv4 peer of a dual-stack socket in its
    plain form."""
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = str(sockaddr[0])
        if host.startswith(MAPPED) and "." in host:
            host = host.removeprefix(MAPPED)
        return (host, int(sockaddr[1]))
    return ("", 0)


def _dual_stack_socket(port: int) -> socket.socket | None:
    """A TCP socket bound to `port` on every IPv6 and IPv4 interface, or None where the system
    has no IPv6 (the caller binds IPv4 only). A port in use is an error, not a fallback."""
    if not socket.has_ipv6:
        return None
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError as exc:  # IPv6 off in this kernel
        log.debug("no dual-stack listener (%s): IPv4 only", exc)
        return None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise
        log.debug("no dual-stack listener (%s): IPv4 only", exc)
        return None
    sock.setblocking(False)
    return sock


class _TlsFlow(asyncio.Protocol):
    """One TLS connection. Received bytes wait until the owner declares the flow open."""

    def __init__(self, owner: TlsTransport, key: Address | None) -> None:
        self.owner = owner
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.early: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.key is None:  # accepted: the handshake is done, the flow is ours
            self.key = _address(transport.get_extra_info("peername"))
            self.owner._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self.open and self.key is not None:
            self.owner._handler_data(data, self.key)
        elif sum(map(len, self.early)) + len(data) <= MAX_PENDING_BYTES:
            self.early.append(data)
        elif self.transport is not None:  # a peer flooding us before we checked it
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.owner._lost(self, exc)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def local(self) -> Address:
        return _address(self.transport.get_extra_info("sockname") if self.transport else None)

    def certificate(self) -> bytes | None:
        if self.transport is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject):
            return None
        return ssl_object.getpeercert(binary_form=True)

    def peer_certificate(self) -> PeerCertificate | None:
        """The peer's certificate as verified (fingerprint and subjectAltNames), or None."""
        der = self.certificate()
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        if der is None or not isinstance(ssl_object, ssl.SSLObject):
            return None
        names = (ssl_object.getpeercert() or {}).get("subjectAltName", ())
        pairs = [entry for entry in names if isinstance(entry, tuple) and len(entry) == 2]
        return PeerCertificate(
            sha256=hashlib.sha256(der).digest(),
            uris=tuple(str(entry[1]) for entry in pairs if entry[0] == "URI"),
            dns_names=tuple(str(entry[1]) for entry in pairs if entry[0] == "DNS"),
        )


class TlsTransport:
    """SIP flows over TLS: outgoing on demand, incoming through an optional listener."""

    def __init__(
        self,
        client: TlsClientConfig,
        server: TlsServerConfig | None = None,
        *,
        resolver: Resolver | None = None,
    ) -> None:
        self._client = client
        self._client_context = client_context(client)
        self._pin = None if client.pinned_sha256 is None else _pin(client.pinned_sha256)
        self._server = server
        self._resolver = resolver
        self._handler: SipTransportHandler | None = None
        self._flows: dict[Address, _TlsFlow] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Server | None = None
        self._listening: Address | None = None

    @property
    def listening(self) -> Address | None:
        """Where the listener accepts connections, once started."""
        return self._listening

    def is_open(self, peer: Address) -> bool:
        return peer in self._flows

    async def start(self, handler: SipTransportHandler) -> None:
        self._handler = handler
        if self._server is None:
            return
        server = self._server
        context = server_context(server)
        loop = asyncio.get_running_loop()
        host = server.host
        sock = _dual_stack_socket(server.port) if host in ANY_ADDRESS else None
        if sock is None and host in ANY_ADDRESS:
            host = "0.0.0.0"

        def accepted() -> _TlsFlow:
            return _TlsFlow(self, None)

        timeout = server.handshake_timeout
        if sock is None:
            self._listener = await loop.create_server(
                accepted, host, server.port, ssl=context, ssl_handshake_timeout=timeout
            )
        else:
            try:
                self._listener = await loop.create_server(
                    accepted, sock=sock, ssl=context, ssl_handshake_timeout=timeout
                )
            except BaseException:
                sock.close()
                raise
        self._listening = _address(self._listener.sockets[0].getsockname())
        log.info("SIP TLS listener on %s:%d", *self._listening)

    def connect(self, peer: Address) -> None:
        if peer in self._flows or peer in self._connecting:
            return
        self._connecting[peer] = []
        task = asyncio.get_running_loop().create_task(self._open(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, data: bytes, peer: Address) -> None:
        flow = self._flows.get(peer)
        if flow is not None:
            flow.write(data)
            return
        self.connect(peer)
        pending = self._connecting[peer]
        if sum(map(len, pending)) + len(data) > MAX_PENDING_BYTES:
            log.warning("dropping %d bytes for %s:%d: connection not up yet", len(data), *peer)
            return
        pending.append(data)

    def close(self, peer: Address) -> None:
        flow = self._flows.get(peer)
        if flow is not None and flow.transport is not None:
            flow.transport.close()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            self._listener.close()
        flows = list(self._flows.values())
        for flow in flows:
            if flow.transport is not None:
                flow.transport.close()
        if flows:
            await asyncio.wait([flow.closed for flow in flows], timeout=2.0)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    # ------------------------------------------------------------------ internals

    async def _open(self, peer: Address) -> None:
        try:
            flow = await self._connect_any(peer)
        except asyncio.CancelledError:
            self._connecting.pop(peer, None)
            raise
        except TlsError as exc:
            self._connecting.pop(peer, None)
            log.warning("%s", exc)
            if self._handler is not None:
                self._handler.connection_lost(peer, exc.link_error())
            return
        pending = self._connecting.pop(peer, [])
        if flow.closed.done():  # the server hung up right after the handshake
            if self._handler is not None:
                self._handler.connection_lost(peer, LinkError("reset", "closed after handshake"))
            return
        self._flows[peer] = flow
        flow.open = True
        log.info("TLS flow to %s:%d up (from %s:%d)", *peer, *flow.local())
        if self._handler is not None:
            self._handler.connection_made(peer, flow.local())
        for data in pending:
            flow.write(data)
        early, flow.early = flow.early, []
        for data in early:
            self._handler_data(data, peer)

    async def _connect_any(self, peer: Address) -> _TlsFlow:
        targets: Sequence[Address] = [peer]
        if self._resolver is not None:
            try:
                targets = await self._resolver(peer)
            except Exception as exc:  # any resolver failure means: not reachable now
                raise TlsError(peer, "unreachable", f"cannot resolve {peer[0]}: {exc}") from None
        if not targets:
            raise TlsError(peer, "unreachable", f"no address for {peer[0]}")
        failures: list[TlsError] = []
        for target in targets:
            try:
                return await self._connect_one(peer, target)
            except TlsError as exc:
                failures.append(exc)
        # report the most telling failure: a verification problem beats a refused
        # connection, which beats no route or no answer
        raise min(failures, key=lambda f: VAGUENESS.get(f.reason, 0))

    async def _connect_one(self, peer: Address, target: Address) -> _TlsFlow:
        loop = asyncio.get_running_loop()
        name = self._client.server_name or peer[0]
        flow = _TlsFlow(self, peer)
        try:
            async with asyncio.timeout(self._client.connect_timeout):
                await loop.create_connection(
                    lambda: flow,
                    target[0],
                    target[1],
                    ssl=self._client_context,
                    server_hostname=name,
                )
        except Exception as exc:
            raise _classify(peer, exc) from None
        if self._pin is not None:
            der = flow.certificate()
            seen = hashlib.sha256(der or b"").digest()
            if der is None or not hmac.compare_digest(seen, self._pin):
                if flow.transport is not None:
                    flow.transport.abort()
                raise TlsError(peer, "pin mismatch", f"server certificate SHA-256 is {seen.hex()}")
        return flow

    def _accepted(self, flow: _TlsFlow) -> None:
        """A caller's handshake is done: let it in if the policy admits its certificate, else
        cut it off before it says anything."""
        key = flow.key
        certificate = flow.peer_certificate()
        refused = "no listener" if self._server is None else None
        if self._server is not None:
            refused = self._server.callers.certificate_refusal(certificate)
        if key is None or refused is not None:  # no address to route by, or not admitted
            if key is not None:
                log.info("TLS caller from %s:%d refused: %s", *key, refused)
            if flow.transport is not None:
                flow.transport.abort()
            return
        old = self._flows.get(key)
        if old is not None and old.transport is not None:
            old.transport.close()
        self._flows[key] = flow
        flow.open = True
        log.info("TLS flow from %s:%d accepted", *key)
        if self._handler is not None:
            self._handler.connection_made(key, flow.local(), certificate)

    def _handler_data(self, data: bytes, peer: Address) -> None:
        if self._handler is not None:
            self._handler.data_received(data, peer)

    def _lost(self, flow: _TlsFlow, exc: Exception | None) -> None:
        if flow.key is None or self._flows.get(flow.key) is not flow:
            return  # never opened (failed verification) or already replaced
        del self._flows[flow.key]
        error = None if exc is None else _classify(flow.key, exc).link_error()
        log.info("TLS flow to %s:%d closed%s", *flow.key, "" if error is None else f": {error}")
        if self._handler is not None:
            self._handler.connection_lost(flow.key, error)


def _pin(text: str) -> bytes:
    try:
        return parse_fingerprint(text)
    except ValueError as exc:
        raise ConfigError("sip.tls.pinned_sha256", str(exc)) from None
