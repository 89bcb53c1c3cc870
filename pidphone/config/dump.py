"""Print a config back as TOML, secrets masked: what `pidphone check-config` shows.

The output is the effective config — every key with the value the phone will use, defaults and
derived values included — and it loads back to the same config (except the masked secrets).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

MASK = "********"
"""Shown instead of a secret that is set."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dump_config(config: object) -> str:
    """TOML text of a config dataclass: top-level values first, then one table per section."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("dump_config needs a config dataclass instance")
    top: list[str] = []
    sections: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            sections.append(f"\n[{f.name}]")
            for sub in dataclasses.fields(value):
                shown = _masked(getattr(value, sub.name), sub)
                sections.append(f"{_key(sub.name)} = {_value(shown)}")
        else:
            top.append(f"{_key(f.name)} = {_value(_masked(value, f))}")
    return "\n".join(top + sections) + "\n"


def _masked(value: Any, f: dataclasses.Field[Any]) -> Any:
    if f.metadata.get("secret") and value:
        return MASK
    return value


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _string(name)


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters (U+0000-U+001F and
    U+007F, which TOML forbids raw) escaped."""
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
