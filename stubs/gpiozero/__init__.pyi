# Typed surface of gpiozero 2.0, only what pidphone uses.
from gpiozero.pins import Factory

class Device:
    pin_factory: Factory | None
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def value(self) -> int: ...

class DigitalOutputDevice(Device):
    def __init__(
        self,
        pin: int | str,
        *,
        active_high: bool = True,
        initial_value: bool | None = False,
        pin_factory: Factory | None = None,
    ) -> None: ...
    def on(self) -> None: ...
    def off(self) -> None: ...

class DigitalInputDevice(Device):
    def __init__(
        self,
        pin: int | str,
        *,
        pull_up: bool | None = False,
        active_state: bool | None = None,
        bounce_time: float | None = None,
        pin_factory: Factory | None = None,
    ) -> None: ...
    @property
    def is_active(self) -> bool: ...

class Button(DigitalInputDevice):
    def __init__(
        self,
        pin: int | str,
        *,
        pull_up: bool | None = True,
        active_state: bool | None = None,
        bounce_time: float | None = None,
        hold_time: float = 1,
        hold_repeat: bool = False,
        pin_factory: Factory | None = None,
    ) -> None: ...
    @property
    def is_pressed(self) -> bool: ...
