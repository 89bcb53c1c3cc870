"""SRTP and SRTCP (RFC 3711; AES-256 from RFC 6188) for the profiles ZRTP negotiates.

`SrtpContext(profile, master_key, master_salt)` handles one direction; a bad datagram raises
`SrtpError` (a `pidphone.errors.ParseError`), which the caller drops and counts.
"""

from __future__ import annotations

from pidphone.srtp.context import SrtpContext, SrtpError
from pidphone.srtp.profiles import (
    AES_256_CM_HMAC_SHA1_32,
    AES_256_CM_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    PROFILES,
    SrtpProfile,
    profile_for,
)

__all__ = [
    "AES_256_CM_HMAC_SHA1_32",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "PROFILES",
    "SrtpContext",
    "SrtpError",
    "SrtpProfile",
    "profile_for",
]
