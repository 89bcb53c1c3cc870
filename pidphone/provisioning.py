"""Headless provisioning: a config dropped on the SD card's boot partition is taken in once.

Someone without a screen or keyboard writes `pidphone.toml` to the FAT boot partition
(/boot/firmware on Raspberry Pi OS). At start, if that file exists it is checked as if it were
already in /etc/pidphone; if it is valid it is written to /etc/pidphone/pidphone.toml with mode
0600 (through a temporary file, fsync and rename, so a power cut leaves the old config or the
new one, never half of one) and removed from the boot partition, which every user can read. If
it is invalid nothing changes and the error is returned, for the journal and the screen.

Whoever holds the SD card writes that file, so it is read as hostile: never through a symbolic
link, never a FIFO or a device, never more than `MAX_FILE_BYTES`; whatever its bytes, the
outcome is one of those below, never an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pidphone.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_PROVISION_PATH,
    parse_config,
    read_small_file,
)
from pidphone.errors import ConfigError


class Outcome(Enum):
    ABSENT = "absent"
    """No file to provision from: the usual start."""
    INSTALLED = "installed"
    """The file was valid and is now the config."""
    INVALID = "invalid"
    """The file was not valid; nothing changed."""
    FAILED = "failed"
    """The file was valid but could not be installed or removed (permissions, read-only)."""


@dataclass(frozen=True)
class ProvisionResult:
    outcome: Outcome
    source: Path
    target: Path
    message: str = ""
    """What went wrong (INVALID, FAILED), in full for the journal and STATUS=."""
    error: ConfigError | None = None
    """The validation error (INVALID)."""
    summary: str = ""
    """The same for the phone's screen, key first: the key and the problem, then the file
    ("account.aor: ... (pidphone.toml not installed)"); the file and the problem when it
    cannot be read as TOML at all."""


def provision(
    source: Path = DEFAULT_PROVISION_PATH,
    target: Path = DEFAULT_CONFIG_PATH,
    owner: tuple[int, int] | None = None,
) -> ProvisionResult:
    """Install `source` as `target` if it is a valid config, then remove `source`.

    `owner` (uid, gid) is given to the installed file when running as root for a service user.
    Relative paths inside the file are taken relative to `target`'s directory, where it will
    live.
    """
    try:
        data = read_small_file(source, follow_symlinks=False)
        # Errors name the boot-partition file; relative paths are where the file will live.
        parse_config(data, source, warn=lambda _: None, base_dir=target.parent)
    except FileNotFoundError:
        return ProvisionResult(Outcome.ABSENT, source, target)
    except ConfigError as exc:
        if exc.key == str(source):  # unreadable, not UTF-8 or not TOML: the file is the "key"
            message = f"{source} not installed: {exc.problem}"
            summary = f"{source.name} not installed: {exc.problem}"
        else:
            message = f"{source} not installed: {exc}"
            summary = f"{exc} ({source.name} not installed)"
        return ProvisionResult(Outcome.INVALID, source, target, message, exc, summary)
    try:
        install_file(data, target, owner)
    except OSError as exc:
        message = f"cannot install {target}: {exc.strerror}"
        return ProvisionResult(Outcome.FAILED, source, target, message, summary=message)
    try:
        source.unlink()
        _fsync_directory(source.parent)
    except OSError as exc:
        return ProvisionResult(
            Outcome.FAILED,
            source,
            target,
            f"installed {target} but cannot remove {source} ({exc.strerror}); "
            "delete it by hand: it holds the account's password and anyone can read it",
            summary=f"Delete {source.name} from the boot partition by hand",
        )
    return ProvisionResult(Outcome.INSTALLED, source, target)


def install_file(data: bytes, target: Path, owner: tuple[int, int] | None = None) -> None:
    """Atomically replace `target` with `data`, mode 0600 (and `owner` if given)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (FAT on some kernels) refuse fsync on a directory
    finally:
        os.close(fd)
