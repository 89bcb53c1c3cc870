"""ZRTP's hashes, MACs and key derivation (RFC 6189 §4.5.1, §5.1.2).

The negotiated hash ("S256", "S384", or bzrtp's "S512", which RFC 6189 does not list) drives
the KDF, total_hash, s0 and the Confirm MACs; the hash chain H0-H3, the MACs of
Hello/Commit/DHPart and `a=zrtp-hash` always use SHA-256 (§5.1.2.2, the "implicit hash").
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from pidphone.errors import LocalProtocolError

HASHLIB_NAMES = {"S256": "sha256", "S384": "sha384", "S512": "sha512"}
"""hashlib name of each ZRTP hash type."""
_HASH_NAMES = set(HASHLIB_NAMES.values())


def hash_name(algorithm: str) -> str:
    """hashlib name of a ZRTP hash type ("S256" -> "sha256")."""
    return HASHLIB_NAMES[algorithm.strip()]


def digest(data: bytes, hash_name: str = "sha256") -> bytes:
    return hashlib.new(hash_name, data).digest()


def mac(key: bytes, data: bytes, hash_name: str = "sha256") -> bytes:
    """HMAC with the given hash, untruncated."""
    return hmac.new(key, data, hash_name).digest()


def implicit_mac(key: bytes, data: bytes) -> bytes:
    """The 64-bit HMAC-SHA-256 that closes Hello, Commit and DHPart messages (§5.1.2.2)."""
    return hmac.new(key, data, "sha256").digest()[:8]


def kdf(
    key: bytes, label: bytes, context: bytes, length_bits: int, hash_name: str = "sha256"
) -> bytes:
    """KDF(KI, Label, Context, L) = HMAC(KI, i || Label || 0x00 || Context || L), truncated.

    §4.5.1: i = 1 and L (the output length in bits) are 32-bit big-endian.
    """
    if hash_name not in _HASH_NAMES:
        raise LocalProtocolError(f"unsupported KDF hash {hash_name!r}")
    if length_bits <= 0 or length_bits % 8 or length_bits > 8 * hashlib.new(hash_name).digest_size:
        raise LocalProtocolError(f"KDF length {length_bits} bits is not possible")
    message = b"\x00\x00\x00\x01" + label + b"\x00" + context + struct.pack("!I", length_bits)
    return hmac.new(key, message, hash_name).digest()[: length_bits // 8]


def aes_cfb(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    """AES in full-block CFB mode with a 128-bit IV, for the Confirm messages (§5.7)."""
    cipher = Cipher(algorithms.AES(key), CFB(iv))
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(data) + context.finalize()
