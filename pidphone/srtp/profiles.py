"""The four SRTP protection profiles ZRTP negotiates (RFC 3711 §8.2, RFC 6188, RFC 6189 §5.1).

ZRTP's cipher types AES1/AES3 pick AES-128 or AES-256 counter mode, its auth tag types HS32/HS80
pick a 32- or 80-bit HMAC-SHA1 tag. The SRTCP tag is 80 bits for every profile: RFC 4568 §6.2
and libsrtp's `srtp_crypto_policy_set_from_profile_for_rtcp` ("we do not honor the 32-bit auth
tag request since this is not compliant with RFC 3711") keep SRTCP at 80 bits for the *_32
profiles. Linphone's mediastreamer2 instead keys SRTCP with the RTP policy (a 32-bit tag under
HS32); `SrtpContext(..., srtcp_tag_len=4)` talks to such a peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.errors import LocalProtocolError

SALT_LEN = 14
"""Master and session salt length in bytes (112 bits, RFC 3711 §8.2)."""

AUTH_KEY_LEN = 20
"""Session HMAC-SHA1 key length in bytes (160 bits)."""

FULL_TAG_LEN = 10
"""The 80-bit tag, also used for SRTCP under every profile (see the module docstring)."""


@dataclass(frozen=True)
class SrtpProfile:
    """Lengths, in bytes, that one protection profile fixes."""

    name: str
    key_len: int
    """AES key length: master key and session encryption key alike."""
    srtp_tag_len: int
    srtcp_tag_len: int = FULL_TAG_LEN


AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
AES_256_CM_HMAC_SHA1_80 = "AES_256_CM_HMAC_SHA1_80"
AES_256_CM_HMAC_SHA1_32 = "AES_256_CM_HMAC_SHA1_32"

PROFILES: dict[str, SrtpProfile] = {
    p.name: p
    for p in (
        SrtpProfile(AES_CM_128_HMAC_SHA1_80, 16, 10),
        SrtpProfile(AES_CM_128_HMAC_SHA1_32, 16, 4),
        SrtpProfile(AES_256_CM_HMAC_SHA1_80, 32, 10),
        SrtpProfile(AES_256_CM_HMAC_SHA1_32, 32, 4),
    )
}

_ZRTP_CIPHERS = {"AES1": 128, "AES3": 256}
_ZRTP_TAGS = {"HS32": 32, "HS80": 80}


def profile_for(cipher: str, auth_tag: str) -> str:
    """The profile name for ZRTP's negotiated cipher ("AES1"/"AES3") and tag ("HS32"/"HS80")."""
    bits = _ZRTP_CIPHERS.get(cipher)
    tag = _ZRTP_TAGS.get(auth_tag)
    if bits is None or tag is None:
        raise LocalProtocolError(
            f"no SRTP profile for ZRTP cipher {cipher!r} with auth tag {auth_tag!r}; "
            f"ciphers {sorted(_ZRTP_CIPHERS)}, tags {sorted(_ZRTP_TAGS)}"
        )
    if bits == 128:
        return f"AES_CM_128_HMAC_SHA1_{tag}"
    return f"AES_256_CM_HMAC_SHA1_{tag}"


def get_profile(name: str) -> SrtpProfile:
    """Look a profile up by its exact name."""
    try:
        return PROFILES[name]
    except KeyError:
        raise LocalProtocolError(
            f"unknown SRTP profile {name!r}; known: {', '.join(PROFILES)}"
        ) from None
