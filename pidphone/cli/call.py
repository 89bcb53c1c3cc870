"""`pidphone call URI` and `pidphone answer`: one real call from the command line, reported
(pidphone.callcmd runs it)."""

from __future__ import annotations

import argparse

from pidphone.config import load_config

from .common import config_path, lazy, warn


def cmd_call(args: argparse.Namespace) -> int:
    run_call = lazy("pidphone.callcmd", "run_call")
    status: int = run_call(args, load_config(config_path(args), warn=warn))
    return status


def cmd_answer(args: argparse.Namespace) -> int:
    run_answer = lazy("pidphone.callcmd", "run_answer")
    status: int = run_answer(args, load_config(config_path(args), warn=warn))
    return status
