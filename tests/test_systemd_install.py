"""scripts/install.sh: valid bash, and its dry run lists the steps without changing anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import need_program

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts" / "install.sh"


def test_install_script_parses() -> None:
    bash = need_program("bash", "bash")
    result = subprocess.run([bash, "-n", str(INSTALL)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")


def test_dry_run_shows_every_step_and_changes_nothing(tmp_path: Path) -> None:
    bash = need_program("bash", "bash")
    prefix = tmp_path / "opt" / "pidphone"
    result = subprocess.run(
        [bash, str(INSTALL), "--dry-run", "--no-apt", "--start"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PREFIX": str(prefix), "PYTHON": "python3"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    assert all(line.startswith("+ ") for line in commands)
    assert f"+ python3 -m venv {prefix}" in commands
    assert f"+ env PYPI=1 {prefix}/bin/python -m pip install -q --upgrade {ROOT} lgpio" in commands
    assert "+ install -d -m 0755 -o root -g root /etc/pidphone" in commands
    assert any(
        line.startswith("+ usermod --append --groups audio\\,gpio\\,i2c\\,spi") for line in commands
    )
    rules = f"{ROOT}/systemd/60-pidphone.rules /etc/udev/rules.d/60-pidphone.rules"
    assert f"+ install -m 0644 {rules}" in commands
    unit = "/etc/systemd/system/pidphone.service"
    assert f"+ write {unit} (systemd/pidphone.service, prefix {prefix})" in commands
    assert commands[-3:] == [
        "+ systemctl daemon-reload",
        "+ systemctl enable pidphone.service",
        "+ systemctl restart pidphone.service",
    ]
    assert not prefix.exists()


def test_unknown_option_is_a_usage_error() -> None:
    bash = need_program("bash", "bash")
    result = subprocess.run(
        [bash, str(INSTALL), "--frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr


def test_every_script_parses() -> None:
    """The by-hand scripts (arm64 check, image build and check) have no test that runs them:
    at least bash reads them."""
    bash = need_program("bash", "bash")
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    by_hand = {"build-image.sh", "check-image.sh", "check-arm64.sh", "debian-root.sh"}
    assert by_hand <= {s.name for s in scripts}
    for script in scripts:
        result = subprocess.run(
            [bash, "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert (result.returncode, result.stderr) == (0, ""), script


def test_debian_roots_follow_the_installers_package_list() -> None:
    """The container's root is made from install.sh's own list: a package Debian lacks (as
    liblgpio-dev, which only Raspberry Pi OS has) cannot slip into install.sh unseen."""
    bash = need_program("bash", "bash")
    listed = subprocess.run(
        [bash, str(INSTALL), "--print-packages"], capture_output=True, text=True, check=True
    ).stdout.split()
    root = subprocess.run(
        [bash, str(ROOT / "scripts" / "debian-root.sh"), "packages", "systemd-bookworm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed and set(listed) <= set(root)
    assert "liblgpio-dev" not in listed
    # the voice codecs' libraries, which pidphone.audio loads at run time
    assert {"libopus0", "libspandsp2"} <= set(listed)


def test_image_system_is_not_keyed_on_the_installers_packages(tmp_path: Path) -> None:
    """The SD-card image's cached system (its initramfs takes hours under emulation) keeps its
    key when install.sh's package list changes; the container's root follows that list."""
    bash = need_program("bash", "bash")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("debian-root.sh", "install.sh"):
        shutil.copy(ROOT / "scripts" / name, scripts / name)  # with its mode: it is run

    def path_of(name: str) -> str:
        return subprocess.run(
            [bash, str(scripts / "debian-root.sh"), "path", name],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PIDPHONE_CACHE": str(tmp_path / "cache")},
        ).stdout.strip()

    before = {name: path_of(name) for name in ("raspi-bookworm-arm64", "systemd-bookworm")}
    install = scripts / "install.sh"
    text = install.read_text()
    assert "libspandsp2)\n" in text
    install.write_text(text.replace("libspandsp2)\n", "libspandsp2 libgsm1)\n", 1))
    after = {name: path_of(name) for name in before}
    assert after["raspi-bookworm-arm64"] == before["raspi-bookworm-arm64"]
    assert after["systemd-bookworm"] != before["systemd-bookworm"]
