"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Parses WWW-Authenticate / Proxy-Authenticate challenges and computes Authorization /
Proxy-Authorization credentials with MD5, SHA-256 or SHA-512-256 (and their -sess forms),
qop=auth with nonce counting. `DigestCredentials` remembers the last challenge per protection
space — the flow it came on, its realm, and whether a proxy asked — so later requests on that
same flow carry credentials without a new round trip, and no other flow ever sees them. Which
challenges deserve an answer at all is the agent's decision (`UserAgent`: only the account's
registrar or outbound proxy, only the account's realms). The password lives in a field kept
out of repr and is never put in an error message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import is_token, quote, split_outside, unquote

ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}
PREFERENCE = ("SHA-512-256", "SHA-256", "MD5")
"""Strongest first: RFC 8760 §2.4, pick the best challenge offered."""


@dataclass(frozen=True)
class Challenge:
    """One `Digest` challenge from a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @classmethod
    def parse(cls, value: str, *, proxy: bool = False) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise SipParseError(f"unsupported authentication scheme {scheme!r}")
        params: dict[str, str] = {}
        for item in split_outside(rest, ","):
            if not item.strip():
                continue
            name, eq, raw = item.partition("=")
            name, raw = name.strip().lower(), raw.strip()
            if not eq or not is_token(name):
                raise SipParseError(f"bad digest parameter {item.strip()[:40]!r}")
            params[name] = unquote(raw) if raw.startswith('"') else raw
        if "realm" not in params or "nonce" not in params:
            raise SipParseError("digest challenge without realm or nonce")
        qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5"),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
            proxy=proxy,
        )

    @property
    def base_algorithm(self) -> str:
        return self.algorithm.upper().removesuffix("-SESS")

    @property
    def supported(self) -> bool:
        return self.base_algorithm in ALGORITHMS and (not self.qop or "auth" in self.qop)


def best_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The challenge with the strongest algorithm we support, or None."""
    usable = [c for c in challenges if c.supported]
    usable.sort(key=lambda c: PREFERENCE.index(c.base_algorithm))
    return usable[0] if usable else None


def digest_response(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int,
) -> str:
    """The `response` value (RFC 7616 §3.4.1)."""
    h = ALGORITHMS[challenge.base_algorithm]
    ha1 = h(f"{username}:{challenge.realm}:{password}".encode())
    if challenge.algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    if challenge.qop:
        return h(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}".encode())
    return h(f"{ha1}:{challenge.nonce}:{ha2}".encode())


Address = tuple[str, int]


@dataclass
class DigestCredentials:
    """A username and password, and the challenges seen per protection space (the flow, the
    realm, and whether a proxy or the server asked) for reuse and nonce counting."""

    username: str
    password: str = field(repr=False)
    _spaces: dict[tuple[Address, str, bool], Challenge] = field(default_factory=dict, repr=False)
    _nc: dict[str, int] = field(default_factory=dict, repr=False)
    """Requests sent per nonce: one count even when a 401 and a 407 share a nonce."""

    def learn(
        self,
        challenge: Challenge,
        *,
        flow: Address,
        answered_nonces: frozenset[str] = frozenset(),
    ) -> bool:
        """Record a challenge that came on `flow` to a request that carried credentials with
        `answered_nonces`.

        Returns False when that request already answered this very nonce and the server does
        not call it stale: the password is wrong and retrying would loop. (A registrar may
        challenge an INVITE with 407 reusing the nonce of its 401 to REGISTER: that is a new
        protection space, not a failure.)"""
        if challenge.nonce in answered_nonces and not challenge.stale:
            return False
        self._spaces[(flow, challenge.realm, challenge.proxy)] = challenge
        live = {c.nonce for c in self._spaces.values()}
        self._nc = {nonce: n for nonce, n in self._nc.items() if nonce in live}
        return True

    def headers(self, flow: Address, method: str, uri: str, cnonce: str) -> list[tuple[str, str]]:
        """Authorization / Proxy-Authorization headers for the protection spaces of `flow`
        (none for a flow that never challenged us, whatever other flows did)."""
        out: list[tuple[str, str]] = []
        for (space_flow, _, _), challenge in self._spaces.items():
            if space_flow != flow:
                continue
            nc = self._nc[challenge.nonce] = self._nc.get(challenge.nonce, 0) + 1
            out.append(self._header(challenge, nc, method, uri, cnonce))
        return out

    def _header(self, c: Challenge, nc: int, method: str, uri: str, cnonce: str) -> tuple[str, str]:
        response = digest_response(
            c,
            username=self.username,
            password=self.password,
            method=method,
            uri=uri,
            cnonce=cnonce,
            nc=nc,
        )
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(c.realm)}",
            f"nonce={quote(c.nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(response)}",
            f"algorithm={c.algorithm}",
        ]
        if c.qop:
            parts += [f"cnonce={quote(cnonce)}", "qop=auth", f"nc={nc:08x}"]
        if c.opaque is not None:
            parts.append(f"opaque={quote(c.opaque)}")
        name = "Proxy-Authorization" if c.proxy else "Authorization"
        return name, "Digest " + ", ".join(parts)


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of an `Authorization: Digest ...` header (for servers and tests)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    out: dict[str, str] = {}
    for item in split_outside(rest, ","):
        name, eq, raw = item.partition("=")
        if not eq:
            raise SipParseError("bad digest credentials")
        raw = raw.strip()
        out[name.strip().lower()] = unquote(raw) if raw.startswith('"') else raw
    return out
