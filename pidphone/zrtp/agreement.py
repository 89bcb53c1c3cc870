"""The key agreement of one DH-mode exchange, whatever makes its shared secret (RFC 6189 §4.4.1).

The exchange needs four things of it: what our Commit carries beyond hvi, the value our
DHPart carries, the shared secret once the peer's DHPart came, and to forget its private part.

- `DhAgreement`: the finite-field and elliptic-curve groups of keyagreement.py. Both DHParts
  carry a public value, the Commit nothing more, and the secret is DHResult.
- A KEM key agreement (MLK2, MLK3, X3M3: bzrtp 5.5's post-quantum ones, kem.py) runs the same
  messages with other contents. `KemInitiator` is made with our Commit, which carries its
  public key; its DHPart2 carries a 16-byte random nonce (which hvi commits to, as in DH mode);
  the responder's ciphertext in DHPart1 decapsulates to the secret. `KemResponder` is made from
  the peer's Commit: it encapsulates to that public key, its DHPart1 carries the ciphertext,
  and the secret is what the encapsulation made. The secret takes DHResult's place in s0.

A value that cannot be one (wrong size, a key ML-KEM's check refuses, an X448 value giving the
all-zero secret) raises `keyagreement.BadPublicValueError`: the exchange fails with Error 0x61.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp import kem
from pidphone.zrtp.kdf import hash_name
from pidphone.zrtp.keyagreement import BadPublicValueError, KeyPair, generate

RandomBytes = Callable[[int], bytes]


class KeyAgreement(Protocol):
    """Our side of one DH-mode key agreement."""

    @property
    def commit_value(self) -> bytes:
        """What our Commit carries after hvi: a KEM's public key, else nothing."""
        ...

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

    commit_value = b""

    def __init__(self, suite: alg.Suite, random_bytes: RandomBytes) -> None:
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


def _unpadded(value: bytes, length: int, what: str) -> bytes:
    """A KEM value as the wire carries it: `length` bytes zero-padded to a multiple of 4."""
    if len(value) != kem.wire_length(length) or any(value[length:]):
        raise BadPublicValueError(f"{what} of {len(value)} bytes")
    return value[:length]


class KemInitiator:
    """The initiator's KEM side: a key pair for the Commit, a nonce for DHPart2."""

    def __init__(self, suite: alg.Suite, random_bytes: RandomBytes) -> None:
        self.scheme = kem.scheme(suite.key_agreement)
        self._pair: kem.KemKeyPair | None = kem.generate(
            self.scheme.name, hash_name(suite.hash), random_bytes
        )
        self.commit_value = self._pair.public + bytes(
            kem.wire_length(len(self._pair.public)) - len(self._pair.public)
        )
        self.value = random_bytes(kem.DHPART2_NONCE_BYTES)

    def secret(self, peer_value: bytes) -> bytes:
        """Decapsulate DHPart1's ciphertext."""
        if self._pair is None:
            raise LocalProtocolError("this key agreement has been forgotten")
        ciphertext = _unpadded(peer_value, self.scheme.ciphertext_bytes, "KEM ciphertext")
        try:
            return self._pair.decapsulate(ciphertext)
        except kem.BadKemValueError as exc:
            raise BadPublicValueError(str(exc)) from None

    def forget(self) -> None:
        if self._pair is not None:
            self._pair.forget()
        self._pair = None


class KemResponder:
    """The responder's KEM side: the ciphertext for DHPart1, encapsulated at once to the key
    the peer's Commit carries (anew for each Commit answered)."""

    commit_value = b""

    def __init__(
        self,
        suite: alg.Suite,
        public_key: bytes,
        random_bytes: RandomBytes,
        encapsulate_mlkem: kem.MlKemEncapsulate,
    ) -> None:
        scheme = kem.scheme(suite.key_agreement)
        key = _unpadded(public_key, scheme.public_key_bytes, "KEM public key")
        try:
            secret, ciphertext = kem.encapsulate(
                scheme.name, key, hash_name(suite.hash), random_bytes, encapsulate_mlkem
            )
        except kem.BadKemValueError as exc:
            raise BadPublicValueError(str(exc)) from None
        self._secret: bytes | None = secret
        self.value = ciphertext + bytes(kem.wire_length(len(ciphertext)) - len(ciphertext))

    def secret(self, peer_value: bytes) -> bytes:
        """The encapsulated secret, once DHPart2 carries a nonce of the right size."""
        if len(peer_value) != kem.DHPART2_NONCE_BYTES:
            raise BadPublicValueError(f"KEM DHPart2 nonce of {len(peer_value)} bytes")
        if self._secret is None:
            raise LocalProtocolError("this key agreement has been forgotten")
        return self._secret

    def forget(self) -> None:
        self._secret = None


def is_kem(key_agreement: str) -> bool:
    """Whether a key agreement runs in KEM mode (a public key in the Commit)."""
    return key_agreement in kem.SCHEMES


def initiate(suite: alg.Suite, random_bytes: RandomBytes) -> KeyAgreement:
    """The initiator's agreement, made with its Commit (hvi commits to our DHPart2, and a KEM
    Commit carries the public key)."""
    if is_kem(suite.key_agreement):
        return KemInitiator(suite, random_bytes)
    return DhAgreement(suite, random_bytes)


def respond(
    suite: alg.Suite,
    random_bytes: RandomBytes,
    own: KeyAgreement | None,
    public_key: bytes,
    encapsulate_mlkem: kem.MlKemEncapsulate = kem.mlkem_encapsulate,
) -> KeyAgreement:
    """The responder's agreement for the peer's Commit, which chose `suite` and, for a KEM,
    carries `public_key`. Raises `BadPublicValueError` for a public key that cannot be one.

    A DH key pair made for our own Commit, which lost the §4.2 contention, serves again when
    that Commit chose the same group and cipher. A KEM always encapsulates afresh to the
    winning Commit's key, and our own key pair (if any) is dropped.
    """
    if isinstance(own, DhAgreement) and own.fits(suite):
        return own
    if own is not None:
        own.forget()
    if is_kem(suite.key_agreement):
        return KemResponder(suite, public_key, random_bytes, encapsulate_mlkem)
    return DhAgreement(suite, random_bytes)
