"""Header names and the typed headers the core needs: Via (§20.42, RFC 3581 rport) and CSeq
(§20.16).

Names are case-insensitive and may come in compact form (§7.3.3); `canonical_name` maps both to
the one spelling we store and send. `LIST_HEADERS` are the headers whose grammar is a
comma-separated list (§7.3.1), the only ones split on commas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import (
    Params,
    format_params,
    get_param,
    is_token,
    parse_number,
    parse_params,
    split_outside,
)
from pidphone.sip.uri import format_host, split_hostport

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization",
    "Path", "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Reply-To", "Require", "Retry-After", "Route", "Server", "Service-Route",
    "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate", "Event", "Allow-Events", "Refer-To", "Referred-By", "Session-Expires",
    "Min-SE", "P-Asserted-Identity", "Privacy", "RSeq", "RAck", "Flow-Timer", "Replaces",
    "Refer-Sub", "Subscription-State",
]  # fmt: skip
_CANONICAL = {name.lower(): name for name in _KNOWN}
_CANONICAL.update(COMPACT_FORMS)

LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
        "In-Reply-To", "Path", "Proxy-Require", "Reason", "Record-Route", "Require", "Route",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning", "P-Asserted-Identity",
    )
)  # fmt: skip


def canonical_name(name: str) -> str:
    """The stored spelling of a header name: long form, conventional case."""
    return _CANONICAL.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a list header's value on commas outside quotes and `<>`; empty items are dropped."""
    return [item.strip(" \t") for item in split_outside(value, ",") if item.strip(" \t")]


@dataclass(frozen=True)
class Via:
    """One Via entry: `SIP/2.0/TLS host:port;branch=z9hG4bK...;rport`."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Self:
        """`SIP / 2.0 / TLS host : port ;params`: whitespace may surround the slashes and the
        colon (§25.1 SLASH, COLON) and must follow the transport."""
        name, version, rest = [*text.split("/", 2), "", ""][:3]
        if name.strip(" \t").upper() != "SIP" or version.strip(" \t") != "2.0":
            raise SipParseError(f"bad Via protocol in {text[:60]!r}")
        rest = rest.lstrip(" \t")
        transport, space, rest = _split_at_space(rest)
        if not is_token(transport) or not space:
            raise SipParseError(f"bad Via transport in {text[:60]!r}")
        sent_by, *param_parts = split_outside(rest, ";")
        host, port = _sent_by(sent_by.strip(" \t"))
        params = parse_params(param_parts, "Via") if param_parts else ()
        return cls(transport=transport.upper(), host=host, port=port, params=params)

    def __str__(self) -> str:
        sent_by = format_host(self.host, self.port)
        return f"SIP/2.0/{self.transport} {sent_by}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_received(self, received: str, rport: int | None) -> Via:
        """What a server adds (RFC 3261 §18.2.1, RFC 3581 §4): the source address seen."""
        out: list[tuple[str, str | None]] = []
        for n, v in self.params:
            low = n.lower()
            if low == "received":
                continue
            if low == "rport" and rport is not None:
                out.append((n, str(rport)))
                continue
            out.append((n, v))
        out.append(("received", received))
        return replace(self, params=tuple(out))


def _split_at_space(text: str) -> tuple[str, str, str]:
    """`text` cut at its first space or tab: (before, the separator, after it stripped)."""
    cut = len(text)
    for blank in " \t":
        at = text.find(blank, 0, cut)
        if at >= 0:
            cut = at
    if cut == len(text):
        return text, "", ""
    return text[:cut], text[cut], text[cut + 1 :].lstrip(" \t")


def _sent_by(text: str) -> tuple[str, int | None]:
    """A Via sent-by, `host [ SWS ":" SWS port ]`, with the IPv6 reference's own colons."""
    close = text.find("]") if text.startswith("[") else -1
    colon = text.find(":", close + 1)
    if colon < 0:
        return split_hostport(text)
    host, port = text[:colon].rstrip(" \t"), text[colon + 1 :].lstrip(" \t")
    return split_hostport(f"{host}:{port}")


@dataclass(frozen=True)
class CSeq:
    """`CSeq: 4711 INVITE` (§20.16): the sequence number is below 2**31."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> Self:
        parts = text.split()
        if len(parts) != 2 or not is_token(parts[1]):
            raise SipParseError(f"bad CSeq {text[:60]!r}")
        seq = parse_number(parts[0], "CSeq number")
        if seq >= 2**31:
            raise SipParseError(f"CSeq number too large in {text!r}")
        return cls(seq=seq, method=parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
