"""A configuration the daemon cannot run with reaches the display before it exits 78 (issue 7:
"the error goes to the journal and to the OLED"), opened with whatever display settings the
broken files still allow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pidphone.app.phone_events import PhoneSettings, Tick
from pidphone.app.phone_state import initial_state
from pidphone.app.screen import config_error_pages, config_error_screen, render
from pidphone.app.state import reduce
from pidphone.config import load_config
from pidphone.drivers.draw import draw_screen
from pidphone.errors import ConfigError
from pidphone.provisioning import provision
from pidphone.wiring import show_config_error


@pytest.fixture
def boot_file(tmp_path: Path) -> Path:
    (tmp_path / "boot").mkdir()
    return tmp_path / "boot" / "pidphone.toml"


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
    assert screen.alert and screen.status == "Config error"
    assert screen.lines[0].startswith("keypad.rows[0]")
    assert 2 <= len(screen.lines) <= 4


def test_a_refused_boot_file_shows_the_key_and_the_problem_page_by_page(
    tmp_path: Path, boot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The boot file's key, the problem and the file, in full, on the OLED: never only the
    path and "not installed:" (what three lines of a path-first message left)."""
    screens = tmp_path / "screens"
    installed = tmp_path / "pidphone.toml"
    installed.write_text(f'hardware = "simulated"\n[sim]\nscreens_dir = "{screens}"\n[x]\n')
    boot_file.write_text('[account]\naor = "alice@example.org"\npassword = "pw"\n')
    result = provision(boot_file, installed)
    assert result.summary.startswith('account.aor: "alice@example.org" is not a SIP address')
    assert result.summary.endswith("(pidphone.toml not installed)")
    show_config_error(result.summary, [installed], page_seconds=0)
    pages = config_error_pages(result.summary)
    assert len(pages) > 1
    shown = capsys.readouterr().out
    drawn = [png.read_bytes() for png in sorted(screens.glob("*.png"))]
    assert len(drawn) == len(pages) + 1 and drawn[-1] == drawn[0]  # the key's page stays
    text = " ".join(line for page in pages for line in page.lines)
    assert text.replace(" ", "") == result.summary.replace(" ", "")  # nothing lost
    for n, page in enumerate(pages, 1):
        assert page.status == f"Config error {n}/{len(pages)}" and page.alert
        assert all(line in shown for line in page.lines)
        image = draw_screen(page)
        inked = [x for y in range(13, 64) for x in range(128) if not image.getpixel((x, y))]
        assert max(inked) < 127  # on the inverse screen, no line runs off the edge
    assert "pw" not in text


def test_a_long_boot_file_notice_pages_on_the_idle_screen() -> None:
    notice = 'account.aor: "alice@example.org" is not a SIP address (pidphone.toml not installed)'
    state = initial_state(PhoneSettings(account="Desk", notice=notice), now=0.0)
    seen = [render(state, 0.0)]
    for t in range(1, 30):
        state, _ = reduce(state, Tick(float(t)))
        seen.append(render(state, float(t)))
    text = " ".join(line for screen in seen for line in screen.lines)
    for word in notice.split():
        assert word in text


def test_without_any_usable_file_the_defaults_are_tried(tmp_path: Path) -> None:
    """No file at all: the default (real) display is opened best-effort; with no I2C bus here
    that fails quietly instead of hiding the configuration error."""
    show_config_error("account.aor: missing", [tmp_path / "none.toml"])
