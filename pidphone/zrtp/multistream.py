"""Multistream mode (RFC 6189 §4.4.3): a further stream keyed from the call's first one.

A Multistream stream runs no key agreement: its Commit carries a nonce, no DHParts follow, and
s0 comes from the first stream's ZRTPSess key. It shows the first stream's SAS and verified
flag, and a SAS confirmation goes to the first stream (which holds the cache entry). All it may
ask of the first stream is `FirstStream`: nothing else of that session is reachable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.events import Secured
from pidphone.zrtp.keys import ExchangeKeys, derive, kdf_context, multistream_s0
from pidphone.zrtp.state import FailError

if TYPE_CHECKING:
    from pidphone.zrtp.exchange import Exchange


class FirstStream(Protocol):
    """What a Multistream stream needs of the call's first, DH-mode stream."""

    @property
    def peer_zid(self) -> bytes | None:
        """The peer's ZID: a Multistream Hello from another ZID is refused (§5.9 0x40)."""
        ...

    @property
    def suite(self) -> alg.Suite | None:
        """The first stream's algorithms: a Multistream Commit keeps them but the key agreement."""
        ...

    @property
    def session_key(self) -> bytes | None:
        """ZRTPSess (§4.5.2) while the first stream is secured and open, else None."""
        ...

    @property
    def secured(self) -> Secured | None:
        """The first stream's result: its SAS, verified flag and cache mismatch are the call's."""
        ...

    def take_multistream_nonce(self, nonce: bytes) -> bool:
        """A Multistream Commit's nonce, once: False if one of the call's streams took it
        before (§4.4.3.1, Error 0x80)."""
        ...

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS (§7.1): the first stream keeps the cache entry."""
        ...


def multistream_keys(ex: Exchange) -> ExchangeKeys:
    """§4.4.3: s0 from the first stream's ZRTPSess, total_hash over Hello and Commit."""
    first, suite = ex.first_stream, ex.suite
    if first is None or suite is None:
        raise FailError(0x20, "Multistream keys without a first stream or a suite")
    session_key = first.session_key
    if session_key is None:
        raise FailError(0x20, "the first stream lost its session key")
    zid_i, zid_r = ex.zids()
    context = kdf_context(zid_i, zid_r, ex.responder_hello() + ex.commit_raw, suite)
    return derive(multistream_s0(session_key, context, suite), context, suite, dh_mode=False)
