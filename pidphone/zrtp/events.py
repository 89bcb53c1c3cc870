"""What a `ZrtpSession` reports: one frozen dataclass per fact, secrets kept out of repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ZrtpEvent:
    """Base of every ZRTP event."""


@dataclass(frozen=True)
class PeerHelloReceived(ZrtpEvent):
    """The peer speaks ZRTP: its first valid Hello arrived."""

    peer_zid: bytes
    client_id: bytes
    version: str


@dataclass(frozen=True)
class SrtpKeysReady(ZrtpEvent):
    """This side may now decrypt the peer's SRTP (and will encrypt its own with send_*).

    `profile` is an SRTP profile name such as "AES_CM_128_HMAC_SHA1_80", or "AEAD_AES_128_GCM"
    and "AEAD_AES_256_GCM" (RFC 7714) under the "GCM " auth tag, whose salts are 12 bytes.
    """

    profile: str
    send_key: bytes = field(repr=False)
    send_salt: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    recv_salt: bytes = field(repr=False)


@dataclass(frozen=True)
class Secured(ZrtpEvent):
    """This side may send SRTP now; the SAS is known. Emitted once per session."""

    sas: str
    sas_scheme: str
    verified: bool
    cipher: str
    auth_tag: str
    key_agreement: str
    hash: str
    role: Literal["initiator", "responder"]
    peer_zid: bytes
    cache_mismatch: bool
    post_quantum: bool = False
    """The keys come from a post-quantum key agreement (`algorithms.POST_QUANTUM`): for a
    Multistream stream, the call's first exchange."""


@dataclass(frozen=True)
class CacheMismatch(ZrtpEvent):
    """§4.6.1.1: the peer's ZID is cached but no retained secret matched."""

    peer_zid: bytes
    message: str = "cached secret mismatch: possible man in the middle — verify the SAS"


@dataclass(frozen=True)
class ZrtpFailed(ZrtpEvent):
    """The exchange failed; `code` is the §5.9 Error code (0xB0 also when the peer is silent)."""

    code: int
    reason: str
    local: bool


@dataclass(frozen=True)
class SecurityLost(ZrtpEvent):
    """A secured session ended abnormally (the peer sent Error after Secured)."""

    reason: str


@dataclass(frozen=True)
class GoClearRefused(ZrtpEvent):
    """The peer asked to drop to clear media (§4.7.2); refused with Error 0x100."""
