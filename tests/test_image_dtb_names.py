"""image/raspi-dtb-names: the SD-card image's hook that gives the Zero 2 W's device tree the
name the Pi firmware falls back to, after raspi-firmware's own hook has copied the kernel's."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import need_program

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "image" / "raspi-dtb-names"
UPSTREAM = "bcm2837-rpi-zero-2-w.dtb"
FALLBACK = "bcm2710-rpi-zero-2-w.dtb"


def run_hook(firmware: Path) -> subprocess.CompletedProcess[str]:
    sh = need_program("sh", "dash")
    return subprocess.run(
        [sh, str(HOOK)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RASPI_FIRMWARE_DIR": str(firmware)},
    )


def test_zero_2_w_device_tree_under_both_names_and_kept_current(tmp_path: Path) -> None:
    (tmp_path / UPSTREAM).write_bytes(b"\xd0\x0d\xfe\xed kernel 6.1 raspberrypi,model-zero-2-w")
    (tmp_path / "bcm2711-rpi-4-b.dtb").write_bytes(b"\xd0\x0d\xfe\xed raspberrypi,4-model-b")
    assert run_hook(tmp_path).returncode == 0
    assert (tmp_path / FALLBACK).read_bytes() == (tmp_path / UPSTREAM).read_bytes()
    # A kernel update brings a new device tree: the fallback copy follows it.
    (tmp_path / UPSTREAM).write_bytes(b"\xd0\x0d\xfe\xed kernel 6.1.1 raspberrypi,model-zero-2-w")
    assert run_hook(tmp_path).returncode == 0
    assert (tmp_path / FALLBACK).read_bytes() == (tmp_path / UPSTREAM).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [UPSTREAM, FALLBACK, "bcm2711-rpi-4-b.dtb"]
    )


def test_without_the_zero_2_w_device_tree_nothing_is_made(tmp_path: Path) -> None:
    result = run_hook(tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert list(tmp_path.iterdir()) == []


def test_the_image_runs_it_after_raspi_firmwares_hooks() -> None:
    """run-parts runs a directory's hooks in name order: raspi-firmware's z50 hook must have
    copied the kernel's device trees before this one copies the Zero 2 W's."""
    build = (ROOT / "scripts" / "build-image.sh").read_text()
    installed = re.findall(r"/etc/(kernel/postinst\.d|initramfs/post-update\.d)/([\w.-]+)", build)
    names = {directory: name for directory, name in installed}
    assert set(names) == {"kernel/postinst.d", "initramfs/post-update.d"}
    for name in names.values():
        assert sorted(["z50-raspi-firmware", name])[-1] == name
    assert 'install -m 0755 "$SOURCE/image/raspi-dtb-names"' in build
