"""Start-up benchmark of the daemon (issue 7), run by hand:

    .venv/bin/python -m bench.startup                 # simulated hardware, no account
    .venv/bin/python -m bench.startup --kamailio      # also: to registered, against Kamailio

(a) time from starting `pidphone run` (simulated hardware) to READY=1 on a NOTIFY_SOCKET, median
of several starts; (b) the daemon's resident memory (VmRSS) once idle; (c) its peak VmRSS in a
call: the daemon's scripted keys lift the handset and dial a `pidphone answer` listening on
loopback (direct, TLS), and VmRSS is sampled while the call is secure. With `--kamailio`
(root, Debian's kamailio and kamailio-tls-modules): in a private network namespace, a Kamailio
TLS registrar on 127.0.0.1:5061 and a config with account alice — (c) time to the first STATUS=
line saying "registered" (`time_to_registered`). Targets: READY <= 1.5 s, RSS <= 50 MB on a
Raspberry Pi Zero 2 (about 10x slower than a desktop: scale the figures here accordingly).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STARTS = 7
IDLE_SECONDS = 2.0
REGISTER_TIMEOUT = 20.0
CALL_SAMPLE_SECONDS = 4.0

SIMULATED = """
hardware = "simulated"
[display]
driver = "none"
"""


@contextlib.contextmanager
def notify_socket(directory: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock, path
    finally:
        sock.close()
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def daemon(directory: Path, config: str, notify_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `pidphone run` process; stopped with SIGTERM (then killed) on leaving."""
    config_path = directory / "pidphone.toml"
    config_path.write_text(config)
    config_path.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    env["NOTIFY_SOCKET"] = str(notify_path)
    env["PIDPHONE_PROVISION_FILE"] = str(directory / "absent.toml")
    process = subprocess.Popen(
        [sys.executable, "-m", "pidphone.cli", "run", "--config", str(config_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(sock: socket.socket, match: Callable[[bytes], bool], timeout: float) -> float:
    """Block until a notification satisfies `match`; return when (perf_counter)."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            message = sock.recv(4096)
        except TimeoutError:
            raise TimeoutError("no matching notification in time") from None
        if match(message):
            return time.perf_counter()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def time_to_ready(config: str = SIMULATED) -> float:
    with tempfile.TemporaryDirectory() as tmp, notify_socket(Path(tmp)) as (sock, path):
        start = time.perf_counter()
        with daemon(Path(tmp), config, path):
            return wait_for(sock, lambda m: m == b"READY=1", 30) - start


def idle_rss(config: str = SIMULATED) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        notify_socket(Path(tmp)) as (sock, path),
        daemon(Path(tmp), config, path) as process,
    ):
        wait_for(sock, lambda m: m == b"READY=1", 30)
        time.sleep(IDLE_SECONDS)
        return rss_mb(process.pid)


def call_rss() -> float:
    """The daemon's peak VmRSS (MB) while in a secure call with a `pidphone answer` on
    loopback: the daemon dials it from a speed dial with scripted keys."""
    from pidphone.drivers.certs import make_test_pki

    with tempfile.TemporaryDirectory() as tmp, notify_socket(Path(tmp)) as (sock, path):
        work = Path(tmp)
        pki = make_test_pki(work / "pki", ["127.0.0.1"], client_name="127.0.0.1")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        callee = work / "callee.toml"
        callee.write_text(
            f'hardware = "simulated"\n[server]\nlisten = "127.0.0.1:{port}"\n'
            f'client_cert = "{pki.server_cert}"\nclient_key = "{pki.server_key}"\n'
            f'listen_ca_file = "{pki.ca_cert}"\n'
            f'keepalive_interval = 0\n[security]\nzid_cache = "{work / "bob-zid.json"}"\n'
        )
        callee.chmod(0o600)
        (work / "keys.txt").write_text("1.0 lift\n0.2 speed1\n")
        config = (
            f'hardware = "simulated"\n[display]\ndriver = "none"\n'
            f'[server]\nca_file = "{pki.ca_cert}"\nkeepalive_interval = 0\n'
            f'client_cert = "{pki.client_cert}"\nclient_key = "{pki.client_key}"\n'
            f'[security]\nzid_cache = "{work / "alice-zid.json"}"\n'
            f'[phone.speed_dials]\n"1" = "sips:bob@127.0.0.1:{port}"\n'
            f'[sim]\nkeys_script = "{work / "keys.txt"}"\n'
        )
        duration = str(CALL_SAMPLE_SECONDS + 6)
        answer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pidphone.cli",
                "answer",
                "--config",
                str(callee),
                "--duration",
                duration,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)  # the listener is up before the daemon dials
            with daemon(work, config, path) as process:
                wait_for(sock, lambda m: b"in call, secure" in m, 30)
                samples = []
                end = time.monotonic() + CALL_SAMPLE_SECONDS
                while time.monotonic() < end:
                    samples.append(rss_mb(process.pid))
                    time.sleep(0.2)
                return max(samples)
        finally:
            answer.terminate()
            answer.wait(timeout=15)


def time_to_registered() -> float:
    """Seconds from start to a STATUS= line containing "registered" (and not "not registered"),
    against a Kamailio on loopback in a private network namespace. Raises TimeoutError while
    the daemon does not register yet."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from pidphone.drivers.certs import make_test_pki
    from tests.peers.kamailio import Kamailio
    from tests.peers.netns import private_network

    def registered(message: bytes) -> bool:
        text = message.decode(errors="replace").lower()
        return text.startswith("status=") and "registered" in text and "not registered" not in text

    with tempfile.TemporaryDirectory() as tmp, private_network():
        work = Path(tmp)
        pki = make_test_pki(work / "pki")
        kamailio = Kamailio(work, pki)
        kamailio.start()
        try:
            host, port = kamailio.address
            config = (
                f'hardware = "simulated"\n[display]\ndriver = "none"\n'
                f'[account]\naor = "sip:alice@{host}"\npassword = "alicepw"\n'
                f'[server]\nregistrar = "{host}:{port}"\nca_file = "{pki.ca_cert}"\n'
            )
            with notify_socket(work) as (sock, path):
                start = time.perf_counter()
                with daemon(work, config, path):
                    return wait_for(sock, registered, REGISTER_TIMEOUT) - start
        finally:
            kamailio.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kamailio", action="store_true", help="also time registration")
    parser.add_argument("--starts", type=int, default=STARTS)
    args = parser.parse_args()
    times = [time_to_ready() for _ in range(args.starts)]
    print(
        f"start -> READY=1: median {statistics.median(times) * 1000:.0f} ms "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={len(times)})"
    )
    print(f"RSS idle after READY + {IDLE_SECONDS:g} s: {idle_rss():.1f} MB")
    print(f"RSS in a secure call (peak over {CALL_SAMPLE_SECONDS:g} s): {call_rss():.1f} MB")
    if args.kamailio:
        try:
            print(f"start -> registered (Kamailio, TLS): {time_to_registered() * 1000:.0f} ms")
        except TimeoutError:
            print(f"start -> registered: no 'registered' STATUS= within {REGISTER_TIMEOUT:g} s")


if __name__ == "__main__":
    main()
