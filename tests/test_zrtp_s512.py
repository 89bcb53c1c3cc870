"""Hash S512 (SHA-512): bzrtp offers it, and prefers it with post-quantum and X448 exchanges.

RFC 6189 lists only S256 and S384; bzrtp 5.5 adds S512 ("ZRTP_HASH_S512"). Its KDF is §4.5.1's
with HMAC-SHA-512, as test_zrtp_bzrtp_pq.py checks against bzrtp's own SAS and SRTP keys.
"""

from __future__ import annotations

import hmac
import struct

from pidphone.zrtp import ZrtpConfig, kdf
from pidphone.zrtp.algorithms import SUPPORTED, Suite, choose_suite
from pidphone.zrtp.kdf import hash_name
from tests.harness import exchange, zrtp_end


def test_kdf_with_sha512_is_the_rfc_construction() -> None:
    key, context = bytes(range(64)), bytes(range(56))
    expected = hmac.new(
        key, b"\x00\x00\x00\x01SAS\x00" + context + struct.pack("!I", 512), "sha512"
    ).digest()
    assert kdf(key, b"SAS", context, 512, "sha512") == expected
    assert (
        kdf(key, b"SAS", context, 96, "sha512")
        == hmac.new(
            key, b"\x00\x00\x00\x01SAS\x00" + context + struct.pack("!I", 96), "sha512"
        ).digest()[:12]
    )
    assert hash_name("S512") == "sha512"


def test_s512_is_supported_and_chosen_when_both_prefer_it() -> None:
    assert "S512" in SUPPORTED["hashes"]
    ours = {
        "hashes": ("S512", "S256"),
        "ciphers": ("AES3",),
        "auth_tags": ("HS80",),
        "key_agreements": ("X448",),
        "sas_types": ("B32 ",),
    }
    theirs = dict(ours, hashes=("S512", "S384", "S256"))
    assert choose_suite(ours, theirs) == Suite("S512", "AES3", "HS80", "X448", "B32 ")


def test_two_sessions_agree_with_s512() -> None:
    config = ZrtpConfig(
        hashes=("S512",), ciphers=("AES3",), auth_tags=("HS80",), key_agreements=("X448",)
    )
    a, b = zrtp_end(config, ssrc=1), zrtp_end(config, ssrc=2)
    exchange(a, b)
    secured = [a.secured, b.secured]
    assert secured[0] is not None and secured[1] is not None
    assert secured[0].sas == secured[1].sas
    assert secured[0].hash == "S512"
    assert a.keys.send_key == b.keys.recv_key and len(a.keys.send_key) == 32
