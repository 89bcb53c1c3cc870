"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1) and the name-addr / addr-spec forms (§20.10).

`Uri` parses `sip:`/`sips:` fully (user, password, host with IPv6 references, port,
parameters, headers); any other absolute URI (`tel:`, `urn:` ...) is kept opaque so a request
for it can still be parsed and answered 416. Escapes are kept as sent, so bytes round trip.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import Self

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import (
    Params,
    format_params,
    get_param,
    is_token,
    only,
    parse_number,
    parse_params,
    quote,
    quoted_end,
    split_outside,
    unquote,
)

_SCHEME_CHARS = string.ascii_letters + string.digits + "+-."
_LABEL_CHARS = string.ascii_letters + string.digits + "-"
_IPV6_CHARS = string.hexdigits + ":."
_USER_BAD = frozenset(' \t<>"@\\[]{}|^')
_HVALUE_BAD = frozenset(' \t<>"\\[]{}|^')


def _check_escapes(text: str, what: str) -> None:
    """Every % starts an escape of two hex digits."""
    i = text.find("%")
    while i >= 0:
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or not only(pair, string.hexdigits):
            raise SipParseError(f"bad %-escape in {what} {text[:60]!r}")
        i = text.find("%", i + 1)


def _is_hostname(host: str) -> bool:
    """Dot-separated labels of letters, digits and inner hyphens, with one optional final
    dot (RFC 3261 §25.1 hostname)."""
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    return all(
        only(label, _LABEL_CHARS) and label[0] != "-" and label[-1] != "-" for label in labels
    )


def _check_host(host: str) -> None:
    if host.startswith("[") and host.endswith("]") and only(host[1:-1], _IPV6_CHARS):
        return
    if not _is_hostname(host):
        raise SipParseError(f"bad host {host[:60]!r}")


def split_hostport(hostport: str) -> tuple[str, int | None]:
    """`host[:port]` of a URI or a Via sent-by; an IPv6 reference keeps its brackets."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise SipParseError(f"unterminated IPv6 reference in {hostport!r}")
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {hostport!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    _check_host(host)
    if port_text is None:
        return host, None
    port = parse_number(port_text, "port", 5)
    if port > 65535:
        raise SipParseError(f"port {port} is over 65535")
    return host, port


def format_host(host: str, port: int | None) -> str:
    """`host[:port]`, bracketing a bare IPv6 address."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class Uri:
    """A SIP/SIPS URI, or any other absolute URI kept as `opaque` text after the scheme."""

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None
    """Everything after `scheme:` for URIs that are not sip/sips."""

    @classmethod
    def parse(cls, text: str) -> Self:
        scheme, colon, rest = text.partition(":")
        if not colon or not only(scheme, _SCHEME_CHARS) or not scheme[0].isalpha():
            raise SipParseError(f"not an absolute URI: {text!r}")
        scheme = scheme.lower()
        if scheme not in ("sip", "sips"):
            if not rest or any(c in rest for c in ' \t<>"\r\n'):
                raise SipParseError(f"bad {scheme} URI {text!r}")
            return cls(scheme=scheme, opaque=rest)
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, pcolon, pw = userinfo.partition(":")
            password = pw if pcolon else None
            if not user or any(c in _USER_BAD for c in userinfo):
                raise SipParseError(f"bad user part in {text!r}")
            _check_escapes(userinfo, "user part")
        rest, qmark, header_text = rest.partition("?")
        hostport, *param_parts = rest.split(";")
        host, port = split_hostport(hostport)
        params = parse_params(param_parts, "URI") if param_parts else ()
        for _, value in params:
            if value is not None:
                _check_escapes(value, "URI parameter")
        headers: list[tuple[str, str]] = []
        if qmark:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq or any(c in _HVALUE_BAD for c in item):
                    raise SipParseError(f"bad URI header {item!r} in {text!r}")
                _check_escapes(item, "URI header")
                headers.append((name, value))
        return cls(
            scheme=scheme,
            host=host,
            user=user,
            password=password,
            port=port,
            params=params,
            headers=tuple(headers),
        )

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user if self.password is None else f"{self.user}:{self.password}"
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{format_host(self.host, self.port)}"
        text += format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{n}={v}" for n, v in self.headers)
        return text

    def param(self, name: str) -> str | None:
        """A URI parameter's value ("" for a flag), or None if absent."""
        return get_param(self.params, name)

    def with_params(self, params: Params) -> Uri:
        return replace(self, params=params)

    @property
    def secure(self) -> bool:
        """True for sips: or a sip: URI asking for TLS (`;transport=tls`)."""
        transport = self.param("transport")
        return self.scheme == "sips" or (transport is not None and transport.lower() == "tls")

    def default_port(self) -> int:
        """The port to connect to when the URI gives none (RFC 3263 without DNS: 5061 for TLS)."""
        if self.port is not None:
            return self.port
        return 5061 if self.secure else 5060

    def address_key(self) -> tuple[str, str, str, int | None]:
        """Scheme, lower-cased user and host, port: enough to tell two contacts apart."""
        return (self.scheme, (self.user or ""), self.host.lower(), self.port)


@dataclass(frozen=True)
class NameAddr:
    """`"Display" <uri>;params` or a bare addr-spec with header parameters (From, To, Contact,
    Route, Record-Route)."""

    uri: Uri
    display_name: str = ""
    params: Params = ()
    wildcard: bool = False
    """A `Contact: *` (REGISTER with Expires: 0 for all bindings)."""

    @classmethod
    def parse(cls, text: str) -> Self:
        text = text.strip(" \t")
        if text == "*":
            return cls(uri=Uri(scheme="sip", host="*"), wildcard=True)
        lt = _find_angle(text)
        if lt >= 0:
            display_raw = text[:lt].strip(" \t")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated '<' in {text!r}")
            uri = Uri.parse(text[lt + 1 : gt])
            display = _parse_display(display_raw)
            rest = text[gt + 1 :].strip(" \t")
            if rest and not rest.startswith(";"):
                raise SipParseError(f"junk after '>' in {text!r}")
            param_parts = split_outside(rest, ";")[1:] if rest else []
        else:
            if text.startswith('"'):
                raise SipParseError(f"display name without <uri> in {text!r}")
            uri_text, *param_parts = split_outside(text, ";")
            uri_text = uri_text.strip(" \t")
            if any(c in uri_text for c in " \t,?"):
                raise SipParseError(f"addr-spec with reserved characters: {text!r}")
            uri = Uri.parse(uri_text)
            display = ""
        params = parse_params(param_parts, "name-addr") if param_parts else ()
        return cls(uri=uri, display_name=display, params=params)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = ""
        if self.display_name:
            name = self.display_name
            display = (name if all(is_token(w) for w in name.split(" ")) else quote(name)) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((n, v) for n, v in self.params if n.lower() != "tag")
        return replace(self, params=(*kept, ("tag", tag)))


def _find_angle(text: str) -> int:
    """The index of the first `<` outside quoted strings, or -1."""
    i = 0
    angle = text.find("<")
    quote_at = text.find('"')
    while angle >= 0:
        if quote_at < 0 or angle < quote_at:
            return angle
        end = quoted_end(text, quote_at)
        if end < 0:
            return -1
        i = end + 1
        quote_at = text.find('"', i)
        if angle < i:
            angle = text.find("<", i)
    return -1


def _parse_display(raw: str) -> str:
    if not raw:
        return ""
    if raw.startswith('"'):
        return unquote(raw)
    words = raw.split()
    if not all(is_token(w) for w in words):
        raise SipParseError(f"bad display name {raw!r}")
    return " ".join(words)
