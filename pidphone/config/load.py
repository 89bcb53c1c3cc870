"""Reading a config file: bounded and without blocking, checked and completed.

`load_config(path)` reads, checks and completes a file: every problem is a `ConfigError`
naming the key path, the bad value and what is allowed, and the daemon exits 78 on it.
`read_small_file` is how every file the phone is given is read (the config, the
provisioning file, the password file): never more than `MAX_FILE_BYTES`, never a FIFO or a
device, and for the boot partition never through a symbolic link.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import pwd
import re
import stat
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pidphone.errors import ConfigError, ManyConfigErrorsError

from .build import build, every_error
from .cross import complete
from .schema import Config, DisplayConfig, SimConfig

DEFAULT_CONFIG_PATH = Path("/etc/pidphone/pidphone.toml")
"""Where the daemon reads its config (systemd's ConfigurationDirectory=pidphone)."""

DEFAULT_PROVISION_PATH = Path("/boot/firmware/pidphone.toml")
"""The file headless provisioning imports from the FAT boot partition of Raspberry Pi OS."""

MAX_FILE_BYTES = 64 * 1024
"""The largest config, provisioning or password file read: a real config is a few KiB, and
whoever writes the boot partition must not make the phone read more into memory."""

log = logging.getLogger("pidphone.config")

T = TypeVar("T")


Warn = Callable[[str], None]


def load_config(path: str | os.PathLike[str], warn: Warn | None = None) -> Config:
    """Read, check and complete the config at `path`.

    Raises ConfigError for anything a person must fix. Problems that do not stop the phone
    (a password others can read) go to `warn`, by default the log.
    """
    path = Path(path)
    warn = warn or log.warning
    try:
        data = read_small_file(path)
    except FileNotFoundError as exc:
        raise ConfigError(str(path), f"cannot read the config file: {exc.strerror}") from None
    return parse_config(data, path, warn)


def read_small_file(
    path: Path, *, follow_symlinks: bool = True, limit: int = MAX_FILE_BYTES
) -> bytes:
    """The bytes of the regular file at `path`, read without blocking and never more than
    `limit` of them.

    FileNotFoundError when there is no such file; ConfigError naming the file for anything a
    config never is: a directory, a FIFO (reading it would block the start for ever), a
    device (/dev/zero would fill the memory), a symbolic link unless `follow_symlinks`, a
    file larger than `limit`, or a file that cannot be opened or read.
    """
    name = str(path)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except ValueError:
        raise ConfigError(name, "the file name contains a NUL character") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise ConfigError(name, "it is a symbolic link; write the file itself") from None
        raise ConfigError(name, f"cannot read the config file: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ConfigError(name, "it is a directory, not a file")
        raise ConfigError(name, "it is not a regular file (a FIFO, a device or a socket)")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ConfigError(name, f"cannot read the config file: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(
            name, f"it is larger than {limit // 1024} KiB, more than such a file ever holds"
        )
    return data


def parse_config(
    data: bytes, path: Path, warn: Warn | None = None, *, base_dir: Path | None = None
) -> Config:
    """Like `load_config` for the bytes of the file at `path` (named in errors); relative paths
    inside it are taken from `base_dir`, by default `path`'s directory (provisioning checks a
    boot-partition file against the directory it will be installed in).

    Every failure is a ConfigError, whatever the bytes: one that our checks did not foresee
    names the file and keeps the original exception as its cause.
    """
    warn = warn or log.warning
    table = _toml(data, path)
    try:
        with every_error() as found:
            config = build(Config, table, base_dir=(base_dir or path.parent).absolute())
        if found:
            raise ManyConfigErrorsError(found)
        config = _read_password_file(config, warn)
        config = complete(config)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            str(path), f"the file cannot be used ({type(exc).__name__}); check it by hand"
        ) from exc
    if config.account.password and "password" in table.get("account", {}):
        _warn_if_readable(path, "account.password", warn)
    return config


BOM = "\ufeff"
CURLY_QUOTES = "\u201c\u201d\u2018\u2019\u201e\u00ab\u00bb"
"""Quotation marks a word processor or a phone's keyboard puts in place of " and '."""


def _quotes_hint(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """When curly quotes are on the line TOML stopped at, say so: they look like quotes but
    TOML takes only straight ones."""
    at = re.search(r"at line (\d+)", str(exc))
    lineno = int(at.group(1)) if at else 0
    lines = text.splitlines()
    if not 1 <= lineno <= len(lines):
        found = [c for c in CURLY_QUOTES if c in text]
    else:
        found = [c for c in CURLY_QUOTES if c in lines[lineno - 1]]
    if not found:
        return ""
    return (
        f"; the line has curly quotes ({' '.join(found)}): TOML needs straight ones"
        " (\" or '), as a plain-text editor types them"
    )


def _toml(data: bytes, path: Path) -> dict[str, Any]:
    """The TOML document, or a ConfigError naming the file: tomllib raises more than its own
    error on hostile input (RecursionError when nested deeply, ValueError on an integer of
    more than 4300 digits)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "the file is not UTF-8 text") from None
    text = text.removeprefix(BOM)  # Windows editors (Notepad) start UTF-8 files with one
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}{_quotes_hint(text, exc)}") from None
    except RecursionError:
        raise ConfigError(str(path), "not valid TOML: arrays or tables nested too deeply") from None
    except ValueError:
        raise ConfigError(str(path), "not valid TOML: a number with too many digits") from None
    except Exception as exc:
        raise ConfigError(str(path), f"not valid TOML ({type(exc).__name__})") from exc


def _read_password_file(config: Config, warn: Warn) -> Config:
    account = config.account
    if not account.password_file:
        return config
    if account.password:
        raise ConfigError(
            "account.password_file", "give either account.password or account.password_file"
        )
    path = Path(account.password_file)
    try:
        lines = read_small_file(path, limit=4096).decode("utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ConfigError(
            "account.password_file", f'cannot read "{path}": {exc.strerror}'
        ) from None
    except ConfigError as exc:
        raise ConfigError("account.password_file", f'"{path}": {exc.problem}') from None
    except UnicodeDecodeError:
        raise ConfigError("account.password_file", f'"{path}" is not UTF-8 text') from None
    if not lines or not lines[0]:
        raise ConfigError("account.password_file", f'"{path}" is empty')
    _warn_if_readable(path, "account.password_file", warn)
    return dataclasses.replace(config, account=dataclasses.replace(account, password=lines[0]))


def _warn_if_readable(path: Path, what: str, warn: Warn) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        owner = _service_user()
        warn(
            f"{path} holds the account's password ({what}), and other users can read it"
            f" (mode {stat.S_IMODE(mode):04o}); make it the phone's alone:"
            f" sudo chown {owner}:{owner} {path} && sudo chmod 600 {path}"
        )


SERVICE_USER = "pidphone"
"""The user the installed service runs as (systemd/pidphone.service, scripts/install.sh)."""


def _service_user() -> str:
    """Who must go on reading the file: the service's user when root loads it (the file was
    copied in with sudo), else whoever loads it."""
    uid = os.geteuid()
    if uid == 0:
        return SERVICE_USER
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def load_display_config(sources: Sequence[Path]) -> Config:
    """What configs that failed to load still say about the display, to show why on it.

    `hardware`, `[display]` and `[sim]` are taken from the first of `sources` (the
    boot-partition file, the installed config) where each is valid on its own, else from the
    defaults; nothing else is read, and nothing raises."""
    hardware: str | None = None
    display: DisplayConfig | None = None
    sim: SimConfig | None = None
    for path in sources:
        try:
            raw = tomllib.loads(read_small_file(path).decode("utf-8").removeprefix(BOM))
        except Exception:  # noqa: S112 (any file at all: the error to show is known already)
            continue
        if hardware is None and raw.get("hardware") in ("pi", "simulated"):
            hardware = raw["hardware"]
        display = display or _table(DisplayConfig, raw, "display", path)
        sim = sim or _table(SimConfig, raw, "sim", path)
    return Config(
        hardware="simulated" if hardware == "simulated" else "pi",
        display=display or DisplayConfig(),
        sim=sim or SimConfig(),
    )


def _table(cls: type[T], raw: dict[str, Any], key: str, path: Path) -> T | None:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        return None
    try:
        return build(cls, table, key, path.parent)
    except ConfigError:
        return None
