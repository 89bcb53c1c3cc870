"""Rendering the short authentication string (RFC 6189 §5.1.6).

B32: the leftmost 20 bits of sashash as four characters of ZRTP's own alphabet (not RFC 4648
base32), most significant quintet first. B256: the leftmost 16 bits as two PGP words, joined
with ":" as bzrtp (and so Linphone) shows them.
"""

from __future__ import annotations

from pidphone.errors import LocalProtocolError
from pidphone.zrtp.pgpwords import EVEN, ODD

B32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def render_sas(sashash: bytes, scheme: str) -> str:
    """The SAS string for `sashash` (at least its first 4 bytes) in "B32" or "B256"."""
    if len(sashash) < 4:
        raise LocalProtocolError("sashash needs at least 32 bits")
    value = int.from_bytes(sashash[:4], "big")
    name = scheme.strip()
    if name == "B32":
        return "".join(B32_ALPHABET[(value >> shift) & 31] for shift in (27, 22, 17, 12))
    if name == "B256":
        return f"{EVEN[value >> 24]}:{ODD[(value >> 16) & 0xFF]}"
    raise LocalProtocolError(f"unknown SAS scheme {scheme!r}")
