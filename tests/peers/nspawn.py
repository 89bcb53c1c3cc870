"""A Debian system booted by systemd (PID 1) in systemd-nspawn, for tests of the phone as it is
installed.

    with Container(root, binds_ro={wheels: "/mnt/wheels"}).started() as box:
        box.run("systemctl", "is-active", "pidphone")      # a CompletedProcess, text
        box.path("/etc/pidphone/pidphone.toml").read_text()  # the container's files, from here

The root (scripts/debian-root.sh) is only read: the container writes into a RAM overlay
(`--volatile=overlay`), so every run starts from the same system and the cache stays clean.
The container shares the caller's network namespace (no --private-network): servers on the
test's loopback are reachable from inside. There is no machined here, so commands run inside
through nsenter(1) into the container's namespaces, and files are reached through
/proc/<its PID 1>/root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Self

MAX_LIFETIME = 900
"""Seconds after which `timeout` ends the container whatever happens to the test."""

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(RuntimeError):
    """The container did not boot, or a command in it failed; the message says what it said."""


class Container:
    def __init__(
        self,
        root: Path,
        log: Path,
        *,
        binds_ro: Mapping[Path, str] | None = None,
        machine: str = "pidphone-test",
    ) -> None:
        self.root = root
        self.log = log
        self.binds_ro = dict(binds_ro or {})
        self.machine = machine
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0

    @contextlib.contextmanager
    def started(self, timeout: float = 60.0) -> Iterator[Self]:
        self.start(timeout)
        try:
            yield self
        finally:
            self.stop()

    def start(self, timeout: float = 60.0) -> None:
        nspawn = shutil.which("systemd-nspawn")
        if nspawn is None:
            raise ContainerError("systemd-nspawn is not installed (Debian's systemd-container)")
        args = [
            "timeout",
            "--kill-after=10",
            str(MAX_LIFETIME),
            nspawn,
            "--quiet",
            f"--directory={self.root}",
            "--volatile=overlay",
            # No machined and no host bus here: keep nspawn in the caller's cgroup.
            "--register=no",
            "--keep-unit",
            f"--machine={self.machine}",
            "--console=pipe",
            "--boot",
        ]
        args += [f"--bind-ro={source}:{target}" for source, target in self.binds_ro.items()]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            self.leader = self._find_leader()
            self._check_alive(deadline, "a PID 1")
            time.sleep(0.05)
        # Booted far enough when PID 1 answers; "running" may never come in a minimal root.
        while self.run("systemctl", "is-system-running", check=False).stdout.strip() not in {
            "running",
            "degraded",
        }:
            self._check_alive(deadline, "a running system")
            time.sleep(0.2)

    def _check_alive(self, deadline: float, what: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ContainerError(f"systemd-nspawn exited:\n{self.log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise ContainerError(f"no {what} in the container:\n{self.log.read_text()}")

    def _find_leader(self) -> int:
        """The container's PID 1: the process, below nspawn, that is PID 1 in its namespace."""
        assert self.process is not None
        parents = {self.process.pid}
        for _ in range(4):  # timeout -> nspawn -> (its helper) -> init
            children: set[int] = set()
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    lines = status.read_text().splitlines()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in lines if ":" in line)
                if int(fields.get("PPid", "0")) in parents:
                    pid = int(status.parent.name)
                    if fields.get("NSpid", "").split()[-1:] == ["1"] and pid != 1:
                        return pid
                    children.add(pid)
            if not children:
                return 0
            parents = children
        return 0

    def stop(self, timeout: float = 30.0) -> None:
        """Power the system off; SIGKILL nspawn (by its PID) if it does not stop in time."""
        process, self.process = self.process, None
        if process is None:
            return
        if self.leader and process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd: power off
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self.leader = 0

    # ------------------------------------------------------------------ inside

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` in the container as root, with a clean environment (and `env`)."""
        environ = [f"{k}={v}" for k, v in {"PATH": PATH, "LANG": "C.UTF-8", **(env or {})}.items()]
        args = ["nsenter", f"--target={self.leader}", "--mount", "--uts", "--ipc", "--pid"]
        args += ["--root", "--wd", "env", "-i", *environ, *command]
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
        if check and result.returncode != 0:
            raise ContainerError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def path(self, inside: str) -> Path:
        """Where the container's file `inside` is seen from here."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644, owner: str = "root") -> None:
        """Write a file in the container (through a temporary file and a rename, as an editor
        would), with its mode and owner."""
        temp = f"{inside}.new"
        self.path(temp).write_text(text)
        self.run("chmod", f"{mode:o}", temp)
        self.run("chown", f"{owner}:{owner}", temp)
        self.run("mv", temp, inside)

    def systemctl_show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
