"""Key encapsulation for ZRTP's post-quantum key agreements, as Linphone's bzrtp 5.5 does them.

No RFC covers these yet; bzrtp (with its postquantumcryptoengine) is the implementation that
ships, so its code is the reference. In KEM mode the initiator's Commit carries a public key
(made when the Commit is made), the responder's DHPart1 carries a ciphertext encapsulated to
it, and the KEM shared secret takes the place of DHResult in s0.

- MLK2, MLK3: ML-KEM-768 and ML-KEM-1024 (FIPS 203) alone; the secret is ML-KEM's 32 bytes.
- X3M3: X448 used as a KEM, then ML-KEM-1024, joined by a combiner: public key = X448 public
  key (56) || ML-KEM-1024 public key (1568), ciphertext = X448 ephemeral public key (56) ||
  ML-KEM-1024 ciphertext (1568), secret = one hash length (64 bytes with S512).
- X1M1 and MLK1 need ML-KEM-512, which `cryptography` does not have: they are absent.

ECDH as a KEM follows RFC 9180's DHKEM with "ZRTP" labels (bzrtp's `secretDerivation`):
HKDF with the negotiated hash, an empty salt, ikm = "ZRTPKEM" || I2OSP(id, 2) || "eae_prk" ||
DH(sk, pk) and info = I2OSP(L, 2) || "ZRTP-v1.1KEM" || I2OSP(id, 2) || "shared_secret" || ct || pk,
with id 0x20 (X25519, L = 32) or 0x21 (X448, L = 56); pk is the recipient's public key.
The combiner is a nested dual PRF: T = HMAC(key = empty, ss1); T = HMAC(T, ss2);
secret = HMAC(T, ct1 || ct2), each HMAC with the negotiated hash.

Randomness comes in through `random_bytes`, so a run can be made deterministic (replays):
X448/X25519 private keys and the 64-byte ML-KEM seed (d || z) are drawn from it. ML-KEM
*encapsulation* draws its message inside `cryptography`, which offers no derandomized form
(FIPS 203 ML-KEM.Encaps_internal); a replay supplies the recorded result
instead (`encapsulate_mlkem`). All ML-KEM and X448 arithmetic is `cryptography`'s.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, x448, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pidphone.errors import LocalProtocolError

RandomBytes = Callable[[int], bytes]
MlKemEncapsulate = Callable[[str, bytes], tuple[bytes, bytes]]
"""(ML-KEM variant "ML-KEM-768"/"ML-KEM-1024", public key) -> (shared secret, ciphertext)."""

MLKEM_SEED_BYTES = 64
MLKEM_SECRET_BYTES = 32
DHPART2_NONCE_BYTES = 16
"""DHPart2 carries a 16-byte nonce in KEM mode (bzrtp's ZRTP_KEMPART2_NONCE_SIZE)."""

ECDH_KEM_IDS = {"X25519": 0x20, "X448": 0x21}
"""RFC 9180 §7.1 KEM ids of DHKEM(X25519) and DHKEM(X448), as bzrtp uses them."""
_ECDH_SIZES = {"X25519": 32, "X448": 56}
_MLKEM_SIZES = {"ML-KEM-768": (1184, 1088), "ML-KEM-1024": (1568, 1568)}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class BadKemValueError(Exception):
    """A peer's public key or ciphertext is unacceptable (the exchange fails, Error 0x61)."""


@dataclass(frozen=True)
class KemScheme:
    """One ZRTP KEM key agreement: its parts in wire order and its sizes in bytes."""

    name: str
    parts: tuple[str, ...]
    """"X448", "X25519", "ML-KEM-768", "ML-KEM-1024", in the order of the wire layouts."""

    @property
    def public_key_bytes(self) -> int:
        return sum(_part_sizes(part)[0] for part in self.parts)

    @property
    def ciphertext_bytes(self) -> int:
        return sum(_part_sizes(part)[1] for part in self.parts)

    @property
    def hybrid(self) -> bool:
        return len(self.parts) > 1

    def secret_bytes(self, hash_name: str) -> int:
        """Length of the shared secret (DHResult in s0) under the negotiated hash."""
        return _hash(hash_name).digest_size if self.hybrid else MLKEM_SECRET_BYTES


def _part_sizes(part: str) -> tuple[int, int]:
    """(public key, ciphertext) sizes of one component."""
    if part in _ECDH_SIZES:
        return _ECDH_SIZES[part], _ECDH_SIZES[part]
    return _MLKEM_SIZES[part]


SCHEMES: dict[str, KemScheme] = {
    scheme.name: scheme
    for scheme in (
        KemScheme("MLK2", ("ML-KEM-768",)),
        KemScheme("MLK3", ("ML-KEM-1024",)),
        KemScheme("X3M3", ("X448", "ML-KEM-1024")),
    )
}
"""The KEM key agreements `cryptography` makes possible (wire name -> scheme)."""


def wire_length(length: int) -> int:
    """A public key or ciphertext on the wire: zero-padded to a multiple of 4 bytes (bzrtp)."""
    return length + (-length % 4)


def scheme(name: str) -> KemScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise LocalProtocolError(
            f"no KEM key agreement {name!r}; known: {', '.join(SCHEMES)}"
        ) from None


def _hash(hash_name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[hash_name]()
    except KeyError:
        raise LocalProtocolError(f"unsupported KEM hash {hash_name!r}") from None


def mlkem_available() -> bool:
    """Whether this `cryptography` build has ML-KEM (its OpenSSL must have it too)."""
    try:
        mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(MLKEM_SEED_BYTES))
    except UnsupportedAlgorithm:
        return False
    return True


# -- ECDH as a KEM (postquantumcryptoengine src/crypto.cc, RFC 9180 §4.1 with ZRTP labels) ----


def _ecdh_public(curve: str, private: bytes) -> bytes:
    if curve == "X448":
        return x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def _ecdh(curve: str, private: bytes, public: bytes) -> bytes:
    if len(public) != _ECDH_SIZES[curve]:
        raise BadKemValueError(f"{curve} public value of {len(public)} bytes")
    try:
        if curve == "X448":
            return x448.X448PrivateKey.from_private_bytes(private).exchange(
                x448.X448PublicKey.from_public_bytes(public)
            )
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(public)
        )
    except ValueError as exc:
        raise BadKemValueError(f"{curve} public value gives an all-zero secret") from exc


def ecdh_kem_secret(
    curve: str, dh: bytes, ciphertext: bytes, public_key: bytes, hash_name: str
) -> bytes:
    """The DHKEM shared secret from a raw ECDH result (HKDF, empty salt, ZRTP labels)."""
    kem_id = struct.pack("!H", ECDH_KEM_IDS[curve])
    size = _ECDH_SIZES[curve]
    ikm = b"ZRTPKEM" + kem_id + b"eae_prk" + dh
    info = (
        struct.pack("!H", size)
        + b"ZRTP-v1.1KEM"
        + kem_id
        + b"shared_secret"
        + ciphertext
        + public_key
    )
    return HKDF(algorithm=_hash(hash_name), length=size, salt=b"", info=info).derive(ikm)


def ecdh_kem_encapsulate(
    curve: str, public_key: bytes, hash_name: str, random_bytes: RandomBytes
) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext): an ephemeral key pair's public key is the ciphertext."""
    ephemeral = random_bytes(_ECDH_SIZES[curve])
    ciphertext = _ecdh_public(curve, ephemeral)
    dh = _ecdh(curve, ephemeral, public_key)
    return ecdh_kem_secret(curve, dh, ciphertext, public_key, hash_name), ciphertext


def ecdh_kem_decapsulate(curve: str, private: bytes, ciphertext: bytes, hash_name: str) -> bytes:
    """The shared secret for a ciphertext (the sender's ephemeral public key)."""
    dh = _ecdh(curve, private, ciphertext)
    return ecdh_kem_secret(curve, dh, ciphertext, _ecdh_public(curve, private), hash_name)


# -- the hybrid combiner (postquantumcryptoengine nestedDualPrf) ------------------------------


def combine(secrets: Sequence[bytes], ciphertexts: Sequence[bytes], hash_name: str) -> bytes:
    """T = HMAC(empty, ss1); T = HMAC(T, ss2) ...; secret = HMAC(T, ct1 || ct2 || ...)."""
    _hash(hash_name)
    chain = b""
    for item in (*secrets, b"".join(ciphertexts)):
        chain = hmac.new(chain, item, hash_name).digest()
    return chain


# -- ML-KEM (cryptography) --------------------------------------------------------------------


def _mlkem_private(
    variant: str, seed: bytes
) -> mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey:
    if variant == "ML-KEM-768":
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed)


def mlkem_encapsulate(variant: str, public_key: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) with `cryptography`'s own randomness."""
    try:
        if variant == "ML-KEM-768":
            return mlkem.MLKEM768PublicKey.from_public_bytes(public_key).encapsulate()
        return mlkem.MLKEM1024PublicKey.from_public_bytes(public_key).encapsulate()
    except ValueError as exc:
        raise BadKemValueError(f"{variant} public key rejected: {exc}") from exc


# -- the three ZRTP schemes -------------------------------------------------------------------


@dataclass
class KemKeyPair:
    """The initiator's side: the public key for the Commit and how to open DHPart1's ciphertext.

    Keeps only what it needs (the ECDH private key, the ML-KEM key object); `forget()` drops
    them once s0 is computed.
    """

    name: str
    hash_name: str
    public: bytes = field(repr=False)
    _ecdh_private: bytes | None = field(default=None, repr=False)
    _mlkem: mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | None = field(
        default=None, repr=False
    )

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The shared secret for the responder's ciphertext; raises `BadKemValueError`."""
        kem = scheme(self.name)
        if len(ciphertext) != kem.ciphertext_bytes:
            raise BadKemValueError(f"{self.name} ciphertext of {len(ciphertext)} bytes")
        if self._mlkem is None:
            raise LocalProtocolError("this KEM key pair has been forgotten")
        secrets: list[bytes] = []
        pieces: list[bytes] = []
        offset = 0
        for part in kem.parts:
            size = _part_sizes(part)[1]
            piece = ciphertext[offset : offset + size]
            offset += size
            pieces.append(piece)
            if part in _ECDH_SIZES and self._ecdh_private is not None:
                secrets.append(
                    ecdh_kem_decapsulate(part, self._ecdh_private, piece, self.hash_name)
                )
            else:
                # ML-KEM decapsulation never fails: a bad ciphertext gives an unrelated secret
                secrets.append(self._mlkem.decapsulate(piece))
        if not kem.hybrid:
            return secrets[0]
        return combine(secrets, pieces, self.hash_name)

    def forget(self) -> None:
        self._ecdh_private = None
        self._mlkem = None


def generate(name: str, hash_name: str, random_bytes: RandomBytes) -> KemKeyPair:
    """A fresh key pair for KEM key agreement `name` ("MLK2", "MLK3", "X3M3")."""
    kem = scheme(name)
    _hash(hash_name)
    publics: list[bytes] = []
    ecdh_private: bytes | None = None
    mlkem_private: mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | None = None
    for part in kem.parts:
        if part in _ECDH_SIZES:
            ecdh_private = random_bytes(_ECDH_SIZES[part])
            publics.append(_ecdh_public(part, ecdh_private))
        else:
            mlkem_private = _mlkem_private(part, random_bytes(MLKEM_SEED_BYTES))
            publics.append(mlkem_private.public_key().public_bytes_raw())
    return KemKeyPair(name, hash_name, b"".join(publics), ecdh_private, mlkem_private)


def encapsulate(
    name: str,
    public_key: bytes,
    hash_name: str,
    random_bytes: RandomBytes,
    encapsulate_mlkem: MlKemEncapsulate = mlkem_encapsulate,
) -> tuple[bytes, bytes]:
    """The responder's side: (shared secret, ciphertext) for the Commit's public key.

    Raises `BadKemValueError` for a public key of the wrong size or one ML-KEM rejects (its
    encapsulation key check, FIPS 203 §7.2).
    """
    kem = scheme(name)
    _hash(hash_name)
    if len(public_key) != kem.public_key_bytes:
        raise BadKemValueError(f"{name} public key of {len(public_key)} bytes")
    secrets: list[bytes] = []
    pieces: list[bytes] = []
    offset = 0
    for part in kem.parts:
        size = _part_sizes(part)[0]
        piece = public_key[offset : offset + size]
        offset += size
        if part in _ECDH_SIZES:
            secret, ciphertext = ecdh_kem_encapsulate(part, piece, hash_name, random_bytes)
        else:
            secret, ciphertext = encapsulate_mlkem(part, piece)
        secrets.append(secret)
        pieces.append(ciphertext)
    if not kem.hybrid:
        return secrets[0], pieces[0]
    return combine(secrets, pieces, hash_name), b"".join(pieces)
