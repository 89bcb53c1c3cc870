"""`pidphone check-config [FILE]`: check a config and print the effective config (defaults and
derived values included), secrets masked; a bad one names the key and the fix (exit 78)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from pidphone.config import dump_config, load_config
from pidphone.config.explain import zrtp_notes

from .common import EXIT_OK, config_path, warn


def cmd_check_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    path: Path = args.file or config_path(args)
    config = load_config(path, warn=warn)
    stream = out or sys.stdout
    stream.write(f"# {path}: valid. The effective config, secrets masked:\n")
    if config.account.password_file:
        # Shown as it is written: the password comes from the file, not from this key.
        stream.write(f"# account.password is read from {config.account.password_file}\n")
        account = dataclasses.replace(config.account, password="")
        config = dataclasses.replace(config, account=account)
    for note in zrtp_notes(config):
        stream.write(f"# {note}\n")
    stream.write(dump_config(config))
    return EXIT_OK
