"""The UDP socket of a call (the `DatagramSocket` port): a plain non-blocking socket.

RTP, RTCP, ZRTP and STUN share it (RFC 7983). The media worker opens it on its own thread,
waits on its `fileno()` in its one selector, reads what is waiting with `receive` and sends
with `sendto`: one thread uses it from bind to close, so it needs no lock and no event loop.
Send and receive errors (ICMP port unreachable reported back, a full buffer) are counted and
logged at debug: media is best effort and the call above decides what a silent peer means.

Bound to every interface ("0.0.0.0" or "::"), the socket is dual-stack where the system has
IPv6: one AF_INET6 socket with IPV6_V6ONLY off takes IPv4 and IPv6 peers alike, so the media
follows whichever family the signalling used (the SDP says ::1, the audio comes to ::1). IPv4
peers keep their plain form above this module: "::ffff:192.0.2.1" is unmapped on receipt and
mapped again on sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time

from pidphone.ports import Address

log = logging.getLogger(__name__)

DISCARD_PORT = 9
"""Any port serves `local_address_towards`: no datagram is sent."""
RECV_SIZE = 65536
ANY_ADDRESS = frozenset({"0.0.0.0", "::"})
"""Bind addresses that mean every interface: dual-stack where IPv6 is there."""
MAPPED = "::ffff:"
SO_TIMESTAMPNS = 35
"""Linux's socket option (and control message) for each datagram's arrival time in
nanoseconds (asm-generic, so x86 and ARM alike; Python does not name it)."""
_ARRIVAL_SPACE = socket.CMSG_SPACE(16)
_timespec = struct.Struct("@qq").unpack_from
_SOL_SOCKET = socket.SOL_SOCKET
_MAPPED_LEN = len(MAPPED)
STALE_NS = 1_000_000_000
"""A stamp further back than this is not believed: the wall clock, which the kernel stamps on,
was stepped (NTP at boot on a Pi without a clock) between arrival and read."""


class UdpSocket:
    """One bound UDP socket; create it with `open_udp`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock: socket.socket | None = sock
        name = sock.getsockname()
        self._local: Address = (str(name[0]), int(name[1]))
        self._fileno = sock.fileno()
        self._dual = sock.family == socket.AF_INET6 and not sock.getsockopt(
            socket.IPPROTO_IPV6, socket.IPV6_V6ONLY
        )
        self.send_errors = 0
        with contextlib.suppress(OSError):  # without it, a datagram arrives when it is read
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    @property
    def dual_stack(self) -> bool:
        """IPv4 and IPv6 peers both reach this socket."""
        return self._dual

    @property
    def local(self) -> Address:
        return self._local

    def fileno(self) -> int:
        return self._fileno

    def sendto(self, data: bytes, addr: Address) -> str | None:
        sock = self._sock
        if sock is None:
            return "the socket is closed"
        if self._dual and ":" not in addr[0]:
            addr = (MAPPED + addr[0], addr[1])
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)
            return str(exc.strerror or exc)
        return None

    def receive(self, limit: int) -> list[tuple[bytes, Address, float]]:
        """What is waiting, each datagram with the time the kernel received it (on the
        `time.monotonic` clock), not the time it is read: a reader held up does not make
        the datagrams look late (the jitter buffer would take that for network jitter)."""
        sock = self._sock
        got: list[tuple[bytes, Address, float]] = []
        if sock is None:
            return got
        recvmsg, append, dual = sock.recvmsg, got.append, self._dual
        read_at = time.monotonic_ns()
        to_monotonic = read_at - time.time_ns()  # the stamps are on the wall clock
        stale = read_at - STALE_NS
        for _ in range(limit):
            try:
                data, ancillary, _, addr = recvmsg(RECV_SIZE, _ARRIVAL_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error reported back; the next one may be data
                self.send_errors += 1
                log.debug("udp error on %s: %s", self._local, exc)
                continue
            arrived = read_at
            for level, kind, stamp in ancillary:
                if level == _SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
                    seconds, nanoseconds = _timespec(stamp)
                    stamped = seconds * 1_000_000_000 + nanoseconds + to_monotonic
                    if stale <= stamped <= read_at:
                        arrived = stamped
            host: str = addr[0]  # (host, port[, flow, scope]) of str and int already
            if dual and host.startswith(MAPPED):
                host = host[_MAPPED_LEN:]
            append((data, (host, addr[1]), arrived / 1e9))
        return got

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def open_udp(host: str, port: int) -> UdpSocket:
    """Bind a non-blocking UDP socket on host:port (port 0: any free port); every interface
    ("0.0.0.0", "::") is dual-stack where the system has IPv6, else IPv4 only."""
    if host in ANY_ADDRESS and socket.has_ipv6:
        try:
            return UdpSocket(_bound(socket.AF_INET6, "::", port, dual=True))
        except OSError as exc:  # IPv6 off in this kernel or namespace
            log.debug("no dual-stack media socket (%s): IPv4 only", exc)
            host = "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return UdpSocket(_bound(family, host, port, dual=False))


def _bound(family: socket.AddressFamily, host: str, port: int, *, dual: bool) -> socket.socket:
    raw = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if dual:
            raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        raw.setblocking(False)
        raw.bind((host, port))
    except BaseException:
        raw.close()
        raise
    return raw


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
