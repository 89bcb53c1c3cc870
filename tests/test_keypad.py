"""The GPIO keypad on gpiozero's mock pins, wired like a real matrix: a column reads low while
a pressed key connects it to the row being driven low. Time is moved by hand through `poll`."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from pidphone.drivers.keypad import KeypadTiming, MatrixKeypad, RetryingKeypad
from pidphone.errors import DeviceError
from pidphone.ports import HookEvent, InputEvent, KeyEvent

ROWS = [5, 6, 13, 19]
COLUMNS = [12, 16, 20, 21]
KEYMAP = [["1", "2", "3", "A"], ["4", "5", "6", "B"], ["7", "8", "9", "C"], ["*", "0", "#", "D"]]
HOOK_PIN = 26
BUTTONS = {"volume_up": 17, "sas_confirm": 27}
TIMING = KeypadTiming(scan_interval=0.001, debounce=0.03, repeat_delay=0.5, repeat_interval=0.2)


class Matrix:
    """Which keys of the test matrix a finger holds down."""

    def __init__(self) -> None:
        self.down: set[tuple[int, int]] = set()

    def key(self, name: str) -> tuple[int, int]:
        for r, row in enumerate(KEYMAP):
            if name in row:
                return r, row.index(name)
        raise KeyError(name)


class MatrixFactory(MockFactory):
    def __init__(self) -> None:
        super().__init__(pin_class=MatrixPin)
        self.matrix = Matrix()
        self._rows: list[MockPin] = []

    def row_pins(self) -> list[MockPin]:
        if not self._rows:
            self._rows = [self.pin(n) for n in ROWS]
        return self._rows


class MatrixPin(MockPin):
    """A column pin reads low when pressed keys connect it, directly or through other pressed
    keys, to the row being driven low: the way a matrix without diodes ghosts."""

    def _get_state(self) -> bool:
        factory = self.factory
        number = int(self.info.name.removeprefix("GPIO"))
        if isinstance(factory, MatrixFactory) and number in COLUMNS:
            low = {("r", r) for r, pin in enumerate(factory.row_pins()) if not pin.state}
            return ("c", COLUMNS.index(number)) not in _connected(low, factory.matrix.down)
        return bool(super()._get_state())


def _connected(start: set[tuple[str, int]], keys: set[tuple[int, int]]) -> set[tuple[str, int]]:
    reached = set(start)
    grew = True
    while grew:
        grew = False
        for r, c in keys:
            pair = {("r", r), ("c", c)}
            if pair & reached and not pair <= reached:
                reached |= pair
                grew = True
    return reached


class Rig:
    def __init__(self, hook_on: bool = True) -> None:
        self.factory = MatrixFactory()
        self.hook = self.factory.pin(HOOK_PIN)
        self.keypad = MatrixKeypad(
            ROWS,
            COLUMNS,
            KEYMAP,
            hook_pin=HOOK_PIN,
            hook_closed_when="on_hook",
            buttons=BUTTONS,
            timing=TIMING,
            pin_factory=self.factory,
            clock=lambda: 0.0,
        )
        self.now = 0.0
        if hook_on:
            self.hook.drive_low()  # the handset rests on the switch: closed
            assert self.run(0.1) == [HookEvent(off_hook=False)]

    def run(self, seconds: float, step: float = 0.005) -> list[InputEvent]:
        events: list[InputEvent] = []
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += step
            events += self.keypad.poll(self.now)
        return events

    def press(self, *names: str) -> None:
        self.factory.matrix.down |= {self.factory.matrix.key(n) for n in names}

    def release(self, *names: str) -> None:
        self.factory.matrix.down -= {self.factory.matrix.key(n) for n in names}


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.keypad.close()


@pytest.mark.parametrize("name", [k for row in KEYMAP for k in row])
def test_every_key_gives_exactly_one_press_and_one_release(rig: Rig, name: str) -> None:
    rig.press(name)
    assert rig.run(0.2) == [KeyEvent(name)]
    rig.release(name)
    assert rig.run(0.2) == [KeyEvent(name, pressed=False)]


def test_a_held_digit_sends_one_long_press(rig: Rig) -> None:
    rig.press("5")
    events = rig.run(2.5)
    assert events == [KeyEvent("5"), KeyEvent("5", repeat=True)]  # once, at 1.03 s
    rig.release("5")
    assert rig.run(0.1) == [KeyEvent("5", pressed=False)]


def test_bouncing_contact_gives_one_event(rig: Rig) -> None:
    for _ in range(5):  # 5 ms of chatter, 5 times
        rig.press("5")
        assert rig.run(0.005) == []
        rig.release("5")
        assert rig.run(0.005) == []
    rig.press("5")
    assert rig.run(0.1) == [KeyEvent("5")]


def test_a_glitch_shorter_than_the_debounce_is_ignored(rig: Rig) -> None:
    rig.press("8")
    rig.run(0.01)
    rig.release("8")
    assert rig.run(0.2) == []


def test_two_keys_at_once_in_different_rows_and_columns(rig: Rig) -> None:
    rig.press("1", "9")
    assert sorted(e.key for e in rig.run(0.1) if isinstance(e, KeyEvent)) == ["1", "9"]
    rig.release("1")
    assert rig.run(0.1) == [KeyEvent("1", pressed=False)]


def test_two_keys_in_one_row(rig: Rig) -> None:
    rig.press("4", "6")
    assert sorted(e.key for e in rig.run(0.1) if isinstance(e, KeyEvent)) == ["4", "6"]


def test_three_keys_that_would_ghost_a_fourth_are_not_misread(rig: Rig) -> None:
    rig.press("1")
    assert rig.run(0.1) == [KeyEvent("1")]
    rig.press("2", "4")  # with 1 held, 5 would look pressed
    events = rig.run(0.2)
    assert KeyEvent("5") not in events
    assert events == []  # ambiguous scans are skipped, the held key stays held
    rig.release("2", "4")
    assert rig.run(0.1) == []


def test_hook_lifted_and_put_down(rig: Rig) -> None:
    assert not rig.keypad.off_hook()
    rig.hook.drive_high()  # switch opens
    assert rig.run(0.1) == [HookEvent(off_hook=True)]
    assert rig.keypad.off_hook()
    rig.hook.drive_low()
    assert rig.run(0.1) == [HookEvent(off_hook=False)]


def test_hook_state_is_read_at_start() -> None:
    r = Rig(hook_on=False)
    try:
        assert r.keypad.off_hook()
        assert r.run(0.1) == []
    finally:
        r.keypad.close()


def test_function_button_and_volume_repeat(rig: Rig) -> None:
    button = rig.factory.pin(BUTTONS["sas_confirm"])
    button.drive_low()
    assert rig.run(0.1) == [KeyEvent("sas_confirm")]
    button.drive_high()
    assert rig.run(0.1) == [KeyEvent("sas_confirm", pressed=False)]
    volume = rig.factory.pin(BUTTONS["volume_up"])
    volume.drive_low()
    events = rig.run(1.0)
    # pressed at 30 ms, repeats at 530, 730, 930 ms
    assert events == [KeyEvent("volume_up")] + [KeyEvent("volume_up", repeat=True)] * 3
    volume.drive_high()
    assert rig.run(0.1) == [KeyEvent("volume_up", pressed=False)]


def test_scan_thread_reports_a_press() -> None:
    factory = MockFactory()
    button = factory.pin(4)
    keypad = MatrixKeypad([], [], [], buttons={"hold": 4}, timing=TIMING, pin_factory=factory)
    got: queue.Queue[InputEvent] = queue.Queue()
    try:
        keypad.start(got.put)
        button.drive_low()
        assert got.get(timeout=5) == KeyEvent("hold")
    finally:
        keypad.close()


def test_busy_pin_closes_everything_and_names_the_config_key() -> None:
    factory = MockFactory()
    factory.pin(16)  # not busy by itself; make the column pin unusable instead
    with pytest.raises(DeviceError) as info:
        MatrixKeypad(ROWS, [12, 12], [["1", "2"]] * 4, pin_factory=factory)
    assert info.value.config_key == "keypad.cols[1]"
    assert "GPIO12" in str(info.value)
    # every pin it had opened is free again
    keypad = MatrixKeypad(ROWS, [12], [["1"]] * 4, pin_factory=factory)
    keypad.close()


def test_keymap_must_match_the_pins() -> None:
    with pytest.raises(DeviceError) as info:
        MatrixKeypad([1, 2], [3], [["1"]], pin_factory=MockFactory())
    assert info.value.config_key == "keypad.keymap"


def test_hook_switch_that_closes_when_lifted() -> None:
    factory = MockFactory()
    hook = factory.pin(HOOK_PIN)
    keypad = MatrixKeypad([], [], [], hook_pin=HOOK_PIN, timing=TIMING, pin_factory=factory)
    try:
        assert not keypad.off_hook()  # open switch, pulled up: the handset is down
        hook.drive_low()
        assert keypad.poll(0.0) == []
        assert keypad.poll(0.05) == [HookEvent(off_hook=True)]
    finally:
        keypad.close()


def test_busy_gpio_is_logged_once_and_the_keypad_opens_when_freed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = MockFactory()
    holder = DigitalInputDevice(4, pin_factory=factory)  # someone else has GPIO4
    button = factory.pin(4)

    def opener() -> MatrixKeypad:
        return MatrixKeypad([], [], [], buttons={"hold": 4}, timing=TIMING, pin_factory=factory)

    got: queue.Queue[InputEvent] = queue.Queue()
    with caplog.at_level("ERROR"):
        keypad = RetryingKeypad(opener, retry_interval=0.01)
        try:
            assert keypad.keypad is None
            assert not keypad.off_hook()
            keypad.start(got.put)
            holder.close()
            assert got.get(timeout=5) == HookEvent(off_hook=False)  # state after reopening
            button.drive_low()
            assert got.get(timeout=5) == KeyEvent("hold")
        finally:
            keypad.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "keypad.function_keys.hold" in errors[0]


def test_standard_keymap_when_none_is_given() -> None:
    factory = MatrixFactory()
    keypad = MatrixKeypad(ROWS, COLUMNS[:3], pin_factory=factory, timing=TIMING)
    try:
        factory.matrix.down = {(3, 2)}  # bottom right of a 4x3 keypad
        events = [e for t in (0.0, 0.05) for e in keypad.poll(t)]
        assert events == [KeyEvent("#")]
    finally:
        keypad.close()


def test_a_read_error_of_the_pin_backend_does_not_stop_the_scan(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """lgpio and the kernel report a failed read as OSError, not as a gpiozero error: the
    scan thread must survive it, or the hook switch and the keys would go dead for good."""
    factory = MockFactory()
    button = factory.pin(4)
    keypad = MatrixKeypad([], [], [], buttons={"hold": 4}, timing=TIMING, pin_factory=factory)
    failures = [OSError(5, "Input/output error")] * 2
    real_state = MockPin._get_state

    def flaky(pin: MockPin) -> bool:
        if failures:
            raise failures.pop()
        return bool(real_state(pin))

    monkeypatch.setattr(button, "_get_state", flaky.__get__(button))
    got: queue.Queue[InputEvent] = queue.Queue()
    try:
        keypad.start(got.put)
        button.drive_low()
        assert got.get(timeout=10) == KeyEvent("hold")
    finally:
        keypad.close()
    assert "GPIO read failed (OSError" in caplog.text
