"""bzrtp 5.5's post-quantum exchanges, recorded, recomputed with our primitives.

Each transcript in tests/data/zrtp/bzrtp55-*.tsv is two bzrtp contexts talking (X3M3, MLK3,
MLK2, with bzrtp's fragments) on a seeded random stream; its .json holds what bzrtp reported
(SAS, SRTP keys and salts, algorithms) and the initiator's private X448 key and ML-KEM seed.
From those alone, our KEM (`pidphone.zrtp.kem`, ML-KEM and X448 from `cryptography`), KDF and
SAS rendering must give bzrtp's SAS and keys, and our fragmenter must give bzrtp's fragments
byte for byte. s0 and total_hash are written out here from RFC 6189 §4.4.1.4 with the KEM
secret as DHResult, which is what bzrtp does.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from pidphone.zrtp import kem
from pidphone.zrtp.fragment import Fragment, fragment_message
from pidphone.zrtp.kdf import hash_name, kdf
from pidphone.zrtp.messages import Hello
from pidphone.zrtp.sas import render_sas
from tests.bzrtp_transcripts import PQ_TRANSCRIPTS, load

KEM_TRANSCRIPTS = [n for n in PQ_TRANSCRIPTS if load(n).record["alice"]["key_agreement"] != "X255"]
COMMIT_PUBLIC_KEY_AT = 12 + 32 + 12 + 20 + 32
DHPART_VALUE_AT = 12 + 32 + 4 * 8


def test_the_transcripts_are_there() -> None:
    assert {"bzrtp55-x3m3", "bzrtp55-mlk3", "bzrtp55-mlk2"} <= set(PQ_TRANSCRIPTS)


@pytest.mark.parametrize("name", KEM_TRANSCRIPTS)
def test_sas_and_srtp_keys_recomputed_from_the_initiator_keys(name: str) -> None:
    t = load(name)
    agreed = t.record["alice"]
    assert agreed["sas"] == t.record["bob"]["sas"]
    hname = hash_name(agreed["hash"])
    hello_i, hello_r = t.message(t.initiator, b"Hello   "), t.message(t.responder, b"Hello   ")
    commit = t.message(t.initiator, b"Commit  ")
    dhpart1 = t.message(t.responder, b"DHPart1 ")
    dhpart2 = t.message(t.initiator, b"DHPart2 ")
    scheme = kem.SCHEMES[agreed["key_agreement"]]
    assert commit[4 * 17 : 4 * 18].decode() == agreed["key_agreement"]

    keys = t.record["initiator_keys"]
    draws = [bytes.fromhex(keys["x448_private"])] if "x448_private" in keys else []
    draws.append(bytes.fromhex(keys["mlkem_seed"]))
    pair = kem.generate(agreed["key_agreement"], hname, lambda size: draws.pop(0))
    public = commit[COMMIT_PUBLIC_KEY_AT:-8]
    assert public == pair.public + bytes(len(public) - scheme.public_key_bytes)
    ciphertext = dhpart1[DHPART_VALUE_AT:-8]
    assert len(ciphertext) == kem.wire_length(scheme.ciphertext_bytes)
    assert len(dhpart2[DHPART_VALUE_AT:-8]) == kem.DHPART2_NONCE_BYTES
    secret = pair.decapsulate(ciphertext[: scheme.ciphertext_bytes])
    assert len(secret) == scheme.secret_bytes(hname)

    # hvi as in DH mode: hash(DHPart2 || responder's Hello), 256 bits, before the public key
    assert (
        commit[COMMIT_PUBLIC_KEY_AT - 32 : COMMIT_PUBLIC_KEY_AT]
        == (hashlib.new(hname, dhpart2 + hello_r).digest()[:32])
    )
    zid_i, zid_r = Hello.parse(hello_i).zid, Hello.parse(hello_r).zid
    total_hash = hashlib.new(hname, hello_r + commit + dhpart1 + dhpart2).digest()
    no_cached_secrets = struct.pack("!III", 0, 0, 0)
    s0 = hashlib.new(
        hname,
        b"\x00\x00\x00\x01" + secret + b"ZRTP-HMAC-KDF" + zid_i + zid_r + total_hash
        + no_cached_secrets,
    ).digest()  # fmt: skip
    context = zid_i + zid_r + total_hash
    assert render_sas(kdf(s0, b"SAS", context, 256, hname), agreed["sas_scheme"]) == agreed["sas"]

    key_bits = {"AES1": 128, "AES3": 256}[agreed["cipher"]]
    salt_bits = 96 if agreed["auth_tag"] == "GCM" else 112
    for role, label in ((t.initiator, b"Initiator"), (t.responder, b"Responder")):
        own = t.record[role]
        assert (
            kdf(s0, label + b" SRTP master key", context, key_bits, hname).hex()
            == (own["self_srtp_key"])
        )
        assert (
            kdf(s0, label + b" SRTP master salt", context, salt_bits, hname).hex()
            == (own["self_srtp_salt"])
        )
    assert t.record["alice"]["self_srtp_key"] == t.record["bob"]["peer_srtp_key"]


@pytest.mark.parametrize("name", PQ_TRANSCRIPTS)
def test_our_fragments_are_bzrtps_byte_for_byte(name: str) -> None:
    t = load(name)
    fragments = [r for r in t.rows if r.kind == "fragment"]
    mtu = t.record["mtu"] or 1452
    by_message: dict[tuple[str, int], list[bytes]] = {}
    for row in fragments:
        parsed = Fragment.parse(row.data)
        assert len(row.data) <= mtu
        by_message.setdefault((row.sender, parsed.message_id), []).append(row.data)
    reassembled = {who_message for who_message in t.messages()}
    for (sender, message_id), packets in by_message.items():
        first = Fragment.parse(packets[0])
        message = next(
            m
            for who, m in reassembled
            if who == sender and len(m) == first.total_words * 4 and m.startswith(first.payload)
        )
        ours = fragment_message(
            message,
            ssrc=first.ssrc,
            message_id=message_id,
            first_sequence=first.sequence,
            mtu=mtu,
        )
        assert ours == packets


def test_x3m3_commit_and_dhpart1_sizes_and_fragments() -> None:
    t = load("bzrtp55-x3m3")
    commit = t.message(t.initiator, b"Commit  ")
    dhpart1 = t.message(t.responder, b"DHPart1 ")
    assert (len(commit), len(dhpart1)) == (1740, 1708)
    sizes = [len(r.data) for r in t.rows if r.kind == "fragment" and r.sender == t.initiator]
    assert sizes[:2] == [1428 + 24, 312 + 24]


def test_message_ids_start_at_the_senders_first_sequence_number() -> None:
    # bzrtp's message id starts at its initial sequence number, one below its first packet
    t = load("bzrtp55-x3m3")
    for sender in ("alice", "bob"):
        rows = [r for r in t.rows if r.sender == sender]
        first_sequence = struct.unpack_from("!H", rows[0].data, 2)[0]
        ids = [Fragment.parse(r.data).message_id for r in rows if r.kind == "fragment"]
        assert ids[0] == first_sequence - 1 and ids[0] != 0
        assert ids == sorted(ids)


def test_pq_hello_offers_s512_and_aes3_and_gcm_first() -> None:
    t = load("bzrtp55-x3m3")
    hello = Hello.parse(t.message("alice", b"Hello   "))
    assert hello.key_agreements[0] == "X3M3"
    assert "S512" in hello.hashes and "AES3" in hello.ciphers
    assert hello.auth_tags[0] == "GCM "


def test_lower_code_wins_when_first_choices_differ() -> None:
    # alice lists X3M3 first, bob X255 first: bzrtp takes the numerically lower code (X255)
    t = load("bzrtp55-x3m3-x255-vs-x255-x3m3")
    assert t.record["alice"]["key_agreement"] == "X255"
    # alice MLK3 first, bob X3M3 first: MLK3 (0x59) is below X3M3 (0x5b)
    t = load("bzrtp55-mlk3-x3m3-vs-x3m3-mlk3")
    assert t.record["alice"]["key_agreement"] == "MLK3"
