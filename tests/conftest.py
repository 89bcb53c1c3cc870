"""Shared test plumbing.

Tests that need a system program (kamailio, linphonec, systemd-analyze) call `need_program`:
outside CI a missing program skips with the reason; with CI=true it fails, so CI can never pass
by skipping.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need_program(name: str, package: str) -> str:
    """Return the program's path, or skip (fail in CI) naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found: install the Debian package {package} (scripts/setup.sh does)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def need_path(path: str, package: str) -> str:
    """Like `need_program`, for a file a package installs."""
    if not os.path.exists(path):
        msg = f"{path} not found: install the Debian package {package} (scripts/setup.sh does)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def restore_pidphone_logging() -> Iterator[None]:
    """`pidphone run` and the logging set-up configure the "pidphone" logger for a process;
    put it back so every test starts from the plain logger."""
    yield
    root = logging.getLogger("pidphone")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = True
    root.setLevel(logging.NOTSET)
