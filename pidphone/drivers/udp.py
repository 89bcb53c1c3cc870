"""The UDP socket of a call (the `DatagramSocket` port) over asyncio.

RTP, RTCP, ZRTP and STUN share this one socket (RFC 7983); it hands every datagram to the
call's callback except the answers to its own STUN binding requests (RFC 8489), which it keeps
for `stun_binding`. Send errors (ICMP port unreachable reported back, a full buffer) are
counted and logged at debug: media is best effort and the call above decides what a silent
peer means.

During a call the audio clock reads and writes the socket itself, on its own thread: the loop
`hand_to_clock`s it (reading paused, a watchdog armed), then each 20 ms tick `poll`s it and
sends with `send_now`, so neither a packet nor a frame wakes the loop. Should the ticks stop
(the handset given to another call, a capture device gone), the watchdog gives the socket back
to the loop and `poll` says so by returning False.

Threads: `hand_to_clock`, `sendto`, `stun_binding` and the watchdog run on the loop; `poll` and
`send_now` on any thread, touching only the raw socket, `_clock_reads` and `_polled_at`
(single assignments). The caller serialises them with `close` (the engine's media lock), so a
tick never reads a socket being closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from pidphone.ports import Address
from pidphone.rtp import stun

log = logging.getLogger(__name__)

DatagramHandler = Callable[[bytes, Address], None]

DISCARD_PORT = 9
"""Any port serves `local_address_towards`: no datagram is sent."""

STUN_RETRIES = (0.5, 1.0, 2.0)
"""Seconds to wait after each binding request (RFC 8489 §6.2.1, shortened for call set-up)."""

POLL_WATCHDOG = 0.25
"""Seconds without a `poll` after which the socket is watched by the loop again."""
POLL_BATCH = 32
"""Most datagrams one `poll` delivers; the rest wait for the next (a flood cannot hold the
loop, and 32 per 20 ms tick is far above one call's media)."""
RECV_SIZE = 65536


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpSocket) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self._owner._received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self._owner.send_errors += 1
        log.debug("udp error on %s: %s", self._owner.local, exc)


class UdpSocket:
    """One bound UDP socket; create it with `open_udp`."""

    def __init__(self, handler: DatagramHandler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._local: Address = ("0.0.0.0", 0)
        self._stun_waiters: dict[bytes, asyncio.Future[Address]] = {}
        self._clock_reads = False
        """True while the audio clock's `poll` reads the socket, False while the loop does."""
        self._polled_at = 0.0
        """time.monotonic() of the last `poll` (or of the hand-over)."""
        self._watchdog: asyncio.TimerHandle | None = None
        self.send_errors = 0

    @property
    def local(self) -> Address:
        return self._local

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            self._transport.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)

    def hand_to_clock(self) -> None:
        """On the loop: stop watching the socket; the audio clock's `poll` reads it from now.
        Idempotent. The watchdog gives it back when the polls stop."""
        transport, loop = self._transport, self._loop
        if transport is None or loop is None or self._clock_reads:
            return
        self._polled_at = time.monotonic()
        _reading(transport).pause_reading()
        self._clock_reads = True
        self._watchdog = loop.call_later(POLL_WATCHDOG, self._watch)

    def poll(self, handler: DatagramHandler) -> bool:
        """Any thread: hand the datagrams waiting now to `handler` (STUN answers included;
        the binding requests are over before a call's media flows). False when the loop
        reads the socket (not handed over, given back by the watchdog, or closed)."""
        sock = self._sock
        if sock is None or not self._clock_reads:
            return False
        self._polled_at = time.monotonic()
        recvfrom = sock.recvfrom
        for _ in range(POLL_BATCH):
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error reported back; the next one may be data
                self.send_errors += 1
                log.debug("udp error on %s: %s", self._local, exc)
                continue
            handler(data, (str(addr[0]), int(addr[1])))
        return True

    def send_now(self, data: bytes, addr: Address) -> None:
        """Any thread: send straight on the socket, bypassing the transport (whose buffer
        and writer belong to the loop). A full buffer drops the datagram: media is best
        effort and a stale frame is worth nothing."""
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)

    def _watch(self) -> None:
        transport, loop = self._transport, self._loop
        if transport is None or loop is None or not self._clock_reads:
            return
        if time.monotonic() - self._polled_at < POLL_WATCHDOG:
            self._watchdog = loop.call_later(POLL_WATCHDOG, self._watch)
            return
        self._clock_reads = False
        self._watchdog = None
        _reading(transport).resume_reading()

    def close(self) -> None:
        self._clock_reads = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._sock = None
        for waiter in self._stun_waiters.values():
            waiter.cancel()
        self._stun_waiters.clear()

    async def stun_binding(
        self, server: Address, retries: tuple[float, ...] = STUN_RETRIES
    ) -> Address | None:
        """Our address as the STUN server sees it (RFC 8489 binding), or None on no answer."""
        loop = asyncio.get_running_loop()
        transaction = secrets.token_bytes(12)
        waiter: asyncio.Future[Address] = loop.create_future()
        self._stun_waiters[transaction] = waiter
        request = stun.build_binding_request(transaction)
        try:
            for wait in retries:
                self.sendto(request, server)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(waiter), wait)
            return None
        finally:
            self._stun_waiters.pop(transaction, None)

    def _received(self, data: bytes, source: Address) -> None:
        # STUN's first byte is 0-3 and its cookie sits at offset 4 (RFC 7983 §7).
        if self._stun_waiters and len(data) >= stun.HEADER_LEN and data[0] < 4:
            transaction = data[8:20]
            waiter = self._stun_waiters.get(transaction)
            if waiter is not None:
                try:
                    mapped = stun.parse_binding_response(data, transaction)
                except stun.StunParseError as exc:
                    log.debug("bad STUN response from %s: %s", source, exc)
                    return
                if not waiter.done():
                    waiter.set_result(mapped)
                return
        self._handler(data, source)


def _reading(transport: asyncio.DatagramTransport) -> asyncio.ReadTransport:
    """asyncio's datagram transports pause and resume reading like its stream transports,
    though `DatagramTransport` does not declare it."""
    return cast(asyncio.ReadTransport, transport)


async def local_address_towards(host: str) -> str:
    """The local IP address the system would send from to reach `host` (resolved without
    blocking the loop). A connected UDP socket asks the kernel for the route; nothing is sent.
    Raises OSError when there is no route or the name does not resolve."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, DISCARD_PORT, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"{host} does not resolve")
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(sockaddr)
        return str(probe.getsockname()[0])


async def open_udp(host: str, port: int, handler: DatagramHandler) -> UdpSocket:
    """Bind a UDP socket on host:port (port 0: any free port) and deliver datagrams to handler."""
    loop = asyncio.get_running_loop()
    sock = UdpSocket(handler)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_DGRAM)
    try:
        raw.setblocking(False)
        raw.bind((host, port))
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(sock), sock=raw)
    except BaseException:
        raw.close()
        raise
    sock._transport, sock._loop, sock._sock = transport, loop, raw
    name = transport.get_extra_info("sockname")
    sock._local = (str(name[0]), int(name[1]))
    return sock
