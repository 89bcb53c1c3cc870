"""The UDP socket of a call (the `DatagramSocket` port): a plain non-blocking socket.

RTP, RTCP, ZRTP and STUN share it (RFC 7983). The media worker opens it on its own thread,
waits on its `fileno()` in its one selector, reads what is waiting with `receive` and sends
with `sendto`: one thread uses it from bind to close, so it needs no lock and no event loop.
Send and receive errors (ICMP port unreachable reported back, a full buffer) are counted and
logged at debug: media is best effort and the call above decides what a silent peer means.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from pidphone.ports import Address

log = logging.getLogger(__name__)

DISCARD_PORT = 9
"""Any port serves `local_address_towards`: no datagram is sent."""
RECV_SIZE = 65536


class UdpSocket:
    """One bound UDP socket; create it with `open_udp`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock: socket.socket | None = sock
        name = sock.getsockname()
        self._local: Address = (str(name[0]), int(name[1]))
        self._fileno = sock.fileno()
        self.send_errors = 0

    @property
    def local(self) -> Address:
        return self._local

    def fileno(self) -> int:
        return self._fileno

    def sendto(self, data: bytes, addr: Address) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)

    def receive(self, limit: int) -> list[tuple[bytes, Address]]:
        sock = self._sock
        got: list[tuple[bytes, Address]] = []
        if sock is None:
            return got
        recvfrom = sock.recvfrom
        for _ in range(limit):
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error reported back; the next one may be data
                self.send_errors += 1
                log.debug("udp error on %s: %s", self._local, exc)
                continue
            got.append((data, (str(addr[0]), int(addr[1]))))
        return got

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def open_udp(host: str, port: int) -> UdpSocket:
    """Bind a non-blocking UDP socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_DGRAM)
    try:
        raw.setblocking(False)
        raw.bind((host, port))
    except BaseException:
        raw.close()
        raise
    return UdpSocket(raw)


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
