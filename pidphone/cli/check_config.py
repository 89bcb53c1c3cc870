"""`pidphone check-config [FILE]`: check a config and print the effective config (defaults and
derived values included), secrets masked; a bad one names the key and the fix (exit 78)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from pidphone.config import Config, dump_config, load_config
from pidphone.config.explain import zrtp_notes

from .common import EXIT_OK, UsageError, config_path, warn


def what_the_phone_will_do(config: Config) -> list[str]:
    """What a valid config that may not be what was meant makes the phone do (an empty file
    is valid; an account without a password too)."""
    account, server = config.account, config.server
    if not account.aor and not server.listen:
        return [
            "no account and no server.listen: the phone registers nowhere and nobody can call"
            " it; it can only call whole addresses (sips:bob@192.0.2.7:5061). Set account.aor"
            " (and its password) to use a SIP provider"
        ]
    if not account.aor:
        return [
            f"no account: the phone registers nowhere; it takes direct calls on {server.listen}"
            " and calls whole addresses (sips:bob@192.0.2.7:5061)"
        ]
    if not account.password and not account.password_file:
        return [
            "account.aor has no password: the phone registers without credentials, which most"
            " providers refuse (401); set account.password or account.password_file"
        ]
    return []


def cmd_check_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    given = getattr(args, "config", None)
    if args.file is not None and given is not None and args.file != given:
        raise UsageError(f"two files given ({given} and {args.file}): check one at a time")
    path: Path = args.file or config_path(args)
    config = load_config(path, warn=warn)
    stream = out or sys.stdout
    stream.write(f"# {path}: valid. The effective config, secrets masked:\n")
    for note in what_the_phone_will_do(config):
        stream.write(f"# note: {note}\n")
    if config.account.password_file:
        # Shown as it is written: the password comes from the file, not from this key.
        stream.write(f"# account.password is read from {config.account.password_file}\n")
        account = dataclasses.replace(config.account, password="")
        config = dataclasses.replace(config, account=account)
    for note in zrtp_notes(config):
        stream.write(f"# {note}\n")
    stream.write(dump_config(config))
    return EXIT_OK
