"""The cached Debian roots of scripts/debian-root.sh, for tests.

`scripts/setup.sh` downloads each root's packages (it has the network); a test makes the root
from them (offline, in its own namespace, in parallel with the other tests) the first time and
finds it in the cache afterwards. Missing tools or packages skip the test outside CI and fail
it in CI, as `need_program` does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, need_program

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "debian-root.sh"
WHEELHOUSE = ROOT / "scripts" / "wheelhouse.sh"

BUILD_TIMEOUT = 600
"""Seconds a cold build may take (about 80 s for systemd-bookworm on 2 cores)."""


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def debian_root(name: str) -> Path:
    """The root `name` (see scripts/debian-root.sh), made now if only its packages are cached."""
    need_program("debootstrap", "debootstrap")
    result = subprocess.run(
        [str(SCRIPT), "build", name],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env={**os.environ, "DEBIAN_ROOT_OFFLINE": "1"},
    )
    if result.returncode == 3:
        _missing(result.stderr.strip())
    if result.returncode != 0:
        raise RuntimeError(f"scripts/debian-root.sh build {name} failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def wheelhouse() -> Path:
    """The directory of the Python packages install.sh needs, fetched by scripts/setup.sh."""
    path = subprocess.run(
        [str(WHEELHOUSE), "path"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    if not (Path(path) / ".complete").exists():
        _missing(f"{path}: no wheelhouse (scripts/setup.sh fetches it)")
    return Path(path)
