"""The hardware docs agree with the config: the wiring tables and the diagram show the default
GPIOs on the right physical pins, and hw/asound.conf is a config alsa-lib accepts."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from pidphone.config import Config
from tests.conftest import need_path

ROOT = Path(__file__).resolve().parent.parent
WIRING = ROOT / "hw" / "wiring.md"

# BCM GPIO -> physical pin on the 40-pin header (the same on every model with one).
PHYSICAL = {
    2: 3, 3: 5, 4: 7, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16, 10: 19, 9: 21,
    25: 22, 11: 23, 8: 24, 7: 26, 5: 29, 6: 31, 12: 32, 13: 33, 19: 35, 16: 36, 26: 37, 20: 38,
    21: 40, 24: 18,
}  # fmt: skip

ROW = re.compile(
    r"^\| `(?P<key>[a-z_.\[\]0-9]+)` \| [^|]+ \| GPIO (?P<gpio>\d+) \| (?P<pin>\d+) \|"
)


def default_of(key: str) -> int:
    value: object = Config()
    for part in re.findall(r"[a-z_]+|\[\d+\]", key):
        if part.startswith("["):
            assert isinstance(value, tuple)
            value = value[int(part[1:-1])]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            assert hasattr(value, "__getitem__")
            value = value[part]  # function_keys is a mapping
    assert isinstance(value, int)
    return value


def test_wiring_tables_match_the_default_config() -> None:
    rows = [m for line in WIRING.read_text().splitlines() if (m := ROW.match(line))]
    keys = {m["key"] for m in rows}
    assert {f"keypad.rows[{i}]" for i in range(4)} <= keys
    assert {f"keypad.cols[{i}]" for i in range(3)} <= keys
    assert {"keypad.hook_pin", "keypad.function_keys.sas_confirm"} <= keys
    for m in rows:
        gpio = int(m["gpio"])
        assert default_of(m["key"]) == gpio, m["key"]
        assert PHYSICAL[gpio] == int(m["pin"]), m["key"]


def test_every_gpio_named_in_the_docs_sits_on_its_pin() -> None:
    text = WIRING.read_text()
    for gpio, pin in re.findall(r"\| GPIO (\d+) \| (\d+) \|", text):
        assert PHYSICAL[int(gpio)] == int(pin), gpio
    for gpio, pin in re.findall(r"GPIO (\d+) is pin (\d+)", text):
        assert PHYSICAL[int(gpio)] == int(pin), gpio


def test_diagram_labels_match_the_pins() -> None:
    spec = importlib.util.spec_from_file_location("draw_wiring", ROOT / "hw" / "draw_wiring.py")
    assert spec is not None and spec.loader is not None
    draw_wiring = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw_wiring)
    for pin, (label, _) in draw_wiring.USED.items():
        found = re.match(r"GPIO(\d+)", label)
        assert found is not None
        gpio = int(found.group(1))
        assert PHYSICAL[gpio] == pin, label
    config = Config()
    for i, gpio in enumerate(config.keypad.rows):
        assert draw_wiring.USED[PHYSICAL[gpio]][0].endswith(f"keypad row {i + 1}")
    for i, gpio in enumerate(config.keypad.cols):
        assert draw_wiring.USED[PHYSICAL[gpio]][0].endswith(f"keypad col {i + 1}")
    assert draw_wiring.USED[PHYSICAL[config.keypad.hook_pin]][0].endswith("hook switch")


def test_asound_conf_defines_the_handset(tmp_path: Path) -> None:
    alsa_conf = need_path("/usr/share/alsa/alsa.conf", "libasound2")
    # In a subprocess: alsa-lib reads its config once per process.
    result = subprocess.run(
        [sys.executable, "-c", "import alsaaudio; print(' '.join(alsaaudio.pcms()))"],
        env={**os.environ, "ALSA_CONFIG_PATH": f"{alsa_conf}:{ROOT / 'hw' / 'asound.conf'}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert {"handset", "handset_in", "handset_out"} <= set(result.stdout.split())
