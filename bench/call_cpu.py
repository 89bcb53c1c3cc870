"""CPU of one pidphone call, pidphone against pidphone on loopback, run by hand:

    .venv/bin/python -m bench.call_cpu [--seconds 60] [--audio-in tone|file]
    .venv/bin/python -m bench.call_cpu --idle [--seconds 60]

`pidphone answer` and `pidphone call` as two processes, a direct call over TLS (no registrar),
simulated audio: a 1 kHz tone one way and 700 Hz the other, computed by the simulated
microphone (`--audio-in tone`) or read from a raw file (`--audio-in file`, as bench/call.py
does). For each process: CPU seconds (utime + stime of /proc/PID/stat) per call-minute over
the steady part of the call (from the SAS known on both sides until SETTLE seconds before the
hang-up), and peak RSS (VmHWM). Quicker to repeat than bench/call.py, which needs Kamailio
and linphonec; use it to see what a change to the media path costs.

`--idle`: the daemon with nothing to do (`pidphone run`, simulated hardware, no display, no
account), measured for `--seconds` from IDLE_SETTLE seconds after it starts: CPU seconds per
minute and context switches per second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pidphone.drivers.certs import make_test_pki

IDLE_SETTLE = 10.0
"""Seconds an idle daemon runs before it is measured (start-up done, the audio clock stopped)."""
SETTLE = 2.0
"""Seconds cut from the end of the measuring window, so the hang-up is not in it."""
REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the process's threads: each is a
    wake-up, what a 20 ms media tick costs most."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in status.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raw_tone(path: Path, frequency: float, seconds: float = 10.0) -> Path:
    step = 2 * math.pi * frequency / 8000
    count = int(8000 * seconds)
    path.write_bytes(
        struct.pack(f"<{count}h", *(int(8000 * math.sin(step * n)) for n in range(count)))
    )
    return path


def write_config(path: Path, body: str) -> Path:
    path.write_text('hardware = "simulated"\n' + body)
    path.chmod(0o600)
    return path


class Process:
    """One pidphone process whose stderr progress lines are watched for the SAS."""

    def __init__(self, args: list[str], name: str, profile: Path | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.name = name
        wrap = ["-m", "cProfile", "-o", str(profile / f"{name}.prof")] if profile else []
        self.popen = subprocess.Popen(
            [sys.executable, *wrap, "-m", "pidphone.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.secure = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line.rstrip())
            if line.startswith("SECURE"):
                self.secure.set()


def idle(seconds: float) -> int:
    with tempfile.TemporaryDirectory(prefix="pidphone-idle-") as tmp:
        work = Path(tmp)
        config = write_config(
            work / "idle.toml",
            f'[display]\ndriver = "none"\n[security]\nzid_cache = "{work / "zid.json"}"\n',
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env["PYTHONPATH"] = str(REPO)
        env["PIDPHONE_PROVISION_FILE"] = str(work / "absent.toml")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pidphone.cli", "run", "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(IDLE_SETTLE)
            if daemon.poll() is not None:
                print(f"the daemon ended: exit {daemon.returncode}", file=sys.stderr)
                return 1
            cpu, switches, start = (
                cpu_seconds(daemon.pid),
                context_switches(daemon.pid),
                time.monotonic(),
            )
            time.sleep(seconds)
            window = time.monotonic() - start
            cpu = cpu_seconds(daemon.pid) - cpu
            switches = context_switches(daemon.pid) - switches
        finally:
            daemon.terminate()
            daemon.wait(15)
    print(
        f"idle daemon: {cpu / window * 60:5.3f} CPU-s per minute (window {window:.1f} s, "
        f"from {IDLE_SETTLE:g} s after start), {switches / window:.1f} context switches/s"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--audio-in", choices=("tone", "file"), default="tone")
    parser.add_argument(
        "--profile", type=Path, help="run both under cProfile, writing DIR/call.prof, answer.prof"
    )
    parser.add_argument("--idle", action="store_true", help="the daemon with no call")
    args = parser.parse_args()
    if args.idle:
        return idle(args.seconds)

    with tempfile.TemporaryDirectory(prefix="pidphone-cpu-") as tmp:
        work = Path(tmp)
        pki = make_test_pki(work / "pki", ["127.0.0.1"], client_name="127.0.0.1")
        port = free_port()

        def sim(frequency: float) -> str:
            if args.audio_in == "file":
                raw = raw_tone(work / f"tone{frequency:g}.raw", frequency)
                return f'[sim]\naudio_in_file = "{raw}"\n'
            return f"[sim]\ntone_frequency = {frequency}\n"

        callee = write_config(
            work / "bob.toml",
            f'[server]\nlisten = "127.0.0.1:{port}"\nclient_cert = "{pki.server_cert}"\n'
            f'client_key = "{pki.server_key}"\nca_file = "{pki.ca_cert}"\nkeepalive_interval = 0\n'
            f'listen_ca_file = "{pki.ca_cert}"\n'
            f'[security]\nzid_cache = "{work / "bob-zid.json"}"\n' + sim(700),
        )
        caller = write_config(
            work / "alice.toml",
            f'[server]\nca_file = "{pki.ca_cert}"\nkeepalive_interval = 0\n'
            f'client_cert = "{pki.client_cert}"\nclient_key = "{pki.client_key}"\n'
            f'[security]\nzid_cache = "{work / "alice-zid.json"}"\n' + sim(1000),
        )
        seconds = f"{args.seconds:g}"
        answer = Process(
            ["answer", "--config", str(callee), "--duration", "3600", "--json"],
            "answer",
            args.profile,
        )
        time.sleep(1.0)
        call = Process(
            [
                "call",
                f"sips:bob@127.0.0.1:{port}",
                "--config",
                str(caller),
                "--duration",
                seconds,
                "--json",
            ],
            "call",
            args.profile,
        )
        procs = (call, answer)
        try:
            for proc in procs:
                if not proc.secure.wait(30):
                    print(f"{proc.name}: no SAS\n" + "\n".join(proc.lines), file=sys.stderr)
                    return 1
            start = time.monotonic()
            before = {p.name: cpu_seconds(p.popen.pid) for p in procs}
            switches = {p.name: context_switches(p.popen.pid) for p in procs}
            time.sleep(max(1.0, args.seconds - 1.0 - SETTLE))
            window = time.monotonic() - start
            after = {p.name: cpu_seconds(p.popen.pid) for p in procs}
            switches = {p.name: context_switches(p.popen.pid) - switches[p.name] for p in procs}
            rss = {p.name: peak_rss_kib(p.popen.pid) for p in procs}
            outputs = {p.name: p.popen.communicate(timeout=30)[0] for p in procs}
        finally:
            for proc in procs:
                if proc.popen.poll() is None:
                    proc.popen.kill()
        for proc in procs:
            per_minute = (after[proc.name] - before[proc.name]) / window * 60
            report = json.loads(outputs[proc.name] or "{}")
            print(
                f"{proc.name:6s}: {per_minute:5.2f} CPU-s per call-minute "
                f"(window {window:.1f} s), {switches[proc.name] / window:.0f} context "
                f"switches/s, peak RSS {rss[proc.name] / 1024:.1f} MiB, "
                f"exit {proc.popen.returncode}, {report.get('state')}, "
                f"packets sent {report.get('packets_sent')} received "
                f"{report.get('packets_received')} lost {report.get('packets_lost')}, "
                f"heard {report.get('received_frequencies')} Hz"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
