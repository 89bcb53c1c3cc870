"""A private network namespace for tests that run real servers.

Why this shape: the SIP agent under test runs inside the pytest process, so it has to share a
network namespace with Kamailio and linphonec. `private_network()` moves the calling thread
(pytest's main thread, which runs the tests, their event loops and every subprocess they
start) into a fresh namespace with only `lo`, and moves it back afterwards:

- nothing can leave the machine (there is no route, and DNS has no server to reach);
- fixed ports (5061 ...) never clash between the pytest-xdist workers, each in its own
  namespace;
- the worker's other threads (execnet's channel to the controller speaks over pipes) are
  untouched, because namespaces are per thread and unshare(2) moves only the caller.

Namespaces are per thread, so only code on the thread that entered sees the private network;
threads started after entering inherit it. Use it from a module-scoped fixture and stop every
process started inside before leaving. Needs CAP_SYS_ADMIN (root, as in CI).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import IN_CI

CLONE_NEWNET = 0x40000000


class NamespaceUnavailableError(RuntimeError):
    """This process may not create a network namespace (not root, or a locked-down sandbox)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def can_unshare() -> bool:
    """Whether `private_network()` can work here (cheap check: are we root?)."""
    return os.geteuid() == 0


def need_private_network() -> None:
    """Skip (fail in CI) where `private_network()` cannot work, as `need_program` does for a
    missing program: CI must never pass by skipping."""
    if not can_unshare():
        message = "a private network namespace needs root"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def private_network() -> Iterator[None]:
    """Run the body in a new network namespace with `lo` up; restore the old one after."""
    libc = _libc()
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NamespaceUnavailableError(f"unshare(CLONE_NEWNET) failed: {os.strerror(errno)}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(
                    errno, f"cannot return to the original network namespace: {os.strerror(errno)}"
                )
    finally:
        os.close(original)


def interfaces() -> list[str]:
    """Names of the network interfaces this thread can see (for tests of the isolation)."""
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True, timeout=10
    )
    return [
        line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if ":" in line
    ]
