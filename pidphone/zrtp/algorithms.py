"""Algorithm names, the mandatory set and negotiation (RFC 6189 §4.1.2, §5.1.2-§5.1.6).

`HASHES`, `CIPHERS`, `AUTH_TAGS`, `KEY_AGREEMENTS` and `SAS_TYPES` are the names a phone may be
configured with, the one list of each. Elsewhere names are the 4-character wire blocks ("B32 "
keeps its space). A Hello's lists get the mandatory algorithms implicitly appended. The key
agreement follows §4.1.2 as Linphone's bzrtp does: each side's first common choice, and if they
differ the one with the lower bzrtp code (its speed order for the classical ones; the
post-quantum ones come last, so one is chosen only when both sides list it first). The other
algorithms take the initiator's first preference that the peer also offers, except that a
strong key agreement asks for strong companions among what both offer, as bzrtp 5.5 does:
EC38 takes S384 (§5.1.5) and AES3 if it can; X448 and the post-quantum ones take AES3 over AES1
and S512 over S384 over S256.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.srtp.gcm import gcm_profile_for
from pidphone.srtp.profiles import profile_for

HASHES = ("S256", "S384", "S512")
"""Hash types (§5.1.2; S512 as bzrtp 5.5 has it)."""
CIPHERS = ("AES1", "AES3")
"""Cipher types (§5.1.3)."""
AUTH_TAGS = ("HS32", "HS80", "GCM")
"""SRTP auth tag types (§5.1.4), as configured; "GCM" (wire block "GCM ") is bzrtp 5.5's: SRTP
AEAD AES-GCM (RFC 7714) with a 96-bit master salt, the cipher giving the key length."""
POST_QUANTUM = ("X3M3", "MLK3", "MLK2")
"""Post-quantum key agreements, as Linphone's bzrtp 5.5 has them (KEM mode, pidphone.zrtp.kem):
X448 with ML-KEM-1024, ML-KEM-1024, ML-KEM-768. Their secret stays secret against a quantum
computer, so a recording of the call cannot be decrypted later by breaking the key agreement.
X1M1 and MLK1 need ML-KEM-512, which `cryptography` does not have: they are absent."""
KEY_AGREEMENTS = ("DH3k", "DH2k", "EC25", "EC38", "X255", "X448", *POST_QUANTUM)
"""Key agreement types a phone may choose to offer (§5.1.5; X255, X448 and the post-quantum
ones as bzrtp has them). Multistream ("Mult") is not among them: it keys a call's further
streams from its first."""
SAS_TYPES = ("B32", "B256")
"""SAS rendering schemes (§5.1.6), as configured (the wire block of "B32" is "B32 ")."""
MULTISTREAM = "Mult"
GCM = "GCM "
MAX_LISTED = 7
"""Algorithms of one kind a Hello can list (§5.2: a 3-bit count each)."""
SUPPORTED: dict[str, tuple[str, ...]] = {
    "hashes": HASHES,
    "ciphers": CIPHERS,
    "auth_tags": tuple(name.ljust(4) for name in AUTH_TAGS),
    "key_agreements": (*KEY_AGREEMENTS, MULTISTREAM),
    "sas_types": tuple(name.ljust(4) for name in SAS_TYPES),
}
"""Everything this implementation negotiates, by kind, as wire names. The lists above are the
one source of the names: configuration checks import them."""
MANDATORY: dict[str, tuple[str, ...]] = {
    "hashes": ("S256",),
    "ciphers": ("AES1",),
    "auth_tags": ("HS32", "HS80"),
    "key_agreements": ("DH3k",),
    "sas_types": ("B32 ",),
}
KEY_AGREEMENT_CODES = {
    "DH2k": 0x41,
    "X255": 0x42,
    "EC25": 0x44,
    "X448": 0x45,
    "DH3k": 0x47,
    "EC38": 0x48,
    "MLK2": 0x58,
    "MLK3": 0x59,
    "X3M3": 0x5B,
}
"""bzrtp's code of each key agreement (bzrtp.h): when the two sides' first choices differ, the
lower code wins (§4.1.2 asks for "the faster"; bzrtp's codes are in its speed order)."""
STRONG_CIPHERS = ("AES3", "AES1")
STRONG_HASHES = ("S512", "S384", "S256")
"""What X448 and the post-quantum key agreements prefer among what both sides offer (bzrtp)."""
CIPHER_KEY_BYTES = {"AES1": 16, "AES3": 32}
# §4.4.1: exchanges Error codes for an unsupported choice in a Commit, per algorithm kind
UNSUPPORTED_CODE = {
    "hashes": 0x51,
    "ciphers": 0x52,
    "key_agreements": 0x53,
    "auth_tags": 0x54,
    "sas_types": 0x55,
}


def wire(name: str) -> str:
    """The 4-character wire block of a configured name ("B32" -> "B32 ")."""
    return name.ljust(4)


def with_post_quantum_companions(offered: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """A Hello offering a post-quantum key agreement also offers AES3 and S512, last if absent
    and if there is room (bzrtp 5.5 does the same), so that their exchange can take them."""
    if not any(name in POST_QUANTUM for name in offered["key_agreements"]):
        return offered
    completed = dict(offered)
    for kind, name in (("ciphers", "AES3"), ("hashes", "S512")):
        if name not in completed[kind] and len(completed[kind]) < MAX_LISTED:
            completed[kind] = (*completed[kind], name)
    return completed


def with_mandatory(kind: str, offered: tuple[str, ...]) -> tuple[str, ...]:
    """A Hello's list with the mandatory algorithms it left out appended (§5.2)."""
    return offered + tuple(name for name in MANDATORY[kind] if name not in offered)


def usable(kind: str, offered: tuple[str, ...]) -> tuple[str, ...]:
    """What of an offered list (mandatory ones appended) this implementation supports."""
    return tuple(n for n in with_mandatory(kind, offered) if n in SUPPORTED[kind])


@dataclass(frozen=True)
class Suite:
    """The algorithms one exchange uses, as wire names."""

    hash: str
    cipher: str
    auth_tag: str
    key_agreement: str
    sas: str

    @property
    def aead(self) -> bool:
        """SRTP AEAD AES-GCM (the "GCM " auth tag): a 96-bit master salt, no HMAC."""
        return self.auth_tag == GCM

    @property
    def srtp_profile(self) -> str:
        """The SRTP protection profile name, e.g. "AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"."""
        if self.aead:
            return gcm_profile_for(self.cipher)
        return profile_for(self.cipher, self.auth_tag)


def _first_common(ours: tuple[str, ...], theirs: tuple[str, ...]) -> str | None:
    return next((name for name in ours if name in theirs), None)


def choose_suite(ours: dict[str, tuple[str, ...]], theirs: dict[str, tuple[str, ...]]) -> Suite:
    """Our choice as initiator of a DH-mode exchange, from both Hellos' lists."""
    mine = {kind: usable(kind, names) for kind, names in ours.items()}
    peer = {kind: usable(kind, names) for kind, names in theirs.items()}
    common = {kind: tuple(n for n in mine[kind] if n in peer[kind]) for kind in mine}
    can_ec38 = "S384" in common["hashes"]
    agreements = [n for n in mine["key_agreements"] if n != MULTISTREAM]
    if not can_ec38:
        agreements = [n for n in agreements if n != "EC38"]
    peer_agreements = [n for n in peer["key_agreements"] if n in agreements]
    ours_first = _first_common(tuple(agreements), tuple(peer_agreements)) or "DH3k"
    theirs_first = peer_agreements[0] if peer_agreements else "DH3k"
    key_agreement = min(ours_first, theirs_first, key=KEY_AGREEMENT_CODES.__getitem__)
    hash_, cipher = common["hashes"][0], common["ciphers"][0]
    if key_agreement == "EC38":
        hash_ = "S384"
        cipher = "AES3" if "AES3" in common["ciphers"] else cipher
    elif key_agreement == "X448" or key_agreement in POST_QUANTUM:
        hash_ = _first_common(STRONG_HASHES, common["hashes"]) or hash_
        cipher = _first_common(STRONG_CIPHERS, common["ciphers"]) or cipher
    return Suite(hash_, cipher, common["auth_tags"][0], key_agreement, common["sas_types"][0])


def unsupported_kind(suite: Suite, ours: dict[str, tuple[str, ...]]) -> str | None:
    """The first kind whose choice in `suite` we did not offer (mandatory ones count)."""
    chosen = {
        "hashes": suite.hash,
        "ciphers": suite.cipher,
        "auth_tags": suite.auth_tag,
        "key_agreements": suite.key_agreement,
        "sas_types": suite.sas,
    }
    for kind, name in chosen.items():
        if name not in usable(kind, ours[kind]):
            return kind
    return None
