"""Headless provisioning with temporary directories standing in for /boot/firmware and /etc."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pidphone.config import load_config
from pidphone.provisioning import Outcome, install_file, provision

VALID = b'hardware = "simulated"\n[account]\naor = "sip:alice@example.org"\npassword = "pw1"\n'


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    path = tmp_path / "boot" / "firmware"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "pidphone"
    path.mkdir(parents=True)
    return path


def test_nothing_to_provision(boot: Path, etc: Path) -> None:
    result = provision(boot / "pidphone.toml", etc / "pidphone.toml")
    assert result.outcome is Outcome.ABSENT
    assert list(etc.iterdir()) == []


def test_valid_file_is_installed_0600_and_removed_from_boot(boot: Path, etc: Path) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(VALID)
    source.chmod(0o755)  # FAT shows every file as readable by all
    target = etc / "pidphone.toml"
    result = provision(source, target)
    assert result.outcome is Outcome.INSTALLED
    assert result.message == ""
    assert not source.exists()
    assert target.read_bytes() == VALID
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in etc.iterdir()) == ["pidphone.toml"]  # no temp file left
    assert load_config(target).account.password == "pw1"


def test_valid_file_replaces_the_old_config(boot: Path, etc: Path) -> None:
    target = etc / "pidphone.toml"
    target.write_bytes(b'hardware = "pi"\n')
    (boot / "pidphone.toml").write_bytes(VALID)
    assert provision(boot / "pidphone.toml", target).outcome is Outcome.INSTALLED
    assert target.read_bytes() == VALID


def test_invalid_file_changes_nothing_and_says_why(boot: Path, etc: Path) -> None:
    source = boot / "pidphone.toml"
    bad = b'[keypad]\nrows = [5, 6, 40, 13]\n[account]\npassword = "pw-in-bad-file"\n'
    source.write_bytes(bad)
    target = etc / "pidphone.toml"
    target.write_bytes(b'hardware = "pi"\n')
    result = provision(source, target)
    assert result.outcome is Outcome.INVALID
    assert source.read_bytes() == bad
    assert target.read_bytes() == b'hardware = "pi"\n'
    assert result.error is not None
    assert result.error.key == "keypad.rows[2]"
    assert "GPIO 40 does not exist" in result.message
    assert str(source) in result.message
    assert "pw-in-bad-file" not in result.message


def test_relative_paths_are_checked_where_the_file_will_live(boot: Path, etc: Path) -> None:
    (boot / "ca.pem").write_text("on the boot partition only")
    source = boot / "pidphone.toml"
    source.write_bytes(b'[server]\nca_file = "ca.pem"\n')
    result = provision(source, etc / "pidphone.toml")
    assert result.outcome is Outcome.INVALID
    assert result.error is not None
    assert result.error.key == "server.ca_file"
    assert str(etc / "ca.pem") in result.message


def test_unwritable_target_fails_and_keeps_the_source(boot: Path, tmp_path: Path) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(VALID)
    not_a_directory = tmp_path / "etc-is-a-file"
    not_a_directory.write_text("")
    result = provision(source, not_a_directory / "pidphone.toml")
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith(f"cannot install {not_a_directory / 'pidphone.toml'}")
    assert source.read_bytes() == VALID


def test_unremovable_source_is_reported(
    boot: Path, etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(VALID)

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", refuse)
    result = provision(source, etc / "pidphone.toml")
    monkeypatch.undo()
    assert result.outcome is Outcome.FAILED
    assert "cannot remove" in result.message
    assert "delete it by hand" in result.message
    assert (etc / "pidphone.toml").read_bytes() == VALID


def test_install_file_creates_the_directory_and_sets_owner(tmp_path: Path) -> None:
    target = tmp_path / "new" / "pidphone.toml"
    install_file(b"x = 1\n", target, owner=(os.getuid(), os.getgid()))
    assert target.read_bytes() == b"x = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_uid == os.getuid()


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "pidphone.toml"
    target.mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        install_file(b"x = 1\n", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pidphone.toml"]


def test_a_toml_error_names_the_boot_file_not_the_target(boot: Path, etc: Path) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(b'[account\naor = "sip:alice@example.org"\n')
    target = etc / "pidphone.toml"
    target.write_bytes(VALID)
    result = provision(source, target)
    assert result.outcome is Outcome.INVALID
    assert result.error is not None
    assert result.error.key == str(source)
    assert result.message.startswith(f"{source} not installed: not valid TOML")
    assert str(target) not in result.message
    assert result.summary.startswith("pidphone.toml not installed: not valid TOML")
    assert target.read_bytes() == VALID


def test_the_summary_for_the_screen_names_the_key(boot: Path, etc: Path) -> None:
    source = boot / "pidphone.toml"
    source.write_bytes(b'[keypad]\nrows = [5, 6, 40, 13]\n[account]\npassword = "pw-in-it"\n')
    result = provision(source, etc / "pidphone.toml")
    assert result.summary.startswith("keypad.rows[2]: GPIO 40")
    assert result.summary.endswith("(pidphone.toml not installed)")
    assert "pw-in-it" not in result.summary
