"""Checks that involve several config keys, and the defaults derived from other keys.

A GPIO used twice (the keypad, the hook, the function keys and the display bus share one
header), a keymap that does not match the wiring, a certificate without its key, files that do
not exist; then the registrar, the dial domain and the auth user default from account.aor.
"""

from __future__ import annotations

import dataclasses
import os

from pidphone.errors import ConfigError
from pidphone.ports import STANDARD_KEYMAPS

from . import checks
from .schema import Config, DisplayConfig

I2C1_PINS = {2: "I2C SDA", 3: "I2C SCL"}
SPI_PINS = {
    0: {9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK"},
    1: {19: "SPI1 MISO", 20: "SPI1 MOSI", 21: "SPI1 SCLK"},
}
SPI_CHIP_SELECTS = {0: (8, 7), 1: (18, 17, 16)}


def complete(config: Config) -> Config:
    """Check `config` as a whole and fill in the defaults that depend on other keys."""
    _check_files(config)
    _check_tls(config)
    _check_security(config)
    config = _complete_keypad(config)
    _check_gpio_conflicts(config)
    _check_display(config)
    _check_speed_dials(config)
    return _complete_account(config)


def _check_files(config: Config) -> None:
    files = {
        "server.ca_file": config.server.ca_file,
        "server.client_cert": config.server.client_cert,
        "server.client_key": config.server.client_key,
        "server.listen_ca_file": config.server.listen_ca_file,
        "sim.keys_script": config.sim.keys_script,
        "sim.audio_in_file": config.sim.audio_in_file,
    }
    for key, path in files.items():
        if path and not os.path.isfile(path):
            raise ConfigError(key, f'"{path}" does not exist or is not a file')


def _check_tls(config: Config) -> None:
    server = config.server
    if server.client_cert and not server.client_key:
        raise ConfigError("server.client_key", "server.client_cert is set, so its key is needed")
    if server.client_key and not server.client_cert:
        raise ConfigError(
            "server.client_cert", "server.client_key is set, so its certificate is needed"
        )
    if server.listen and not server.client_cert:
        raise ConfigError(
            "server.listen",
            "a TLS listener presents server.client_cert and server.client_key; set both",
        )
    if server.listen_allow and not server.listen_ca_file:
        raise ConfigError(
            "server.listen_allow",
            "needs server.listen_ca_file, which verifies the callers' certificates first",
        )
    if server.listen and not (server.listen_ca_file or server.listen_anyone):
        raise ConfigError(
            "server.listen_ca_file",
            "say who may call server.listen directly: the CA (or the certificates) of your "
            "callers here, or server.listen_anyone = true to let any TLS client ring",
        )
    if server.listen_allow and server.listen_anyone:
        raise ConfigError(
            "server.listen_allow", "has no effect with server.listen_anyone = true; drop one"
        )


def _check_security(config: Config) -> None:
    security = config.security
    if "EC38" in security.key_agreement and "S384" not in security.hash:
        raise ConfigError(
            "security.hash",
            'EC38 in security.key_agreement needs "S384" here (RFC 6189 §5.1.5)',
        )


def _complete_keypad(config: Config) -> Config:
    keypad = config.keypad
    want_cols = 4 if keypad.layout == "4x4" else 3
    if len(keypad.rows) != 4:
        raise ConfigError(
            "keypad.rows", f'layout "{keypad.layout}" needs 4 row GPIOs, got {len(keypad.rows)}'
        )
    if len(keypad.cols) != want_cols:
        raise ConfigError(
            "keypad.cols",
            f'layout "{keypad.layout}" needs {want_cols} column GPIOs, got {len(keypad.cols)}',
        )
    keymap = keypad.keymap or STANDARD_KEYMAPS[want_cols]
    if len(keymap) != 4:
        raise ConfigError("keypad.keymap", f"needs 4 rows (one per row GPIO), got {len(keymap)}")
    seen: set[str] = set()
    for i, row in enumerate(keymap):
        if len(row) != want_cols:
            raise ConfigError(
                f"keypad.keymap[{i}]",
                f'"{row}" has {len(row)} keys; layout "{keypad.layout}" has {want_cols} per row',
            )
        for key in row:
            if key in seen:
                raise ConfigError(f"keypad.keymap[{i}]", f'key "{key}" appears twice in the map')
            seen.add(key)
    return dataclasses.replace(config, keypad=dataclasses.replace(keypad, keymap=keymap))


def display_pins(display: DisplayConfig) -> list[tuple[str, int]]:
    """The GPIOs the display takes, each with the config key and line that takes it."""
    if display.driver == "none":
        return []
    if display.bus == "i2c":
        if display.i2c_port != 1:
            return []
        return [(f"display.bus (the {name} line)", pin) for pin, name in I2C1_PINS.items()]
    pins = [
        (f"display.spi_port (the {name} line)", pin)
        for pin, name in SPI_PINS[display.spi_port].items()
    ]
    selects = SPI_CHIP_SELECTS[display.spi_port]
    if display.spi_device < len(selects):
        pins.append(
            (
                f"display.spi_device (SPI{display.spi_port} CE{display.spi_device})",
                selects[display.spi_device],
            )
        )
    pins.append(("display.spi_dc_pin", display.spi_dc_pin))
    pins.append(("display.spi_reset_pin", display.spi_reset_pin))
    return pins


def _check_gpio_conflicts(config: Config) -> None:
    keypad = config.keypad
    for name in keypad.function_keys:
        problem = checks.function_key_name(name)
        if problem is not None:
            raise ConfigError(f"keypad.function_keys.{name}", problem)
    uses = display_pins(config.display)
    uses += [(f"keypad.rows[{i}]", pin) for i, pin in enumerate(keypad.rows)]
    uses += [(f"keypad.cols[{i}]", pin) for i, pin in enumerate(keypad.cols)]
    uses.append(("keypad.hook_pin", keypad.hook_pin))
    uses += [(f"keypad.function_keys.{name}", pin) for name, pin in keypad.function_keys.items()]
    owner: dict[int, str] = {}
    for key, pin in uses:
        if pin in owner:
            raise ConfigError(key, f"GPIO {pin} is already used by {owner[pin]}")
        owner[pin] = key


def _check_display(config: Config) -> None:
    display = config.display
    if display.bus == "spi" and display.spi_device >= len(SPI_CHIP_SELECTS[display.spi_port]):
        raise ConfigError(
            "display.spi_device",
            f"SPI{display.spi_port} has no chip select {display.spi_device}; "
            f"allowed: 0 to {len(SPI_CHIP_SELECTS[display.spi_port]) - 1}",
        )
    if display.dim_after and display.blank_after and display.blank_after < display.dim_after:
        raise ConfigError(
            "display.blank_after",
            f"{display.blank_after:g} s is before display.dim_after ({display.dim_after:g} s); "
            "blank later than dimming, or set one to 0",
        )


def _check_speed_dials(config: Config) -> None:
    for digit in config.phone.speed_dials:
        if digit not in "123456789" or len(digit) != 1:
            raise ConfigError(
                f'phone.speed_dials."{digit}"', 'speed dials are the digits "1" to "9"'
            )


def _complete_account(config: Config) -> Config:
    account = config.account
    if not account.aor:
        return config
    user, _, host = account.aor.split(":", 1)[1].partition("@")
    domain = host.split(";", 1)[0]
    server = config.server
    if not server.registrar:
        try:
            checks.parse_host_port(domain, 5061)
        except ValueError as exc:
            raise ConfigError(
                "account.aor", f'the domain "{domain}" is not a host: {exc}'
            ) from None
        server = dataclasses.replace(server, registrar=domain)
    phone = config.phone
    if not phone.dial_domain:
        phone = dataclasses.replace(phone, dial_domain=domain)
    if not account.auth_user:
        account = dataclasses.replace(account, auth_user=user)
    return dataclasses.replace(config, account=account, server=server, phone=phone)
