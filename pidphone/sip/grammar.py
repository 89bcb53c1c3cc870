"""Small lexical helpers of the RFC 3261 §25 grammar shared by the URI and header parsers.

Splitting on separators must skip quoted strings (with backslash escapes) and `<...>` URIs;
every parser here relies on `split_outside` for that.

Everything here, like every parser of the SIP and SDP cores, works in time linear in its input
by construction: no regular expressions, only `str` methods that scan once (`find`, `strip`,
`split`) and loops that never go back. A peer controls up to 64 KiB of each message, so one
quadratic step is enough to block the phone for seconds.
"""

from __future__ import annotations

import string

from pidphone.sip.errors import SipParseError

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
"""The characters of an RFC 3261 token (§25.1)."""


def is_token(text: str) -> bool:
    """True if `text` is a non-empty RFC 3261 token."""
    return bool(text) and not text.strip(TOKEN_CHARS)


def only(text: str, allowed: str) -> bool:
    """True if every character of `text` is in `allowed` (and `text` is not empty)."""
    return bool(text) and not text.strip(allowed)


def parse_number(text: str, what: str, max_digits: int = 10) -> int:
    """The value of `text` when it is 1 to `max_digits` ASCII digits; SipParseError otherwise.

    Every number in a SIP message is read here. `str.isdigit` alone would let "²" through, on
    which `int()` raises ValueError, and other Unicode digits that `int()` reads as numbers;
    the length bound keeps `int()` cheap."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        raise SipParseError(f"{what} is not a number: {text[:20]!r}")
    return int(text)


def split_outside(text: str, sep: str) -> list[str]:
    """Split `text` on `sep`, ignoring separators inside quoted strings and `<...>`.

    Raises SipParseError for an unterminated quoted string or angle bracket.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    marks: list[int] = []
    for ch in (sep, '"', "\\", "<", ">"):
        marks += _positions(text, ch)
    marks.sort()
    parts: list[str] = []
    start = 0
    quoted = angle = False
    escaped = -1
    for i in marks:
        if i == escaped:
            continue
        ch = text[i]
        if quoted:
            if ch == "\\":
                escaped = i + 1
            elif ch == '"':
                quoted = False
        elif angle:
            if ch == ">":
                angle = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        raise SipParseError(f"unterminated quoted string in {text[:60]!r}")
    if angle:
        raise SipParseError(f"unterminated '<' in {text[:60]!r}")
    parts.append(text[start:])
    return parts


def _positions(text: str, ch: str) -> list[int]:
    """Every index of `ch` in `text`, in order."""
    out: list[int] = []
    i = text.find(ch)
    while i >= 0:
        out.append(i)
        i = text.find(ch, i + 1)
    return out


def quoted_end(text: str, start: int) -> int:
    """The index of the quote that closes the quoted string opening at `start`, or -1.

    The next quote is looked for again only once an escape has passed it, so a string full of
    escapes is still scanned once."""
    i = start + 1
    close = text.find('"', i)
    while close >= 0:
        escape = text.find("\\", i, close)
        if escape < 0:
            return close
        i = escape + 2
        if close < i:
            close = text.find('"', i)
    return -1


def unquote(text: str) -> str:
    """Return the content of a quoted-string (RFC 3261 §25.1), resolving backslash escapes."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise SipParseError(f"not a quoted string: {text[:60]!r}")
    end = len(text) - 1
    out: list[str] = []
    i = 1
    while i < end:
        escape = text.find("\\", i, end)
        chunk = text[i:end] if escape < 0 else text[i:escape]
        if '"' in chunk:
            raise SipParseError(f"stray quote in {text[:60]!r}")
        out.append(chunk)
        if escape < 0:
            break
        if escape + 1 >= end:
            raise SipParseError(f"dangling escape in {text[:60]!r}")
        out.append(text[escape + 1])
        i = escape + 2
    return "".join(out)


def quote(text: str) -> str:
    """Make a quoted-string of `text`, escaping quotes and backslashes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


Params = tuple[tuple[str, str | None], ...]
"""Parameters in wire order: (name, value or None for a flag such as `lr` or `rport`)."""


def parse_params(parts: list[str], what: str) -> Params:
    """Parse `name[=value]` items (already split on ';'); values may be quoted strings."""
    out: list[tuple[str, str | None]] = []
    for raw in parts:
        item = raw.strip(" \t")
        if not item:
            raise SipParseError(f"empty parameter in {what}")
        name, eq, value = item.partition("=")
        name = name.strip(" \t")
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r} in {what}")
        if not eq:
            out.append((name, None))
            continue
        value = value.strip(" \t")
        if value.startswith('"'):
            unquote(value)  # validates; the quoted form is kept for a faithful round trip
        elif not value or any(c in value for c in ' \t"<>,'):
            raise SipParseError(f"bad value for parameter {name!r} in {what}")
        out.append((name, value))
    return tuple(out)


def format_params(params: Params) -> str:
    """Serialize parameters as `;name=value;flag`."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def get_param(params: Params, name: str) -> str | None:
    """The value of parameter `name` (case-insensitive), "" for a flag, None if absent."""
    key = name.lower()
    for n, v in params:
        if n.lower() == key:
            return "" if v is None else v
    return None
