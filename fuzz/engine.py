"""One target under atheris (libFuzzer, coverage-guided), in a process of its own:
`python -m fuzz.engine TARGET WORKDIR RUNS`; `python -m fuzz` starts it and reads its report.

Every input is timed in CPU time of this thread (a shared machine's wall clock would rank the
inputs by when the scheduler paused us, not by their cost). The process does not stop at a
finding: each distinct one (exception type and the innermost line of pidphone it came from)
is written once to WORKDIR as `finding-N.bin` (the input) and `finding-N.txt` (the
traceback), and counted, so that one run gives every finding and the true number of inputs.
The slowest inputs are kept as `slow-N.bin`; `report.json` holds the counts, rewritten every
few thousand inputs and at the end.
"""

from __future__ import annotations

import atexit
import heapq
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

KEEP_SLOWEST = 20
REPORT_EVERY = 5000
NOT_INSTRUMENTED = ["pidphone.zrtp.crc"]
"""A pure-Python CRC loop: instrumenting it makes every ZRTP input many times slower and
teaches the fuzzer nothing (the targets fix up the CRC themselves)."""


class Recorder:
    """Counts, times and keeps what the fuzz loop sees."""

    def __init__(self, name: str, workdir: Path, runs: int) -> None:
        self.name = name
        self.workdir = workdir
        self.runs = runs
        self.inputs = 0
        self.rejected = 0
        self.findings: dict[str, int] = {}
        self.finding_hits = 0
        self.slowest: list[tuple[int, int, bytes]] = []  # (ns, serial, input), a min-heap
        self.started = time.monotonic()

    def time(self, elapsed_ns: int, data: bytes) -> None:
        if len(self.slowest) < KEEP_SLOWEST:
            heapq.heappush(self.slowest, (elapsed_ns, self.inputs, data))
        elif elapsed_ns > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, (elapsed_ns, self.inputs, data))

    def finding(self, exc: BaseException, data: bytes) -> None:
        self.finding_hits += 1
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "pidphone" in f.filename] or frames[-1:]
        where = f"{ours[-1].filename}:{ours[-1].lineno}" if ours else "?"
        signature = f"{type(exc).__name__} at {where}"
        if isinstance(exc, AssertionError):  # the target's own check: which one failed
            signature += f" ({str(exc)[:60]})"
        if signature in self.findings:
            self.findings[signature] += 1
            return
        number = len(self.findings) + 1
        self.findings[signature] = 1
        (self.workdir / f"finding-{number}.bin").write_bytes(data)
        text = "".join(traceback.format_exception(exc))
        (self.workdir / f"finding-{number}.txt").write_text(f"{signature}\n\n{text}")
        print(f"\n[{self.name}] finding {number}: {signature}", file=sys.stderr, flush=True)
        self.write()

    def write(self) -> None:
        slowest = sorted(self.slowest, reverse=True)
        for index, (_, _, data) in enumerate(slowest):
            (self.workdir / f"slow-{index}.bin").write_bytes(data)
        report = {
            "target": self.name,
            "inputs": self.inputs,
            "rejected": self.rejected,
            "seconds": round(time.monotonic() - self.started, 1),
            "findings": self.findings,
            "finding_hits": self.finding_hits,
            "slowest_cpu_ms": [round(ns / 1e6, 3) for ns, _, _ in slowest],
        }
        temp = self.workdir / "report.json.tmp"
        temp.write_text(json.dumps(report, indent=1))
        temp.replace(self.workdir / "report.json")


def _escaped(token: bytes) -> str:
    """A token in libFuzzer's dictionary syntax: printable ASCII as is, the rest as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token)


def main(argv: list[str]) -> None:
    name, workdir, runs = argv[0], Path(argv[1]), int(argv[2])
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["pidphone"], exclude=NOT_INSTRUMENTED):
        targets = importlib.import_module("fuzz.targets")
    targets.memoize_pure_crypto()
    target = targets.TARGETS[name]
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(target.seeds()):
        (corpus / f"seed-{index}").write_bytes(seed)
    dictionary = workdir / "dictionary.txt"
    tokens = (*targets.seeds.TOKENS, *target.dictionary)
    dictionary.write_text("".join(f'"{_escaped(token)}"\n' for token in tokens))
    recorder = Recorder(name, workdir, runs)
    atexit.register(recorder.write)
    expected = target.expected
    run = target.run
    clock = time.thread_time_ns

    def one_input(data: bytes) -> None:
        started = clock()
        try:
            run(data)
        except expected:
            recorder.rejected += 1
        except Exception as exc:
            recorder.finding(exc, data)
        recorder.time(clock() - started, data)
        recorder.inputs += 1
        if recorder.inputs % REPORT_EVERY == 0 or recorder.inputs == runs:
            recorder.write()

    libfuzzer_args = [
        sys.argv[0],
        f"-runs={runs}",
        f"-max_len={target.max_len}",
        "-timeout=10",
        "-rss_limit_mb=1536",
        "-print_final_stats=1",
        f"-artifact_prefix={workdir}/",
        f"-dict={dictionary}",
        str(corpus),
    ]
    atheris.Setup(libfuzzer_args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
