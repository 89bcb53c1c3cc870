"""Wall time of a complete back-to-back ZRTP exchange (Hello to Conf2ACK), per key agreement.

Run: .venv/bin/python -m bench.zrtp [--runs N]
Issue 3's targets on a development machine: <= 10 ms with X255 or EC25, <= 40 ms with DH3k.

`--kem` measures the post-quantum primitives alone (pidphone.zrtp.kem, fragments): operations
per second, and the cost of an X3M3 or MLK3 exchange estimated as a measured X448 exchange with
its X448 work replaced by the KEM's (and the large Commit and DHPart1 fragmented and
reassembled). Issue 16's target: <= 5 ms back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import x448

from pidphone.zrtp import MemoryZidCache, Secured, ZrtpConfig, ZrtpSession, kem
from pidphone.zrtp.fragment import Reassembler, fragment_message

KEY_AGREEMENTS = ("X255", "EC25", "X448", "EC38", "DH2k", "DH3k")


def exchange(key_agreement: str) -> tuple[float, float]:
    """One exchange between two fresh sessions: (wall time, CPU time of this process), s."""
    hashes = ("S384",) if key_agreement == "EC38" else ("S256",)
    config = ZrtpConfig(key_agreements=(key_agreement,), hashes=hashes)
    a = ZrtpSession(cache=MemoryZidCache(), ssrc=1, config=config)
    b = ZrtpSession(cache=MemoryZidCache(), ssrc=2, config=config)
    start, cpu_start = time.perf_counter(), time.process_time()
    a.start(0.0)
    b.start(0.0)
    while True:
        to_b, to_a = a.datagrams_to_send(), b.datagrams_to_send()
        if not to_a and not to_b:
            break
        for packet in to_b:
            b.receive_datagram(packet, 0.0)
        for packet in to_a:
            a.receive_datagram(packet, 0.0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    secured = [e for s in (a, b) for e in iter(s.next_event, None) if isinstance(e, Secured)]
    if len(secured) != 2 or secured[0].sas != secured[1].sas:
        raise SystemExit(f"{key_agreement}: the exchange did not complete")
    return elapsed, cpu


def per_second(action: Callable[[], object], seconds: float = 1.0) -> float:
    """How many times `action` runs per second of CPU time (at least 20 runs)."""
    action()
    count, start = 0, time.process_time()
    while count < 20 or time.process_time() - start < seconds:
        action()
        count += 1
    return count / (time.process_time() - start)


def x448_work() -> None:
    """The X448 part of an X448 exchange: two key pairs, two DH computations."""
    a, b = x448.X448PrivateKey.generate(), x448.X448PrivateKey.generate()
    a.exchange(b.public_key())
    b.exchange(a.public_key())


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
    exchange("X448")
    x448_exchange = statistics.median([exchange("X448")[1] for _ in range(runs)]) * 1000
    x448_part = 1000 / per_second(x448_work)
    print(
        f"X448 exchange (cpu, median of {runs}): {x448_exchange:.2f} ms, of which X448 work "
        f"{x448_part:.3f} ms"
    )
    for name in ("X3M3", "MLK3"):
        estimate = x448_exchange - x448_part + 1000 / per_second(kem_work(name))
        print(f"{name} back to back, estimated: {estimate:.2f} ms (target 5 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="exchanges per key agreement")
    parser.add_argument("--kem", action="store_true", help="the post-quantum primitives only")
    args = parser.parse_args()
    if args.kem:
        kem_section(args.runs)
        return
    # CPU time is printed too: on a loaded machine the wall time mostly measures the others
    print(f"{'key agreement':<14} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'cpu ms':>8}")
    for name in KEY_AGREEMENTS:
        exchange(name)  # warm up
        runs = [exchange(name) for _ in range(args.runs)]
        wall = [w * 1000 for w, _ in runs]
        cpu = statistics.median([c * 1000 for _, c in runs])
        print(
            f"{name:<14} {statistics.median(wall):>10.2f} {min(wall):>8.2f} {max(wall):>8.2f}"
            f" {cpu:>8.2f}"
        )
    print(f"({args.runs} runs each: Hello to Conf2ACK, both ends in this process; cpu = median)")


if __name__ == "__main__":
    main()
