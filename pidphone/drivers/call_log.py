"""The call history on disk: one small JSON file in the state directory, rewritten atomically.

Every save writes the whole list to a temporary file beside it (mode 0600), fsyncs it,
`os.replace`s it over the old one and fsyncs the directory, as the ZID cache does: a power
cut leaves the old list or the new one, never a torn file. The file is bounded twice: the phone
keeps at most `max_records` calls (each name and number cut to `MAX_TEXT` characters), and a
file larger than `MAX_FILE_BYTES` is not read at all.

A file that is not a history this code wrote (bad JSON, another format, a symbolic link, a
device) is moved aside as `<name>.corrupt-<UTC time>` and the phone starts with an empty
history; a record with a bad field is dropped alone. Reading or writing never raises: the
history is a convenience, and a phone that cannot keep it still makes calls
(`write_error` says why the last save failed).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pidphone.ports import CallKind, CallRecord

from .state_file import CorruptFileError as _CorruptFileError
from .state_file import read_regular_file as _read
from .state_file import write_atomically as _write_atomically

log = logging.getLogger(__name__)

FORMAT = "pidphone-call-history"
VERSION = 1
MAX_TEXT = 64
MAX_FILE_BYTES = 1 << 20
"""Far more than 1,000 records of the longest fields take (`state_file.MAX_FILE_BYTES`)."""
KINDS: tuple[CallKind, ...] = ("missed", "received", "dialled")


class FileCallLog:
    """A `CallLog` in one JSON file (module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_records: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_records = max_records
        self._clock = clock
        self.recovered_from: Path | None = None
        """Where a corrupt file was moved aside, else None."""
        self.write_error: OSError | None = None
        """Why the last `save` did not reach the disk, else None."""

    def load(self) -> tuple[CallRecord, ...]:
        try:
            data = _read(self.path, MAX_FILE_BYTES)
            return decode(data)[: self.max_records]
        except FileNotFoundError:
            return ()
        except _CorruptFileError as exc:
            self._move_aside(exc)
        except OSError as exc:
            log.warning("cannot read the call history %s: %s", self.path, exc)
        return ()

    def save(self, records: tuple[CallRecord, ...]) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_atomically(self.path, encode(records[: self.max_records]))
        except OSError as exc:
            self.write_error = exc
            log.error("cannot write the call history %s: %s", self.path, exc)
        else:
            self.write_error = None

    def _move_aside(self, exc: _CorruptFileError) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as error:
            log.warning("cannot move the corrupt call history %s aside: %s", self.path, error)
            return
        self.recovered_from = aside
        log.warning("call history %s is corrupt (%s): moved to %s", self.path, exc, aside)


def encode(records: tuple[CallRecord, ...]) -> bytes:
    calls = [
        {
            "kind": r.kind,
            "number": r.number[:MAX_TEXT],
            "name": r.name[:MAX_TEXT],
            "time": round(r.time, 1),
            "duration": round(r.duration, 1),
            "secure": r.secure,
            "verified": r.verified,
        }
        for r in records
    ]
    document = {"format": FORMAT, "version": VERSION, "calls": calls}
    return (json.dumps(document, ensure_ascii=True, indent=1) + "\n").encode("ascii")


def decode(data: bytes) -> tuple[CallRecord, ...]:
    """The records of a history file; `_CorruptFileError` if it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _CorruptFileError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _CorruptFileError("not a pidphone call history")
    if document.get("version") != VERSION:
        raise _CorruptFileError(f"version {document.get('version')!r}, not {VERSION}")
    calls = document.get("calls")
    if not isinstance(calls, list):
        raise _CorruptFileError("no list of calls")
    records = []
    for item in calls:
        record = _record(item)
        if record is None:
            log.warning("call history: a record with a bad field is dropped")
        else:
            records.append(record)
    return tuple(records)


def _record(item: Any) -> CallRecord | None:
    if not isinstance(item, dict):
        return None
    kind, number, name = item.get("kind"), item.get("number"), item.get("name")
    when, duration = item.get("time"), item.get("duration")
    secure, verified = item.get("secure"), item.get("verified")
    if kind not in KINDS or not isinstance(number, str) or not isinstance(name, str):
        return None
    if not isinstance(when, int | float) or not isinstance(duration, int | float):
        return None
    if not _finite(when) or not _finite(duration) or duration < 0:
        return None
    if not isinstance(secure, bool) or not isinstance(verified, bool):
        return None
    return CallRecord(
        kind=kind,
        number=_printable(number),
        name=_printable(name),
        time=float(when),
        duration=float(duration),
        secure=secure,
        verified=verified,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _printable(text: str) -> str:
    return "".join(c for c in text[: MAX_TEXT * 4] if c.isprintable())[:MAX_TEXT]
