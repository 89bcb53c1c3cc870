"""A configuration the daemon cannot run with reaches the display before it exits 78 (issue 7:
"the error goes to the journal and to the OLED"), opened with whatever display settings the
broken files still allow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pidphone.app.screen import config_error_screen
from pidphone.config import load_config
from pidphone.drivers.draw import draw_screen
from pidphone.errors import ConfigError
from pidphone.wiring import show_config_error

BAD = """
hardware = "simulated"
[display]
driver = "ssd1306"
[sim]
screens_dir = "{screens}"
[keypad]
rows = [40, 5, 6, 13]
"""


def test_an_invalid_config_is_shown_on_the_simulated_display(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = tmp_path / "pidphone.toml"
    screens = tmp_path / "screens"
    boot.write_text(BAD.format(screens=screens))
    with pytest.raises(ConfigError) as caught:
        load_config(boot)
    show_config_error(str(caught.value), [tmp_path / "missing.toml", boot])
    shown = capsys.readouterr().out
    assert "Config error" in shown and "keypad.rows" in shown
    (png,) = screens.glob("*.png")
    expected = draw_screen(config_error_screen(str(caught.value)))
    with Image.open(png) as image:
        small = image.convert("1").resize(expected.size, Image.Resampling.NEAREST)
        assert small.tobytes() == expected.tobytes()


def test_the_error_screen_names_the_key_first() -> None:
    screen = config_error_screen("keypad.rows[0]: GPIO 40 does not exist on a Raspberry Pi (0-27)")
    assert screen.alert and screen.title == "Config error"
    assert screen.lines[0].startswith("keypad.rows[0]")
    assert 2 <= len(screen.lines) <= 3


def test_without_any_usable_file_the_defaults_are_tried(tmp_path: Path) -> None:
    """No file at all: the default (real) display is opened best-effort; with no I2C bus here
    that fails quietly instead of hiding the configuration error."""
    show_config_error("account.aor: missing", [tmp_path / "none.toml"])
