"""The key agreement of one DH-mode exchange, whatever makes its shared secret (RFC 6189 §4.4.1).

The exchange needs three things of it: the value our DHPart carries, the shared secret once
the peer's DHPart came, and to forget its private part. `DhAgreement` does them for the
finite-field and elliptic-curve groups of keyagreement.py: both DHParts carry a public value
and the secret is DHResult. A KEM key agreement (issue 16, kem.py) takes the same place: the
initiator's agreement is made with its Commit, which then also carries the public key, and its
`value` is DHPart2's nonce; the responder's agreement is made from the peer's Commit (`respond`
will get it), encapsulating to that key, and its `value` is DHPart1's ciphertext; `secret`
decapsulates (initiator) or gives what the encapsulation made (responder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.keyagreement import KeyPair, generate


class KeyAgreement(Protocol):
    """Our side of one DH-mode key agreement."""

    @property
    def value(self) -> bytes:
        """What our DHPart carries."""
        ...

    def secret(self, peer_value: bytes) -> bytes:
        """The shared secret for what the peer's DHPart carries; raises
        `keyagreement.BadPublicValueError` for a value that cannot be one (Error 0x61)."""
        ...

    def forget(self) -> None:
        """Drop the private part: the secret is made, or the exchange ended."""
        ...


class DhAgreement:
    """DH3k, DH2k, EC25, EC38, X255, X448: a key pair; DHResult from the peer's public value."""

    def __init__(self, suite: alg.Suite, random_bytes: Callable[[int], bytes]) -> None:
        self.suite = suite
        # §4.4.1: a secret exponent twice as long as the AES key (finite-field groups)
        pair = generate(suite.key_agreement, 16 * alg.CIPHER_KEY_BYTES[suite.cipher], random_bytes)
        self._pair: KeyPair | None = pair
        self.value = pair.public

    def secret(self, peer_value: bytes) -> bytes:
        if self._pair is None:
            raise LocalProtocolError("this key agreement has been forgotten")
        return self._pair.shared(peer_value)

    def forget(self) -> None:
        self._pair = None

    def fits(self, suite: alg.Suite) -> bool:
        """Whether the key pair serves `suite` too (same group, same exponent size)."""
        return (suite.key_agreement, suite.cipher) == (
            self.suite.key_agreement,
            self.suite.cipher,
        )


def initiate(suite: alg.Suite, random_bytes: Callable[[int], bytes]) -> KeyAgreement:
    """The initiator's agreement, made with its Commit (hvi commits to our DHPart2)."""
    return DhAgreement(suite, random_bytes)


def respond(
    suite: alg.Suite, random_bytes: Callable[[int], bytes], own: KeyAgreement | None
) -> KeyAgreement:
    """The responder's agreement for the peer's Commit, which chose `suite` (a KEM will need
    the Commit itself, to encapsulate to its public key).

    A DH key pair made for our own Commit, which lost the §4.2 contention, serves again when
    that Commit chose the same group and cipher.
    """
    if isinstance(own, DhAgreement) and own.fits(suite):
        return own
    return DhAgreement(suite, random_bytes)
