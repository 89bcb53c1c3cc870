"""SRTP and SRTCP (RFC 3711; AES-256 from RFC 6188) for the profiles ZRTP negotiates.

`SrtpContext(profile, master_key, master_salt)` handles one direction; a bad datagram raises
`SrtpError` (a `pidphone.errors.ParseError`), which the caller drops and counts.
`SrtpGcmContext` does the same for AEAD AES-GCM (RFC 7714); `new_context` makes the one a
profile name asks for.
"""

from __future__ import annotations

from pidphone.srtp.context import SrtpContext, SrtpError
from pidphone.srtp.gcm import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    GCM_KEY_LENGTHS,
    SrtpGcmContext,
    gcm_profile_for,
)
from pidphone.srtp.profiles import (
    AES_256_CM_HMAC_SHA1_32,
    AES_256_CM_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    PROFILES,
    SrtpProfile,
    profile_for,
)


def new_context(
    profile: str, master_key: bytes, master_salt: bytes, *, srtcp_tag_len: int | None = None
) -> SrtpContext | SrtpGcmContext:
    """One direction's context for `profile`: AES-GCM for the AEAD profiles, else AES-CM with
    HMAC-SHA1 (`srtcp_tag_len` as `SrtpContext` takes it; GCM's tag has one length)."""
    if profile in GCM_KEY_LENGTHS:
        return SrtpGcmContext(profile, master_key, master_salt)
    return SrtpContext(profile, master_key, master_salt, srtcp_tag_len=srtcp_tag_len)


__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "PROFILES",
    "SrtpContext",
    "SrtpError",
    "SrtpGcmContext",
    "SrtpProfile",
    "gcm_profile_for",
    "new_context",
    "profile_for",
]
