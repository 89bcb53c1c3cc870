"""A stop or a reload sent while `pidphone run` starts is not lost: the real command, in a
child process, blocks SIGTERM, SIGINT and SIGHUP from its first line until the daemon has its
handlers. The test waits until the kernel shows SIGTERM blocked (/proc/PID/status, SigBlk),
which is before the imports and the config are done, and sends the signal then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HELD = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
START_TIMEOUT = 60.0
"""A loaded machine takes seconds to start Python."""


def blocked(pid: int) -> set[int]:
    """The signals the process's main thread has blocked now."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


@contextmanager
def starting_daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[str]]]:
    config = tmp_path / "pidphone.toml"
    config.write_text(
        'hardware = "simulated"\n[display]\ndriver = "none"\n'
        f'[security]\nzid_cache = "{tmp_path / "zid.json"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pidphone.cli", "run", "--no-provision", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(map(bytes.decode, process.stdout or ())))
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(10)


def wait_until_held(process: subprocess.Popen[bytes], lines: list[str]) -> None:
    """Until SIGTERM is blocked, while the daemon is not yet ready."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            now = blocked(process.pid)
            # exactly those (between fork and exec the child blocks every signal for a moment)
            if now >= HELD and signal.SIGUSR1 not in now:
                return
        except (FileNotFoundError, StopIteration):
            pass  # not exec'd yet, or gone (the assertion below says which)
        ready = any("pidphone.daemon: ready" in line for line in lines)
        assert not ready, "SIGTERM was never held while the daemon started"
        assert process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.001)


def wait_for(lines: list[str], text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, "".join(lines)
        assert process.poll() is None, "".join(lines)
        time.sleep(0.02)


def test_a_stop_during_start_up_is_an_orderly_stop(tmp_path: Path) -> None:
    with starting_daemon(tmp_path) as (process, lines):
        wait_until_held(process, lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_TIMEOUT) == 0, "".join(lines)
    output = "".join(lines)
    assert "pidphone.daemon: stopped" in output, output
    assert "pidphone.daemon: ready" not in output, output  # never READY=1 when told to stop
    assert "Traceback" not in output, output


def test_a_reload_during_start_up_is_done_once_started(tmp_path: Path) -> None:
    with starting_daemon(tmp_path) as (process, lines):
        wait_until_held(process, lines)
        process.send_signal(signal.SIGHUP)
        wait_for(lines, "SIGHUP: config reloaded", process)
        assert process.poll() is None  # still running
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_TIMEOUT) == 0, "".join(lines)
    output = "".join(lines)
    assert "SIGHUP during start-up" in output, output
    assert output.index("pidphone.daemon: ready") < output.index("SIGHUP: config reloaded")
    assert output.count("SIGHUP: config reloaded") == 1, output
    assert "pidphone.daemon: stopped" in output, output
