"""`pidphone run`: the long-running phone under systemd (ARCHITECTURE.md, "systemd").

One asyncio loop. The service manager hears READY=1 once the config is loaded and the devices
are open, STATUS= lines as registration and calls change, WATCHDOG=1 from the loop itself at
half of WATCHDOG_USEC (a wedged loop stops the pings and systemd restarts the phone), and
STOPPING=1 on SIGTERM once calls are ended and the account unregistered. SIGHUP reads the
config again; a bad new config is logged and the running one kept.

`Phone` is where the phone proper (devices, SIP agent, calls) is wired in; this module owns the
service life cycle around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from pidphone.config import Config
from pidphone.drivers.systemd_notify import notifier_from_environment
from pidphone.errors import ConfigError
from pidphone.ports import ServiceNotifier

log = logging.getLogger("pidphone.daemon")


class Phone:
    """The running phone, seen from the service life cycle.

    Integration point: open the devices chosen by `config.hardware` in `start`, register and
    run calls, report state through `status`, apply a new config in `reconfigure` without
    dropping a call in progress, end calls and unregister in `stop`.
    """

    def __init__(self, config: Config, status: Callable[[str], None], notice: str = "") -> None:
        self.config = config
        self._status = status
        self._notice = notice

    async def start(self) -> None:
        self._status(self.describe())

    async def reconfigure(self, config: Config) -> None:
        self.config = config
        self._status(self.describe())

    async def stop(self) -> None:
        self._status("stopping")

    def describe(self) -> str:
        if self._notice:
            return self._notice
        if not self.config.account.aor:
            return "idle, no account configured"
        return f"not registered: {self.config.account.aor}"


def run(
    config: Config,
    *,
    reload_config: Callable[[], Config] | None = None,
    notice: str = "",
    notifier: ServiceNotifier | None = None,
) -> int:
    """Run the phone until SIGTERM or SIGINT; return the exit status.

    `reload_config` reads the config file again (SIGHUP); `notice` is a problem found before
    start (an invalid provisioning file) to show on the screen and in STATUS=.
    """
    service = Service(config, reload_config, notice, notifier or notifier_from_environment())
    return asyncio.run(service.main())


class Service:
    """The life cycle: start, notify, watchdog, reload, stop."""

    def __init__(
        self,
        config: Config,
        reload_config: Callable[[], Config] | None,
        notice: str,
        notifier: ServiceNotifier,
    ) -> None:
        self.notifier = notifier
        self.phone = Phone(config, notifier.status, notice)
        self._reload_config = reload_config
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)
        try:
            await self.phone.start()
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
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _spawn_reload(self) -> None:
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
            await self.phone.reconfigure(config)
            log.info("SIGHUP: config reloaded")
        self.notifier.ready()
