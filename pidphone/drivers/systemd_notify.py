"""The ServiceNotifier port for systemd (sd_notify(3)), and a notifier that does nothing.

Under `Type=notify` systemd waits for READY=1, shows STATUS= in `systemctl status`, restarts
the service when WATCHDOG=1 stops arriving within WatchdogSec=, and knows a stop is deliberate
from STOPPING=1. Outside systemd (no NOTIFY_SOCKET) every call is a no-op; a socket that has
gone away is logged once and then ignored, so notifying can never take the phone down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from systemd import daemon

log = logging.getLogger("pidphone.systemd")

Send = Callable[[str], bool]

MAX_STATUS = 200
"""Characters of STATUS= kept: a line for `systemctl status`, not a caller's whole header."""


class SystemdNotifier:
    """Sends state changes to systemd through NOTIFY_SOCKET.

    `environ` (default: the process environment) decides whether to notify at all and the
    watchdog interval; sd_notify itself reads NOTIFY_SOCKET from the process environment.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        send: Send = daemon.notify,
        pid: int | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._enabled = bool(env.get("NOTIFY_SOCKET"))
        self._send = send
        self._interval = _watchdog_interval(env, os.getpid() if pid is None else pid)
        self._failed = False

    def ready(self) -> None:
        self._notify("READY=1")

    def status(self, text: str) -> None:
        """One printable line: the text holds what callers and files chose (a caller's SIP
        address, a provisioning error quoting a value), and sd_notify cannot carry a NUL, a
        newline would start another assignment, and a control character garbles the
        terminal of whoever runs `systemctl status`."""
        printable = "".join(c if c.isprintable() else " " for c in text)
        self._notify("STATUS=" + " ".join(printable.split())[:MAX_STATUS])

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")

    def stopping(self) -> None:
        self._notify("STOPPING=1")

    def reloading(self) -> None:
        """RELOADING=1: the config is being read again (after SIGHUP); READY=1 ends it."""
        self._notify("RELOADING=1")

    def watchdog_interval(self) -> float | None:
        return self._interval

    def _notify(self, state: str) -> None:
        if not self._enabled:
            return
        try:
            self._send(state)
        except (OSError, ValueError) as exc:  # ValueError: what the C call refuses
            if not self._failed:
                log.warning("cannot notify systemd (%s): %s", state.split("=", maxsplit=1)[0], exc)
                self._failed = True


class NullNotifier:
    """For a phone not run by systemd: nothing to tell, no watchdog."""

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass

    def reloading(self) -> None:
        pass

    def watchdog_interval(self) -> float | None:
        return None


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Half of WATCHDOG_USEC in seconds, if the watchdog is meant for this process
    (WATCHDOG_PID, when set, names the process that must ping: sd_watchdog_enabled(3))."""
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec_text) / 2 / 1_000_000


def notifier_from_environment(
    environ: Mapping[str, str] | None = None,
) -> SystemdNotifier | NullNotifier:
    """The systemd notifier when started by systemd (NOTIFY_SOCKET set), else NullNotifier."""
    env = os.environ if environ is None else environ
    return SystemdNotifier(env) if env.get("NOTIFY_SOCKET") else NullNotifier()
