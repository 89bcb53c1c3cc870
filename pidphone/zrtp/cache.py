"""The ZID cache interface (RFC 6189 §4.9): retained secrets and the SAS-verified flag per peer.

The session only sees the `ZidCache` protocol; `MemoryZidCache` keeps everything in a dict (for
tests and cacheless use) and `pidphone.drivers.zid_cache.FileZidCache` persists it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Protocol

from pidphone.errors import LocalProtocolError

ZID_BYTES = 12


@dataclass(frozen=True)
class CacheEntry:
    """What we remember about one peer ZID."""

    rs1: bytes | None = field(default=None, repr=False)
    """Newest retained secret (256 bits), or None."""
    rs2: bytes | None = field(default=None, repr=False)
    """Previous retained secret, kept so one lost update does not break the chain (§4.6.1)."""
    verified: bool = False
    """The SAS-verified flag V (§7.1): the user compared the SAS with this peer."""
    expires_at: float | None = None
    """Wall-clock expiry of the secrets; None: never (the recommended 0xffffffff)."""
    last_used: float = 0.0
    """When the entry was last stored (the file cache stamps wall-clock time)."""
    name: str = ""
    """A name the user gave this peer."""
    mismatch: bool = False
    """The last exchange with this peer was a cache mismatch (§4.6.1.1) the user has not yet
    settled: a SAS confirmed (on the phone or with `pidphone zid verify`) or rejected."""
    pending_rs1: bytes | None = field(default=None, repr=False)
    """That exchange's new retained secret, postponed until the user confirms its SAS."""


def confirmed(entry: CacheEntry) -> CacheEntry:
    """The entry once the user confirmed the SAS (§7.1): V set and, after a cache mismatch,
    the postponed update made (§4.6.1.1: rs2 <- rs1, rs1 <- the mismatched exchange's)."""
    if entry.pending_rs1 is not None:
        entry = replace(entry, rs1=entry.pending_rs1, rs2=entry.rs1)
    return replace(entry, verified=True, mismatch=False, pending_rs1=None)


def rejected(entry: CacheEntry) -> CacheEntry:
    """The entry once the user found the SAS different (§7.1): V cleared and every retained
    secret erased (a man in the middle of this call knew the older ones too); the name stays."""
    return replace(entry, rs1=None, rs2=None, verified=False, mismatch=False, pending_rs1=None)


class ZidCache(Protocol):
    """Where retained secrets live between calls."""

    @property
    def our_zid(self) -> bytes:
        """Our own 96-bit ZID, made once from random bits."""
        ...

    def load(self, peer_zid: bytes) -> CacheEntry | None:
        """The entry for `peer_zid`, or None for a peer never seen (or expired)."""
        ...

    def store(self, peer_zid: bytes, entry: CacheEntry) -> None:
        """Replace the entry for `peer_zid`."""
        ...


class MemoryZidCache:
    """A `ZidCache` in memory: nothing survives the process."""

    def __init__(self, our_zid: bytes | None = None) -> None:
        if our_zid is None:
            our_zid = secrets.token_bytes(ZID_BYTES)
        if len(our_zid) != ZID_BYTES:
            raise LocalProtocolError(f"a ZID is {ZID_BYTES} bytes, got {len(our_zid)}")
        self._zid = our_zid
        self._entries: dict[bytes, CacheEntry] = {}

    @property
    def our_zid(self) -> bytes:
        return self._zid

    def load(self, peer_zid: bytes) -> CacheEntry | None:
        return self._entries.get(peer_zid)

    def store(self, peer_zid: bytes, entry: CacheEntry) -> None:
        self._entries[peer_zid] = entry

    def entries(self) -> dict[bytes, CacheEntry]:
        return dict(self._entries)
