"""One composition root: pidphone.wiring alone reads `config.hardware` and builds the phone and
its devices; what it builds from a config is what the config says."""

from __future__ import annotations

import ast
import dataclasses
import queue
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from pidphone import wiring
from pidphone.audio.analysis import dominant_frequencies
from pidphone.config import (
    Config,
    DisplayConfig,
    KeypadConfig,
    PhoneConfig,
    SecurityConfig,
    SimConfig,
)
from pidphone.config.cross import complete
from pidphone.drivers.keypad import RetryingKeypad
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.sim_display import SimDisplay
from pidphone.drivers.sim_keypad import ScriptKeypad
from pidphone.ports import HookEvent, InputEvent, KeyEvent

PKG = Path(__file__).resolve().parent.parent / "pidphone"
ROOT = PKG / "wiring.py"
DRIVERS = PKG / "drivers"
VALUE_SUFFIXES = ("Config", "Settings", "Timing", "Error")
"""Driver classes that only carry settings or report a failure: anyone may build those."""


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def device_classes() -> set[str]:
    """The classes of pidphone/drivers that are devices, and the phone itself."""
    names = {"Controller"}
    for path in sorted(DRIVERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and not node.name.endswith(VALUE_SUFFIXES)
            ):
                names.add(node.name)
    return names


def built_devices(source: str, devices: set[str]) -> list[str]:
    """The devices `source` builds: calls of a device class it imports from the drivers (or
    of the Controller), directly or through a class method such as `from_config`."""
    tree = ast.parse(source)
    local = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith(("pidphone.drivers", "pidphone.app.controller"))
        for alias in node.names
        if alias.name in devices
    }
    built = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            func = func.value
        if isinstance(func, ast.Name) and func.id in local:
            built.append(f"{node.lineno} {local[func.id]}")
    return built


def test_only_the_root_reads_the_hardware_choice() -> None:
    readers = []
    for path in modules():
        if path == ROOT or path.parent.name == "config" or path.name.startswith("config"):
            continue  # the root, and the config that defines the key
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "hardware":
                readers.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert readers == []


def test_only_the_root_builds_devices_and_the_phone() -> None:
    devices = device_classes()
    assert {"SimAudioDevices", "AlsaAudio", "OledDisplay", "MatrixKeypad", "TlsTransport"} <= (
        devices
    )
    builders = [
        f"{path.relative_to(PKG)}:{where}"
        for path in modules()
        if path != ROOT and path.parent != DRIVERS
        for where in built_devices(path.read_text(), devices)
    ]
    assert builders == []


def test_the_rule_sees_a_device_built_elsewhere() -> None:
    source = (
        "from pidphone.drivers.oled import OledDisplay as Oled\n"
        "from pidphone.drivers.tls import TlsClientConfig, TlsTransport\n"
        "from pidphone.app.controller import Controller\n"
        "Oled.from_config(x)\nTlsTransport(TlsClientConfig(), None)\nController()\nService()\n"
    )
    devices = device_classes()
    assert built_devices(source, devices) == ["4 OledDisplay", "5 TlsTransport", "6 Controller"]
    assert "TlsClientConfig" not in devices


def load_checked(config: Config) -> Config:
    """`config` as loading completes it (the standard keymap of its layout)."""
    return complete(config)


def simulated(tmp_path: Path, **sim: str) -> Config:
    return Config(
        hardware="simulated",
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        sim=SimConfig(**sim),  # type: ignore[arg-type]
    )


def test_simulated_hardware_gives_the_simulated_twins(tmp_path: Path) -> None:
    script = tmp_path / "keys"
    script.write_text("0 5\n")
    config = simulated(tmp_path, keys_script=str(script), screens_dir=str(tmp_path / "png"))
    config = dataclasses.replace(config, sim=dataclasses.replace(config.sim, tone_frequency=700.0))
    audio = wiring.audio_devices(config)
    assert isinstance(audio, SimAudioDevices)
    capture = audio.open_capture()
    pcm = b"".join(capture.read_frame() for _ in range(10))
    capture.close()
    assert abs(dominant_frequencies(pcm, count=1)[0] - 700) < 10
    assert isinstance(wiring.display(config), SimDisplay)
    keypad = wiring.keypad(config)
    assert isinstance(keypad, ScriptKeypad)
    got: list[InputEvent] = []
    keypad.start(got.append)
    assert keypad.finished.wait(5)
    keypad.close()
    assert KeyEvent("5") in got
    no_display = Config(hardware="simulated", display=DisplayConfig(driver="none"))
    assert wiring.display(no_display) is None


def test_the_pi_gets_the_gpio_keypad_on_the_configured_pins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    config = Config(keypad=KeypadConfig(layout="4x4", cols=(16, 17, 22, 23), hook_pin=4))
    keypad = wiring.keypad(load_checked(config))
    assert isinstance(keypad, RetryingKeypad)
    got: queue.Queue[InputEvent] = queue.Queue()
    try:
        assert keypad.keypad is not None
        keypad.start(got.put)
        factory.pin(4).drive_low()  # the hook switch closes: the handset is lifted
        assert got.get(timeout=5) == HookEvent(off_hook=True)
        assert keypad.off_hook()
    finally:
        keypad.close()
    assert wiring.display(Config(display=DisplayConfig(driver="none"))) is None


def test_the_daemons_phone_has_the_ui_and_the_commands_phone_has_none(tmp_path: Path) -> None:
    config = simulated(tmp_path)
    full = wiring.build_controller(config, notice="boot.toml invalid")
    assert full.settings.phone is not None
    assert full.settings.phone.notice == "boot.toml invalid"
    headless = wiring.headless_controller(config, wiring.audio_devices(config))
    assert headless.settings.phone is None
    assert headless.settings.calls == full.settings.calls


@pytest.mark.parametrize(("dim", "expected"), [(0.0, float("inf")), (45.0, 45.0)])
def test_zero_means_never_for_dimming(dim: float, expected: float) -> None:
    config = Config(display=DisplayConfig(dim_after=dim, blank_after=0.0))
    settings = wiring.phone_settings(config)
    assert settings.dim_after == expected
    assert settings.blank_after == float("inf")


def test_the_recall_time_limit_reaches_the_phone() -> None:
    config = Config(phone=PhoneConfig(recall_after=90.0))
    assert wiring.phone_settings(config).recall_after == 90.0


def test_the_zrtp_mtu_reaches_the_session_and_bounds_every_datagram() -> None:
    from pidphone.config import Config, SecurityConfig
    from pidphone.zrtp import MemoryZidCache, ZrtpSession

    config = Config(security=SecurityConfig(zrtp_mtu=600))
    zrtp = wiring.zrtp_config(config)
    assert zrtp.mtu == 600 and zrtp.key_agreements[0] == "X3M3"
    a = ZrtpSession(cache=MemoryZidCache(), ssrc=1, config=zrtp)
    b = ZrtpSession(cache=MemoryZidCache(), ssrc=2, config=zrtp)
    a.start(0.0)
    b.start(0.0)
    sent: list[bytes] = []
    for _ in range(20):
        to_b, to_a = a.datagrams_to_send(), b.datagrams_to_send()
        sent += to_a + to_b
        for packet in to_b:
            b.receive_datagram(packet, 0.0)
        for packet in to_a:
            a.receive_datagram(packet, 0.0)
    assert a.state == b.state == "secure"
    assert max(len(packet) for packet in sent) <= 600
    assert sum(packet[0] == 0x11 for packet in sent) >= 6  # three fragments a message, twice


def test_a_corrupt_zid_cache_is_said_on_the_screen(tmp_path: Path) -> None:
    """The journal had it; the person at the phone, who must compare the SAS again with
    everyone, did not."""
    config = simulated(tmp_path)
    path = Path(config.security.zid_cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not json")
    phone = wiring.build_controller(config)
    assert phone.settings.phone is not None
    notice = phone.settings.phone.notice
    assert notice.startswith("ZID cache was corrupt: kept as ")
    assert notice.endswith("; compare the SAS again")
    again = wiring.build_controller(config)  # the new file is fine: nothing to say
    assert again.settings.phone is not None and again.settings.phone.notice == ""
