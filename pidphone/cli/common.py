"""What every command shares: the exit statuses, where the config is, and lazy imports."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pidphone.config import DEFAULT_CONFIG_PATH, DEFAULT_PROVISION_PATH

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_SECURE = 3
"""`call`/`answer`: the call was answered but not secure (NOT SECURE, security failed or
lost)."""
EXIT_MISMATCH = 4
"""`call`/`answer`: secure, but with a cached-secret mismatch: compare the SAS."""
EXIT_CONFIG = 78
"""EX_CONFIG: the systemd unit lists it in RestartPreventExitStatus=, so a bad config is not
restarted in a loop."""

CONFIG_ENV = "PIDPHONE_CONFIG"
PROVISION_ENV = "PIDPHONE_PROVISION_FILE"


class CommandError(Exception):
    """The command could not do its work; the message says why (exit status 1)."""


class UsageError(CommandError):
    """The command was given something it cannot work with; the message says what to give
    instead (exit status 2, as argparse's own usage errors)."""


def config_path(args: argparse.Namespace) -> Path:
    """`--config`, else $PIDPHONE_CONFIG, else /etc/pidphone/pidphone.toml."""
    given: Path | None = getattr(args, "config", None)
    if given is not None:
        return given
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def provision_path(args: argparse.Namespace) -> Path:
    """`--provision-from`, else $PIDPHONE_PROVISION_FILE, else the boot partition's file."""
    given: Path | None = args.provision_from
    if given is not None:
        return given
    return Path(os.environ.get(PROVISION_ENV) or DEFAULT_PROVISION_PATH)


def warn(message: str) -> None:
    print(f"pidphone: warning: {message}", file=sys.stderr)


def lazy(module: str, function: str) -> Callable[..., Any]:
    """`module.function`, or CommandError if this build does not have the module. Commands
    import what runs the phone only when used, so `check-config` and `zid` start fast and work
    where the rest cannot be imported."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise CommandError(f"{module} is not available in this build") from None
        raise
    target: Callable[..., Any] = getattr(found, function)
    return target
