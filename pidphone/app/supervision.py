"""How often a thread of the phone may die before the phone gives up on restarting it.

A thread that dies is a fault, not silence: its owner restarts it, and when it keeps dying
(more than `MAX_RESTARTS` times within `RESTART_WINDOW` seconds) the owner reports itself
unhealthy, which stops the daemon's watchdog pings so that systemd restarts the phone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_RESTARTS = 3
RESTART_WINDOW = 60.0


class RestartBudget:
    """Counts a thread's deaths; `allow()` says whether one more restart is allowed."""

    def __init__(
        self,
        limit: int = MAX_RESTARTS,
        window: float = RESTART_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: list[float] = []

    def allow(self) -> bool:
        """Note a death now; True while the deaths in the window are at most the limit."""
        now = self._clock()
        self._failures = [t for t in self._failures if now - t < self._window] + [now]
        return len(self._failures) <= self._limit
