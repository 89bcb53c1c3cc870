"""Retained secrets and the SAS-verified flag: the cache rules of RFC 6189 §4.3, §4.6.1, §7.1.

Each DHPart names our rs1 and rs2 by an 8-byte ID (a MAC of a role label, or random when we
have none); the secret whose ID the peer's DHPart names becomes s1 in s0 (§4.3.1). A peer
whose ZID is cached but names none of our secrets is a cache mismatch (§4.6.1.1): perhaps a
man in the middle, so the new secret waits in the entry (`pending_rs1`) until the user
confirms the SAS, in the call or later with `pidphone zid verify`. Otherwise, once secure,
rs2 <- rs1 and rs1 <- the exchange's new retained secret (§4.6.1).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable

from pidphone.zrtp.cache import CacheEntry, ZidCache, confirmed, rejected
from pidphone.zrtp.kdf import mac
from pidphone.zrtp.messages import DHPart1, DHPart2


class RetainedSecrets:
    """The cache entry of one peer, read and written as one exchange with it goes on."""

    def __init__(self, cache: ZidCache, random_bytes: Callable[[int], bytes]) -> None:
        self._cache = cache
        self._random = random_bytes
        self._before: CacheEntry | None = None
        """The peer's entry as the key agreement found it."""
        self.matched = False
        """One of our secrets matched one of the peer's IDs."""
        self.mismatch = False
        """§4.6.1.1: the peer is cached, yet none of its IDs named our rs1 or rs2."""

    def ids(self, peer_zid: bytes, label: str, hname: str) -> tuple[bytes, bytes]:
        """rs1ID and rs2ID for our DHPart (§4.3.1): MAC(rs, role label), or random."""
        entry = self._cache.load(peer_zid)

        def secret_id(secret: bytes | None) -> bytes:
            if secret is None:
                return self._random(8)
            return mac(secret, label.encode(), hname)[:8]

        rs1_id = secret_id(entry.rs1 if entry else None)
        return rs1_id, secret_id(entry.rs2 if entry else None)

    def match(self, peer_zid: bytes, part: DHPart1 | DHPart2, label: bytes, hname: str) -> bytes:
        """s1: which of our rs1/rs2 matches the peer's rs1/rs2 IDs (§4.3.1), or b"" if none."""
        entry = self._cache.load(peer_zid)
        self._before = entry
        ours = [s for s in ((entry.rs1, entry.rs2) if entry else ()) if s is not None]
        for theirs in (part.rs1_id, part.rs2_id):
            for secret in ours:
                if hmac.compare_digest(mac(secret, label, hname)[:8], theirs):
                    self.matched = True
                    return secret
        self.mismatch = bool(entry and entry.rs1 is not None)
        return b""

    def verified(self, peer_zid: bytes) -> bool:
        """The V flag our Confirm carries (§7.1): set, and the cached secret still matches."""
        entry = self._cache.load(peer_zid)
        return bool(entry and entry.verified and not self.mismatch)

    def update(
        self, peer_zid: bytes, new_rs1: bytes | None, *, peer_expiry: int, peer_verified: bool
    ) -> bool:
        """§4.6.1 once secure: rs2 <- rs1, rs1 <- new, postponed on a mismatch; nothing new
        kept if the peer's Confirm said its cache expires at once (0). Returns whether the
        SAS counts as verified (ours and the peer's V)."""
        before = self._before
        if self.mismatch:
            pending = None if peer_expiry == 0 else new_rs1
            postponed = dataclasses.replace(
                before or CacheEntry(), verified=False, mismatch=True, pending_rs1=pending
            )
            self._cache.store(peer_zid, postponed)
            return False
        verified = bool(before and before.verified and self.matched)
        if peer_expiry == 0 or new_rs1 is None:
            return verified and peer_verified
        base = before or CacheEntry()
        self._cache.store(
            peer_zid,
            dataclasses.replace(
                base, rs1=new_rs1, rs2=base.rs1, verified=verified, mismatch=False, pending_rs1=None
            ),
        )
        return verified and peer_verified

    def confirm_sas(self, peer_zid: bytes, verified: bool) -> None:
        """The user compared the SAS (True) or found it different (False): §7.1.

        True sets V and, after a cache mismatch, makes the postponed rs1 update (§4.6.1.1).
        False clears V and erases the retained secrets kept for this peer (§7.1: a SAS that
        differs means a man in the middle who, on a later call, must also have known the
        cached secret, so neither this call's nor an older one is worth keeping); the peer's
        name stays.
        """
        entry = self._cache.load(peer_zid) or CacheEntry()
        self._cache.store(peer_zid, confirmed(entry) if verified else rejected(entry))

    def forget(self) -> None:
        """Nothing held in memory: a postponed secret waits in the cache entry, for the user
        to confirm the SAS later (`pidphone zid verify`)."""
