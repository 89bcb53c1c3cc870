"""The Replaces header (RFC 3891) and the Refer-To target that carries it (RFC 3515 §2.1,
RFC 5589 §7).

A Replaces header names one dialog by its Call-ID and its two tags *as the receiver of the
INVITE sees them*: `to-tag` is the receiver's own tag, `from-tag` its peer's. An attended
transfer puts it, %-escaped, in the `?Replaces=` header of the Refer-To URI; the transferee
copies it into its INVITE. `ReferTarget.parse` takes a Refer-To value apart and keeps only
what the phone acts on (the URI without its headers, and Replaces): any other embedded header
(Route, Subject, Accept-Contact ...) is dropped, never copied into a request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self
from urllib.parse import quote, unquote

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import get_param, is_token, parse_params, split_outside
from pidphone.sip.uri import NameAddr, Uri

MAX_REFER_TO = 1024
"""Characters a Refer-To value may have (a URI with an escaped Replaces is ~200)."""
ALLOWED_SCHEMES = frozenset({"sip", "sips"})
"""What a REFER may ask us to call: never tel:, http: or anything the phone cannot check."""


@dataclass(frozen=True)
class Replaces:
    """`Replaces: call-id;to-tag=...;from-tag=...[;early-only]` (RFC 3891 §6.1)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Self:
        parts = split_outside(text.strip(), ";")
        call_id = parts[0].strip()
        if not call_id or len(call_id) > 256 or any(c in call_id for c in ' \t<>";,'):
            raise SipParseError(f"bad Call-ID in Replaces {text[:80]!r}")
        params = parse_params(parts[1:], "Replaces")
        to_tag, from_tag = get_param(params, "to-tag"), get_param(params, "from-tag")
        if not to_tag or not from_tag or not is_token(to_tag) or not is_token(from_tag):
            raise SipParseError(f"Replaces without both tags: {text[:80]!r}")
        return cls(call_id, to_tag, from_tag, get_param(params, "early-only") is not None)

    def __str__(self) -> str:
        text = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return text + (";early-only" if self.early_only else "")


@dataclass(frozen=True)
class ReferTarget:
    """What a Refer-To asks for: call `uri` (headers stripped), replacing a dialog if
    `replaces` says so."""

    uri: Uri
    replaces: Replaces | None = None

    @classmethod
    def parse(cls, text: str) -> Self:
        """A Refer-To value (RFC 3515 §2.1), as the transferee must check it."""
        if len(text) > MAX_REFER_TO:
            raise SipParseError("Refer-To too long")
        na = NameAddr.parse(text)
        uri = na.uri
        if uri.scheme not in ALLOWED_SCHEMES or uri.opaque is not None or not uri.user:
            raise SipParseError(f"Refer-To must be a sip: or sips: URI with a user: {text[:80]!r}")
        method = uri.param("method")
        if method is not None and method.upper() != "INVITE":
            raise SipParseError(f"Refer-To asks for {method[:20]!r}, not INVITE")
        found: Replaces | None = None
        for name, value in uri.headers:
            if name.lower() == "replaces":
                if found is not None:
                    raise SipParseError("Refer-To with two Replaces")
                found = Replaces.parse(unquote(value))
        params = tuple(p for p in uri.params if p[0].lower() != "method")
        return cls(replace(uri, headers=(), params=params, password=None), found)

    def refer_to(self) -> NameAddr:
        """The Refer-To header for this target, Replaces escaped into the URI."""
        headers: tuple[tuple[str, str], ...] = ()
        if self.replaces is not None:
            headers = (("Replaces", quote(str(self.replaces), safe="")),)
        return NameAddr(uri=replace(self.uri, headers=headers))
