"""What ZRTP-looking junk costs a phone in a secured call: CRC-32C and the whole drop path.

Run: .venv/bin/python -m bench.zrtp_junk [--rounds N]
Prints, per datagram size, the CRC-32C alone (the C one in use and the Python table), and
`MediaSession.receive_datagram` of a junk ZRTP datagram with a bad CRC and of an oversized
one (dropped on its length before any CRC). The bound is `pidphone.app.media.MAX_DATAGRAM`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from pidphone.app.media import MAX_DATAGRAM, MediaConfig, MediaSession
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.crc import IMPLEMENTATION, crc32c, crc32c_table

SIZES = (128, 1452, 4096, 65507)


def per_call(function: Callable[[], object], rounds: int, inner: int) -> float:
    """Median over `rounds` of the mean time of `inner` calls, in microseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times) * 1e6


def junk(size: int) -> bytes:
    head = b"\x10\x00\x00\x01ZRTP\x00\x00\x00\x01"
    return (head + bytes(range(256)) * (size // 256 + 1))[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    session = MediaSession(MediaConfig(), cache=MemoryZidCache())
    session.set_remote(("127.0.0.1", 40002), now=0.0)
    session.start(0.0)
    source = ("127.0.0.2", 6666)
    print(f"CRC-32C in use: {IMPLEMENTATION}; media datagrams over {MAX_DATAGRAM} B dropped")
    print(f"{'bytes':>6} {'crc32c':>10} {'table':>12} {'receive_datagram':>18}")
    for size in SIZES:
        data = junk(size)
        fast = per_call(lambda d=data: crc32c(d), args.rounds, 200)  # type: ignore[misc]
        slow = per_call(lambda d=data: crc32c_table(d), args.rounds, 1 if size > 5000 else 5)  # type: ignore[misc]
        path = per_call(
            lambda d=data: session.receive_datagram(d, source, 0.0),  # type: ignore[misc]
            args.rounds,
            200,
        )
        print(f"{size:6d} {fast:8.2f}us {slow:10.1f}us {path:16.2f}us")
    print(f"drops: {dict(session.stats.drops)}")


if __name__ == "__main__":
    main()
