"""The call history and the preferences are written off the loop, newest last, and none is
lost on a clean stop.

A save rewrites the file with two fsyncs; on an SD card that can take hundreds of
milliseconds, and it used to run on the loop, in the middle of handling the call's events. Here
a real `FileCallLog` and `FilePreferences` sit on a "card" that holds every write until the
test lets it go: the phone's UI goes on at once, the files end with the newest values (an
older one is never written after a newer one), and stopping the phone writes what waits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from pidphone.app.call_events import CallFinished, CallIncoming
from pidphone.app.phone_events import PhoneSettings
from pidphone.app.phone_ui import PhoneUi
from pidphone.drivers.call_log import FileCallLog
from pidphone.drivers.preferences import FilePreferences
from pidphone.ports import CallRecord, KeyEvent, Preferences

SLOW_CARD = 5.0
"""Seconds a write is held at most: far longer than the UI takes to go on."""


class SlowCard:
    """Holds each write until `release()` (or `SLOW_CARD` s), and records what was written."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.writing = threading.Event()
        self.writes: list[object] = []
        self.threads: set[str] = set()

    def hold(self, value: object) -> None:
        self.threads.add(threading.current_thread().name)
        self.writing.set()
        self.go.wait(SLOW_CARD)
        self.writes.append(value)


class SlowCallLog(FileCallLog):
    def __init__(self, path: Path, card: SlowCard) -> None:
        super().__init__(path)
        self.card = card

    def save(self, records: tuple[CallRecord, ...]) -> None:
        self.card.hold(records)
        super().save(records)


class SlowPreferences(FilePreferences):
    def __init__(self, path: Path, card: SlowCard) -> None:
        super().__init__(path)
        self.card = card

    def save(self, preferences: Preferences) -> None:
        self.card.hold(preferences)
        super().save(preferences)


def missed(n: int) -> tuple[CallIncoming, CallFinished]:
    call_id = f"c{n}"
    return (
        CallIncoming(call_id, remote_uri=f"sip:caller{n}@example.org", remote_name=""),
        CallFinished(call_id, "Cancelled", by_peer=True),
    )


def test_saves_leave_the_loop_free_keep_the_newest_and_finish_on_stop(tmp_path: Path) -> None:
    card = SlowCard()
    history = SlowCallLog(tmp_path / "call-history.json", card)
    preferences = SlowPreferences(tmp_path / "preferences.json", card)

    async def main() -> tuple[list[object], int]:
        ui = PhoneUi(
            PhoneSettings(account="alice"),
            lambda command: None,
            call_log=history,
            preferences=preferences,
        )
        ui.start()
        for n in range(3):  # three missed calls while the card holds the first write
            for fact in missed(n):
                ui.fact(fact)
        ui.fact(KeyEvent("dnd"))
        written_meanwhile = list(card.writes)  # the UI went on: nothing could be written yet
        assert card.writing.wait(SLOW_CARD)
        ticks = 0
        while ticks < 5:  # the loop runs while the first write is still held
            await asyncio.sleep(0.01)
            ticks += 1
        card.go.set()
        ui.stop()  # writes what waits
        return written_meanwhile, ticks

    written_meanwhile, ticks = asyncio.run(main())
    assert written_meanwhile == [] and ticks == 5
    assert card.threads == {"state-writer"}
    # on disk: the newest history (three calls, newest first) and do-not-disturb
    kept = FileCallLog(tmp_path / "call-history.json").load()
    assert [r.number for r in kept] == [f"sip:caller{n}@example.org" for n in (2, 1, 0)]
    assert FilePreferences(tmp_path / "preferences.json").load() == Preferences(dnd=True)
    # written in order, the waiting ones replaced by newer: never an older after a newer
    histories = [len(w) for w in card.writes if isinstance(w, tuple)]
    assert histories == sorted(histories) and histories[-1] == 3 and len(histories) <= 3
