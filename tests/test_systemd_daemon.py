"""A real `pidphone run` process (simulated hardware, no account) under a test-made NOTIFY_SOCKET:
READY=1, STATUS=, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 on SIGHUP, STOPPING=1 and
exit 0 on SIGTERM, and exit 78 for a bad config."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFIG = """
hardware = "simulated"
[display]
driver = "none"
[logging]
level = "debug"
"""


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    yield sock, path
    sock.close()


def start(tmp_path: Path, notify_path: Path, config: str, **env: str) -> subprocess.Popen[bytes]:
    path = tmp_path / "pidphone.toml"
    path.write_text(config)
    path.chmod(0o600)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    environ = {
        **inherited,
        "NOTIFY_SOCKET": str(notify_path),
        "PIDPHONE_PROVISION_FILE": str(tmp_path / "no-boot-file.toml"),
        **env,
    }
    with (tmp_path / "stderr.log").open("wb") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "pidphone.cli", "run", "--config", str(path)],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def receive_until(sock: socket.socket, wanted: bytes) -> list[bytes]:
    """Every notification up to and including `wanted`."""
    seen: list[bytes] = []
    while True:
        message = sock.recv(4096)
        seen.append(message)
        if message == wanted:
            return seen


def test_ready_status_watchdog_reload_and_clean_stop(
    tmp_path: Path, notify: tuple[socket.socket, Path]
) -> None:
    sock, path = notify
    # WatchdogSec=1s: pings every 0.5 s; the test only counts them, it never times them.
    process = start(tmp_path, path, CONFIG, WATCHDOG_USEC="1000000")
    try:
        before_ready = receive_until(sock, b"READY=1")
        assert any(m.startswith(b"STATUS=") for m in before_ready)
        assert receive_until(sock, b"WATCHDOG=1")[-1] == b"WATCHDOG=1"
        assert receive_until(sock, b"WATCHDOG=1")[-1] == b"WATCHDOG=1"
        process.send_signal(signal.SIGHUP)
        after_hup = receive_until(sock, b"READY=1")
        assert b"RELOADING=1" in after_hup
        process.send_signal(signal.SIGTERM)
        after_term = receive_until(sock, b"STOPPING=1")
        assert b"STOPPING=1" in after_term
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_no_watchdog_without_watchdog_usec(
    tmp_path: Path, notify: tuple[socket.socket, Path]
) -> None:
    sock, path = notify
    process = start(tmp_path, path, CONFIG)
    try:
        receive_until(sock, b"READY=1")
        process.send_signal(signal.SIGTERM)
        seen = receive_until(sock, b"STOPPING=1")
        assert b"WATCHDOG=1" not in seen
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_config_exits_78_before_ready(
    tmp_path: Path, notify: tuple[socket.socket, Path]
) -> None:
    sock, path = notify
    process = start(tmp_path, path, CONFIG + "[keypad]\nrows = [5, 6, 40, 13]\n")
    assert process.wait(timeout=20) == 78
    stderr = (tmp_path / "stderr.log").read_text()
    assert "keypad.rows[2]: GPIO 40 does not exist" in stderr
    sock.settimeout(0)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)  # never READY=1


def test_an_invalid_boot_file_beside_a_valid_config_is_on_the_screen_and_in_status(
    tmp_path: Path, notify: tuple[socket.socket, Path]
) -> None:
    """The phone starts with the config it has, and says why the new file was not taken in."""
    sock, path = notify
    config = tmp_path / "pidphone.toml"
    config.write_text('hardware = "simulated"\n[display]\ndriver = "ssd1306"\n')
    config.chmod(0o600)
    boot = tmp_path / "boot" / "pidphone.toml"
    boot.parent.mkdir()
    boot.write_text('[keypad]\nrows = [5, 6, 40, 13]\n[account]\npassword = "boot-secret"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    environ |= {"NOTIFY_SOCKET": str(path), "PIDPHONE_PROVISION_FILE": str(boot)}
    with (tmp_path / "out.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pidphone.cli", "run", "--config", str(config)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        seen = receive_until(sock, b"READY=1")
        statuses = [m.decode() for m in seen if m.startswith(b"STATUS=")]
        assert statuses[-1].startswith(f"STATUS={boot} not installed: keypad.rows[2]: GPIO 40")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    shown = (tmp_path / "out.log").read_text()
    # The idle screen (a text box from the simulated display) carries the key first.
    assert "| keypad.rows[2]: GPIO" in shown
    assert "boot-secret" not in shown
    assert boot.exists()


def test_the_test_only_wedge_stops_the_watchdog_pings(
    tmp_path: Path, notify: tuple[socket.socket, Path]
) -> None:
    """What the container test uses to show systemd's watchdog at work: with the variable set,
    SIGUSR2 blocks the loop and the pings stop."""
    sock, path = notify
    process = start(
        tmp_path, path, CONFIG, WATCHDOG_USEC="400000", PIDPHONE_TEST_WEDGE_ON_SIGUSR2="1"
    )
    try:
        receive_until(sock, b"READY=1")
        receive_until(sock, b"WATCHDOG=1")
        process.send_signal(signal.SIGUSR2)
        log = tmp_path / "stderr.log"
        deadline = time.monotonic() + 20
        while "the event loop stops here" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        sock.settimeout(0)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(4096)  # a ping sent before the signal was handled
        sock.settimeout(1.0)  # five intervals
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()
