"""The keypad, hook switch and function keys on GPIO (gpiozero), implementing `ports.Keypad`.

gpiozero has no keypad class, so this is one: rows are outputs, columns are inputs with
pull-ups; a scan drives one row low at a time and reads which columns follow it low. The hook
switch and function keys are push buttons to ground, read in the same scan as pulled-up
inputs, so every input shares one debounce: a contact must stay put for `debounce` seconds
before it counts (gpiozero's mock pins, and some real backends, ignore `bounce_time`). They are
plain DigitalInputDevices rather than gpiozero Buttons because the scan already does what
Button adds (debounce, hold, repeat) and each Button would cost a polling thread. Volume keys
auto-repeat while held; a digit held for `long_press` seconds sends one repeat event (the
phone dials that digit's speed dial).

Without diodes a matrix "ghosts": three keys at three corners of a rectangle make the fourth
look pressed. A scan showing two rows that share two pressed columns is ambiguous and is not
used; keys in different rows or columns, or two in one row, read correctly.

All devices belong to the keypad: if one cannot be opened (GPIO busy, no pin backend), the ones
already open are closed and a `DeviceError` names the config key of the pin that failed.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar

from gpiozero import Device, DigitalInputDevice, DigitalOutputDevice
from gpiozero.exc import PinFactoryFallback
from gpiozero.pins import Factory

from pidphone.errors import DeviceError
from pidphone.ports import STANDARD_KEYMAPS, HookEvent, InputEvent, KeyEvent

log = logging.getLogger(__name__)

D = TypeVar("D", bound=Device)


HOOK = "hook"
"""The hook switch's name among the debounced inputs."""


@dataclass(frozen=True)
class KeypadTiming:
    """Scan and key timing, in seconds."""

    scan_interval: float = 0.01
    debounce: float = 0.03
    repeat_delay: float = 0.5
    """How long a repeating key is held before it repeats."""
    repeat_interval: float = 0.15
    repeat_keys: frozenset[str] = field(default=frozenset({"volume_up", "volume_down"}))
    long_press: float = 1.0
    """How long a `long_press_keys` key is held before its single repeat event."""
    long_press_keys: frozenset[str] = field(default=frozenset("123456789"))


@dataclass
class _Contact:
    """The debounce state of one input."""

    raw: bool = False
    raw_since: float = 0.0
    stable: bool = False
    next_repeat: float | None = None


class MatrixKeypad:
    """A scanned 4x3/4x4 matrix plus push buttons for the hook and the function keys.

    `keymap[r][c]` names the key at row r, column c (default: the standard 4x3 or 4x4 map).
    `buttons` maps a function key name to its BCM pin. `hook_closed_when` says whether the hook
    switch closes when the handset is lifted or put down. `poll(now)` does one scan; `start`
    runs it on a thread. The config keys in errors are those of the `[keypad]` table
    (`keypad.rows[1]`, `keypad.function_keys.hold`).
    """

    def __init__(
        self,
        rows: Sequence[int],
        columns: Sequence[int],
        keymap: Sequence[Sequence[str]] = (),
        *,
        hook_pin: int | None = None,
        hook_closed_when: Literal["off_hook", "on_hook"] = "off_hook",
        buttons: Mapping[str, int] | None = None,
        timing: KeypadTiming | None = None,
        pin_factory: Factory | None = None,
        clock: Callable[[], float] = time.monotonic,
        config_key: str = "keypad",
    ) -> None:
        if not keymap and len(rows) == 4:
            keymap = STANDARD_KEYMAPS.get(len(columns), ())
        if len(keymap) != len(rows) or any(len(r) != len(columns) for r in keymap):
            raise DeviceError("keypad", f"{config_key}.keymap", "does not match rows x columns")
        self.timing = timing or KeypadTiming()
        self._clock = clock
        self._keymap = [list(row) for row in keymap]
        self._hook_closed_on_hook = hook_closed_when == "on_hook"
        self._devices: list[Device] = []
        self._buttons: dict[str, DigitalInputDevice] = {}
        self._sink: Callable[[InputEvent], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._rows = [
                self._open(
                    partial(DigitalOutputDevice, pin, initial_value=True, pin_factory=pin_factory),
                    f"{config_key}.rows[{i}]",
                    pin,
                )
                for i, pin in enumerate(rows)
            ]
            self._columns = [
                self._open(
                    partial(DigitalInputDevice, pin, pull_up=True, pin_factory=pin_factory),
                    f"{config_key}.cols[{i}]",
                    pin,
                )
                for i, pin in enumerate(columns)
            ]
            named = dict(buttons or {})
            if hook_pin is not None:
                named[HOOK] = hook_pin
            for name, pin in named.items():
                key = (
                    f"{config_key}.hook_pin"
                    if name == HOOK
                    else f"{config_key}.function_keys.{name}"
                )
                self._buttons[name] = self._open(
                    partial(DigitalInputDevice, pin, pull_up=True, pin_factory=pin_factory),
                    key,
                    pin,
                )
        except DeviceError:
            self.close()
            raise
        now = clock()
        self._contacts = {name: _Contact(raw_since=now) for name in self._names()}
        for name, button in self._buttons.items():
            contact = self._contacts[name]
            contact.raw = contact.stable = button.is_active

    def _open(self, make: Callable[[], D], config_key: str, pin: int) -> D:
        """Open one device and own it, or say which pin and config key failed."""
        try:
            with warnings.catch_warnings(record=True) as fallbacks:
                warnings.simplefilter("always", PinFactoryFallback)
                device = make()
        except Exception as exc:  # gpiozero's, or the pin backend's own error types
            raise DeviceError(f"GPIO{pin}", config_key, f"{type(exc).__name__}: {exc}") from exc
        finally:
            # gpiozero tries each pin library in turn and warns about each it skips, with its
            # source line: the one line that matters is the error above, the rest is debug
            for fallback in fallbacks:
                log.debug("GPIO%d (%s): %s", pin, config_key, fallback.message)
        self._devices.append(device)
        return device

    def _names(self) -> list[str]:
        return [k for row in self._keymap for k in row] + list(self._buttons)

    # ----------------------------------------------------------------- ports.Keypad

    def start(self, sink: Callable[[InputEvent], None]) -> None:
        """Scan on a thread and deliver events to `sink` (from that thread)."""
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="keypad-scan", daemon=True)
        self._thread.start()

    def off_hook(self) -> bool:
        contact = self._contacts.get(HOOK)
        return contact is not None and contact.stable != self._hook_closed_on_hook

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()

    # ----------------------------------------------------------------- scanning

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                events = self.poll(self._clock())
            except Exception as exc:  # gpiozero's errors, or the pin backend's own (OSError)
                # A scan thread that died would leave a phone whose hook and keys do nothing.
                if not failing:
                    log.error(
                        "keypad: GPIO read failed (%s: %s); retrying every second",
                        type(exc).__name__,
                        exc,
                    )
                failing = True
                self._stop.wait(1.0)
                continue
            if failing:
                log.info("keypad: GPIO reads work again")
                failing = False
            for event in events:
                if self._sink is not None:
                    self._sink(event)
            self._stop.wait(self.timing.scan_interval)

    def poll(self, now: float) -> list[InputEvent]:
        """Scan every input once and return the debounced changes and key repeats."""
        raw = self._scan_matrix()
        if raw is None:
            raw = {name: c.raw for name, c in self._contacts.items() if name not in self._buttons}
        raw.update({name: b.is_active for name, b in self._buttons.items()})
        events: list[InputEvent] = []
        for name, pressed in raw.items():
            event = self._debounce(name, self._contacts[name], pressed, now)
            if event is not None:
                events.append(event)
        return events

    def _scan_matrix(self) -> dict[str, bool] | None:
        """Which matrix keys are down, or None when the reading is ambiguous (ghosting)."""
        down: list[set[int]] = []
        for row in self._rows:
            row.off()  # drive the row low
            down.append({c for c, col in enumerate(self._columns) if col.is_active})
            row.on()
        for a in range(len(down)):
            for b in range(a + 1, len(down)):
                if len(down[a] & down[b]) >= 2:
                    return None
        return {
            key: c in down[r] for r, names in enumerate(self._keymap) for c, key in enumerate(names)
        }

    def _debounce(
        self, name: str, contact: _Contact, pressed: bool, now: float
    ) -> InputEvent | None:
        if pressed != contact.raw:
            contact.raw, contact.raw_since = pressed, now
        timing = self.timing
        if contact.raw != contact.stable and now - contact.raw_since >= timing.debounce:
            contact.stable = contact.raw
            contact.next_repeat = None
            if contact.stable and name in timing.repeat_keys:
                contact.next_repeat = now + timing.repeat_delay
            elif contact.stable and name in timing.long_press_keys:
                contact.next_repeat = now + timing.long_press
            if name == HOOK:
                return HookEvent(off_hook=self.off_hook())
            return KeyEvent(name, pressed=contact.stable)
        if contact.next_repeat is not None and contact.stable and now >= contact.next_repeat:
            repeats = name in timing.repeat_keys
            contact.next_repeat = now + timing.repeat_interval if repeats else None
            return KeyEvent(name, repeat=True)
        return None


class RetryingKeypad:
    """A keypad whose GPIO lines may not be available yet (busy, no pin backend): the failure
    is logged once and opening is retried on a thread every `retry_interval` seconds, so the
    phone runs, rings and shows calls meanwhile. Implements `ports.Keypad`."""

    def __init__(self, opener: Callable[[], MatrixKeypad], retry_interval: float = 10.0) -> None:
        self._opener = opener
        self._retry_interval = retry_interval
        self._keypad: MatrixKeypad | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reported = False
        self._try_open()

    @property
    def keypad(self) -> MatrixKeypad | None:
        """The keypad once it is open."""
        return self._keypad

    def _try_open(self) -> bool:
        try:
            keypad = self._opener()
        except DeviceError as exc:
            if not self._reported:
                log.error("%s; retrying every %.0f s", exc, self._retry_interval)
                self._reported = True
            return False
        if self._reported:
            log.info("keypad is working now")
        with self._lock:
            self._keypad = keypad
        return True

    def start(self, sink: Callable[[InputEvent], None]) -> None:
        if self._keypad is not None:
            self._keypad.start(sink)
            return
        self._thread = threading.Thread(
            target=self._retry, args=(sink,), name="keypad-retry", daemon=True
        )
        self._thread.start()

    def _retry(self, sink: Callable[[InputEvent], None]) -> None:
        while not self._stop.wait(self._retry_interval):
            if self._try_open():
                with self._lock:
                    if self._stop.is_set() or self._keypad is None:
                        return
                    self._keypad.start(sink)
                    # The handset may have moved while the keypad was away.
                    sink(HookEvent(off_hook=self._keypad.off_hook()))
                return

    def off_hook(self) -> bool:
        return self._keypad is not None and self._keypad.off_hook()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._keypad is not None:
                self._keypad.close()
                self._keypad = None
