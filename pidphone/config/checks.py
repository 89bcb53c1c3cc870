"""Value checks for config fields, and the parsing helpers they share with the config's users.

Each check returns what is wrong — the bad value and what is allowed — or None; the builder
(build.py) adds the key path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from pidphone.ports import FUNCTION_KEYS, KEYPAD_KEYS
from pidphone.sip.errors import SipParseError
from pidphone.sip.uri import Uri
from pidphone.zrtp import algorithms

from .build import Check, did_you_mean, quoted

GPIO_MAX = 27
"""BCM GPIO numbers on the 40-pin header of every Raspberry Pi model are 0-27."""

ZRTP_KEY_AGREEMENTS = algorithms.KEY_AGREEMENTS
ZRTP_CIPHERS = algorithms.CIPHERS
ZRTP_AUTH_TAGS = algorithms.AUTH_TAGS
ZRTP_HASHES = algorithms.HASHES
ZRTP_SAS_TYPES = algorithms.SAS_TYPES
"""The ZRTP algorithm names (RFC 6189 §5.1.2-5.1.6) pidphone implements: the engine's own
lists (`pidphone.zrtp.algorithms`), so the config accepts exactly what a call can offer."""

AUDIO_RATES = (0, 8000, 16000, 32000, 44100, 48000)
"""Device rates with a whole number of samples in a 20 ms period; 0: the codec's."""


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{64}$")


def gpio(value: int) -> str | None:
    if 0 <= value <= GPIO_MAX:
        return None
    return f"GPIO {value} does not exist on a Raspberry Pi (0–{GPIO_MAX})"  # noqa: RUF001


def between(low: float, high: float, unit: str = "") -> Check:
    """The value lies in [low, high]."""
    suffix = f" {unit}" if unit else ""

    def check(value: Any) -> str | None:
        if low <= value <= high:
            return None
        return f"{value}{suffix} is out of range; allowed: {low:g} to {high:g}{suffix}"

    return check


def one_of(allowed: Sequence[object]) -> Check:
    def check(value: Any) -> str | None:
        if value in allowed:
            return None
        return f"{value} is not allowed; choose one of {quoted(allowed)}"

    return check


def preference_list(allowed: Sequence[str], what: str) -> Check:
    """A non-empty list of distinct names from `allowed`, most preferred first."""

    def check(values: Sequence[str]) -> str | None:
        if not values:
            return f"the list is empty; give at least one {what} of {quoted(allowed)}"
        for name in values:
            if name not in allowed:
                same = [a for a in allowed if a.lower() == name.lower()]
                hint = f'; did you mean "{same[0]}"?' if same else did_you_mean(name, allowed)
                return (
                    f'"{name}" is not a {what} pidphone knows; choose from {quoted(allowed)}{hint}'
                )
        for i, name in enumerate(values):
            if name in values[:i]:
                return f'"{name}" is listed twice'
        return None

    return check


def nonempty(values: Sequence[Any]) -> str | None:
    return None if values else "the list is empty; give at least one"


def optional(check: Check) -> Check:
    """The empty string means "not set"; anything else must pass `check`."""
    return lambda value: None if value == "" else check(value)


def sip_uri(value: str) -> str | None:
    """A SIP or SIPS URI with a user part: sip:alice@example.org."""
    if not value.startswith(("sip:", "sips:")):
        return f'"{value}" is not a SIP address; write it as "sip:user@domain"'
    rest = value.split(":", 1)[1]
    user, at, host = rest.partition("@")
    if not at or not user or not host:
        return f'"{value}" has no user part; write it as "sip:user@domain"'
    if any(c.isspace() for c in value) or ">" in value or "<" in value:
        return f'"{value}" contains spaces or angle brackets; write it as "sip:user@domain"'
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f'{value!r} contains a control character; write it as "sip:user@domain"'
    return None


def dial_target(value: str) -> str | None:
    """A speed dial: a SIP URI, or a number the dial plan completes."""
    if re.fullmatch(r"\+?[0-9*#]+", value):
        return None
    if value.startswith(("sip:", "sips:")):
        return sip_uri(value)
    return f'"{value}" is neither a SIP address ("sip:bob@example.org") nor a number'


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    """Split "host", "host:port", "[v6]" or "[v6]:port"; raise ValueError with the reason."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise ValueError("an IPv6 address needs its closing ']'")
        ipaddress.IPv6Address(host)
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    elif value.count(":") > 1:
        raise ValueError("write an IPv6 address in brackets, like [2001:db8::1]:5061")
    else:
        host, port_text = value, ""
    if not host:
        raise ValueError("the host is empty")
    if ":" not in host:
        if re.fullmatch(r"[0-9.]+", host):
            ipaddress.IPv4Address(host)
        elif not _HOST.match(host):
            raise ValueError(f'"{host}" is not a valid host name')
    if not port_text:
        return host, default_port
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not digits or not 1 <= int(port_text) <= 65535:
        raise ValueError(f'"{port_text}" is not a port number (1-65535)')
    return host, int(port_text)


def host_port(default_port: int) -> Check:
    def check(value: str) -> str | None:
        try:
            parse_host_port(value, default_port)
        except ValueError as exc:
            return f'"{value}" is not host[:port]: {exc}'
        return None

    return check


def listen_address(value: str) -> str | None:
    """An IP address and port to listen on: "0.0.0.0:5061", "[::]:5061"."""
    try:
        host, port = parse_host_port(value, 0)
        ipaddress.ip_address(host)
    except ValueError as exc:
        return f'"{value}" is not address:port with an IP address (like "0.0.0.0:5061"): {exc}'
    if port == 0:
        return f'"{value}" has no port; write it as address:port, like "0.0.0.0:5061"'
    return None


def fingerprint(value: str) -> str | None:
    """A SHA-256 certificate fingerprint: 64 hex digits, colons allowed."""
    if _FINGERPRINT.match(value.replace(":", "")):
        return None
    return (
        f'"{value}" is not a SHA-256 fingerprint: expected 64 hex digits, colons allowed '
        "(openssl x509 -noout -fingerprint -sha256 -in server.pem prints one)"
    )


def function_key_name(name: str) -> str | None:
    if name in FUNCTION_KEYS:
        return None
    return f'"{name}" is not a function key; choose from {quoted(FUNCTION_KEYS)}' + did_you_mean(
        name, FUNCTION_KEYS
    )


def keymap_row(row: str) -> str | None:
    bad = [c for c in row if c not in KEYPAD_KEYS]
    if bad:
        return f'"{row}" holds {quoted(bad)}; keys are the characters {KEYPAD_KEYS}'
    return None


def no_control_characters(value: str) -> str | None:
    if any(ord(c) < 32 or c in '"\\' for c in value):
        return f"{value!r} contains a control character, a quote or a backslash"
    return None


def realm(value: str) -> str | None:
    """A digest realm as the server writes it in its challenges: "sip.provider.net"."""
    if not value.strip():
        return "the realm is empty; write it as the server's challenges do"
    return no_control_characters(value)


def allowed_caller(value: str) -> str | None:
    """A SHA-256 certificate fingerprint, or a SIP identity: sips:bob@example.org, sips:host."""
    if value.startswith(("sip:", "sips:")):
        try:
            uri = Uri.parse(value)
        except SipParseError as exc:
            return f'"{value}" is not a SIP identity: {exc}'
        if uri.params or uri.headers or uri.port is not None or uri.password is not None:
            return f'"{value}" is not a plain SIP identity; write it as "sips:bob@example.org"'
        return None
    if fingerprint(value) is None:
        return None
    return (
        f'"{value}" is neither a SHA-256 fingerprint (64 hex digits, colons allowed) nor a '
        'SIP identity ("sips:bob@example.org")'
    )
