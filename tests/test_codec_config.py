"""The codec preference in the config: the wideband codecs first by default, offered in the
configured order."""

from __future__ import annotations

from pathlib import Path

import pytest

from pidphone.config import load_config
from pidphone.errors import ConfigError
from pidphone.wiring import controller_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pidphone.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_default_order_is_opus_g722_pcmu_pcma(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.audio.codecs == ("opus", "G722", "PCMU", "PCMA")


def test_a_configured_order_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[audio]\ncodecs = ["G722", "PCMA", "opus"]\n'))
    assert config.audio.codecs == ("G722", "PCMA", "opus")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["OPUS"]', 'did you mean "opus"'),
        ('["G729"]', "is not a codec pidphone knows"),
        ('["G722", "G722"]', '"G722" is listed twice'),
        ("[]", "the list is empty"),
    ],
)
def test_bad_codec_lists_name_the_key_and_the_fix(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[audio]\ncodecs = {value}\n"))
    assert "audio.codecs" in str(info.value)
    assert message in str(info.value)


def test_controller_settings_offer_the_configured_codecs_in_order(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[audio]\ncodecs = ["PCMA", "G722", "PCMU"]\n'))
    assert controller_settings(config).calls.call.codecs == ("PCMA", "G722", "PCMU")
    default = load_config(write(tmp_path, ""))
    assert controller_settings(default).calls.call.codecs == ("opus", "G722", "PCMU", "PCMA")
