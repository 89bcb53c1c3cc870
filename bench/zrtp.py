"""Wall and CPU time of a complete back-to-back ZRTP exchange (Hello to Conf2ACK), and the
bytes it puts on the wire, per key agreement.

Run: .venv/bin/python -m bench.zrtp [--runs N] [--only X3M3,MLK3]
Issue 3's targets on a development machine: <= 10 ms with X255 or EC25, <= 40 ms with DH3k.
Issue 16's: <= 5 ms for X3M3 and MLK3 (post-quantum, S512; their Commit and DHPart1 go in
fragments). The bytes are every datagram of both ends, headers and CRCs included (UDP and IP
not counted).

`--kem` measures the post-quantum primitives alone (pidphone.zrtp.kem, fragments): operations
per second, and their share of one exchange.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from pidphone.zrtp import MemoryZidCache, Secured, ZrtpConfig, ZrtpSession, kem
from pidphone.zrtp.fragment import Reassembler, fragment_message

KEY_AGREEMENTS = ("X255", "EC25", "X448", "EC38", "DH2k", "DH3k", "X3M3", "MLK3", "MLK2")


def exchange(key_agreement: str) -> tuple[float, float, int, int]:
    """One exchange between two fresh sessions: (wall time, CPU time of this process) in
    seconds, bytes and datagrams on the wire."""
    hashes = ("S384",) if key_agreement == "EC38" else ("S256",)
    if key_agreement in kem.SCHEMES:
        hashes = ("S512",)
    config = ZrtpConfig(key_agreements=(key_agreement,), hashes=hashes)
    a = ZrtpSession(cache=MemoryZidCache(), ssrc=1, config=config)
    b = ZrtpSession(cache=MemoryZidCache(), ssrc=2, config=config)
    sizes: list[int] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    a.start(0.0)
    b.start(0.0)
    while True:
        to_b, to_a = a.datagrams_to_send(), b.datagrams_to_send()
        if not to_a and not to_b:
            break
        sizes += [len(packet) for packet in to_a + to_b]
        for packet in to_b:
            b.receive_datagram(packet, 0.0)
        for packet in to_a:
            a.receive_datagram(packet, 0.0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    secured = [e for s in (a, b) for e in iter(s.next_event, None) if isinstance(e, Secured)]
    if len(secured) != 2 or secured[0].sas != secured[1].sas:
        raise SystemExit(f"{key_agreement}: the exchange did not complete")
    return elapsed, cpu, sum(sizes), len(sizes)


def per_second(action: Callable[[], object], seconds: float = 1.0) -> float:
    """How many times `action` runs per second of CPU time (at least 20 runs)."""
    action()
    count, start = 0, time.process_time()
    while count < 20 or time.process_time() - start < seconds:
        action()
        count += 1
    return count / (time.process_time() - start)


def kem_work(name: str) -> Callable[[], None]:
    """The KEM part of one exchange: key pair, encapsulation, decapsulation, and the Commit
    and DHPart1 (public key and ciphertext plus their fixed fields) fragmented and reassembled."""
    scheme = kem.SCHEMES[name]

    def work() -> None:
        pair = kem.generate(name, "sha512", os.urandom)
        secret, ciphertext = kem.encapsulate(name, pair.public, "sha512", os.urandom)
        if pair.decapsulate(ciphertext) != secret:
            raise SystemExit(f"{name}: the two sides disagree")
        for size in (116 + scheme.public_key_bytes, 84 + scheme.ciphertext_bytes):
            reassembler = Reassembler()
            for packet in fragment_message(bytes(size), ssrc=1, message_id=1, first_sequence=1):
                reassembler.receive(packet, 0.0)

    return work


def kem_rates(name: str) -> tuple[float, float, float]:
    """Key pairs, encapsulations and decapsulations per second."""
    pair = kem.generate(name, "sha512", os.urandom)
    _, ciphertext = kem.encapsulate(name, pair.public, "sha512", os.urandom)
    return (
        per_second(lambda: kem.generate(name, "sha512", os.urandom)),
        per_second(lambda: kem.encapsulate(name, pair.public, "sha512", os.urandom)),
        per_second(lambda: pair.decapsulate(ciphertext)),
    )


def kem_section(runs: int) -> None:
    print(f"{'KEM (S512)':<12} {'keygen/s':>9} {'encaps/s':>9} {'decaps/s':>9} {'whole ms':>9}")
    for name in kem.SCHEMES:
        keygen, encaps, decaps = kem_rates(name)
        whole = 1000 / per_second(kem_work(name))
        print(f"{name:<12} {keygen:>9.0f} {encaps:>9.0f} {decaps:>9.0f} {whole:>9.3f}")
    for name in kem.SCHEMES:
        exchange(name)
        whole = statistics.median([exchange(name)[1] for _ in range(runs)]) * 1000
        work = 1000 / per_second(kem_work(name))
        print(
            f"{name} exchange (cpu, median of {runs}): {whole:.2f} ms, of which KEM {work:.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="exchanges per key agreement")
    parser.add_argument("--kem", action="store_true", help="the post-quantum primitives only")
    parser.add_argument("--only", default="", help="comma-separated key agreements (default: all)")
    args = parser.parse_args()
    if args.kem:
        kem_section(args.runs)
        return
    # CPU time is printed too: on a loaded machine the wall time mostly measures the others
    names = args.only.split(",") if args.only else KEY_AGREEMENTS
    print(
        f"{'key agreement':<14} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'cpu ms':>8}"
        f" {'bytes':>7} {'packets':>8}"
    )
    for name in names:
        exchange(name)  # warm up
        runs = [exchange(name) for _ in range(args.runs)]
        wall = [w * 1000 for w, _, _, _ in runs]
        cpu = statistics.median([c * 1000 for _, c, _, _ in runs])
        _, _, size, packets = runs[-1]
        print(
            f"{name:<14} {statistics.median(wall):>10.2f} {min(wall):>8.2f} {max(wall):>8.2f}"
            f" {cpu:>8.2f} {size:>7} {packets:>8}"
        )
    print(f"({args.runs} runs each: Hello to Conf2ACK, both ends in this process; cpu = median)")


if __name__ == "__main__":
    main()
