"""ZRTP KDF (§4.5.1) against bzrtp's vectors, SAS rendering (§5.1.6), key agreement checks."""

from __future__ import annotations

import secrets

import pytest

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import kdf, render_sas
from pidphone.zrtp.keyagreement import MODP_2048, MODP_3072, PV_BYTES, BadPublicValueError, generate

# bzrtp test/bzrtpCryptoTest.c, "Patterns generated using GNU ZRTP C++"
KDF_KEY = bytes.fromhex("33e66c01ca6fe64fb76ffde31cabc0fbad3d3102676b0c090fc996381e0a8c2f")
KDF_CONTEXT = bytes.fromhex(
    "f01f240200000000" "8024adfb94a90690" "cf9ced13998c5134" "7dc435a74d752544"
    "80c211f2d3205ea7" "1b4ba4eec78eb735" "7528e56fcf4f749f"
)  # fmt: skip
KDF_VECTORS = [
    ("Responder SRTP master key", "f2cfc5724acfd7b50e89bed8a5c9f2cd"),
    ("Responder SRTP master salt", "3c8fb13fd6ca83fbd6af3bd5ab1c"),
    ("SAS", "d269b0718ad58f3c8e0dcf4535811d951847314128319f54c606595b522c5287"),
    ("ZRTP Session Key", "c363390bc9ee13aa9e6a00528409ddc90717e01d1ae2dcf9a70ab98886ac6975"),
    ("retained secret", "a7272dee77e7990c24b20b9f54ba2b617a23d8a59765829b78072bc51299015c"),
    ("Responder ZRTP key", "75767d41829cb697c7a20d6812eadb9a"),
    ("Initiator ZRTP key", "08a821460cbd6ce0f1fe3c4c704e3bea"),
    ("Responder HMAC key", "2169f15c1b85a23977024d5ea71f481623fe94dc1aabf489b8744d0d373d7cab"),
    ("Initiator HMAC key", "1d117befd627cc5a80d0236e8d496be42a6a0118ac4159e861b9b14a784b5d3f"),
]


@pytest.mark.parametrize(("label", "expected"), KDF_VECTORS)
def test_kdf_matches_bzrtp_vectors(label: str, expected: str) -> None:
    output = kdf(KDF_KEY, label.encode(), KDF_CONTEXT, 4 * len(expected))
    assert output.hex() == expected


def test_kdf_with_sha384_has_its_length() -> None:
    output = kdf(KDF_KEY, b"ZRTP Session Key", KDF_CONTEXT, 384, "sha384")
    assert len(output) == 48
    assert output != kdf(KDF_KEY, b"ZRTP Session Key", KDF_CONTEXT, 256)


def test_kdf_rejects_impossible_lengths() -> None:
    with pytest.raises(LocalProtocolError):
        kdf(KDF_KEY, b"SAS", KDF_CONTEXT, 512)
    with pytest.raises(LocalProtocolError):
        kdf(KDF_KEY, b"SAS", KDF_CONTEXT, 256, "md5")


def test_sas_of_bzrtp_vector() -> None:
    sashash = bytes.fromhex(KDF_VECTORS[2][1])
    assert render_sas(sashash, "B32") == "4jw5"
    assert render_sas(sashash, "B32 ") == "4jw5"
    # 0xd2 -> even word 210, 0x69 -> odd word 105
    assert render_sas(sashash, "B256") == "standard:guitarist"


def test_b32_uses_zrtp_alphabet_most_significant_first() -> None:
    assert render_sas(b"\x00\x00\x00\x00", "B32") == "yyyy"
    assert render_sas(b"\xff\xff\xff\xff", "B32") == "9999"
    # 20 bits 00001 00010 00011 00100 -> alphabet[1], [2], [3], [4]
    assert render_sas(bytes([0b00001000, 0b10000110, 0b01000000, 0]), "B32") == "bndr"


def test_b256_words_as_linphone_prints_them() -> None:
    assert render_sas(b"\x00\x15\x00\x00", "B256") == "aardvark:bifocals"
    assert render_sas(b"\xff\xff\x12\x34", "B256") == "Zulu:Yucatan"


def test_render_sas_rejects_unknown_scheme() -> None:
    with pytest.raises(LocalProtocolError):
        render_sas(b"\x00" * 32, "B64")


@pytest.mark.parametrize("name", sorted(PV_BYTES))
def test_key_agreement_both_ways(name: str) -> None:
    ours = generate(name, 256, secrets.token_bytes)
    theirs = generate(name, 256, secrets.token_bytes)
    assert len(ours.public) == PV_BYTES[name]
    assert ours.shared(theirs.public) == theirs.shared(ours.public)


@pytest.mark.parametrize(("name", "prime"), [("DH3k", MODP_3072), ("DH2k", MODP_2048)])
def test_finite_field_rejects_trivial_public_values(name: str, prime: int) -> None:
    pair = generate(name, 256, secrets.token_bytes)
    size = PV_BYTES[name]
    for bad in (0, 1, prime - 1, prime, prime + 1):
        with pytest.raises(BadPublicValueError):
            pair.shared((bad % 2 ** (8 * size)).to_bytes(size, "big"))


def test_modp_groups_are_rfc_3526() -> None:
    assert MODP_2048.bit_length() == 2048
    assert MODP_3072.bit_length() == 3072
    assert format(MODP_3072, "x").endswith("4b82d120a93ad2caffffffffffffffff")
    assert pow(2, (MODP_2048 - 1) // 2, MODP_2048) == 1  # 2 generates the prime-order subgroup


@pytest.mark.parametrize("name", ["EC25", "EC38"])
def test_nist_curves_reject_points_off_the_curve(name: str) -> None:
    pair = generate(name, 256, secrets.token_bytes)
    with pytest.raises(BadPublicValueError):
        pair.shared(b"\x01" * PV_BYTES[name])


@pytest.mark.parametrize("name", ["X255", "X448"])
def test_montgomery_rejects_low_order_points(name: str) -> None:
    pair = generate(name, 256, secrets.token_bytes)
    with pytest.raises(BadPublicValueError):
        pair.shared(bytes(PV_BYTES[name]))


def test_public_value_length_is_checked() -> None:
    pair = generate("X255", 256, secrets.token_bytes)
    with pytest.raises(BadPublicValueError):
        pair.shared(b"\x09" * 31)
