"""The DH and ECDH key agreements of RFC 6189 §5.1.5, with their public-value checks.

DH3k/DH2k: RFC 3526 MODP groups 15/14 with g = 2, on Python integers (`cryptography` marks
finite-field DH deprecated), a secret exponent twice the AES key length, pv 1, 0 and p-1
rejected (§4.4.1.1). EC25/EC38: NIST P-256/P-384 (RFC 5114), pv = x || y, DHResult = x.
X255/X448: RFC 7748 X25519/X448 with the raw little-endian encoding bzrtp uses (32/56 bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MODP_2048 = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a0879"
    "8e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b"
    "0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da4836"
    "1c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804"
    "f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6"
    "955817183995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
    16,
)
MODP_3072 = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a0879"
    "8e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b"
    "0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da4836"
    "1c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804"
    "f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6"
    "955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64"
    "ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d226"
    "1ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2"
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff",
    16,
)
_MODP = {"DH2k": MODP_2048, "DH3k": MODP_3072}
_CURVES: dict[str, ec.EllipticCurve] = {"EC25": ec.SECP256R1(), "EC38": ec.SECP384R1()}
PV_BYTES = {"DH2k": 256, "DH3k": 384, "EC25": 64, "EC38": 96, "X255": 32, "X448": 56}
"""Public value length per key agreement (§5.1.5 Table 5; bzrtp for X255/X448)."""


class BadPublicValueError(Exception):
    """The peer's public value is unacceptable (Error 0x61)."""


@dataclass
class KeyPair:
    """Our side of one key agreement: the public value we send and how to combine."""

    name: str
    public: bytes = field(repr=False)
    _combine: Callable[[bytes], bytes] = field(repr=False)

    def shared(self, peer_public: bytes) -> bytes:
        """The DHResult for the peer's public value; raises `BadPublicValueError`."""
        if len(peer_public) != PV_BYTES[self.name]:
            raise BadPublicValueError(f"{self.name} public value of {len(peer_public)} bytes")
        return self._combine(peer_public)


def generate(name: str, secret_bits: int, random_bytes: Callable[[int], bytes]) -> KeyPair:
    """A fresh key pair for key agreement `name` (a wire name such as "X255")."""
    if name in _MODP:
        return _finite_field(name, secret_bits, random_bytes)
    if name in _CURVES:
        return _nist_curve(name)
    return _montgomery(name, random_bytes)


def _finite_field(name: str, secret_bits: int, random_bytes: Callable[[int], bytes]) -> KeyPair:
    prime = _MODP[name]
    size = PV_BYTES[name]
    exponent = int.from_bytes(random_bytes(secret_bits // 8), "big") | (1 << (secret_bits - 1))
    public = pow(2, exponent, prime).to_bytes(size, "big")

    def combine(peer: bytes) -> bytes:
        value = int.from_bytes(peer, "big")
        if value <= 1 or value >= prime - 1:
            raise BadPublicValueError(f"{name} public value is 0, 1, p-1 or not below p")
        return pow(value, exponent, prime).to_bytes(size, "big")

    return KeyPair(name, public, combine)


def _nist_curve(name: str) -> KeyPair:
    curve = _CURVES[name]
    private = ec.generate_private_key(curve)
    point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def combine(peer: bytes) -> bytes:
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + peer)
            return private.exchange(ec.ECDH(), public)
        except ValueError as exc:
            raise BadPublicValueError(f"{name} public value is not a point of the curve") from exc

    return KeyPair(name, point[1:], combine)


def _montgomery(name: str, random_bytes: Callable[[int], bytes]) -> KeyPair:
    if name == "X255":
        x_private = x25519.X25519PrivateKey.from_private_bytes(random_bytes(32))
        x_public = x_private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

        def x_combine(peer: bytes) -> bytes:
            try:
                return x_private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
            except ValueError as exc:
                raise BadPublicValueError("X255 public value gives an all-zero secret") from exc

        return KeyPair(name, x_public, x_combine)
    if name != "X448":
        raise BadPublicValueError(f"unsupported key agreement {name!r}")
    y_private = x448.X448PrivateKey.from_private_bytes(random_bytes(56))
    y_public = y_private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def y_combine(peer: bytes) -> bytes:
        try:
            return y_private.exchange(x448.X448PublicKey.from_public_bytes(peer))
        except ValueError as exc:
            raise BadPublicValueError("X448 public value gives an all-zero secret") from exc

    return KeyPair(name, y_public, y_combine)
