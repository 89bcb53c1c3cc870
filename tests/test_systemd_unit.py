"""systemd/pidphone.service: `systemd-analyze verify` says nothing, the required settings are
there, and the hardening score stays where it is."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import need_program

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "pidphone.service"
INSTALLED_PROGRAM = "/opt/pidphone/bin/pidphone"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def unit_copy(tmp_path: Path) -> Path:
    """The unit with the venv's program replaced by one that exists here (verify checks that
    ExecStart= names an executable)."""
    true = shutil.which("true")
    assert true is not None
    copy = tmp_path / "pidphone.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_PROGRAM, true))
    return copy


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    analyze = need_program("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "verify", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_security_exposure_stays_low(tmp_path: Path) -> None:
    analyze = need_program("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for pidphone\.service: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    # 1.5 today: what remains is the network, the devices and the supplementary groups the
    # phone needs, and no user namespace (it would hide the device groups).
    assert float(match.group(1)) <= 1.5


def test_unit_has_the_required_settings() -> None:
    unit = settings()
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["78"],
        "StateDirectory": ["pidphone"],
        "ConfigurationDirectory": ["pidphone"],
        "User": ["pidphone"],
        "SupplementaryGroups": ["audio gpio i2c spi"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "ProtectKernelTunables": ["yes"],
        "ProtectControlGroups": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "DevicePolicy": ["closed"],
        "DeviceAllow": ["char-alsa rw", "char-gpiochip rw", "char-i2c rw", "char-spi rw"],
        "ExecStart": [f"{INSTALLED_PROGRAM} run"],
        # Not /bin/kill: procps, which has it, is not on a minimal Debian system.
        "ExecReload": ["/bin/sh -c 'kill -HUP \"$$MAINPID\"'"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert unit["WatchdogSec"] and unit["WatchdogSec"][0] != "0"
