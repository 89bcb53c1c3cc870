"""The config loader: defaults, derived values, and errors that name key, value and fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pidphone.config import Config, KeypadConfig, load_config, parse_config
from pidphone.config.dump import MASK, dump_config
from pidphone.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pidphone.toml"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "pidphone.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.hardware == "pi"
    assert config.security.zrtp_policy == "require"
    assert config.security.zid_cache == "/var/lib/pidphone/zid-cache.json"
    assert config.keypad.keymap == ("123", "456", "789", "*0#")
    assert config.account.aor == ""
    assert config.server.registrar == ""
    assert config.server.registrar_address is None


def test_account_fills_registrar_dial_domain_and_auth_user(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[account]\naor = "sip:alice@example.org"\n'))
    assert config.server.registrar == "example.org"
    assert config.server.registrar_address == ("example.org", 5061)
    assert config.server.outbound_address == ("example.org", 5061)
    assert config.phone.dial_domain == "example.org"
    assert config.account.auth_user == "alice"


def test_explicit_server_addresses(tmp_path: Path) -> None:
    text = """
[account]
aor = "sips:alice@example.org"
auth_user = "a1"
[server]
registrar = "[2001:db8::1]:5071"
outbound_proxy = "proxy.example.org"
listen = "0.0.0.0:5061"
listen_ca_file = "callers.pem"
client_cert = "phone.pem"
client_key = "phone.key"
stun_server = "stun.example.org"
pinned_fingerprint = "{}"
""".format(":".join(["ab"] * 32))
    (tmp_path / "phone.pem").write_text("certificate")
    (tmp_path / "phone.key").write_text("key")
    (tmp_path / "callers.pem").write_text("certificates")
    server = load_config(write(tmp_path, text)).server
    assert server.registrar_address == ("2001:db8::1", 5071)
    assert server.outbound_address == ("proxy.example.org", 5061)
    assert server.listen_address == ("0.0.0.0", 5061)
    assert server.stun_address == ("stun.example.org", 3478)
    assert server.pinned_sha256 == bytes([0xAB] * 32)


def test_4x4_layout_gets_its_keymap(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[keypad]\nlayout = "4x4"\ncols = [16, 17, 22, 23]\n'))
    assert config.keypad.keymap == ("123A", "456B", "789C", "*0#D")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[keypad]\nrows = [5, 6, 40, 13]\n",
            "keypad.rows[2]: GPIO 40 does not exist on a Raspberry Pi (0–27)",  # noqa: RUF001
        ),
        ("[keypad]\ncolz = [1, 2, 3]\n", 'keypad.colz: unknown key; did you mean "cols"?'),
        ("[keypd]\n", 'keypd: unknown key; did you mean "keypad"?'),
        (
            '[audio]\nrate = "8000"\n',
            'audio.rate: expected an integer, got "8000" (a string)',
        ),
        (
            "[audio]\nrate = 22050\n",
            "audio.rate: 22050 is not allowed; choose one of 0, 8000, 16000, 32000, 44100, 48000",
        ),
        (
            '[display]\ndriver = "ssd1305"\n',
            'display.driver: "ssd1305" (a string) is not allowed; choose one of "ssd1306", '
            '"sh1106", "none"; did you mean "ssd1306"?',
        ),
        (
            "[display]\nrotation = 4\n",
            "display.rotation: 4 is out of range; allowed: 0 to 3",
        ),
        (
            "[security]\nzrtp_mtu = 1500\n",
            "security.zrtp_mtu: 1500 bytes is out of range; allowed: 256 to 1452 bytes",
        ),
        (
            "[keypad]\nhook_pin = 6\n",
            "keypad.hook_pin: GPIO 6 is already used by keypad.rows[1]",
        ),
        (
            "[keypad]\nrows = [2, 6, 12, 13]\n",
            "keypad.rows[0]: GPIO 2 is already used by display.bus (the I2C SDA line)",
        ),
        (
            '[display]\nbus = "spi"\n[keypad.function_keys]\nsas_confirm = 24\n',
            "keypad.function_keys.sas_confirm: GPIO 24 is already used by display.spi_dc_pin",
        ),
        (
            "[keypad.function_keys]\nsas_confrim = 23\n",
            'keypad.function_keys.sas_confrim: "sas_confrim" is not a function key',
        ),
        (
            '[security]\ncipher = ["AES1", "AES2"]\n',
            'security.cipher: "AES2" is not a ZRTP cipher pidphone knows; choose from "AES1", '
            '"AES3"',
        ),
        ("[security]\nsas = []\n", "security.sas: the list is empty"),
        ('[security]\nhash = ["S256", "S256"]\n', 'security.hash: "S256" is listed twice'),
        (
            '[security]\nkey_agreement = ["EC38"]\nhash = ["S256"]\n',
            'security.hash: EC38 in security.key_agreement needs "S384" here',
        ),
        (
            '[security]\nzrtp_policy = "maybe"\n',
            'security.zrtp_policy: "maybe" (a string) is not allowed',
        ),
        (
            '[account]\naor = "alice@example.org"\n',
            'account.aor: "alice@example.org" is not a SIP address',
        ),
        (
            '[server]\nregistrar = "sip.example.org:99999"\n',
            'server.registrar: "sip.example.org:99999" is not host[:port]',
        ),
        (
            '[server]\nregistrar = "sip.example.org:0099999"\n',
            'server.registrar: "sip.example.org:0099999" is not host[:port]',
        ),
        (
            '[server]\nlisten = "example.org:5061"\n',
            'server.listen: "example.org:5061" is not address:port',
        ),
        (
            '[server]\npinned_fingerprint = "abcd"\n',
            'server.pinned_fingerprint: "abcd" is not a SHA-256 fingerprint',
        ),
        (
            '[server]\nclient_cert = "/etc/hostname"\n',
            "server.client_key: server.client_cert is set, so its key is needed",
        ),
        (
            '[server]\nlisten = "0.0.0.0:5061"\n',
            "server.listen: a TLS listener presents server.client_cert and server.client_key",
        ),
        (
            '[server]\nca_file = "/nonexistent/ca.pem"\n',
            'server.ca_file: "/nonexistent/ca.pem" does not exist',
        ),
        (
            "[keypad]\ncols = [16, 17, 22, 23]\n",
            'keypad.cols: layout "4x3" needs 3 column GPIOs, got 4',
        ),
        ('[keypad]\nkeymap = ["123", "456", "789", "*0"]\n', 'keypad.keymap[3]: "*0" has 2 keys'),
        (
            '[keypad]\nkeymap = ["123", "456", "789", "*1#"]\n',
            'keypad.keymap[3]: key "1" appears twice',
        ),
        ('[keypad]\nkeymap = ["123", "456", "789", "*0x"]\n', 'keypad.keymap[3]: "*0x" holds "x"'),
        (
            "[display]\ndim_after = 60.0\nblank_after = 30.0\n",
            "display.blank_after: 30 s is before display.dim_after (60 s)",
        ),
        (
            '[phone.speed_dials]\n0 = "sip:bob@example.org"\n',
            'phone.speed_dials."0": speed dials are the digits "1" to "9"',
        ),
        (
            "[phone]\nrecall_after = 5\n",
            "phone.recall_after: 5.0 s is out of range; allowed: 10 to 3600 s",
        ),
        ('[phone.speed_dials]\n1 = "bob"\n', 'phone.speed_dials.1: "bob" is neither a SIP address'),
        (
            'hardware = "pc"\n',
            'hardware: "pc" (a string) is not allowed; choose one of "pi", "simulated"',
        ),
        ("account = 3\n", "account: expected a table ([account]), got 3 (an integer)"),
        ("[keypad]\nrows = 5\n", "keypad.rows: expected an array of integers, got 5 (an integer)"),
        (
            "[keypad]\nrows = [5, true, 12, 13]\n",
            "keypad.rows[1]: expected an integer, got true (a boolean)",
        ),
        (
            '[display]\ndim_after = "soon"\n',
            'display.dim_after: expected a number, got "soon" (a string)',
        ),
        ("[keypad]\nrows = [5, 6\n", "not valid TOML"),
    ],
)
def test_errors_name_key_value_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(tmp_path, text)


def test_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[logging]\nverbosity = 3\n")
    assert message == "logging.verbosity: unknown key; allowed keys here: level"


def test_error_carries_key_and_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[display]\ncontrast = 300\n"))
    assert info.value.key == "display.contrast"
    assert info.value.problem == "300 is out of range; allowed: 0 to 255"
    assert info.value.exit_status == 78


def test_password_is_never_echoed(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[account]\npassword = 123456789\n")
    assert message == "account.password: expected a string, got an integer"
    assert "123456789" not in message
    config = load_config(write(tmp_path, '[account]\npassword = "hunter2-secret"\n'))
    assert config.account.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in dump_config(config)
    assert f'password = "{MASK}"' in dump_config(config)


def test_password_file_is_read_and_exclusive(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-line\nignored\n")
    secret.chmod(0o600)
    warnings: list[str] = []
    path = write(tmp_path, '[account]\npassword_file = "password"\n')
    config = load_config(path, warn=warnings.append)
    assert config.account.password == "s3cret-line"
    assert config.account.password_file == str(secret)
    assert warnings == []
    both = write(tmp_path, '[account]\npassword = "x"\npassword_file = "password"\n')
    with pytest.raises(ConfigError, match=r"either account\.password or account\.password_file"):
        load_config(both)
    missing = write(tmp_path, '[account]\npassword_file = "nope"\n')
    with pytest.raises(ConfigError, match=r"account\.password_file: cannot read"):
        load_config(missing)


def test_readable_password_draws_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    path = write(tmp_path, '[account]\npassword = "x"\n', mode=0o644)
    load_config(path, warn=warnings.append)
    assert len(warnings) == 1
    assert (
        "holds the account's password (account.password), and other users can read it"
        in (warnings[0])
    )
    assert "(mode 0644); make it the phone's alone: sudo chown " in warnings[0]
    assert f"&& sudo chmod 600 {path}" in warnings[0]
    assert "x" not in warnings[0].split(":", 1)[0]
    warnings.clear()
    path.chmod(0o600)
    load_config(path, warn=warnings.append)
    assert warnings == []
    # No password: nothing to protect, no warning.
    load_config(write(tmp_path, "", mode=0o644), warn=warnings.append)
    assert warnings == []


def test_readable_password_file_draws_a_warning(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o640)
    warnings: list[str] = []
    load_config(write(tmp_path, '[account]\npassword_file = "password"\n'), warn=warnings.append)
    assert len(warnings) == 1
    assert "(account.password_file)" in warnings[0]
    assert "s3cret" not in warnings[0]


def test_relative_paths_start_at_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = load_config(
        write(tmp_path, '[server]\nca_file = "ca.pem"\n[sim]\nscreens_dir = "shots"\n')
    )
    assert config.server.ca_file == str(tmp_path / "ca.pem")
    assert config.sim.screens_dir == str(tmp_path / "shots")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.key == str(tmp_path / "nope.toml")
    assert "cannot read the config file" in info.value.problem


def test_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_config(b'hardware = "\xff"', tmp_path / "x.toml")


def test_display_none_frees_the_bus_pins(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[display]\ndriver = "none"\n[keypad]\nrows = [2, 3, 12, 13]\n')
    )
    assert config.keypad.rows == (2, 3, 12, 13)


def test_spi_on_port_1_reserves_its_pins(tmp_path: Path) -> None:
    text = '[display]\nbus = "spi"\nspi_port = 1\n[keypad]\ncols = [16, 17, 20]\n'
    assert "keypad.cols[0]: GPIO 16 is already used by display.spi_device (SPI1 CE2)" in error_of(
        tmp_path, text.replace("spi_port = 1", "spi_port = 1\nspi_device = 2")
    )
    assert "keypad.cols[2]: GPIO 20 is already used by display.spi_port (the SPI1 MOSI line)" in (
        error_of(tmp_path, text)
    )


def test_example_config_is_valid_and_complete() -> None:
    config = load_config(EXAMPLE, warn=lambda _: None)
    assert config.account.aor == "sip:alice@example.org"
    assert config.phone.speed_dials == {"1": "sip:bob@example.org", "2": "1234"}
    assert config.keypad.function_keys == {"sas_confirm": 26, "sas_reject": 27}
    assert config.display.i2c_address == 0x3C
    # Every key of the schema appears in the example, so it documents all of them.
    table = tomllib.loads(EXAMPLE.read_text())
    defaults = Config()
    for section in (
        "account",
        "server",
        "security",
        "audio",
        "keypad",
        "display",
        "phone",
        "logging",
        "sim",
    ):
        written = set(table[section])
        if section == "account":
            written.add("password")  # shown commented out: it belongs in password_file
        assert written == set(vars(getattr(defaults, section))), section


def test_dump_loads_back_to_the_same_config(tmp_path: Path) -> None:
    original = load_config(EXAMPLE, warn=lambda _: None)
    text = dump_config(original)
    again = load_config(write(tmp_path, text))
    assert again == original
    # Defaults untouched keep default values.
    assert again.keypad == KeypadConfig(
        keymap=("123", "456", "789", "*0#"), function_keys=original.keypad.function_keys
    )


def test_dump_masks_but_keeps_secret_presence(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[account]\npassword = "pw"\n'))
    dumped = tomllib.loads(dump_config(config))
    assert dumped["account"]["password"] == MASK
    empty = tomllib.loads(dump_config(load_config(write(tmp_path, ""))))
    assert empty["account"]["password"] == ""


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    with pytest.raises(AttributeError):
        config.hardware = "simulated"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.keypad.function_keys["x"] = 1  # type: ignore[index]


def test_every_zrtp_name_the_config_allows_is_one_the_engine_offers() -> None:
    from pidphone.config.checks import (
        ZRTP_AUTH_TAGS,
        ZRTP_CIPHERS,
        ZRTP_HASHES,
        ZRTP_KEY_AGREEMENTS,
        ZRTP_SAS_TYPES,
    )
    from pidphone.zrtp.config import ZrtpConfig

    ZrtpConfig()  # the engine's own defaults
    for start in range(0, len(ZRTP_KEY_AGREEMENTS), 7):  # a Hello lists at most 7 of a kind
        ZrtpConfig(
            hashes=ZRTP_HASHES,
            ciphers=ZRTP_CIPHERS,
            auth_tags=ZRTP_AUTH_TAGS,
            key_agreements=ZRTP_KEY_AGREEMENTS[start : start + 7],
            sas_types=ZRTP_SAS_TYPES,
        )
    security = Config().security
    ZrtpConfig(
        hashes=security.hash,
        ciphers=security.cipher,
        auth_tags=security.auth_tag,
        key_agreements=security.key_agreement,
        sas_types=security.sas,
    )


def test_the_config_takes_every_algorithm_the_engine_has(tmp_path: Path) -> None:
    # one list per kind, in pidphone.zrtp.algorithms: S512 (bzrtp 5.5's) is configurable
    from pidphone.config import checks as config_checks
    from pidphone.zrtp import algorithms

    assert config_checks.ZRTP_HASHES is algorithms.HASHES
    assert config_checks.ZRTP_KEY_AGREEMENTS is algorithms.KEY_AGREEMENTS
    config = load_config(write(tmp_path, '[security]\nhash = ["S512", "S256"]\n'))
    assert config.security.hash == ("S512", "S256")


def test_keys_and_codecs_are_the_phones_own_lists(tmp_path: Path) -> None:
    """One list of each: the keys in pidphone.ports (the keypad driver and the reducer use
    them too), the codecs in pidphone.sdp; the config takes exactly those."""
    from pidphone.ports import FUNCTION_KEYS, STANDARD_KEYMAPS
    from pidphone.sdp.offer_answer import CODECS, DEFAULT_CODECS

    config = load_config(write(tmp_path, '[keypad]\nlayout = "4x4"\ncols = [16, 17, 22, 23]\n'))
    assert config.keypad.keymap is STANDARD_KEYMAPS[4]
    assert Config().audio.codecs is DEFAULT_CODECS
    for name in FUNCTION_KEYS:
        keys = load_config(write(tmp_path, f"[keypad.function_keys]\n{name} = 26\n")).keypad
        assert dict(keys.function_keys) == {name: 26}
    for codec in CODECS:
        audio = load_config(write(tmp_path, f'[audio]\ncodecs = ["{codec}"]\n')).audio
        assert audio.codecs == (codec,)
    assert "keys are the characters 0123456789*#ABCD" in error_of(
        tmp_path, '[keypad]\nkeymap = ["12E", "456", "789", "*0#"]\n'
    )


def test_a_utf8_bom_from_a_windows_editor_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Notepad saves UTF-8 with a byte order mark: it used to be "Invalid statement (at line
    1, column 1)" on the file most likely to come from Windows, the provisioning file."""
    path = tmp_path / "pidphone.toml"
    path.write_bytes(b'\xef\xbb\xbf[account]\naor = "sips:alice@example.org"\n')
    assert load_config(path).account.aor == "sips:alice@example.org"
    from pidphone import cli

    assert cli.main(["check-config", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_curly_quotes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "pidphone.toml"
    path.write_text("[account]\naor = \u201csips:alice@example.org\u201d\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "not valid TOML" in str(caught.value)
    assert "curly quotes (\u201c \u201d): TOML needs straight ones" in str(caught.value)


def test_every_error_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "pidphone.toml"
    path.write_text('[account]\naor = "alice"\n[audio]\nvolume = 150\nfoo = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = getattr(caught.value, "errors", [])
    assert [e.key for e in errors] == ["account.aor", "audio.foo", "audio.volume"]
    assert caught.value.key == "account.aor"  # the first still comes first (the screen)
