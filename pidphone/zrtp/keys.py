"""Key derivation (RFC 6189 §4.4.1.4, §4.4.3.2, §4.5): s0, and every key made from it.

s0 comes from the key agreement's shared secret (DHResult, or a KEM's secret: issue 16) with
the matched retained secret s1, or in Multistream mode from the first stream's ZRTPSess. The
KDF context is ZIDi || ZIDr || total_hash, total_hash being the hash of the messages that led
there (DH mode: responder's Hello, Commit, DHPart1, DHPart2; Multistream: responder's Hello,
Commit). Everything then comes from s0 through the KDF (§4.5.3).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field

from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.kdf import digest, hash_name, kdf


@dataclass
class ExchangeKeys:
    """Everything derived from s0 (§4.5.2, §4.5.3); dropped once no longer needed."""

    srtp_key_i: bytes = field(repr=False)
    srtp_salt_i: bytes = field(repr=False)
    srtp_key_r: bytes = field(repr=False)
    srtp_salt_r: bytes = field(repr=False)
    mac_key_i: bytes = field(repr=False)
    mac_key_r: bytes = field(repr=False)
    zrtp_key_i: bytes = field(repr=False)
    zrtp_key_r: bytes = field(repr=False)
    sashash: bytes = field(repr=False)
    zrtp_sess: bytes = field(repr=False)
    exported_key: bytes = field(repr=False)
    new_rs1: bytes | None = field(repr=False)

    def after_secure(self) -> ExchangeKeys:
        """§4.6.1/§4.5: what only the exchange needed goes; the MAC keys stay for GoClear
        and SASrelay, ZRTPSess for Multistream, ExportedKey for its users."""
        return dataclasses.replace(
            self,
            srtp_key_i=b"",
            srtp_salt_i=b"",
            srtp_key_r=b"",
            srtp_salt_r=b"",
            zrtp_key_i=b"",
            zrtp_key_r=b"",
            sashash=b"",
            new_rs1=None,
        )


def kdf_context(zid_i: bytes, zid_r: bytes, transcript: bytes, suite: alg.Suite) -> bytes:
    """KDF_Context = ZIDi || ZIDr || total_hash, the hash of `transcript` (§4.4.1.4)."""
    return zid_i + zid_r + digest(transcript, hash_name(suite.hash))


def shared_secret_s0(secret: bytes, context: bytes, s1: bytes, suite: alg.Suite) -> bytes:
    """§4.4.1.4: s0 = hash(counter || DHResult || "ZRTP-HMAC-KDF" || ZIDi || ZIDr ||
    total_hash || len(s1) || s1 || len(s2) || s2 || len(s3) || s3), with s2 and s3 empty."""
    s1_field = struct.pack("!I", len(s1)) + s1 if s1 else b"\x00\x00\x00\x00"
    return digest(
        b"\x00\x00\x00\x01"
        + secret
        + b"ZRTP-HMAC-KDF"
        + context
        + s1_field
        + b"\x00\x00\x00\x00" * 2,
        hash_name(suite.hash),
    )


def multistream_s0(session_key: bytes, context: bytes, suite: alg.Suite) -> bytes:
    """§4.4.3.2: s0 = KDF(ZRTPSess, "ZRTP MSK", KDF_Context, negotiated hash length)."""
    return kdf(session_key, b"ZRTP MSK", context, 8 * len(session_key), hash_name(suite.hash))


def derive(s0: bytes, context: bytes, suite: alg.Suite, *, dh_mode: bool) -> ExchangeKeys:
    """Every key of §4.5.3 (the retained secret only in DH mode, §4.6.1)."""
    hname = hash_name(suite.hash)
    hash_bits = 8 * len(s0)
    key_bits = 8 * alg.CIPHER_KEY_BYTES[suite.cipher]
    salt_bits = 96 if suite.aead else 112  # RFC 7714's salt under bzrtp's "GCM " tag

    def key(label: str, bits: int) -> bytes:
        return kdf(s0, label.encode(), context, bits, hname)

    return ExchangeKeys(
        srtp_key_i=key("Initiator SRTP master key", key_bits),
        srtp_salt_i=key("Initiator SRTP master salt", salt_bits),
        srtp_key_r=key("Responder SRTP master key", key_bits),
        srtp_salt_r=key("Responder SRTP master salt", salt_bits),
        mac_key_i=key("Initiator HMAC key", hash_bits),
        mac_key_r=key("Responder HMAC key", hash_bits),
        zrtp_key_i=key("Initiator ZRTP key", key_bits),
        zrtp_key_r=key("Responder ZRTP key", key_bits),
        sashash=key("SAS", 256),
        zrtp_sess=key("ZRTP Session Key", hash_bits),
        exported_key=key("Exported key", hash_bits),
        new_rs1=key("retained secret", 256) if dh_mode else None,
    )
