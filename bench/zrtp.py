"""Wall time of a complete back-to-back ZRTP exchange (Hello to Conf2ACK), per key agreement.

Run: .venv/bin/python -m bench.zrtp [--runs N]
Issue 3's targets on a development machine: <= 10 ms with X255 or EC25, <= 40 ms with DH3k.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pidphone.zrtp import MemoryZidCache, Secured, ZrtpConfig, ZrtpSession

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
        to_b, to_a = a.packets_to_send(), b.packets_to_send()
        if not to_a and not to_b:
            break
        for packet in to_b:
            b.receive_packet(packet, 0.0)
        for packet in to_a:
            a.receive_packet(packet, 0.0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    secured = [e for s in (a, b) for e in iter(s.next_event, None) if isinstance(e, Secured)]
    if len(secured) != 2 or secured[0].sas != secured[1].sas:
        raise SystemExit(f"{key_agreement}: the exchange did not complete")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="exchanges per key agreement")
    args = parser.parse_args()
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
