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
waits until NOT SECURE is on the display.
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

log = logging.getLogger(__name__)

CommandRunner = Callable[[pe.Command], None]
JOIN_TIMEOUT = 2.0


class SlowDevices:
    """The display and the mixer, driven from a thread of their own. Only the latest screen
    and volume matter: each replaces what is still waiting."""

    def __init__(
        self, display: Display | None, audio: AudioDevices | None, shown: Callable[[int], None]
    ) -> None:
        self._display = display
        self._audio = audio
        self._shown = shown
        self._wake = threading.Condition()
        self._screen: tuple[int, Screen] | None = None
        self._volume: int | None = None
        self._stopping = False
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
        while True:
            with self._wake:
                while self._screen is None and self._volume is None and not self._stopping:
                    self._wake.wait()
                screen, self._screen = self._screen, None
                volume, self._volume = self._volume, None
                if screen is None and volume is None:
                    return
            if screen is not None:
                self._draw(*screen)
            if volume is not None and self._audio is not None:
                try:
                    self._audio.set_volume(volume)
                except Exception:
                    log.exception("volume change failed")

    def _draw(self, generation: int, screen: Screen) -> None:
        try:
            if self._display is not None:
                self._display.show(screen)
        except Exception:
            log.exception("display failed")
        self._shown(generation)


class Ringer:
    """The ringer: its own playback ("ring": the loudspeaker when the config names one),
    opened, fed and closed by a thread that lives while it rings (paced by the device)."""

    def __init__(self, audio: AudioDevices | None, tone_plan: str, volume: int = 100) -> None:
        self._audio = audio
        self._tone_plan = tone_plan
        self._gain = volume / 100
        self._stop: threading.Event | None = None
        self._threads: list[threading.Thread] = []

    def ring(self, on: bool) -> None:
        """Start or stop ringing; returns at once."""
        if on and self._stop is None and self._audio is not None:
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._play, args=(self._audio, self._stop), name="ringer", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
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
            playback = audio.open_playback("ring")
        except Exception:
            log.exception("the ringer cannot open its device")
            return
        tone = ToneGenerator("ring", plan=self._tone_plan, gain=self._gain)
        try:
            while not stop.is_set():
                playback.write_frame(tone.frame())
        except Exception:
            log.exception("the ringer failed")
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
    ) -> None:
        self._settings = settings
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
        self._after_drawn: list[tuple[int, Callable[[], None]]] = []
        self._tick: asyncio.TimerHandle | None = None
        self._devices = SlowDevices(display, audio, self._drawn_from_thread)
        self._writer = StateWriter(call_log, preferences)
        self._ringer = Ringer(audio, tone_plan, settings.ring_volume)

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
                self._ringer.ring(command.on)
            elif isinstance(command, pe.SetVolume):
                self._devices.set_volume(command.percent)
            else:
                self._run_command(command)
        self._show()
        self._schedule_tick()

    def ring(self, on: bool) -> None:
        """Start or stop the ringer, as the reducer's `Ring` does (benches drive it too)."""
        self._ringer.ring(on)

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

    def _drawn_from_thread(self, generation: int) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self._loop.call_soon_threadsafe(self._on_drawn, generation)

    def _on_drawn(self, generation: int) -> None:
        self._drawn = max(self._drawn, generation)
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
        wall = self._wall_clock()
        local = time.localtime(wall)
        clock = time.strftime("%H:%M", local)
        self.fact(pe.Tick(self._loop.time(), clock, wall=wall, utc_offset=local.tm_gmtoff))
