"""The phone UI on the loop: the reducer, its ticks, the screen, and the slow devices.

Key, hook and call facts go into the pure reducer (`state.reduce`); its commands come out.
Those about calls and the handset's audio go to the controller (`run_command`); the ringer
and the volume are the UI's own. `render(state)` makes the screen.

The call history and the preferences are saved on a thread of their own (`StateWriter`: an
fsync on an SD card must not hold up the loop). The display, the mixer and the ringer are slow
on real hardware (a full OLED frame is ~25 ms
on a 400 kHz I2C bus, ~100 ms at 100 kHz; opening an ALSA device tens of ms), so none of them
runs on the loop, let alone on the media thread: a device thread ("ui-devices") draws the
latest screen (a screen that is superseded before it is drawn is skipped) and sets the volume;
the ringer plays on a thread of its own while it rings, opening and closing its device there.
`when_shown` runs a callback on the loop once the screen of the moment is drawn: clear audio
waits until NOT SECURE is on the display (and its tone has played: pidphone.app.security_tones).

A ringer or display fault is an event, not silence: it is logged once (and its recovery), goes
into the reducer (`DeviceFailed`: an incoming call says the ringer failed and rings in the
handset) and to `on_device` (the daemon's STATUS=). A device thread that dies is started
again; if it keeps dying (`supervision.MAX_RESTARTS`), hangs (`STUCK_AFTER`), or no thread can
be started, `healthy` turns False and the daemon's watchdog pings stop, so that systemd
restarts the phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from pidphone.audio.tones import ToneGenerator
from pidphone.ports import (
    AudioDevices,
    CallLog,
    DeviceHealth,
    Display,
    InputEvent,
    Keypad,
    Preferences,
    PreferencesStore,
    Screen,
)

from . import phone_events as pe
from .phone_state import PhoneState, initial_state
from .screen import render
from .state import next_deadline, reduce
from .state_writer import StateWriter
from .supervision import RestartBudget

log = logging.getLogger(__name__)

CommandRunner = Callable[[pe.Command], None]
DeviceReport = Callable[[pe.DeviceName, str | None], None]
"""A device's fault (None: it works), called from the device's own thread."""
JOIN_TIMEOUT = 2.0
FIRST_RETRY = 1.0
MAX_RETRY = 60.0
"""A failing display is tried again after 1, 2, 4 ... at most 60 s."""
RING_RETRY = 4.0
"""A failing ringer is tried again after 1, 2, at most 4 s while the call rings."""
STUCK_AFTER = 20.0
"""A screen still not drawn after this many seconds means the display thread hangs (a full
frame takes at most ~0.1 s; a failing bus raises at once): it cannot be replaced while it
holds the display, so only a restart of the phone helps."""
WHAT_NOW = {
    "ringer": "incoming calls ring in the handset until it works again",
    "display": "drawing again with backoff",
}


class SlowDevices:
    """The display and the mixer, driven from a thread of their own. Only the latest screen
    and volume matter: each replaces what is still waiting.

    A display that fails (it raises, or says so through `ports.DeviceHealth`) is reported
    through `report` and the latest screen is drawn again after 1, 2, 4 ... up to
    `MAX_RETRY` seconds until it works; meanwhile new screens count as shown at once (nothing
    waits on a broken display) and are only kept for the next try. Anything that escapes
    the thread ends it through `died`, so that its owner can start another."""

    def __init__(
        self,
        display: Display | None,
        audio: AudioDevices | None,
        shown: Callable[[int], None],
        report: DeviceReport | None = None,
        died: Callable[[str], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display = display
        self._audio = audio
        self._shown = shown
        self._report = report or (lambda device, fault: None)
        self._died = died or (lambda reason: None)
        self._clock = clock
        self._wake = threading.Condition()
        self._screen: tuple[int, Screen] | None = None
        self._volume: int | None = None
        self._stopping = False
        self._last: Screen | None = None
        self._retry_at: float | None = None
        """While the display fails: when the latest screen is drawn again."""
        self._backoff = FIRST_RETRY
        self._thread = threading.Thread(target=self._run, name="ui-devices", daemon=True)
        self._thread.start()

    def show(self, generation: int, screen: Screen) -> None:
        with self._wake:
            self._screen = (generation, screen)
            self._wake.notify()

    def set_volume(self, percent: int) -> None:
        with self._wake:
            self._volume = percent
            self._wake.notify()

    def close(self) -> None:
        """Finish what is waiting, then stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(JOIN_TIMEOUT)

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a dead thread must be heard of
            self._died(f"{type(exc).__name__}: {exc}")

    def _retry_due(self) -> bool:
        return self._retry_at is not None and self._clock() >= self._retry_at

    def _serve(self) -> None:
        while True:
            with self._wake:
                while (
                    self._screen is None
                    and self._volume is None
                    and not self._stopping
                    and not self._retry_due()
                ):
                    wait = None if self._retry_at is None else self._retry_at - self._clock()
                    self._wake.wait(wait)
                screen, self._screen = self._screen, None
                volume, self._volume = self._volume, None
                stopping = self._stopping
            if screen is not None:
                generation, self._last = screen
                if self._retry_at is None:
                    self._draw()
                self._shown(generation)
            elif self._retry_due():
                self._draw()
            if volume is not None and self._audio is not None:
                try:
                    self._audio.set_volume(volume)
                except Exception:
                    log.exception("volume change failed")
            if stopping and screen is None and volume is None:
                return

    def _draw(self) -> None:
        display, screen = self._display, self._last
        if display is None or screen is None:
            return
        try:
            display.show(screen)
            fault = display.fault if isinstance(display, DeviceHealth) else None
        except Exception as exc:
            fault = f"{type(exc).__name__}: {exc}"
        if fault is None:
            if self._retry_at is not None:
                self._report("display", None)
            self._retry_at, self._backoff = None, FIRST_RETRY
            return
        self._report("display", fault)
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_RETRY)


class Ringer:
    """The ringer: its own playback ("ring": the loudspeaker when the config names one),
    opened, fed and closed by a thread that lives while it rings (paced by the device).

    A ringer whose device cannot be opened or fails (it raises, or says so through
    `ports.DeviceHealth`) is reported through `report`, and tried again after 1, 2, 4 s (at
    most `RING_RETRY`) while the call rings; its recovery is reported too. `ring` raises
    RuntimeError when no thread can be started."""

    def __init__(
        self,
        audio: AudioDevices | None,
        tone_plan: str,
        volume: int = 100,
        report: DeviceReport | None = None,
    ) -> None:
        self._audio = audio
        self._tone_plan = tone_plan
        self._gain = volume / 100
        self._report = report or (lambda device, fault: None)
        self._stop: threading.Event | None = None
        self._threads: list[threading.Thread] = []

    def ring(self, on: bool) -> None:
        """Start or stop ringing; returns at once."""
        if on and self._stop is None and self._audio is not None:
            stop = threading.Event()
            thread = threading.Thread(
                target=self._play, args=(self._audio, stop), name="ringer", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()]
            thread.start()
            self._threads.append(thread)
            self._stop = stop
        elif not on and self._stop is not None:
            self._stop.set()
            self._stop = None

    def close(self) -> None:
        self.ring(False)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        self._threads = []

    def _play(self, audio: AudioDevices, stop: threading.Event) -> None:
        try:
            self._ring_until(audio, stop)
        except BaseException as exc:  # a dead thread must be heard of
            self._report("ringer", f"the ringer thread died: {type(exc).__name__}: {exc}")

    def _ring_until(self, audio: AudioDevices, stop: threading.Event) -> None:
        tone = ToneGenerator("ring", plan=self._tone_plan, gain=self._gain)
        backoff = FIRST_RETRY
        said: str | None = ""  # what this ring reported last ("": nothing yet)

        def say(fault: str | None) -> None:
            nonlocal said, backoff
            if fault is None:
                backoff = FIRST_RETRY
            if fault != said:
                said = fault
                self._report("ringer", fault)

        while not stop.is_set():
            fault = self._ring_once(audio, tone, stop, lambda: say(None), say)
            if fault is None:
                return
            say(fault)
            stop.wait(backoff)
            backoff = min(backoff * 2, RING_RETRY)

    @staticmethod
    def _ring_once(
        audio: AudioDevices,
        tone: ToneGenerator,
        stop: threading.Event,
        works: Callable[[], None],
        failing: Callable[[str], None],
    ) -> str | None:
        """Ring on one opening of the device until `stop` (None) or a fault (its reason)."""
        try:
            playback = audio.open_playback("ring")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            while not stop.is_set():
                playback.write_frame(tone.frame())
                fault = playback.fault if isinstance(playback, DeviceHealth) else None
                if fault is None:
                    works()
                else:  # the driver drops the frames and reopens by itself: wait for it
                    failing(fault)
                    stop.wait(FIRST_RETRY)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                playback.close()


class PhoneUi:
    """The reducer and what it drives, on the running loop. `start()`, then feed it facts."""

    def __init__(
        self,
        settings: pe.PhoneSettings,
        run_command: CommandRunner,
        *,
        display: Display | None = None,
        keypad: Keypad | None = None,
        audio: AudioDevices | None = None,
        tone_plan: str = "etsi",
        wall_clock: Callable[[], float] = time.time,
        call_log: CallLog | None = None,
        preferences: PreferencesStore | None = None,
        on_device: Callable[[pe.DeviceFailed | pe.DeviceRecovered], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_device = on_device
        self._audio = audio
        self._call_log = call_log
        self._preferences = preferences
        self._run_command = run_command
        self._display = display
        self._keypad = keypad
        self._wall_clock = wall_clock
        self._loop = asyncio.get_running_loop()
        self._state: PhoneState | None = None
        self._shown: Screen | None = None
        self._generation = 0
        self._drawn = 0
        self._waiting_since: float | None = None
        """When the oldest screen not yet drawn was handed to the display thread."""
        self._after_drawn: list[tuple[int, Callable[[], None]]] = []
        self._tick: asyncio.TimerHandle | None = None
        self._faults: dict[pe.DeviceName, str] = {}
        self._restarts = RestartBudget()
        self.healthy = True
        """False once a thread of the UI died and could not be started again."""
        self._devices = self._slow_devices()
        self._writer = StateWriter(call_log, preferences)
        self._ringer = Ringer(audio, tone_plan, settings.ring_volume, self._device_from_thread)

    @property
    def state(self) -> PhoneState | None:
        return self._state

    def start(self) -> None:
        off_hook = self._keypad.off_hook() if self._keypad is not None else False
        history = self._call_log.load() if self._call_log is not None else ()
        kept = self._preferences.load() if self._preferences is not None else None
        self._state = initial_state(self._settings, self._loop.time(), off_hook, history, kept)
        self._devices.set_volume(self._state.volume)  # audio.volume (or the kept one) at start
        self._on_tick()  # the first screen has the clock (its status bar once flashed blank)
        if self._keypad is not None:
            self._keypad.start(self._input_from_thread)

    def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._ringer.close()
        self._devices.close()
        if self._keypad is not None:
            self._keypad.close()
        self._writer.close()  # the last history and preferences reach the disk

    def fact(self, fact: pe.ReducerInput) -> None:
        """A key, the hook, or a fact about registration or a call."""
        if self._state is None:
            return
        before = self._state
        self._state, commands = reduce(self._state, fact, self._loop.time())
        state = self._state
        if state.history is not before.history:
            self._writer.save_history(state.history)  # off the loop: an fsync on an SD card
        if (state.dnd, state.forward_to) != (before.dnd, before.forward_to):
            self._writer.save_preferences(Preferences(dnd=state.dnd, forward_to=state.forward_to))
        for command in commands:
            if isinstance(command, pe.Ring):
                self.ring(command.on)
            elif isinstance(command, pe.SetVolume):
                self._devices.set_volume(command.percent)
            else:
                self._run_command(command)
        self._show()
        self._schedule_tick()

    def ring(self, on: bool) -> None:
        """Start or stop the ringer, as the reducer's `Ring` does (benches drive it too)."""
        try:
            self._ringer.ring(on)
        except RuntimeError as exc:  # no thread to be had: only a restart helps
            self._cannot_restart("ringer", f"no ringer thread: {exc}")

    @property
    def faults(self) -> dict[pe.DeviceName, str]:
        """The devices that do not work now, and why."""
        return dict(self._faults)

    def screen(self) -> Screen | None:
        """What the display shows now (None before `start`)."""
        return None if self._state is None else render(self._state, self._loop.time())

    def when_shown(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once the current screen has been drawn (at once when
        there is no display)."""
        if self._display is None or self._state is None or self._drawn >= self._generation:
            callback()
        else:
            self._after_drawn.append((self._generation, callback))

    # ------------------------------------------------------------------ device faults

    def _slow_devices(self) -> SlowDevices:
        return SlowDevices(
            self._display,
            self._audio,
            self._drawn_from_thread,
            self._device_from_thread,
            self._died_from_thread,
        )

    def _device_from_thread(self, device: pe.DeviceName, fault: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self._loop.call_soon_threadsafe(self._device_status, device, fault)

    def _device_status(self, device: pe.DeviceName, fault: str | None) -> None:
        """A device's health changed (or was said again: only changes count)."""
        event: pe.DeviceFailed | pe.DeviceRecovered
        if fault is None:
            if self._faults.pop(device, None) is None:
                return
            log.info("the %s works again", device)
            event = pe.DeviceRecovered(device)
        else:
            if device in self._faults:
                return  # the same outage: logged once
            self._faults[device] = fault
            log.error("the %s failed: %s; %s", device, fault, WHAT_NOW[device])
            event = pe.DeviceFailed(device, fault)
        self.fact(event)
        if self._on_device is not None:
            self._on_device(event)

    def _died_from_thread(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self._loop.call_soon_threadsafe(self._devices_died, reason)

    def _devices_died(self, reason: str) -> None:
        """The display thread died: start another (which draws the screen of the moment), or
        give up when it keeps dying."""
        if self._state is None:
            return  # stopped meanwhile
        log.error("the display thread died: %s", reason)
        if self._restarts.allow():
            try:
                self._devices = self._slow_devices()
            except RuntimeError as exc:
                reason = f"{reason}; no new thread: {exc}"
            else:
                self._devices.set_volume(self._state.volume)
                self._waiting_since = None
                if self._shown is not None:
                    self._generation += 1
                    self._devices.show(self._generation, self._shown)
                return
        self._cannot_restart("display", f"the display thread died: {reason}")

    def _cannot_restart(self, device: pe.DeviceName, reason: str) -> None:
        if self.healthy:
            log.critical("%s; the phone needs a restart", reason)
        self.healthy = False
        self._faults.pop(device, None)
        self._device_status(device, f"{reason}; restart needed")

    # ------------------------------------------------------------------ internals

    def _input_from_thread(self, event: InputEvent) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self._loop.call_soon_threadsafe(self.fact, event)

    def _show(self) -> None:
        if self._state is None or self._display is None:
            return
        screen = render(self._state, self._loop.time())
        if screen != self._shown:
            self._shown = screen
            self._generation += 1
            self._devices.show(self._generation, screen)
            if self._waiting_since is None:
                self._waiting_since = self._loop.time()

    def _drawn_from_thread(self, generation: int) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self._loop.call_soon_threadsafe(self._on_drawn, generation)

    def _on_drawn(self, generation: int) -> None:
        self._drawn = max(self._drawn, generation)
        self._waiting_since = None if self._drawn >= self._generation else self._loop.time()
        due = [c for g, c in self._after_drawn if g <= self._drawn]
        self._after_drawn = [(g, c) for g, c in self._after_drawn if g > self._drawn]
        for callback in due:
            callback()

    def _schedule_tick(self) -> None:
        if self._state is None:
            return
        if self._tick is not None:
            self._tick.cancel()
        deadline = next_deadline(self._state)
        at = self._loop.time() + 1.0
        if deadline is not None:
            at = min(at, deadline)
        self._tick = self._loop.call_at(at, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        if self._state is None:
            return
        waiting = self._waiting_since
        if waiting is not None and self._loop.time() - waiting > STUCK_AFTER and self.healthy:
            self._cannot_restart(
                "display", f"the display thread hangs: no screen drawn for {STUCK_AFTER:.0f} s"
            )
        wall = self._wall_clock()
        local = time.localtime(wall)
        clock = time.strftime("%H:%M", local)
        self.fact(pe.Tick(self._loop.time(), clock, wall=wall, utc_offset=local.tm_gmtoff))
