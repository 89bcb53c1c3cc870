"""Time from starting the SIP stack to the 200 OK for REGISTER against a local Kamailio (issue 4),
run by hand as root:

    .venv/bin/python -m bench.register [ROUNDS]

Each round starts a fresh UserAgent + Signalling runner + TLS transport and stops the clock at
the `Registered` event: TCP connect, TLS handshake with certificate verification, REGISTER,
the 401 challenge and the authenticated REGISTER. Kamailio and the agent run in a private
network namespace on 127.0.0.1. Prints the median, the fastest and the slowest round.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.sip.events import Registered
from tests.peers.kamailio import Kamailio
from tests.peers.netns import private_network
from tests.peers.pidphone import Phone


async def one_round(kamailio: Kamailio, pki: Pki) -> float:
    start = time.perf_counter()
    phone = Phone("alice", "alicepw", pki=pki, registrar=kamailio.address)
    await phone.start()
    await phone.expect(Registered)
    elapsed = time.perf_counter() - start
    await phone.sip.aclose()
    return elapsed


async def rounds(kamailio: Kamailio, pki: Pki, count: int) -> list[float]:
    return [await one_round(kamailio, pki) for _ in range(count)]


def measure(count: int) -> list[float]:
    """Seconds of `count` rounds against a Kamailio started for them in a private network."""
    with tempfile.TemporaryDirectory() as work, private_network():
        pki = make_test_pki(Path(work) / "pki")
        kamailio = Kamailio(Path(work) / "kamailio", pki)
        kamailio.start()
        try:
            return asyncio.run(rounds(kamailio, pki, count))
        finally:
            kamailio.stop()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    ms = [t * 1000 for t in measure(count)]
    print(
        f"REGISTER over TLS with digest auth, agent start to 200 OK ({count} rounds): "
        f"median {statistics.median(ms):.1f} ms, min {min(ms):.1f} ms, max {max(ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
