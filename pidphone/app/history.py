"""The call history in the phone: which calls become records, and how one is shown.

A call leaves the phone's state (it ended, was rejected, or was never taken) and becomes a
`CallRecord`: missed (an incoming call never answered, rejected ones and those refused under
do-not-disturb included), received or dialled, with when, how long, and whether it was secure
and its SAS verified. The newest comes first and the list is cut at `PhoneSettings.
history_size`. What a peer sent (its display name, its URI) is kept only as printable text of
bounded length, so a hostile name can neither break the screen nor swell the file.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pidphone.ports import CallKind, CallRecord

from .call_state import Security
from .phone_state import CallView

MAX_TEXT = 64
"""Characters of a name or number kept in a record."""

KIND_TITLE: dict[CallKind, str] = {"missed": "Missed", "received": "Received", "dialled": "Dialled"}


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """`text` without control or other unprintable characters, at most `limit` long."""
    return "".join(c for c in text[: limit * 4] if c.isprintable())[:limit]


def record_of(call: CallView, now: float, wall: float) -> CallRecord:
    """The record of `call`, over at loop time `now` (wall clock `wall`)."""
    connected = call.connected_at is not None
    duration = max(0.0, now - call.connected_at) if call.connected_at is not None else 0.0
    kind: CallKind = "dialled" if call.outgoing else ("received" if connected else "missed")
    return CallRecord(
        kind=kind,
        number=printable(call.number),
        name=printable(call.name),
        time=wall - duration,
        duration=round(duration, 1),
        secure=call.security == Security.SECURE or call.secured is not None,
        verified=call.verified,
    )


def missed_record(number: str, name: str, wall: float) -> CallRecord:
    """An incoming call refused before it reached the screen (do-not-disturb, lines full)."""
    return CallRecord("missed", printable(number), printable(name), wall, 0.0, False, False)


def add(history: tuple[CallRecord, ...], record: CallRecord, size: int) -> tuple[CallRecord, ...]:
    """`record` first, the oldest beyond `size` dropped."""
    return (record, *history)[: max(0, size)]


def when(record: CallRecord, utc_offset: float) -> str:
    """ "07 Dec 14:05" in the phone's local time (`utc_offset` seconds east of UTC); a time
    no calendar holds (a hand-edited file) shows as "unknown time"."""
    try:
        moment = datetime.fromtimestamp(record.time + utc_offset, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return "unknown time"
    return moment.strftime("%d %b %H:%M")


def duration_text(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def security_text(record: CallRecord) -> str:
    if record.kind == "missed" or record.duration <= 0:
        return ""
    if record.verified:
        return "SAS verified"
    return "Secure, SAS unverified" if record.secure else "Not secure"
