"""SRTP against published vectors: RFC 3711 Appendix B, RFC 6188 §7, libsrtp's srtp_driver.c."""

from __future__ import annotations

import pytest

from pidphone.errors import LocalProtocolError, ParseError
from pidphone.srtp import PROFILES, SrtpContext, SrtpError, profile_for
from pidphone.srtp.context import _Crypto
from pidphone.srtp.kdf import SessionKeys, derive_session_keys

H = bytes.fromhex

# libsrtp test/srtp_driver.c: test_key (46 bytes); AES-128 uses key[:16] + salt key[16:30],
# AES-256 uses key[:32] + salt key[32:46].
LIBSRTP_TEST_KEY = H(
    "e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6c173c317f2dabe357793b6960b3aabe6"
)
RTP_PLAIN = H("800f1234decafbadcafebabe" + "ab" * 16)
RTCP_PLAIN = H("81c8000bcafebabe" + "ab" * 16)


def keystream(key: bytes, salt_iv: int, length: int) -> bytes:
    crypto = _Crypto(SessionKeys(key, bytes(20), bytes(14)), 10)
    return crypto.xor(salt_iv, bytes(length))


def test_rfc3711_b2_aes128_keystream() -> None:
    iv = int.from_bytes(H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big")
    ks = keystream(H("2B7E151628AED2A6ABF7158809CF4F3C"), iv, 65282 * 16)
    assert ks[:48] == H(
        "E03EAD0935C95E80E166B16DD92B4EB4"
        "D23513162B02D0F72A43A2FE4A5F97AB"
        "41E95B3BB0A2E8DD477901E4FCA894C0"
    )
    assert ks[-48:] == H(
        "EC8CDF7398607CB0F2D21675EA9EA1E4"
        "362B7C3C6773516318A077D7FC5073AE"
        "6A2CC3787889374FBEB4C81B17BA6C44"
    )


def test_rfc6188_7_1_aes256_keystream() -> None:
    iv = int.from_bytes(H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big")
    key = H("57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98")
    ks = keystream(key, iv, 65282 * 16)
    assert ks[:48] == H(
        "92bdd28a93c3f52511c677d08b5515a4"
        "9da71b2378a854f67050756ded165bac"
        "63c4868b7096d88421b563b8c94c9a31"
    )
    assert ks[-48:] == H(
        "cea518c90fd91ced9cbb18c078a547113dbc4814f4da5f00a08772b63c6a046d"
        "6eb246913062a16891433e97dd01a57f"
    )


def test_keystream_of_odd_lengths_is_a_prefix() -> None:
    key = H("2B7E151628AED2A6ABF7158809CF4F3C")
    full = keystream(key, 0xF0 << 120, 64)
    for n in (1, 15, 16, 17, 33, 63):
        assert keystream(key, 0xF0 << 120, n) == full[:n]


def test_rfc3711_b3_key_derivation() -> None:
    keys = derive_session_keys(
        H("E1F97A0D3E018BE0D64FA32C06DE4139"), H("0EC675AD498AFEEBB6960B3AABE6"), rtcp=False
    )
    assert keys.encryption == H("C61E7A93744F39EE10734AFE3FF7A087")
    assert keys.salt == H("30CBBC08863D8C85D49DB34A9AE1")
    assert keys.auth == H("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def test_rfc6188_7_2_aes256_key_derivation() -> None:
    keys = derive_session_keys(
        H("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
        H("3b04803de51ee7c96423ab5b78d2"),
        rtcp=False,
    )
    assert keys.encryption == H("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
    assert keys.salt == H("fa31791685ca444a9e07c6c64e93")
    assert keys.auth == H("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")


def test_session_keys_stay_out_of_repr() -> None:
    keys = derive_session_keys(bytes(16), bytes(14), rtcp=True)
    assert keys.encryption.hex() not in repr(keys)
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", b"\x42" * 16, b"\x43" * 14)
    assert "42" not in repr(ctx) and "43" not in repr(ctx)


@pytest.mark.parametrize(
    ("profile", "key_len", "srtp", "srtcp"),
    [
        (
            "AES_CM_128_HMAC_SHA1_80",
            16,
            "4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
            "7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
        ),
        (
            "AES_CM_128_HMAC_SHA1_32",
            16,
            "4e55dc4ce79978d88ca4d215949d2402b78d6acc",
            # SRTCP keeps the 80-bit tag under the 32-bit profile, as in libsrtp.
            "7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
        ),
        (
            "AES_256_CM_HMAC_SHA1_80",
            32,
            "0098219f7ebdba1c3d22f4936f1eac9906f6b227c84961a7b428",
            "0a865d339e312693592387d45b99a5578000000184f3b4f2b595615af9b5",
        ),
    ],
)
def test_libsrtp_reference_packets(profile: str, key_len: int, srtp: str, srtcp: str) -> None:
    key = LIBSRTP_TEST_KEY[:key_len]
    salt = LIBSRTP_TEST_KEY[key_len : key_len + 14]
    sender = SrtpContext(profile, key, salt)
    receiver = SrtpContext(profile, key, salt)
    assert sender.protect(RTP_PLAIN) == RTP_PLAIN[:12] + H(srtp)
    assert receiver.unprotect(RTP_PLAIN[:12] + H(srtp)) == RTP_PLAIN
    assert sender.protect_rtcp(RTCP_PLAIN) == RTCP_PLAIN[:8] + H(srtcp)
    assert receiver.unprotect_rtcp(RTCP_PLAIN[:8] + H(srtcp)) == RTCP_PLAIN


def test_libsrtp_extra_aes256_packet() -> None:
    ctx = SrtpContext(
        "AES_256_CM_HMAC_SHA1_80",
        H("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
        H("3b04803de51ee7c96423ab5b78d2"),
    )
    assert ctx.protect(RTP_PLAIN) == RTP_PLAIN[:12] + H(
        "f1d9de17ff251ff1aa007774b0b4b40da08d9d9a5b3a55d8873b"
    )


def test_profile_names_and_zrtp_mapping() -> None:
    assert set(PROFILES) == {
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AES_256_CM_HMAC_SHA1_80",
        "AES_256_CM_HMAC_SHA1_32",
    }
    assert profile_for("AES1", "HS80") == "AES_CM_128_HMAC_SHA1_80"
    assert profile_for("AES1", "HS32") == "AES_CM_128_HMAC_SHA1_32"
    assert profile_for("AES3", "HS80") == "AES_256_CM_HMAC_SHA1_80"
    assert profile_for("AES3", "HS32") == "AES_256_CM_HMAC_SHA1_32"
    with pytest.raises(LocalProtocolError, match="2FS3"):
        profile_for("2FS3", "HS80")
    with pytest.raises(LocalProtocolError, match="SK32"):
        profile_for("AES1", "SK32")


def test_bad_construction_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="unknown SRTP profile"):
        SrtpContext("AEAD_AES_128_GCM", bytes(16), bytes(14))
    with pytest.raises(LocalProtocolError, match="32-byte master key"):
        SrtpContext("AES_256_CM_HMAC_SHA1_80", bytes(16), bytes(14))
    with pytest.raises(LocalProtocolError, match="14-byte master salt"):
        SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(12))
    with pytest.raises(LocalProtocolError, match="replay window"):
        SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14), replay_window=16)


def test_srtp_error_is_a_parse_error() -> None:
    assert issubclass(SrtpError, ParseError)
