"""A seeded user-space UDP impairment relay, for measuring speech through loss and jitter where
there is no `tc netem`:

    .venv/bin/python -m bench.relay --a 127.0.0.1:27078 --b 127.0.0.1:27178 \\
        [--loss 0.03] [--burst 2] [--jitter 0.03] [--delay 0] [--duplicate 0] [--seed 1]

It sits between two phones' media: side A takes the packets of phone A and sends it phone B's
packets, side B the other way round (each side latches the address its phone sends from, as a
media relay does, so each phone sees one symmetric peer). To put it between two phones, their
SDP must name the relay's sides instead of each other (a Kamailio rewriting m= ports does it:
bench/quality.py). Every packet, in each direction, goes through an `Impairer`:

- loss: random (Bernoulli) with `burst` None, else bursty after Gilbert-Elliott: a good state
  that loses nothing and a bad state that loses everything, with transition probabilities set
  so that the mean loss is `loss` and the mean burst `burst` packets;
- delay: `delay` plus a uniform variation of +-`jitter` (netem's convention), never below 0;
  with `reorder` a packet whose delay is shorter overtakes earlier ones, as on a real network;
  without, packets keep their order (a FIFO link with variable queueing);
- duplication: with probability `duplicate` a second copy follows 1 ms later.
Each direction has its own random stream from `seed`, so a run is reproducible.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Address = tuple[str, int]

DUPLICATE_GAP = 0.001
"""Seconds between a packet and its duplicate."""
MAX_DATAGRAM = 65535


@dataclass(frozen=True)
class Impairment:
    """What the relay does to each direction."""

    loss: float = 0.0
    """Mean fraction of packets lost, 0..1."""
    burst: float | None = None
    """Mean length of a loss burst in packets (Gilbert-Elliott); None: independent losses."""
    delay: float = 0.0
    """Seconds added to every packet (mean)."""
    jitter: float = 0.0
    """Seconds: the delay varies uniformly in delay +- jitter (at least 0)."""
    duplicate: float = 0.0
    """Fraction of packets sent twice."""
    reorder: bool = True
    """Packets may overtake each other when their delays differ."""

    def __post_init__(self) -> None:
        if not 0 <= self.loss < 1 or not 0 <= self.duplicate <= 1:
            raise ValueError("loss must be in [0, 1) and duplicate in [0, 1]")
        if self.burst is not None and self.burst < 1:
            raise ValueError("a mean burst is at least one packet")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter are not negative")


class Impairer:
    """One direction's decisions: for each packet, when its copies leave (none: lost)."""

    def __init__(self, impairment: Impairment, seed: int) -> None:
        self.impairment = impairment
        self._random = random.Random(seed)
        self._bad = False
        self._last_due = 0.0
        imp = impairment
        if imp.burst is None or imp.loss == 0:
            self._to_bad = self._to_good = 0.0
        else:
            self._to_good = 1 / imp.burst
            self._to_bad = min(1.0, imp.loss * self._to_good / (1 - imp.loss))

    def _lost(self) -> bool:
        imp = self.impairment
        if imp.burst is None:
            return self._random.random() < imp.loss
        if self._bad:
            self._bad = self._random.random() >= self._to_good
        else:
            self._bad = self._random.random() < self._to_bad
        return self._bad

    def schedule(self, now: float) -> list[float]:
        """The times the copies of a packet that arrived at `now` are sent ([] = lost)."""
        imp = self.impairment
        lost = self._lost()
        # draw every number each time, so that one setting does not shift another's stream
        variation = self._random.uniform(-imp.jitter, imp.jitter)
        twice = self._random.random() < imp.duplicate
        if lost:
            return []
        due = now + max(0.0, imp.delay + variation)
        if not imp.reorder:
            due = max(due, self._last_due)
        self._last_due = max(self._last_due, due)
        return [due, due + DUPLICATE_GAP] if twice else [due]


@dataclass
class DirectionStats:
    received: int = 0
    lost: int = 0
    sent: int = 0
    duplicated: int = 0
    reordered: int = 0
    """Packets sent before one that arrived earlier."""


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    data: bytes = field(compare=False)
    out: socket.socket = field(compare=False)
    to_side: str = field(compare=False)
    arrival: int = field(compare=False)


class UdpRelay:
    """The relay between phone A (talking to side `a`) and phone B (talking to side `b`),
    on its own thread until `close`."""

    def __init__(
        self,
        a: Address,
        b: Address,
        impairment: Impairment | None = None,
        *,
        seed: int = 1,
        back: Impairment | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        forward = impairment or Impairment()
        self._sockets: dict[str, socket.socket] = {}
        for name, address in (("a", a), ("b", b)):
            sock = socket.socket(
                socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
            )
            sock.bind(address)
            self._sockets[name] = sock
        self.a: Address = self._sockets["a"].getsockname()[:2]
        self.b: Address = self._sockets["b"].getsockname()[:2]
        self._impairers = {
            "a": Impairer(forward, seed),  # what A sends, towards B
            "b": Impairer(back or forward, seed + 1),  # what B sends, towards A
        }
        self.stats = {"a": DirectionStats(), "b": DirectionStats()}
        self.peers: dict[str, Address | None] = {"a": None, "b": None}
        self._clock = clock
        self._queue: list[_Pending] = []
        self._order = 0
        self._sent_arrival = {"a": -1, "b": -1}
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="udp-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        by_fd = {sock.fileno(): name for name, sock in self._sockets.items()}
        readers = [*self._sockets.values(), self._wake_r]
        while not self._stop.is_set():
            now = self._clock()
            while self._queue and self._queue[0].due <= now:
                self._send(heapq.heappop(self._queue))
            timeout = max(0.0, self._queue[0].due - now) if self._queue else 0.5
            ready, _, _ = select.select(readers, [], [], timeout)
            for sock in ready:
                if sock is self._wake_r:
                    continue
                data, source = sock.recvfrom(MAX_DATAGRAM)
                self._received(by_fd[sock.fileno()], data, source[:2])

    def _received(self, side: str, data: bytes, source: Address) -> None:
        if self.peers[side] is None:
            self.peers[side] = source
        elif source != self.peers[side]:
            return  # not the phone this side latched
        stats = self.stats[side]
        arrival = stats.received
        stats.received += 1
        other = "b" if side == "a" else "a"
        dues = self._impairers[side].schedule(self._clock())
        if not dues:
            stats.lost += 1
        stats.duplicated += len(dues) > 1
        for due in dues:
            self._order += 1
            heapq.heappush(
                self._queue, _Pending(due, self._order, data, self._sockets[other], side, arrival)
            )

    def _send(self, pending: _Pending) -> None:
        side = pending.to_side
        target = self.peers["b" if side == "a" else "a"]
        if target is None:
            return  # the other phone has not spoken yet: nowhere to send
        stats = self.stats[side]
        if pending.arrival < self._sent_arrival[side]:
            stats.reordered += 1
        self._sent_arrival[side] = max(self._sent_arrival[side], pending.arrival)
        try:
            pending.out.sendto(pending.data, target)
            stats.sent += 1
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (*self._sockets.values(), self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> UdpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=parse_address, required=True, help="side A host:port")
    parser.add_argument("--b", type=parse_address, required=True, help="side B host:port")
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--burst", type=float, default=None)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="seconds")
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--no-reorder", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    impairment = Impairment(
        loss=args.loss,
        burst=args.burst,
        delay=args.delay,
        jitter=args.jitter,
        duplicate=args.duplicate,
        reorder=not args.no_reorder,
    )
    with UdpRelay(args.a, args.b, impairment, seed=args.seed) as relay:
        print(f"relaying A {relay.a} <-> B {relay.b} for {args.seconds:g} s: {impairment}")
        time.sleep(args.seconds)
    for side, stats in relay.stats.items():
        print(f"from {side.upper()}: {stats}")


if __name__ == "__main__":
    main()
