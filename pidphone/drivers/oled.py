"""The 128x64 OLED (SSD1306 or SH1106 through luma.oled), implementing `ports.Display`.

Screens are drawn by pidphone.drivers.draw; this module owns the device: the bus (I2C port
and address, or SPI), rotation, contrast for the dim state and `hide()` (panel off) for the
blank state, which is what saves an OLED from burn-in. Only changes go over the bus: an
unchanged picture costs nothing, which matters on a 400 kHz I2C bus (one frame is 1 KiB).

A display that does not answer does not stop the phone: the failure is logged once as a
`DeviceError` naming the config key, and the device is reopened on a later `show` at most
every `retry_interval` seconds; the latest screen is drawn as soon as it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gpiozero import DigitalOutputDevice
from gpiozero.pins import Factory
from luma.core.device import device as LumaDevice  # noqa: N812
from luma.core.interface.serial import i2c, spi
from luma.oled.device import sh1106, ssd1306

from pidphone.errors import DeviceError
from pidphone.ports import Screen

from .draw import HEIGHT, WIDTH, draw_screen

log = logging.getLogger(__name__)

Controller = Literal["ssd1306", "sh1106"]
CONTROLLERS: dict[str, type[ssd1306] | type[sh1106]] = {"ssd1306": ssd1306, "sh1106": sh1106}


@dataclass(frozen=True)
class OledConfig:
    """Where the display is and how it is mounted: the fields of the `[display]` config table
    by the same names."""

    driver: Controller = "ssd1306"
    bus: Literal["i2c", "spi"] = "i2c"
    i2c_port: int = 1
    i2c_address: int = 0x3C
    spi_port: int = 0
    spi_device: int = 0
    spi_dc_pin: int = 24
    spi_reset_pin: int = 25
    rotation: int = 0
    """0, 1, 2, 3: quarter turns clockwise (2 = mounted upside down)."""
    contrast: int = 0xCF
    dim_contrast: int = 0x08


class GpioLines:
    """The part of RPi.GPIO that luma's SPI interface uses (the DC and RESET lines), done with
    gpiozero so SPI needs no second GPIO library. Lines stay claimed until `cleanup`."""

    BCM = "BCM"
    OUT = "OUT"
    LOW = 0
    HIGH = 1

    def __init__(self, pin_factory: Factory | None = None) -> None:
        self._pin_factory = pin_factory
        self._lines: dict[int, DigitalOutputDevice] = {}

    def setmode(self, mode: str) -> None:
        """Pins are always BCM numbers."""

    def setup(self, pin: int, mode: str, initial: int | None = None) -> None:
        if pin not in self._lines:
            self._lines[pin] = DigitalOutputDevice(
                pin, initial_value=bool(initial), pin_factory=self._pin_factory
            )

    def output(self, pin: int, value: int) -> None:
        line = self._lines[pin]
        if value:
            line.on()
        else:
            line.off()

    def cleanup(self, pins: object = None) -> None:
        for line in self._lines.values():
            line.close()
        self._lines.clear()


def open_luma(config: OledConfig, lines: GpioLines | None = None) -> LumaDevice:
    """Open the real device: the bus first, then the controller's init sequence. If the
    controller does not answer, the bus is released again."""
    serial: i2c | spi
    if config.bus == "i2c":
        serial = i2c(port=config.i2c_port, address=config.i2c_address)
    else:
        if lines is None:
            raise DeviceError("OLED display", "display.bus", "SPI needs its GPIO lines")
        serial = spi(
            gpio=lines,
            port=config.spi_port,
            device=config.spi_device,
            gpio_DC=config.spi_dc_pin,
            gpio_RST=config.spi_reset_pin,
        )
    try:
        return CONTROLLERS[config.driver](
            serial, width=WIDTH, height=HEIGHT, rotate=config.rotation
        )
    except Exception:
        serial.cleanup()
        raise


class OledDisplay:
    """Shows `Screen`s on a luma device made by `opener` (tests pass luma's dummy device)."""

    def __init__(
        self,
        opener: Callable[[], LumaDevice],
        *,
        contrast: int = 0xCF,
        dim_contrast: int = 0x08,
        config_key: str = "display",
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._opener = opener
        self._on_close = on_close
        self._contrast = {"normal": contrast, "dim": dim_contrast}
        self._config_key = config_key
        self._retry_interval = retry_interval
        self._clock = clock
        self._device: LumaDevice | None = None
        self._failed_at: float | None = None
        self._reported = False
        self._fault: str | None = None
        self._shown: Screen | None = None
        self._level: int | None = None
        self._hidden = False
        self._open()

    @classmethod
    def from_config(cls, config: OledConfig, config_key: str = "display") -> OledDisplay:
        lines = GpioLines() if config.bus == "spi" else None
        return cls(
            lambda: open_luma(config, lines),
            contrast=config.contrast,
            dim_contrast=config.dim_contrast,
            config_key=config_key,
            on_close=lines.cleanup if lines is not None else None,
        )

    @property
    def working(self) -> bool:
        return self._device is not None

    @property
    def fault(self) -> str | None:
        """Why the display is down (`ports.DeviceHealth`); None while it draws."""
        return None if self._device is not None else self._fault

    def show(self, screen: Screen) -> None:
        if self._device is None:
            if self._failed_at is not None and (
                self._clock() - self._failed_at < self._retry_interval
            ):
                self._shown = screen
                return
            self._shown = None
            self._open()
        device = self._device
        if device is None:
            self._shown = screen
            return
        try:
            self._draw(device, screen)
        except OSError as exc:  # I2C/SPI errors: the bus no longer answers
            self._fail(exc)

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.cleanup()  # blank the panel, release the bus
            except OSError as exc:
                log.debug("display cleanup failed: %s", exc)
            self._device = None
        if self._on_close is not None:
            self._on_close()

    # ----------------------------------------------------------------- internals

    def _open(self) -> None:
        try:
            self._device = self._opener()
        except Exception as exc:  # luma's, the bus's or the GPIO library's own error types
            self._fail(exc)
            return
        if self._reported:
            log.info("display (%s) is back", self._config_key)
        self._reported = False
        self._fault = None
        self._failed_at = None
        self._level = None
        self._hidden = False
        pending, self._shown = self._shown, None
        if pending is not None:
            self.show(pending)

    def _fail(self, exc: BaseException) -> None:
        error = DeviceError("OLED display", self._config_key, f"{type(exc).__name__}: {exc}")
        self._fault = str(error)
        if not self._reported:
            log.error("%s; retrying every %.0f s", error, self._retry_interval)
            self._reported = True
        if self._device is not None:
            self._device.persist = True  # no blanking commands to a display that fails
            try:
                self._device.cleanup()
            except OSError as cleanup_exc:
                log.debug("display cleanup failed: %s", cleanup_exc)
            self._device = None
        self._failed_at = self._clock()

    def _draw(self, device: LumaDevice, screen: Screen) -> None:
        if screen.brightness == "off":
            if not self._hidden:
                device.hide()
                self._hidden = True
            self._shown = screen
            return
        level = self._contrast[screen.brightness]
        if level != self._level:
            device.contrast(level)
            self._level = level
        if screen != self._shown:
            device.display(draw_screen(screen))
        if self._hidden:
            device.show()
            self._hidden = False
        self._shown = screen
