"""The `pidphone` command line (the console script `pidphone = "pidphone.cli:main"`).

Exit status: 0 success, 1 failure, 2 usage error, 78 configuration error (EX_CONFIG, which the
systemd unit lists in RestartPreventExitStatus= so a bad config is not restarted in a loop).

One module per command: `run` (what systemd starts), `provision`, `check_config`, `call`
(call and answer), `demo`, `render_screens` and `zid`; `parser` builds the parser and runs the
chosen command, importing its module only then; `common` holds what they share.

This module imports nothing of the phone before `main` has run: `pidphone run` blocks SIGTERM,
SIGINT and SIGHUP first thing, so that a stop or a reload sent while it starts (the imports
alone take a second on a Pi) waits for the daemon's handlers instead of killing it silently.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

HELD_UNTIL_READY = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
"""Blocked from the start of `pidphone run` until pidphone.daemon has its handlers (which
unblock them: what came meanwhile is handled then)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    held = _command(args) == "run"
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_UNTIL_READY) if held else None
    try:
        from pidphone.cli.parser import main as run_command  # after the block

        return run_command(args)
    finally:
        if before is not None:  # the daemon unblocked them already, unless it never started
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _command(args: Sequence[str]) -> str | None:
    """The command word of `args` (options and the value of -c/--config skipped)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in {"-c", "--config"}:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


__all__ = ["main"]
