"""Turn a parsed TOML table into frozen config dataclasses, with errors a person can act on.

The schema is the dataclasses themselves (schema.py): each field's type says what TOML
value it takes, its default applies when the key is absent, and `meta()` on the field adds a
value check, a per-element check, "secret" (never echoed) or "path" (relative to the config
file). Every error is a `ConfigError` naming the key path (`keypad.rows[2]`), the bad value and
what is allowed; unknown keys get a did-you-mean.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import difflib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pidphone.errors import ConfigError

Check = Callable[[Any], str | None]
"""A value check: returns what is wrong (naming the value and what is allowed), or None."""

T = TypeVar("T")


def meta(
    *,
    check: Check | None = None,
    each: Check | None = None,
    secret: bool = False,
    path: bool = False,
) -> dict[str, Any]:
    """Field metadata for the builder: `check` runs on the whole value, `each` on every element
    of an array or every value of a table; `secret` values are never shown; `path` strings are
    taken relative to the directory of the config file."""
    return {"check": check, "each": each, "secret": secret, "path": path}


def describe(value: object) -> str:
    """A TOML-ish rendering of a value with its kind, for error messages."""
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value} (a number)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    return kind_of(value)


def kind_of(value: object) -> str:
    """The kind of a TOML value without the value itself (for secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__


def quoted(values: typing.Iterable[object]) -> str:
    """`"a", "b", "c"` for messages listing what is allowed."""
    return ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """`; did you mean "x"?` when a close match exists, else the empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def build(cls: type[T], table: Mapping[str, Any], key: str = "", base_dir: Path | None = None) -> T:
    """Build dataclass `cls` from `table`, checking every key and value.

    `key` is the path of `table` in the file ("" for the top level); `base_dir` is where
    relative paths start.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    found = _FOUND.get()
    for name in table:
        if name not in fields:
            allowed = ", ".join(fields)
            hint = did_you_mean(name, fields) or f"; allowed keys here: {allowed}"
            error = ConfigError(_join(key, name), f"unknown key{hint}")
            if found is None:
                raise error
            found.append(error)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            continue
        path = _join(key, name)
        info = f.metadata or meta()
        try:
            value = convert(
                hints[name], table[name], path, secret=info["secret"], base_dir=base_dir
            )
            if info["path"] and isinstance(value, str) and value and base_dir is not None:
                value = str(base_dir / value)
            _run_checks(info, value, path)
        except ConfigError as error:
            if found is None:
                raise
            found.append(error)  # the default stands in, so the other keys are checked too
            continue
        values[name] = value
    return cls(**values)


_FOUND: contextvars.ContextVar[list[ConfigError] | None] = contextvars.ContextVar(
    "config_errors_found", default=None
)


@contextlib.contextmanager
def every_error() -> Iterator[list[ConfigError]]:
    """Within it, `build` goes on past a bad key and lists every problem it finds; the caller
    raises them together (`ManyConfigErrorsError`)."""
    found: list[ConfigError] = []
    token = _FOUND.set(found)
    try:
        yield found
    finally:
        _FOUND.reset(token)


def convert(
    hint: Any, value: object, key: str, *, secret: bool = False, base_dir: Path | None = None
) -> Any:
    """Check `value` against the type `hint` and convert it (lists to tuples, tables to
    read-only mappings or dataclasses)."""
    origin = typing.get_origin(hint)
    shown = kind_of(value) if secret else describe(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table ([{key}]), got {shown}")
        return build(typing.cast(type[Any], hint), value, key, base_dir)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed or type(value) is not type(allowed[0]):
            hint_text = did_you_mean(value, map(str, allowed)) if isinstance(value, str) else ""
            return _fail(key, f"{shown} is not allowed; choose one of {quoted(allowed)}{hint_text}")
        return value
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            return _fail(key, f"expected an array of {_expected(item)}, got {shown}")
        return tuple(
            convert(item, v, f"{key}[{i}]", secret=secret, base_dir=base_dir)
            for i, v in enumerate(value)
        )
    if origin in (Mapping, dict):
        item = typing.get_args(hint)[1]
        if not isinstance(value, dict):
            return _fail(key, f"expected a table of {_expected(item)}, got {shown}")
        return types.MappingProxyType(
            {
                name: convert(item, v, _join(key, name), secret=secret, base_dir=base_dir)
                for name, v in value.items()
            }
        )
    if hint is bool:
        if not isinstance(value, bool):
            return _fail(key, f"expected true or false, got {shown}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            return _fail(key, f"expected an integer, got {shown}")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return _fail(key, f"expected a number, got {shown}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            return _fail(key, f"expected a string, got {shown}")
        return value
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")


def _expected(hint: Any) -> str:
    if hint is int:
        return "integers"
    if hint is float:
        return "numbers"
    if hint is str or typing.get_origin(hint) is Literal:
        return "strings"
    return "values"


def _run_checks(info: Mapping[str, Any], value: Any, key: str) -> None:
    each: Check | None = info["each"]
    if each is not None:
        if isinstance(value, Mapping):
            for name, v in value.items():
                _apply(each, v, _join(key, name))
        else:
            for i, v in enumerate(value):
                _apply(each, v, f"{key}[{i}]")
    check: Check | None = info["check"]
    if check is not None:
        _apply(check, value, key)


def _apply(check: Check, value: Any, key: str) -> None:
    problem = check(value)
    if problem is not None:
        raise ConfigError(key, problem)


def _fail(key: str, problem: str) -> typing.NoReturn:
    raise ConfigError(key, problem)


def _join(key: str, name: str) -> str:
    if not key:
        return name
    bare = name and all(c.isalnum() or c in "_-" for c in name)
    return f"{key}.{name}" if bare else f'{key}."{name}"'
