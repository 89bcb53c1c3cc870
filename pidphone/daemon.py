"""`pidphone run`: the long-running phone under systemd (systemd/pidphone.service).

One asyncio loop. The service manager hears READY=1 once the config is loaded and the devices
are open, STATUS= lines as registration and calls change, WATCHDOG=1 from the loop itself at
half of WATCHDOG_USEC (a wedged loop stops the pings and systemd restarts the phone), and
STOPPING=1 on SIGTERM once calls are ended and the account unregistered. SIGHUP reads the
config again; a bad new config is logged and the running one kept. A signal sent while the
daemon starts is not lost: `pidphone run` blocks them until the handlers are in place; a stop
then stops in order, a reload waits until the phone has started.

This module owns the service life cycle; the phone proper (devices, SIP agent, calls) is
built by the composition root, pidphone.wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

from pidphone import wiring
from pidphone.app.call_events import (
    CallFinished,
    CallIncoming,
    CallInsecure,
    CallPlaced,
    CallSecure,
)
from pidphone.app.controller import Controller, ControllerEvent
from pidphone.app.phone_events import (
    DeviceFailed,
    DeviceRecovered,
    MediaFault,
    RegistrationChanged,
)
from pidphone.config import Config
from pidphone.drivers.logging_setup import set_level
from pidphone.drivers.systemd_notify import notifier_from_environment
from pidphone.errors import ConfigError
from pidphone.ports import ServiceNotifier

log = logging.getLogger("pidphone.daemon")

HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
WEDGE_ENV = "PIDPHONE_TEST_WEDGE_ON_SIGUSR2"
"""Set only by the tests under real systemd: SIGUSR2 then blocks the event loop for good, so
that the watchdog's kill and restart can be shown. The unit never sets it."""


class Phone:
    """The running phone, seen from the service life cycle.

    `start` has pidphone.wiring build the controller from the config (SIP agent over TLS,
    calls, the media worker, the phone's reducer and screen, real or simulated devices) and
    registers; `status` hears registration and call changes;
    `reconfigure` applies a new config at once when idle, or after the call in progress;
    `stop` ends calls and unregisters. `healthy` turns False when the media thread died and
    could not be restarted: the watchdog pings stop.
    """

    def __init__(
        self,
        config: Config,
        status: Callable[[str], None],
        notice: str = "",
        screen_notice: str = "",
    ) -> None:
        self.config = config
        self._status = status
        self._notice = notice
        self._screen_notice = screen_notice
        self._played: set[str] = set()
        """The sim.keys_script files this process has played."""
        self._controller: Controller | None = None
        self._pending: Config | None = None
        self._registration = ""
        self._call_state = ""
        self._faults: dict[str, str] = {}
        """The ringer's or the display's fault, for STATUS=."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def controller(self) -> Controller | None:
        return self._controller

    @property
    def healthy(self) -> bool:
        return self._controller is None or self._controller.healthy

    async def start(self) -> None:
        script = self.config.sim.keys_script
        self._controller = wiring.build_controller(
            self.config, notice=self._screen_notice, play_script=script not in self._played
        )
        self._played.add(script)  # a reload does not place the script's calls again
        self._controller.add_listener(self._on_event)
        await self._controller.start()
        self._status(self.describe())

    async def reconfigure(self, config: Config) -> None:
        if self._controller is not None and self._controller.calls():
            log.info("new config kept until the call in progress ends")
            self._pending = config
            return
        await self._restart(config)

    async def _restart(self, config: Config) -> None:
        self._pending = None
        if self._controller is not None:
            await self._controller.stop()
            self._controller = None
        self.config = config
        self._registration = self._call_state = ""
        self._faults = {}  # the new phone's devices report their own
        await self.start()

    async def stop(self) -> None:
        self._status("stopping")
        if self._controller is not None:
            await self._controller.stop()
            self._controller = None

    def _on_event(self, event: ControllerEvent) -> None:
        if isinstance(event, RegistrationChanged):
            self._registration = event.state + (f" ({event.reason})" if event.reason else "")
        elif isinstance(event, CallFinished):
            self._call_state = ""
            controller, pending = self._controller, self._pending
            if pending is not None and controller is not None and len(controller.calls()) <= 1:
                task = asyncio.get_running_loop().create_task(self._restart(pending))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif isinstance(event, CallIncoming):
            self._call_state = f"ringing: {event.remote_uri}"
        elif isinstance(event, CallPlaced):
            self._call_state = f"calling {event.target}"
        elif isinstance(event, CallSecure):
            self._call_state = "in call, secure"
        elif isinstance(event, CallInsecure):
            self._call_state = "in call, NOT SECURE"
        elif isinstance(event, MediaFault):
            self._call_state = "audio failed" + ("" if event.restarted else ", restart needed")
        elif isinstance(event, DeviceFailed):
            self._faults[event.device] = event.reason
        elif isinstance(event, DeviceRecovered):
            self._faults.pop(event.device, None)
        else:
            return
        self._status(self.describe())

    def describe(self) -> str:
        faults = "".join(f"; {device} failed: {why}" for device, why in self._faults.items())
        if self._notice:
            return self._notice + faults
        account = self.config.account.aor
        if not account:
            state = "no account, direct calls only"
        else:
            state = f"{self._registration or 'not registered'}: {account}"
        return (f"{state}; {self._call_state}" if self._call_state else state) + faults


def run(
    config: Config,
    *,
    reload_config: Callable[[], Config] | None = None,
    notice: str = "",
    screen_notice: str = "",
    notifier: ServiceNotifier | None = None,
) -> int:
    """Run the phone until SIGTERM or SIGINT; return the exit status.

    `reload_config` reads the config file again (SIGHUP); `notice` is a problem found before
    start (an invalid provisioning file) for STATUS=, `screen_notice` the same in a few words
    for the idle screen.
    """
    notifier = notifier or notifier_from_environment()
    service = Service(config, reload_config, notice, notifier, screen_notice)
    return asyncio.run(service.main())


class Service:
    """The life cycle: start, notify, watchdog, reload, stop."""

    def __init__(
        self,
        config: Config,
        reload_config: Callable[[], Config] | None,
        notice: str,
        notifier: ServiceNotifier,
        screen_notice: str = "",
    ) -> None:
        self.notifier = notifier
        self.phone = Phone(config, notifier.status, notice, screen_notice)
        self._reload_config = reload_config
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._reload_wanted = False

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)
        if os.environ.get(WEDGE_ENV):
            loop.add_signal_handler(signal.SIGUSR2, _wedge)
        # `pidphone run` blocked them until now (pidphone.cli): one sent meanwhile is taken
        # here, before anything starts, since the loop would only run its handler once the
        # start-up had finished (after READY=1): a stop as an orderly stop, a reload once the
        # phone has started.
        self._take_pending_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        try:
            await self.phone.start()
            self._started = True
            if self._reload_wanted and not self._stop.is_set():
                self._spawn_reload()
            # Start-up's objects live as long as the phone: keep the collector off them, so
            # the collections a call's allocations trigger do not walk them every time.
            gc.freeze()
            if not self._stop.is_set():
                self.notifier.ready()
                log.info("ready")
            async with asyncio.TaskGroup() as group:
                watchdog = group.create_task(self._watchdog())
                await self._stop.wait()
                watchdog.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.phone.stop()
            self.notifier.stopping()
            log.info("stopped")
            return 0
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
                loop.remove_signal_handler(sig)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 from the loop while the phone is healthy: a wedged loop, or a media
        thread that died and could not be restarted, stops the pings and systemd restarts
        the phone."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            if self.phone.healthy:
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _take_pending_signals(self) -> None:
        """Take the signals sent while they were blocked (each only once: taken, it is no
        longer pending, so its handler does not run again later)."""
        pending = signal.sigpending() & HANDLED_SIGNALS
        while pending:
            taken = signal.sigtimedwait(pending, 0)
            if taken is None:
                break
            pending.discard(signal.Signals(taken.si_signo))
            if taken.si_signo == signal.SIGHUP:
                self._spawn_reload()
            else:
                log.info(
                    "%s during start-up: stopping once started", signal.strsignal(taken.si_signo)
                )
                self._stop.set()

    def _spawn_reload(self) -> None:
        if not self._started:  # a reload during start-up waits for the phone it reloads
            log.info("SIGHUP during start-up: the config is read again once started")
            self._reload_wanted = True
            return
        self._reload_wanted = False
        task = asyncio.get_running_loop().create_task(self._reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self) -> None:
        if self._reload_config is None:
            log.warning("SIGHUP: this phone was started without a config file to read again")
            return
        self.notifier.reloading()
        try:
            config = self._reload_config()
        except ConfigError as exc:
            log.error("SIGHUP: the new config is not valid, keeping the running one: %s", exc)
        else:
            set_level(config.logging.level)  # logging.level: at once, as the docs say
            await self.phone.reconfigure(config)
            log.info("SIGHUP: config reloaded (log level %s)", config.logging.level)
        self.notifier.ready()


def _wedge() -> None:
    log.warning("SIGUSR2 and %s: the event loop stops here (a watchdog test)", WEDGE_ENV)
    while True:
        time.sleep(3600)
