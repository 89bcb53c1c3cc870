"""The OLED driver: pixels through luma's dummy device against the reference PNGs in
images/screens/, and the real SSD1306/SH1106 classes' bus bytes decoded back to the picture.

If a screen changes on purpose, regenerate the references with
`pidphone render-screens images/screens` (or `python -c "from pathlib import Path;
from pidphone.cli.render_screens import render_screens; render_screens(Path('images/screens'))"`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory
from luma.core.device import dummy
from luma.core.interface.serial import spi
from luma.oled.device import sh1106, ssd1306
from PIL import Image

from pidphone.cli.render_screens import SCALE, sample_screens
from pidphone.drivers.draw import HEIGHT, WIDTH, draw_screen
from pidphone.drivers.oled import GpioLines, OledConfig, OledDisplay, open_luma
from pidphone.errors import DeviceError
from pidphone.ports import Screen

REFERENCES = Path(__file__).resolve().parent.parent / "images" / "screens"
SCREENS = sample_screens()

DISPLAY_OFF = 0xAE
DISPLAY_ON = 0xAF
SET_CONTRAST = 0x81


class RecordingSerial:
    """A luma serial interface that keeps what would go over I2C/SPI."""

    def __init__(self) -> None:
        self.commands: list[tuple[int, ...]] = []
        self.data_blocks: list[list[int]] = []
        self.cleanups = 0

    def command(self, *cmd: int) -> None:
        self.commands.append(cmd)

    def data(self, data: list[int]) -> None:
        self.data_blocks.append(list(data))

    def cleanup(self) -> None:
        self.cleanups += 1

    def flat_commands(self) -> list[int]:
        return [b for cmd in self.commands for b in cmd]


def reference(name: str) -> Image.Image:
    big = Image.open(REFERENCES / f"{name}.png").convert("1")
    assert big.size == (WIDTH * SCALE, HEIGHT * SCALE)
    return big.resize((WIDTH, HEIGHT), Image.Resampling.NEAREST)


def from_pages(pages: list[int]) -> Image.Image:
    """Decode the controller's GDDRAM layout: one byte per column per 8-row page, LSB on top."""
    image = Image.new("1", (WIDTH, HEIGHT))
    for page in range(HEIGHT // 8):
        for x in range(WIDTH):
            byte = pages[page * WIDTH + x]
            for bit in range(8):
                if byte >> bit & 1:
                    image.putpixel((x, page * 8 + bit), 1)
    return image


def test_every_screen_has_a_reference_image() -> None:
    assert {p.stem for p in REFERENCES.glob("*.png")} == set(SCREENS)


@pytest.mark.parametrize("name", sorted(SCREENS))
def test_dummy_device_shows_the_reference_pixels(name: str) -> None:
    device = dummy(width=WIDTH, height=HEIGHT, mode="1")
    display = OledDisplay(lambda: device)
    display.show(SCREENS[name])
    assert device.image is not None
    assert device.image.tobytes() == reference(name).tobytes()


@pytest.mark.parametrize("name", ["secure_b32", "mismatch", "not_secure", "incoming"])
def test_ssd1306_bytes_decode_to_the_same_image(name: str) -> None:
    serial = RecordingSerial()
    display = OledDisplay(lambda: ssd1306(serial))
    serial.data_blocks.clear()
    display.show(SCREENS[name])
    assert len(serial.data_blocks) == 1  # horizontal addressing: one 1 KiB block
    assert from_pages(serial.data_blocks[0]).tobytes() == reference(name).tobytes()


@pytest.mark.parametrize("name", ["secure_b256_verified", "idle_registered"])
def test_sh1106_bytes_decode_to_the_same_image(name: str) -> None:
    serial = RecordingSerial()
    display = OledDisplay(lambda: sh1106(serial))
    serial.data_blocks.clear()
    display.show(SCREENS[name])
    assert len(serial.data_blocks) == HEIGHT // 8  # page addressing: one block per page
    pages = [b for block in serial.data_blocks for b in block]
    assert from_pages(pages).tobytes() == reference(name).tobytes()


def test_rotated_display_sends_the_picture_upside_down() -> None:
    serial = RecordingSerial()
    display = OledDisplay(lambda: ssd1306(serial, rotate=2))
    serial.data_blocks.clear()
    display.show(SCREENS["secure_b32"])
    sent = from_pages(serial.data_blocks[0])
    expected = reference("secure_b32").transpose(Image.Transpose.ROTATE_180)
    assert sent.tobytes() == expected.tobytes()


def test_dim_lowers_the_contrast_and_off_hides_the_panel() -> None:
    serial = RecordingSerial()
    display = OledDisplay(lambda: ssd1306(serial), contrast=0xCF, dim_contrast=0x08)
    screen = SCREENS["idle_registered"]
    serial.commands.clear()
    display.show(screen)
    assert (SET_CONTRAST, 0xCF) in serial.commands
    serial.commands.clear()
    display.show(replace(screen, brightness="dim"))
    assert (SET_CONTRAST, 0x08) in serial.commands
    serial.commands.clear()
    serial.data_blocks.clear()
    display.show(replace(screen, brightness="off"))
    assert serial.flat_commands() == [DISPLAY_OFF]
    assert serial.data_blocks == []
    display.show(replace(screen, brightness="off"))
    assert serial.flat_commands() == [DISPLAY_OFF]  # only once
    display.show(screen)
    assert DISPLAY_ON in serial.flat_commands()


def test_an_unchanged_screen_sends_nothing() -> None:
    serial = RecordingSerial()
    display = OledDisplay(lambda: ssd1306(serial))
    display.show(SCREENS["calling"])
    serial.commands.clear()
    serial.data_blocks.clear()
    display.show(SCREENS["calling"])
    assert serial.commands == []
    assert serial.data_blocks == []


def test_off_screen_is_black() -> None:
    image = draw_screen(Screen(title="x", brightness="off"))
    assert image.getbbox() is None


class FlakyBus(RecordingSerial):
    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def data(self, data: list[int]) -> None:
        if self.broken:
            raise OSError(121, "Remote I/O error")
        super().data(data)


def test_a_display_that_stops_answering_is_reopened_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    bus = FlakyBus()
    opened: list[int] = []

    def opener() -> ssd1306:
        opened.append(1)
        if bus.broken:
            raise OSError(121, "Remote I/O error")
        return ssd1306(bus)

    display = OledDisplay(opener, clock=lambda: now[0], retry_interval=10.0)
    bus.broken = True
    with caplog.at_level(logging.ERROR):
        display.show(SCREENS["calling"])
        display.show(SCREENS["incoming"])
        now[0] = 5.0
        display.show(SCREENS["incoming"])
    assert [display.working] == [False]
    assert len(opened) == 1  # no retry before the interval
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "OLED display (display)" in errors[0]
    bus.broken = False
    now[0] = 20.0
    bus.data_blocks.clear()
    display.show(SCREENS["incoming"])
    assert display.working
    assert from_pages(bus.data_blocks[-1]).tobytes() == reference("incoming").tobytes()


def test_missing_i2c_bus_is_one_log_line_naming_the_config_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = OledConfig(i2c_port=97)  # no /dev/i2c-97 anywhere
    with caplog.at_level(logging.ERROR):
        display = OledDisplay.from_config(config, config_key="display.i2c_port")
        display.show(SCREENS["idle_registered"])
    assert not display.working
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "display.i2c_port" in messages[0]
    display.close()


def test_failing_display_releases_its_bus_without_talking_to_it() -> None:
    bus = FlakyBus()
    display = OledDisplay(lambda: ssd1306(bus), clock=lambda: 0.0)
    bus.broken = True
    commands_before = len(bus.commands)
    display.show(SCREENS["calling"])
    assert not display.working
    assert bus.cleanups == 1
    # only the contrast and address commands of the failed frame; no hide/clear afterwards
    assert DISPLAY_OFF not in [b for cmd in bus.commands[commands_before:] for b in cmd]


class FakeSpidev:
    """What luma's SPI interface needs from spidev."""

    def __init__(self) -> None:
        self.sent: list[list[int]] = []
        self.max_speed_hz = 0

    def open(self, port: int, device: int) -> None:
        self.port = (port, device)

    def writebytes(self, data: list[int]) -> None:
        self.sent.append(list(data))

    def close(self) -> None:
        pass


def test_spi_display_drives_dc_and_reset_through_gpiozero() -> None:
    factory = MockFactory()
    lines = GpioLines(pin_factory=factory)
    bus = FakeSpidev()
    device = ssd1306(spi(spi=bus, gpio=lines, gpio_DC=24, gpio_RST=25))
    display = OledDisplay(lambda: device, on_close=lines.cleanup)
    bus.sent.clear()
    display.show(SCREENS["secure_b32"])
    assert factory.pin(25).state  # out of reset
    assert factory.pin(24).state  # DC high: the last bytes were data
    image = [b for block in bus.sent if len(block) == WIDTH * HEIGHT // 8 for b in block]
    assert from_pages(image).tobytes() == reference("secure_b32").tobytes()
    display.close()
    DigitalOutputDevice(24, pin_factory=factory).close()  # the lines are free again


def test_spi_without_lines_is_refused() -> None:
    with pytest.raises(DeviceError) as info:
        open_luma(OledConfig(bus="spi"))
    assert info.value.config_key == "display.bus"
