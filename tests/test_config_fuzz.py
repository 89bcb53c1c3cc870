"""Bad input never crashes the config loader, and every effective config loads back unchanged."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.config import AccountConfig, AudioConfig, Config, parse_config
from pidphone.config.build import build
from pidphone.config.dump import MASK, dump_config
from pidphone.errors import ConfigError

HERE = Path(tempfile.gettempdir()) / "pidphone-fuzz.toml"

SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name != "hardware"]
KEYS = sorted(
    {f.name for s in SECTIONS for f in dataclasses.fields(getattr(Config(), s))} | {"bogus"}
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
tables = st.dictionaries(
    st.sampled_from([*SECTIONS, "hardware", "nonsense"]),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6) | values,
    max_size=5,
)


@settings(max_examples=120, deadline=None)
@given(tables)
def test_random_tables_give_a_config_or_a_config_error(table: dict[str, Any]) -> None:
    try:
        build(Config, table)
    except ConfigError as exc:
        assert exc.key or exc.problem


free_text = st.text(
    st.characters(blacklist_categories=["Cs"]), max_size=30
)  # device names: anything TOML can hold


@settings(max_examples=200, deadline=None)
@given(free_text, free_text, free_text, free_text)
def test_dump_round_trips_any_strings(
    capture: str, playback: str, mixer: str, password: str
) -> None:
    config = dataclasses.replace(
        Config(),
        audio=AudioConfig(capture_device=capture, playback_device=playback, mixer_control=mixer),
        account=AccountConfig(password=password),
    )
    text = dump_config(config)
    again = parse_config(text.encode(), HERE, warn=lambda _: None)
    assert again.audio == config.audio
    assert again.account.password == (MASK if password else "")
