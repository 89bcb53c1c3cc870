"""The phone's small state files (the call history, the preferences) written off the loop.

Each save rewrites a whole file with two fsyncs (pidphone.drivers.state_file): tens, and on a
tired SD card hundreds, of milliseconds. On the loop that would hold up signalling, the screen
and the watchdog's ping; so a thread of its own ("state-writer") does them, in the order they
were asked for. Only the newest value of each store matters, and a file must never go back to
an older one: a value that is still waiting is replaced by a newer one, never written after it.
`close()` writes what is waiting, then stops, so nothing the person did is lost on a clean stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pidphone.ports import CallLog, CallRecord, Preferences, PreferencesStore

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""Seconds `close()` waits for the last writes (an SD card can be slow; systemd waits longer)."""


class StateWriter:
    """Saves the call history and the preferences on the "state-writer" thread."""

    def __init__(self, call_log: CallLog | None, preferences: PreferencesStore | None) -> None:
        self._call_log = call_log
        self._preferences = preferences
        self._wake = threading.Condition()
        self._waiting: dict[str, Callable[[], None]] = {}
        """One pending save per store, in the order first asked for (dicts keep order)."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self._thread.start()

    def save_history(self, records: tuple[CallRecord, ...]) -> None:
        store = self._call_log
        if store is not None:
            self._put("history", lambda: store.save(records))

    def save_preferences(self, preferences: Preferences) -> None:
        store = self._preferences
        if store is not None:
            self._put("preferences", lambda: store.save(preferences))

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is waiting, then stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the state files were not all written within %.0f s", timeout)

    def _put(self, store: str, save: Callable[[], None]) -> None:
        with self._wake:
            if self._stopping:
                log.warning("%s changed after the phone stopped: not saved", store)
                return
            self._waiting[store] = save  # a newer value takes the older one's place
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._stopping:
                    self._wake.wait()
                if not self._waiting:
                    return
                store = next(iter(self._waiting))
                save = self._waiting.pop(store)
            try:
                save()  # the stores never raise; a bug must not end the thread
            except Exception:
                log.exception("saving the %s failed", store)
