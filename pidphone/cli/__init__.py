"""The `pidphone` command line (the console script `pidphone = "pidphone.cli:main"`).

Exit status: 0 success, 1 failure, 2 usage error, 78 configuration error (EX_CONFIG, which the
systemd unit lists in RestartPreventExitStatus= so a bad config is not restarted in a loop).

One module per command: `run` (what systemd starts), `provision`, `check_config`, `call`
(call and answer), `demo`, `render_screens` and `zid`; `parser` builds the parser and runs the
chosen command, importing its module only then; `common` holds what they share.
"""

from __future__ import annotations

from pidphone.cli.parser import main

__all__ = ["main"]
