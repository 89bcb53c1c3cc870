"""SRTP/SRTCP with AES-GCM (RFC 7714) against the RFC's vectors and libsrtp, both ways.

The RFC 7714 §16/§17 vectors state session keys and salts (no KDF): `from_session_keys`.
libsrtp (pylibsrtp 1.0 has both GCM profiles) checks the master-key path, i.e. the RFC 3711
KDF with a 12-byte master salt, across rollovers, reordering and loss.
"""

from __future__ import annotations

import struct

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.srtp import SrtpError
from pidphone.srtp.gcm import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    GcmSessionKeys,
    SrtpGcmContext,
    derive_gcm_session_keys,
    gcm_profile_for,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 7714 §16 and §17: session keys, "Quid pro quo" salt, one RTP and one RTCP packet
KEY = {
    AEAD_AES_128_GCM: h("000102030405060708090a0b0c0d0e0f"),
    AEAD_AES_256_GCM: h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
}
SALT = h("517569642070726f2071756f")
RTP = h(
    "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120"
    " 696e2070 61727465 73207472 6573"
)
SRTP = {
    AEAD_AES_128_GCM: h(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f"
        " 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce"
    ),
    AEAD_AES_256_GCM: h(
        "8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa b1801238 9a58e2f3"
        " b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff d6b0f9bb 7878d7a7 6c13"
    ),
}
RTCP = h(
    "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61 deadbeef"
    " deadbeef deadbeef deadbeef deadbeef"
)
SRTCP_INDEX = 0x5D4
SRTCP = {
    AEAD_AES_128_GCM: h(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1"
        " 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4"
    ),
    AEAD_AES_256_GCM: h(
        "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d bffe0a50 a2eaa5c1"
        " 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c b26ac3be 800005d4"
    ),
}
SRTCP_UNENCRYPTED = {
    AEAD_AES_128_GCM: RTCP + h("841dd968 3dd78ec9 2ae58790 125f62b3 000005d4"),
    AEAD_AES_256_GCM: RTCP + h("91db4afb feee5a97 8fab4393 ed2615fe 000005d4"),
}
PROFILES = [AEAD_AES_128_GCM, AEAD_AES_256_GCM]


def vector_context(profile: str) -> SrtpGcmContext:
    keys = GcmSessionKeys(KEY[profile], SALT)
    return SrtpGcmContext.from_session_keys(profile, keys, keys)


@pytest.mark.parametrize("profile", PROFILES)
def test_rfc7714_srtp_encryption_and_decryption(profile: str) -> None:
    assert vector_context(profile).protect(RTP) == SRTP[profile]
    receiver = vector_context(profile)
    assert receiver.unprotect(SRTP[profile]) == RTP
    with pytest.raises(SrtpError) as replay:
        receiver.unprotect(SRTP[profile])
    assert replay.value.reason == "replay"


@pytest.mark.parametrize("profile", PROFILES)
def test_rfc7714_srtcp_encryption_and_decryption(profile: str) -> None:
    sender = vector_context(profile)
    for _ in range(SRTCP_INDEX - 1):  # the first index sent is 1
        sender.protect_rtcp(RTCP)
    assert sender.protect_rtcp(RTCP) == SRTCP[profile]
    assert vector_context(profile).unprotect_rtcp(SRTCP[profile]) == RTCP


@pytest.mark.parametrize("profile", PROFILES)
def test_rfc7714_unencrypted_srtcp_is_authenticated(profile: str) -> None:
    receiver = vector_context(profile)
    assert receiver.unprotect_rtcp(SRTCP_UNENCRYPTED[profile]) == RTCP
    tampered = bytearray(SRTCP_UNENCRYPTED[profile])
    tampered[20] ^= 1
    with pytest.raises(SrtpError) as failed:
        vector_context(profile).unprotect_rtcp(bytes(tampered))
    assert failed.value.reason == "auth"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("where", [0, 5, 12, 20, -20, -1])
def test_any_flipped_bit_fails_authentication(profile: str, where: int) -> None:
    packet = bytearray(SRTP[profile])
    packet[where] ^= 0x10
    with pytest.raises(SrtpError) as failed:
        vector_context(profile).unprotect(bytes(packet))
    assert failed.value.reason in {"auth", "short"}


# -- against libsrtp ---------------------------------------------------------------------------

MASTER = {AEAD_AES_128_GCM: bytes(range(1, 17)), AEAD_AES_256_GCM: bytes(range(1, 33))}
MASTER_SALT = bytes(range(100, 112))
SSRC = 0x1234ABCD
LIB = {
    AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    AEAD_AES_256_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def lib_session(profile: str, *, outbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=MASTER[profile] + MASTER_SALT,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        ),
        srtp_profile=LIB[profile],
    )
    return pylibsrtp.Session(policy)


def ours(profile: str) -> SrtpGcmContext:
    return SrtpGcmContext(profile, MASTER[profile], MASTER_SALT)


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, SSRC) + payload


def rtcp_rr(n: int) -> bytes:
    block = struct.pack("!IIIIII", 0x55667788, n, n * 3, n * 5, n * 7, n * 11)
    return struct.pack("!BBHI", 0x81, 201, 7, SSRC) + block


def delivery_order(count: int) -> list[int]:
    """In order, but every 7th pair swapped and every 50th packet lost."""
    order = list(range(count))
    for i in range(0, count - 1, 7):
        order[i], order[i + 1] = order[i + 1], order[i]
    return [i for i in order if i % 50 != 49]


ROLLOVER_RUN = 1_200
FIRST_SEQ = 65_536 - 600


@pytest.mark.parametrize("profile", PROFILES)
def test_ours_to_libsrtp_across_a_rollover(profile: str) -> None:
    sender, lib = ours(profile), lib_session(profile, outbound=False)
    packets = [rtp(FIRST_SEQ + i, i.to_bytes(4, "big") * 40) for i in range(ROLLOVER_RUN)]
    protected = [sender.protect(p) for p in packets]
    assert sender.roc(SSRC) == 1
    for i in delivery_order(ROLLOVER_RUN):
        assert lib.unprotect(protected[i]) == packets[i]


@pytest.mark.parametrize("profile", PROFILES)
def test_libsrtp_to_ours_across_a_rollover(profile: str) -> None:
    lib, receiver = lib_session(profile, outbound=True), ours(profile)
    packets = [rtp(FIRST_SEQ + i, i.to_bytes(4, "big") * 40) for i in range(ROLLOVER_RUN)]
    protected = [lib.protect(p) for p in packets]
    for i in delivery_order(ROLLOVER_RUN):
        assert receiver.unprotect(protected[i]) == packets[i]
    assert receiver.roc(SSRC) == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_srtcp_both_ways_with_libsrtp(profile: str) -> None:
    sender, lib_in = ours(profile), lib_session(profile, outbound=False)
    lib_out, receiver = lib_session(profile, outbound=True), ours(profile)
    for n in range(1, 40):
        assert lib_in.unprotect_rtcp(sender.protect_rtcp(rtcp_rr(n))) == rtcp_rr(n)
        assert receiver.unprotect_rtcp(lib_out.protect_rtcp(rtcp_rr(n))) == rtcp_rr(n)


@pytest.mark.parametrize("profile", PROFILES)
def test_header_extension_and_csrcs_are_authenticated_not_encrypted(profile: str) -> None:
    header = struct.pack("!BBHII", 0x91, 0, 7, 1120, SSRC) + struct.pack("!I", 0xC5C5C5C5)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    packet = header + extension + b"payload!" * 4
    protected = ours(profile).protect(packet)
    assert protected[: len(header) + len(extension)] == header + extension
    assert lib_session(profile, outbound=False).unprotect(protected) == packet
    assert ours(profile).unprotect(lib_session(profile, outbound=True).protect(packet)) == packet


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(max_size=300), seq=st.integers(0, 0xFFFF))
def test_any_payload_round_trips_with_libsrtp(payload: bytes, seq: int) -> None:
    packet = rtp(seq, payload)
    assert (
        lib_session(AEAD_AES_128_GCM, outbound=False).unprotect(
            ours(AEAD_AES_128_GCM).protect(packet)
        )
        == packet
    )


def test_session_keys_use_the_rfc3711_kdf_with_a_padded_salt() -> None:
    from pidphone.srtp.kdf import prf

    keys = derive_gcm_session_keys(MASTER[AEAD_AES_128_GCM], MASTER_SALT, rtcp=False)
    assert keys.key == prf(MASTER[AEAD_AES_128_GCM], MASTER_SALT + b"\0\0", 0x00, 16)
    assert keys.salt == prf(MASTER[AEAD_AES_128_GCM], MASTER_SALT + b"\0\0", 0x02, 12)
    rtcp = derive_gcm_session_keys(MASTER[AEAD_AES_128_GCM], MASTER_SALT, rtcp=True)
    assert rtcp.key != keys.key and len(rtcp.salt) == 12


@pytest.mark.parametrize(
    "srtp", [b"", b"\x80" * 27, SRTP[AEAD_AES_128_GCM][:20]], ids=["empty", "27", "20"]
)
def test_short_packets_are_refused(srtp: bytes) -> None:
    with pytest.raises(SrtpError) as failed:
        vector_context(AEAD_AES_128_GCM).unprotect(srtp)
    assert failed.value.reason == "short"
    with pytest.raises(SrtpError):
        vector_context(AEAD_AES_128_GCM).unprotect_rtcp(srtp)


def test_replay_window_and_old_packets() -> None:
    sender, receiver = ours(AEAD_AES_128_GCM), ours(AEAD_AES_128_GCM)
    protected = [sender.protect(rtp(i, b"x" * 20)) for i in range(300)]
    receiver.unprotect(protected[299])
    receiver.unprotect(protected[200])
    for late in (protected[299], protected[200], protected[100]):
        with pytest.raises(SrtpError) as failed:
            receiver.unprotect(late)
        assert failed.value.reason == "replay"


def test_profile_for_zrtp_ciphers_and_misuse() -> None:
    assert gcm_profile_for("AES1") == AEAD_AES_128_GCM
    assert gcm_profile_for("AES3") == AEAD_AES_256_GCM
    with pytest.raises(LocalProtocolError):
        gcm_profile_for("2FS3")
    with pytest.raises(LocalProtocolError):
        SrtpGcmContext(AEAD_AES_128_GCM, bytes(16), bytes(14))  # a counter-mode salt
    with pytest.raises(LocalProtocolError):
        SrtpGcmContext(AEAD_AES_256_GCM, bytes(16), bytes(12))
    with pytest.raises(LocalProtocolError):
        SrtpGcmContext("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(12))
