"""Where log records go: journald under systemd, stderr otherwise.

Under systemd the records go to journald with structured fields, so
`journalctl -u pidphone CALL_ID=...` finds one call. Code attaches the fields with
`log.info("...", extra=call_fields(call_id, peer))`; on stderr they are appended to the line.
Never put a secret in a message or a field.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from systemd import journal

FIELDS = ("CALL_ID", "PEER", "SAS_VERIFIED", "REGISTRAR")
"""Structured fields pidphone attaches to records (journald field names: upper case)."""

IDENTIFIER = "pidphone"
"""SYSLOG_IDENTIFIER in the journal."""


def call_fields(call_id: str = "", peer: str = "") -> dict[str, str]:
    """`extra=` for a log call about one call: its SIP Call-ID and the peer's address."""
    fields = {}
    if call_id:
        fields["CALL_ID"] = call_id
    if peer:
        fields["PEER"] = peer
    return fields


def under_journald(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is connected to journald: systemd sets JOURNAL_STREAM to the
    device:inode of that stream (systemd.exec(5)), so compare it with our stderr."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


class FieldsFormatter(logging.Formatter):
    """`time level logger: message [CALL_ID=... PEER=...]` for stderr."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{name}={record.__dict__[name]}" for name in FIELDS if name in record.__dict__]
        return f"{line} [{' '.join(extra)}]" if extra else line


def set_level(level: str) -> None:
    """Log at `level` from now on (SIGHUP: the new config's logging.level)."""
    logging.getLogger("pidphone").setLevel(level.upper())


def setup_logging(
    level: str = "info", *, journal_: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send the `pidphone` loggers to journald (if `journal_`, or by default when stderr is
    the journal) or to `stream` (stderr). Calling it again (after a reload) replaces the
    handler. Returns the handler installed."""
    use_journal = under_journald() if journal_ is None else journal_
    handler: logging.Handler
    if use_journal:
        handler = journal.JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(
            FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("pidphone")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    return handler
