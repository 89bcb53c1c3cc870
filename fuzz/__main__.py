"""Run the fuzz targets by hand and report, per target, the inputs run, the findings and the
slowest input.

    nice -n 19 .venv/bin/python -m fuzz [TARGET ...] [--runs 1000000] [--workdir fuzz-out]
    .venv/bin/python -m fuzz replay TARGET FILE ...      # run saved inputs, show what happens

Each target runs in its own process under atheris (coverage-guided; `pip install -e
'.[fuzz]'`), which times every input in CPU time. The 20 slowest are timed again here,
without the instrumentation, as the median CPU time of several runs: that is the figure
reported against the 10 ms bar. The targets: fuzz/targets.py.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

from fuzz.targets import TARGETS, Target

RETIME_RUNS = 7
TARGET_MS = 10.0
"""No input may take longer than this (issue 10)."""


def retime(target: Target, data: bytes) -> float:
    """Median CPU milliseconds of `target` on `data`, uninstrumented."""
    times = []
    for _ in range(RETIME_RUNS):
        started = time.thread_time()
        with contextlib.suppress(Exception):  # findings are reported by the fuzzing process
            target.run(data)
        times.append((time.thread_time() - started) * 1000)
    return statistics.median(times)


def fuzz_one(name: str, runs: int, workdir: Path) -> dict[str, object]:
    out = workdir / name
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "fuzz.engine", name, str(out), str(runs)]
    with (out / "log.txt").open("wb") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    report: dict[str, object] = json.loads((out / "report.json").read_text())
    report["exit_status"] = status.returncode
    target = TARGETS[name]
    slow = sorted(out.glob("slow-*.bin"))
    timed = [(retime(target, path.read_bytes()), path) for path in slow]
    if timed:
        ms, path = max(timed)
        report["slowest_retimed_ms"] = round(ms, 3)
        report["slowest_input"] = str(path)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def show(report: dict[str, object]) -> str:
    findings = report["findings"]
    assert isinstance(findings, dict)
    retimed = report.get("slowest_retimed_ms", 0.0)
    assert isinstance(retimed, float | int)
    slowest = report["slowest_cpu_ms"]
    assert isinstance(slowest, list)
    verdict = "ok" if not findings and retimed <= TARGET_MS else "FAIL"
    return (
        f"{report['target']:<16} {report['inputs']:>9} inputs  {report['rejected']:>9} rejected"
        f"  {len(findings)} findings  slowest {retimed:.2f} ms CPU"
        f" ({slowest[0] if slowest else 0:.1f} ms instrumented)"
        f"  {report['seconds']} s  {verdict}"
    )


def replay(name: str, files: list[Path]) -> int:
    target = TARGETS[name]
    status = 0
    for path in files:
        data = path.read_bytes()
        try:
            target.run(data)
            outcome = "accepted"
        except target.expected as exc:
            outcome = f"rejected: {type(exc).__name__}: {exc}"
        except Exception:
            outcome = "FINDING\n" + traceback.format_exc()
            status = 1
        ms = retime(target, data)
        print(f"{path} ({len(data)} bytes, {ms:.2f} ms CPU): {outcome}")
    return status


def main(argv: list[str]) -> int:
    if argv[:1] == ["replay"]:
        if len(argv) < 3 or argv[1] not in TARGETS:
            print(f"usage: python -m fuzz replay {{{','.join(TARGETS)}}} FILE ...")
            return 2
        return replay(argv[1], [Path(p) for p in argv[2:]])
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], metavar="TARGET")
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--workdir", type=Path, default=Path("fuzz-out"))
    args = parser.parse_args(argv)
    if importlib.util.find_spec("atheris") is None:
        print("atheris is missing: .venv/bin/pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    names = args.targets or list(TARGETS)
    failed = False
    for name in names:
        report = fuzz_one(name, args.runs, args.workdir)
        line = show(report)
        failed |= line.endswith("FAIL")
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
