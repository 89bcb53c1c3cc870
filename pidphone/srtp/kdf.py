"""SRTP key derivation (RFC 3711 §4.3) with the AES-CM PRF, key derivation rate 0.

RFC 6188 §4 keeps the same construction for AES-256: the PRF is AES-256 in counter mode and the
session encryption key is 256 bits long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pidphone.srtp.profiles import AUTH_KEY_LEN, SALT_LEN

LABEL_RTP_ENCRYPTION = 0x00
LABEL_RTP_AUTH = 0x01
LABEL_RTP_SALT = 0x02
LABEL_RTCP_ENCRYPTION = 0x03
LABEL_RTCP_AUTH = 0x04
LABEL_RTCP_SALT = 0x05


@dataclass(frozen=True)
class SessionKeys:
    """The three session keys of one stream kind (SRTP or SRTCP)."""

    encryption: bytes = field(repr=False)
    auth: bytes = field(repr=False)
    salt: bytes = field(repr=False)


def prf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """PRF_n(k_master, x) with x = (label || r) XOR master_salt and r = 0 (§4.3.1, §4.3.3)."""
    x = int.from_bytes(master_salt, "big") ^ (label << 48)
    iv = x << 16
    blocks = (length + 15) // 16
    counters = b"".join((iv | j).to_bytes(16, "big") for j in range(blocks))
    ecb = Cipher(algorithms.AES(master_key), modes.ECB()).encryptor()  # noqa: S305
    return ecb.update(counters)[:length]


def derive_session_keys(master_key: bytes, master_salt: bytes, *, rtcp: bool) -> SessionKeys:
    """Session keys for SRTP (labels 0-2) or SRTCP (labels 3-5, §4.3.2)."""
    if rtcp:
        labels = (LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)
    else:
        labels = (LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT)
    encryption, auth, salt = labels
    return SessionKeys(
        encryption=prf(master_key, master_salt, encryption, len(master_key)),
        auth=prf(master_key, master_salt, auth, AUTH_KEY_LEN),
        salt=prf(master_key, master_salt, salt, SALT_LEN),
    )
