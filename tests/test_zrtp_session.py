"""Two ZRTP sessions back to back (RFC 6189): agreement, SAS, keys, cache, contention, loss."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import (
    CacheMismatch,
    ClearAck,
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    GoClearRefused,
    Hello,
    HelloAck,
    MemoryZidCache,
    Message,
    PeerHelloReceived,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    Secured,
    SecurityLost,
    ZrtpConfig,
    ZrtpFailed,
    ZrtpPacket,
    ZrtpSession,
    parse_packet,
)
from pidphone.zrtp.kdf import implicit_mac
from pidphone.zrtp.keyagreement import MODP_3072
from pidphone.zrtp.messages import encode_packet
from tests.harness import Wire, ZrtpEnd, exchange, random_wire, zrtp_end


def single(ka: str, cipher: str, auth: str, sas: str, hash_: str) -> ZrtpConfig:
    return ZrtpConfig(
        hashes=(hash_,),
        ciphers=(cipher,),
        auth_tags=(auth,),
        key_agreements=(ka,),
        sas_types=(sas,),
    )


def assert_agreed(a: ZrtpEnd, b: ZrtpEnd) -> tuple[Secured, Secured]:
    sa, sb = a.secured, b.secured
    assert sa is not None and sb is not None, (a.events, b.events)
    assert sa.sas == sb.sas
    assert {sa.role, sb.role} == {"initiator", "responder"}
    assert sa.peer_zid == b.cache.our_zid and sb.peer_zid == a.cache.our_zid
    ka, kb = a.keys, b.keys
    assert ka.profile == kb.profile
    assert ka.send_key == kb.recv_key and ka.send_salt == kb.recv_salt
    assert kb.send_key == ka.recv_key and kb.send_salt == ka.recv_salt
    assert ka.send_key != ka.recv_key
    return sa, sb


PROFILE = {
    ("AES1", "HS80"): "AES_CM_128_HMAC_SHA1_80",
    ("AES1", "HS32"): "AES_CM_128_HMAC_SHA1_32",
    ("AES3", "HS80"): "AES_256_CM_HMAC_SHA1_80",
    ("AES3", "HS32"): "AES_256_CM_HMAC_SHA1_32",
}
FULL = list(
    itertools.product(
        ["X255"], ["AES1", "AES3"], ["HS32", "HS80"], ["B32", "B256"], ["S256", "S384"]
    )
)
# the slower groups: every cipher/auth/SAS/hash value appears at least once for each
REDUCED = [
    (ka, cipher, auth, sas, hash_)
    for ka in ["DH3k", "DH2k", "EC25", "X448"]
    for cipher, auth, sas, hash_ in [
        ("AES1", "HS80", "B32", "S256"),
        ("AES3", "HS32", "B256", "S384"),
    ]
] + [
    ("EC38", "AES3", "HS80", "B32", "S384"),
    ("EC38", "AES1", "HS32", "B256", "S384"),
]


@pytest.mark.parametrize(("ka", "cipher", "auth", "sas", "hash_"), FULL + REDUCED)
def test_every_algorithm_combination_agrees(
    ka: str, cipher: str, auth: str, sas: str, hash_: str
) -> None:
    config = single(ka, cipher, auth, sas, hash_)
    a, b = zrtp_end(config), zrtp_end(config)
    exchange(a, b)
    sa, _ = assert_agreed(a, b)
    assert (sa.key_agreement, sa.cipher, sa.auth_tag, sa.sas_scheme, sa.hash) == (
        ka,
        cipher,
        auth,
        sas,
        hash_,
    )
    assert a.keys.profile == PROFILE[cipher, auth]
    assert len(a.keys.send_key) == (16 if cipher == "AES1" else 32)
    assert len(a.keys.send_salt) == 14
    if sas == "B32":
        assert len(sa.sas) == 4
    else:
        even, odd = sa.sas.split(":")
        assert even.isalpha() and odd.isalpha()
    assert not sa.verified and not sa.cache_mismatch
    assert a.session.dropped == 0 and b.session.dropped == 0


def test_default_configs_pick_x255_and_the_first_preferences() -> None:
    a, b = zrtp_end(), zrtp_end()
    exchange(a, b)
    sa, _ = assert_agreed(a, b)
    assert (sa.key_agreement, sa.cipher, sa.auth_tag, sa.sas_scheme, sa.hash) == (
        "X255",
        "AES1",
        "HS80",
        "B32",
        "S256",
    )


def test_faster_of_the_two_first_choices_wins() -> None:
    a = zrtp_end(ZrtpConfig(key_agreements=("DH3k", "EC25")))
    b = zrtp_end(ZrtpConfig(key_agreements=("EC25", "DH3k")))
    exchange(a, b)
    sa, _ = assert_agreed(a, b)
    assert sa.key_agreement == "EC25"


def test_mandatory_algorithms_are_implicit() -> None:
    a = zrtp_end(ZrtpConfig(key_agreements=("X255",), ciphers=("AES3",), sas_types=("B256",)))
    b = zrtp_end(ZrtpConfig(key_agreements=("EC25",), ciphers=("AES1",), sas_types=("B32",)))
    exchange(a, b)
    sa, _ = assert_agreed(a, b)
    assert (sa.key_agreement, sa.cipher, sa.sas_scheme) == ("DH3k", "AES1", "B32")


def test_both_commit_and_contention_gives_one_initiator() -> None:
    a, b = zrtp_end(), zrtp_end()
    exchange(a, b)
    assert_agreed(a, b)
    assert "Commit" in a.sent_types() and "Commit" in b.sent_types()
    initiator, responder = (a, b) if a.secured and a.secured.role == "initiator" else (b, a)
    assert initiator.sent_types().count("DHPart2") == 1
    assert responder.sent_types().count("DHPart1") == 1
    assert "Conf2ACK" in responder.sent_types()


def test_passive_endpoint_never_commits() -> None:
    a, b = zrtp_end(), zrtp_end(ZrtpConfig(passive=True))
    exchange(a, b)
    sa, sb = assert_agreed(a, b)
    assert sa.role == "initiator" and sb.role == "responder"
    assert "Commit" not in b.sent_types()
    hello = parse_packet(b.sent[0]).message
    assert isinstance(hello, Hello) and hello.passive


def test_peer_hello_event_and_client_id() -> None:
    a, b = zrtp_end(), zrtp_end()
    exchange(a, b)
    event = a.of(PeerHelloReceived)[0]
    assert isinstance(event, PeerHelloReceived)
    assert event.peer_zid == b.cache.our_zid
    assert event.client_id == b"pidphone 0.1    "


def test_events_keep_secrets_out_of_repr() -> None:
    a, b = zrtp_end(), zrtp_end()
    exchange(a, b)
    keys = a.keys
    text = repr(keys) + repr(a.events)
    assert keys.send_key.hex() not in text and keys.send_key.hex() not in str(keys)


# ---- cache ------------------------------------------------------------------------------


def call(a_cache: MemoryZidCache, b_cache: MemoryZidCache) -> tuple[ZrtpEnd, ZrtpEnd]:
    a, b = zrtp_end(cache=a_cache), zrtp_end(cache=b_cache)
    exchange(a, b)
    assert_agreed(a, b)
    return a, b


def test_retained_secret_chain_and_verified_flag() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    a, b = call(ca, cb)
    first_a = ca.load(cb.our_zid)
    first_b = cb.load(ca.our_zid)
    assert first_a is not None and first_b is not None
    assert first_a.rs1 == first_b.rs1 and first_a.rs1 is not None and len(first_a.rs1) == 32
    assert first_a.rs2 is None and not first_a.verified

    a, b = call(ca, cb)
    second_a, second_b = ca.load(cb.our_zid), cb.load(ca.our_zid)
    assert second_a is not None and second_b is not None
    assert second_a.rs1 == second_b.rs1 != first_a.rs1
    assert second_a.rs2 == first_a.rs1
    assert a.secured is not None and not a.secured.verified and not a.secured.cache_mismatch
    # the user compared the SAS on both phones
    a.session.confirm_sas(True)
    b.session.confirm_sas(True)

    a, b = call(ca, cb)
    assert a.secured is not None and b.secured is not None
    assert a.secured.verified and b.secured.verified
    # one side says "mismatch": the next call is not verified anywhere
    a.session.confirm_sas(False)
    a, b = call(ca, cb)
    assert a.secured is not None and b.secured is not None
    assert not a.secured.verified and not b.secured.verified
    assert not a.secured.cache_mismatch


def test_every_call_has_its_own_keys_and_the_same_exported_key_on_both_ends() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    exported = set()
    for _ in range(3):
        a, b = call(ca, cb)
        assert a.session.exported_key is not None
        assert a.session.exported_key == b.session.exported_key
        exported.add(a.session.exported_key)
    assert len(exported) == 3


def test_lost_cache_on_one_side_is_a_mismatch_on_the_other() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    call(ca, cb)
    fresh_b = MemoryZidCache(cb.our_zid)
    a, b = call(ca, fresh_b)
    assert a.secured is not None and b.secured is not None
    assert a.secured.cache_mismatch and not b.secured.cache_mismatch
    (mismatch,) = a.of(CacheMismatch)
    assert isinstance(mismatch, CacheMismatch) and "man in the middle" in mismatch.message


def test_postponed_update_happens_on_confirmation() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    call(ca, cb)
    before = ca.load(cb.our_zid)
    fresh_b = MemoryZidCache(cb.our_zid)
    a, b = call(ca, fresh_b)
    assert a.secured is not None and a.secured.cache_mismatch
    postponed = ca.load(cb.our_zid)
    assert postponed is not None and before is not None
    assert postponed.rs1 == before.rs1 and not postponed.verified
    a.session.confirm_sas(True)
    b.session.confirm_sas(True)
    updated = ca.load(cb.our_zid)
    assert updated is not None and updated.verified
    assert updated.rs1 == fresh_b.load(ca.our_zid).rs1  # type: ignore[union-attr]
    assert updated.rs2 == before.rs1
    a, b = call(ca, fresh_b)
    assert a.secured is not None and a.secured.verified and not a.secured.cache_mismatch


def test_rejecting_the_sas_clears_v_and_erases_the_retained_secrets() -> None:
    """§7.1: "SAS differs" clears V and erases the cached secret; the name stays."""
    ca, cb = MemoryZidCache(), MemoryZidCache()
    call(ca, cb)
    a, b = call(ca, cb)
    a.session.confirm_sas(True)
    b.session.confirm_sas(True)
    known = ca.load(cb.our_zid)
    assert known is not None
    ca.store(cb.our_zid, dataclasses.replace(known, name="Bob"))
    a, _ = call(ca, cb)
    assert a.secured is not None and a.secured.verified
    a.session.confirm_sas(False)
    dropped = ca.load(cb.our_zid)
    assert dropped is not None and dropped.rs1 is None and dropped.rs2 is None
    assert not dropped.verified and dropped.name == "Bob"
    # the next call starts as with a stranger here (no mismatch for us); the peer, which still
    # holds the old secret, is warned until both compare the SAS again
    a, b = call(ca, cb)
    assert a.secured is not None and b.secured is not None
    assert not a.secured.verified and not a.secured.cache_mismatch
    assert b.secured.cache_mismatch and not b.secured.verified


def test_rejecting_the_sas_after_a_cache_mismatch_erases_the_old_secret_too() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    call(ca, cb)
    a, _ = call(ca, MemoryZidCache(cb.our_zid))
    assert a.secured is not None and a.secured.cache_mismatch
    a.session.confirm_sas(False)
    dropped = ca.load(cb.our_zid)
    assert dropped is not None and dropped.rs1 is None and dropped.rs2 is None
    assert not dropped.verified


def test_confirm_sas_before_secure_is_misuse() -> None:
    a = zrtp_end()
    with pytest.raises(LocalProtocolError):
        a.session.confirm_sas(True)


def test_man_in_the_middle_relay() -> None:
    alice_cache, bob_cache = MemoryZidCache(), MemoryZidCache()
    # the relay runs two exchanges; first with its own ZID: new peers, different SAS
    relay_cache = MemoryZidCache()
    alice, r1 = zrtp_end(cache=alice_cache), zrtp_end(cache=relay_cache)
    r2, bob = zrtp_end(cache=relay_cache), zrtp_end(cache=bob_cache)
    exchange(alice, r1)
    exchange(r2, bob)
    assert_agreed(alice, r1)
    assert_agreed(r2, bob)
    assert alice.secured is not None and bob.secured is not None
    assert alice.secured.sas != bob.secured.sas
    assert not alice.secured.cache_mismatch and not bob.secured.cache_mismatch

    # a direct call caches a secret; then the relay impersonates each ZID to the other
    alice_cache2, bob_cache2 = MemoryZidCache(), MemoryZidCache()
    call(alice_cache2, bob_cache2)
    alice, fake_bob = (
        zrtp_end(cache=alice_cache2),
        zrtp_end(cache=MemoryZidCache(bob_cache2.our_zid)),
    )
    fake_alice, bob = (
        zrtp_end(cache=MemoryZidCache(alice_cache2.our_zid)),
        zrtp_end(cache=bob_cache2),
    )
    exchange(alice, fake_bob)
    exchange(fake_alice, bob)
    assert alice.secured is not None and bob.secured is not None
    assert alice.secured.sas != bob.secured.sas
    assert alice.secured.cache_mismatch and bob.secured.cache_mismatch
    assert alice.of(CacheMismatch) and bob.of(CacheMismatch)


# ---- loss, duplication, reordering, timers ----------------------------------------------


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("loss", "dup", "reorder"), [(0.25, 0.0, False), (0.0, 0.5, False), (0.15, 0.2, True)]
)
def test_loss_duplication_and_reordering(seed: int, loss: float, dup: float, reorder: bool) -> None:
    rng = random.Random(seed)
    a, b = zrtp_end(), zrtp_end()
    exchange(
        a,
        b,
        a_to_b=random_wire(rng, loss, dup, reorder),
        b_to_a=random_wire(rng, loss, dup, reorder),
    )
    assert_agreed(a, b)


@pytest.mark.parametrize(
    "pattern",
    [
        {"loss": [False, False, True]},
        {"duplicate": [True]},
        {"hold": [True, False]},
        {"loss": [False, False, True], "duplicate": [False, True], "hold": [True, False, False]},
    ],
    ids=["every-third-lost", "all-twice", "swapped-pairs", "mixed"],
)
def test_patterned_loss_duplication_and_reordering(pattern: dict[str, list[bool]]) -> None:
    """The same impairment both ways, exactly repeatable: copies take the steps for a message
    seen before, losses the retransmissions, and the exchange completes all the same."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    exchange(a, b, a_to_b=Wire(**pattern), b_to_a=Wire(**pattern))  # type: ignore[arg-type]
    assert_agreed(a, b)
    assert a.session.drops["unauthenticated"] == b.session.drops["unauthenticated"] == 0


def test_hello_retransmission_schedule_and_no_zrtp_peer() -> None:
    a = zrtp_end()
    a.session.start(10.0)
    times = [10.0]
    a.sent.extend(a.session.datagrams_to_send())
    while (timer := a.session.get_timer()) is not None:
        a.session.handle_timer(timer)
        packets = a.session.datagrams_to_send()
        a.sent.extend(packets)
        if packets:
            times.append(timer)
    assert len(a.sent) == 21  # the Hello and 20 retransmissions
    gaps = [round(t2 - t1, 6) for t1, t2 in itertools.pairwise(times)]
    assert gaps == [0.05, 0.1] + [0.2] * 18
    assert round(times[-1] - times[0], 6) == 3.75
    messages = {p[12:-4] for p in a.sent}
    assert len(messages) == 1  # every retransmission carries the identical message
    sequences = [struct.unpack("!H", p[2:4])[0] for p in a.sent]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(21)]
    failed = a.failed
    assert failed is not None and failed.code == 0xB0 and failed.local
    assert failed.reason == "Peer does not support ZRTP"


def test_hello_is_extended_when_the_peer_is_known() -> None:
    a, b = zrtp_end(), zrtp_end()
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    a.session.start(0.0)
    last = 0.0
    while (timer := a.session.get_timer()) is not None:
        a.session.handle_timer(timer)
        if a.session.datagrams_to_send():
            last = timer
    assert 11.8 <= last < 12.0
    assert a.failed is not None and a.failed.reason == "Peer does not support ZRTP"


def test_zrtp_hash_binds_the_peer_hello() -> None:
    a, b = zrtp_end(), zrtp_end()
    assert a.session.hello_hash.startswith("1.10 ") and len(a.session.hello_hash) == 69
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    exchange(a, b)
    assert_agreed(a, b)


def test_hello_not_matching_zrtp_hash_fails() -> None:
    a, b, other = zrtp_end(), zrtp_end(), zrtp_end()
    a.session.set_peer_hello_hash(other.session.hello_hash, 0.0)
    exchange(a, b)
    assert a.secured is None and b.secured is None
    assert a.failed is not None and "a=zrtp-hash" in a.failed.reason


@pytest.mark.parametrize("value", ["1.10 nothex", "1.10", "", "1.10 abcd"])
def test_malformed_zrtp_hash_fails_closed(value: str) -> None:
    a, b = zrtp_end(), zrtp_end()
    a.session.set_peer_hello_hash(value, 0.0)
    exchange(a, b)
    assert a.secured is None and b.secured is None
    assert a.failed is not None and "a=zrtp-hash" in a.failed.reason


def test_zrtp_hash_arriving_after_the_hello_is_checked_too() -> None:
    """A Hello held before the SDP came is dropped once the a=zrtp-hash says it is not the
    peer's; the exchange then fails closed, naming the hash, when Hello gives up."""
    a, b, other = zrtp_end(), zrtp_end(), zrtp_end()
    a.session.start(0.0)
    b.session.start(0.0)
    for packet in b.session.datagrams_to_send():
        a.session.receive_datagram(packet, 0.0)
    a.session.set_peer_hello_hash(other.session.hello_hash, 0.0)
    assert a.failed is None and not a.of(PeerHelloReceived) and a.session.peer_zid is None
    exchange(a, b, start=False)
    assert a.secured is None and b.secured is None
    failed = a.of(ZrtpFailed)
    assert failed and isinstance(failed[0], ZrtpFailed) and "a=zrtp-hash" in failed[0].reason


def test_zrtp_hash_arriving_after_the_hello_binds_it() -> None:
    a, b = zrtp_end(), zrtp_end()
    a.session.start(0.0)
    b.session.start(0.0)
    for packet in b.session.datagrams_to_send():
        a.session.receive_datagram(packet, 0.0)
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    assert a.session.peer_zid == b.cache.our_zid
    exchange(a, b, start=False)
    assert_agreed(a, b)


def test_non_hello_retransmission_and_timeouts() -> None:
    a, b = zrtp_end(), zrtp_end(ZrtpConfig(passive=True))

    def only_discovery(packets: list[bytes]) -> list[bytes]:
        # b's answers to Commit never arrive
        kinds = {"Hello", "HelloACK"}
        return [p for p in packets if parse_packet(p).message.type_name in kinds]

    exchange(a, b, b_to_a=Wire(alter=only_discovery))
    commits = [t for t, kind in zip(a.sent_at, a.sent_types(), strict=True) if kind == "Commit"]
    gaps = [round(t2 - t1, 6) for t1, t2 in itertools.pairwise(commits)]
    assert gaps == [0.15, 0.3, 0.6] + [1.2] * 7
    failed = a.failed
    assert failed is not None and failed.code == 0xB0
    # only the initiator retransmits: the responder sent DHPart1 once per Commit it got
    assert b.sent_types().count("DHPart1") == len(commits)
    # and the responder gives up after 10 s of silence with Error 0xB0
    assert b.failed is not None and b.failed.code == 0xB0
    assert "Error" in b.sent_types()


def test_srtp_from_responder_completes_like_conf2ack() -> None:
    a, b = zrtp_end(), zrtp_end(ZrtpConfig(passive=True))

    def no_conf2ack(packets: list[bytes]) -> list[bytes]:
        return [p for p in packets if parse_packet(p).message.type_name != "Conf2ACK"]

    a.session.start(0.0)
    b.session.start(0.0)
    now = 0.0
    for _ in range(20):
        for p in a.session.datagrams_to_send():
            b.session.receive_datagram(p, now)
        for p in no_conf2ack(b.session.datagrams_to_send()):
            a.session.receive_datagram(p, now)
    b_secured = b.secured
    assert b_secured is not None
    assert a.secured is None and a.session.get_timer() is not None
    assert a.keys.recv_key == b.keys.send_key  # a can already decrypt b's SRTP
    a.session.srtp_authenticated(now)
    a_secured = a.session.secured
    assert a_secured is not None and a_secured.sas == b_secured.sas
    assert a.session.get_timer() is None


def hellos_exchanged(a: ZrtpEnd, b: ZrtpEnd) -> None:
    """Both started, with each other's a=zrtp-hash, and a holding b's first Hello."""
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    a.sent.extend(a.session.datagrams_to_send())
    b.sent.extend(b.session.datagrams_to_send())
    for packet in b.sent:
        assert a.session.receive_datagram(packet, 0.0)
    a.sent.extend(a.session.datagrams_to_send())


def test_peer_error_is_acknowledged_and_reported() -> None:
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    hellos_exchanged(a, b)
    assert not a.session.receive_datagram(b.forge(Error(0x52)), 0.1)  # taken, not authenticated
    assert a.session.last_drop is None
    assert [parse_packet(p).message for p in a.session.datagrams_to_send()] == [ErrorAck()]
    failed = a.failed
    assert failed is not None and failed.code == 0x52 and not failed.local
    assert "Cipher type not supported" in failed.reason


@pytest.mark.parametrize("ssrc", [99, None])
def test_error_from_no_peer_is_dropped_before_secure(ssrc: int | None) -> None:
    """§5.9 Error belongs to the exchange with the peer: from another SSRC (99), or before
    the peer's Hello is known (None: it comes first), it is dropped and the exchange goes on."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    if ssrc is None:
        assert not a.session.receive_datagram(bytes(ZrtpPacket(1, 0x5678, Error(0x52))), 0.0)
    else:
        for packet in b.session.datagrams_to_send():
            b.sent.append(packet)
            a.session.receive_datagram(packet, 0.0)
        assert not a.session.receive_datagram(bytes(ZrtpPacket(9, ssrc, Error(0x52))), 0.0)
    assert a.session.drops["foreign_ssrc"] == 1 and a.failed is None
    assert not [p for p in a.session.datagrams_to_send() if b"ErrorACK" in p]
    exchange(a, b, start=False)
    assert_agreed(a, b)


def secured_pair() -> tuple[ZrtpEnd, ZrtpEnd]:
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    exchange(a, b)
    assert_agreed(a, b)
    return a, b


def unauthenticated(b: ZrtpEnd) -> list[Message]:
    """Every message an attacker can make without the session's keys, as the peer's."""
    hello = parse_packet(b.sent[0]).message
    assert isinstance(hello, Hello)
    fake = FakePeer()
    junk = b"\x00" * 8
    return [
        Error(0x20),
        Error(0x100),
        ErrorAck(),
        hello,
        dataclasses.replace(hello, key_agreements=("DH3k",)),
        HelloAck(),
        Commit(fake.h2, hello.zid, "S256", "AES1", "HS80", "X255", "B32 ", hvi=b"\xff" * 32),
        fake.dhpart(DHPart1, b"\x01" * 32),
        fake.dhpart(DHPart2, b"\x01" * 32),
        Confirm1(mac=junk, iv=b"\x00" * 16, encrypted=b"\x00" * 40),
        Confirm2(mac=junk, iv=b"\x00" * 16, encrypted=b"\x00" * 40),
        Conf2Ack(),
        GoClear(junk),
        SasRelay(mac=junk, iv=b"\x00" * 16, encrypted=b"\x00" * 40),
        Ping("1.10", b"12345678"),
        PingAck("1.10", b"12345678", b"87654321", 0x5678),
        ClearAck(),
        RelayAck(),
    ]


@pytest.mark.parametrize("on_path", [True, False], ids=["peer-ssrc", "other-ssrc"])
def test_nothing_unauthenticated_changes_a_secured_session(on_path: bool) -> None:
    """After SECURE (RFC 6189 §5.9: Error ends an exchange in progress), every message that
    no session key protects is dropped and counted, answered with nothing, and the session
    stays secure: from the peer's own SSRC and sequence (an on-path forger) or from another."""
    a, b = secured_pair()
    secured = a.secured
    for message in unauthenticated(b):
        data = b.forge(message, ssrc=None if on_path else 0x0BAD)
        assert not a.session.receive_datagram(data, 2.0), message
        assert a.session.last_drop is not None, message
        assert a.session.datagrams_to_send() == [], message
    assert a.session.state == "secure" and a.secured == secured
    a.drain()
    assert not a.of(SecurityLost) and not a.of(ZrtpFailed) and not a.of(GoClearRefused)
    drops = a.session.drops
    if on_path:
        assert drops["after_secure"] == 16 and drops["unauthenticated"] == 2, drops
    else:
        assert drops["foreign_ssrc"] == 18, drops
    assert a.session.get_timer() is None


def test_junk_after_secure_is_counted_by_reason() -> None:
    a, b = secured_pair()
    good = b.forge(Error(0x20))
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    short_error = encode_packet(7, 0x5678, b"\x50\x5a\x00\x03Error   ")  # valid CRC
    for data in (bad_crc, b"\x10" + bytes(40), bytes(5000), short_error):
        assert not a.session.receive_datagram(data, 2.0)
    assert a.session.drops == {"crc": 1, "oversize": 1, "malformed": 2}
    assert a.session.state == "secure"


def test_ping_is_answered() -> None:
    a = zrtp_end()
    a.session.start(0.0)
    a.session.datagrams_to_send()
    a.session.receive_datagram(bytes(ZrtpPacket(7, 0x42, Ping("1.10", b"12345678"))), 0.0)
    (reply,) = a.session.datagrams_to_send()
    ack = parse_packet(reply).message
    assert isinstance(ack, PingAck)
    assert ack.received_endpoint_hash == b"12345678" and ack.ssrc == 0x42


def peer_mac_key(a: ZrtpEnd) -> bytes:
    """The peer's HMAC key (§4.5.3), read from a's session: what only the real peer holds."""
    secured, keys = a.secured, a.session._exchange.keys
    assert secured is not None and keys is not None
    return keys.mac_key_r if secured.role == "initiator" else keys.mac_key_i


def test_valid_goclear_is_refused_and_media_stays_secure() -> None:
    a, b = secured_pair()
    clear_mac = hmac.new(peer_mac_key(a), b"GoClear ", "sha256").digest()[:8]
    for _ in range(2):
        assert a.session.receive_datagram(b.forge(GoClear(clear_mac)), 1.0)
        (reply,) = a.session.datagrams_to_send()
        assert parse_packet(reply).message == Error(0x100)
    assert len(a.of(GoClearRefused)) == 1
    assert a.session.state == "secure"


def test_goclear_with_a_bad_mac_is_dropped_unanswered() -> None:
    a, b = secured_pair()
    assert not a.session.receive_datagram(b.forge(GoClear(b"\x00" * 8)), 1.0)
    assert a.session.drops["unauthenticated"] == 1 and not a.session.datagrams_to_send()
    assert not a.of(GoClearRefused)


@pytest.mark.parametrize("mitm", [False, True])
def test_sasrelay_mac_is_checked_first_and_its_sas_never_shown(mitm: bool) -> None:
    """§5.13: a forged SASrelay is dropped unanswered (an Error 0x63 to it once made the
    other phone lose its security); a real one is acknowledged (RelayACK, or Error 0x63 from
    a peer that declared itself a MiTM) and the SAS stays this call's own."""
    a, b = secured_pair()
    secured = a.secured
    encrypted = b"\x00" * 40
    forged = SasRelay(mac=b"\x00" * 8, iv=b"\x00" * 16, encrypted=encrypted)
    assert not a.session.receive_datagram(b.forge(forged), 1.0)
    assert a.session.datagrams_to_send() == [] and a.session.drops["unauthenticated"] == 1
    if mitm:  # the peer's Hello had said M: what a PBX sends
        peer = a.session._exchange.peer.hello
        assert peer is not None
        a.session._exchange.peer.hello = dataclasses.replace(peer, mitm=True)
    tag = hmac.new(peer_mac_key(a), encrypted, "sha256").digest()[:8]
    relay = SasRelay(mac=tag, iv=b"\x00" * 16, encrypted=encrypted)
    assert a.session.receive_datagram(b.forge(relay), 1.0)
    (reply,) = a.session.datagrams_to_send()
    assert parse_packet(reply).message == (Error(0x63) if mitm else RelayAck())
    assert a.session.state == "secure" and a.secured == secured


def test_equal_zid_is_refused() -> None:
    cache = MemoryZidCache()
    a, b = zrtp_end(cache=cache), zrtp_end(cache=MemoryZidCache(cache.our_zid))
    exchange(a, b)
    assert a.failed is not None and a.failed.code == 0x90


class FakePeer:
    """A hand-made ZRTP peer whose hash chain we know, to send exactly what a test needs."""

    def __init__(self) -> None:
        self.h0 = b"\x07" * 32
        self.h1 = hashlib.sha256(self.h0).digest()
        self.h2 = hashlib.sha256(self.h1).digest()
        self.h3 = hashlib.sha256(self.h2).digest()
        self.zid = b"fake-peer-id"
        self.sequence = 0

    def packet(self, message: Hello | Commit, key: bytes) -> bytes:
        raw = bytes(message)
        sealed = dataclasses.replace(message, mac=implicit_mac(key, raw[:-8]))
        self.sequence += 1
        return bytes(ZrtpPacket(self.sequence, 0xFEED, sealed))

    def hello(self) -> bytes:
        return self.hello_for("X255")

    def hello_for(self, key_agreement: str) -> bytes:
        hello = Hello("1.10", b"fake".ljust(16), self.h3, self.zid, key_agreements=(key_agreement,))
        return self.packet(hello, self.h2)

    def commit(self, **algorithms: str) -> bytes:
        commit = Commit(
            h2=self.h2,
            zid=self.zid,
            hash=algorithms.get("hash", "S256"),
            cipher=algorithms.get("cipher", "AES1"),
            auth_tag=algorithms.get("auth_tag", "HS80"),
            key_agreement=algorithms.get("key_agreement", "X255"),
            sas="B32 ",
            hvi=b"\x01" * 32,
        )
        return self.packet(commit, self.h1)

    def dhpart(self, kind: type[DHPart1] | type[DHPart2], pv: bytes) -> DHPart1 | DHPart2:
        """A DHPart of this peer with made-up secret ids and public value `pv`, unsealed."""
        return kind(
            h1=self.h1,
            rs1_id=b"1" * 8,
            rs2_id=b"2" * 8,
            auxsecret_id=b"3" * 8,
            pbxsecret_id=b"4" * 8,
            pv=pv,
        )


@pytest.mark.parametrize(
    ("algorithm", "code"),
    [
        ({"hash": "N256"}, 0x51),
        ({"cipher": "2FS1"}, 0x52),
        ({"key_agreement": "EC52"}, 0x53),
        ({"auth_tag": "SK32"}, 0x54),
    ],
)
def test_commit_with_unoffered_algorithm_is_refused(algorithm: dict[str, str], code: int) -> None:
    a, peer = zrtp_end(), FakePeer()
    a.session.start(0.0)
    a.session.receive_datagram(peer.hello(), 0.0)
    a.session.receive_datagram(peer.commit(**algorithm), 0.0)
    sent = [parse_packet(p).message for p in a.session.datagrams_to_send()]
    assert sent[-1] == Error(code)
    assert a.failed is not None and a.failed.code == code and a.failed.local


def test_commit_with_broken_hash_chain_is_ignored() -> None:
    a, peer = zrtp_end(), FakePeer()
    a.session.start(0.0)
    a.session.receive_datagram(peer.hello(), 0.0)
    peer.h2 = b"\x00" * 32
    a.session.receive_datagram(peer.commit(), 0.0)
    assert a.session.dropped == 1 and a.failed is None


def test_dhpart2_with_wrong_hvi_is_error_0x62() -> None:
    a, peer = zrtp_end(ZrtpConfig(key_agreements=("X255",))), FakePeer()
    a.session.start(0.0)
    a.session.receive_datagram(peer.hello(), 0.0)
    a.session.receive_datagram(peer.commit(), 0.0)
    sent = [parse_packet(p).message.type_name for p in a.session.datagrams_to_send()]
    assert sent[-1] == "DHPart1"
    part = peer.dhpart(DHPart2, b"\x09" * 32)
    a.session.receive_datagram(bytes(ZrtpPacket(9, 0xFEED, part)), 0.1)
    assert a.failed is not None and a.failed.code == 0x62


@pytest.mark.parametrize("pv", [0, 1, MODP_3072 - 1, MODP_3072])
def test_dhpart1_with_a_weak_dh3k_public_value_is_error_0x61(pv: int) -> None:
    """§4.4.1: pvr of 0, 1 or p-1 (or not below p) fails the exchange with Error 0x61."""
    a, peer = zrtp_end(ZrtpConfig(key_agreements=("DH3k",))), FakePeer()
    a.session.start(0.0)
    a.session.receive_datagram(peer.hello_for("DH3k"), 0.0)
    a.session.receive_datagram(bytes(ZrtpPacket(50, 0xFEED, HelloAck())), 0.0)
    sent = [parse_packet(p).message for p in a.session.datagrams_to_send()]
    commit = sent[-1]
    assert isinstance(commit, Commit) and commit.key_agreement == "DH3k"
    part = peer.dhpart(DHPart1, pv.to_bytes(384, "big"))
    a.session.receive_datagram(bytes(ZrtpPacket(51, 0xFEED, part)), 0.1)
    assert parse_packet(a.session.datagrams_to_send()[-1]).message == Error(0x61)
    assert a.failed is not None and a.failed.code == 0x61 and a.failed.local
    assert a.secured is None


def test_multistream_second_stream() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    a, b = zrtp_end(cache=ca), zrtp_end(cache=cb)
    exchange(a, b)
    first_a, _ = assert_agreed(a, b)
    a2, b2 = zrtp_end(cache=ca, parent=a.session), zrtp_end(cache=cb, parent=b.session)
    exchange(a2, b2)
    sa2, _ = assert_agreed(a2, b2)
    assert sa2.key_agreement == "Mult" and sa2.sas == first_a.sas
    assert a2.keys.send_key not in (a.keys.send_key, a.keys.recv_key)
    assert "DHPart1" not in a2.sent_types() + b2.sent_types()


def test_multistream_needs_a_secured_first_stream() -> None:
    a = zrtp_end()
    with pytest.raises(LocalProtocolError):
        zrtp_end(parent=a.session).session.start(0.0)


def test_packets_before_start_and_after_close_are_dropped() -> None:
    a, b = zrtp_end(), zrtp_end()
    b.session.start(0.0)
    (hello,) = b.session.datagrams_to_send()
    a.session.receive_datagram(hello, 0.0)
    assert a.session.dropped == 1
    a.session.close()
    a.session.receive_datagram(hello, 0.0)
    assert a.session.dropped == 2


@settings(max_examples=150, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 2**32), max_size=5),
    codes=st.lists(st.integers(0, 2**24 - 1), max_size=8),
)
def test_garbage_never_raises_and_exchange_survives(seeds: list[int], codes: list[int]) -> None:
    # (integers, not st.binary lists: those trip a BytesWarning inside hypothesis under -bb)
    junk = [random.Random(seed).randbytes(seed % 200) for seed in seeds]
    # each code picks a packet (0-40), a byte in it (0-511) and a new value (0-255)
    flips = [(c >> 17, (c >> 8) & 0x1FF, c & 0xFF) for c in codes]
    a, b = (
        zrtp_end(ZrtpConfig(key_agreements=("X255",))),
        zrtp_end(ZrtpConfig(key_agreements=("X255",))),
    )
    counter = {"n": 0}

    def corrupting(packets: list[bytes]) -> list[bytes]:
        out = list(junk) if packets else []
        for packet in packets:
            counter["n"] += 1
            for index, position, value in flips:
                if index == counter["n"]:
                    mutated = bytearray(packet)
                    mutated[position % len(mutated)] = value
                    out.append(bytes(mutated))
            out.append(packet)
        return out

    exchange(a, b, a_to_b=Wire(alter=corrupting), b_to_a=Wire(alter=corrupting))
    assert_agreed(a, b)


def test_hello_hash_is_the_sha256_of_our_hello_message() -> None:
    a = zrtp_end()
    a.session.start(0.0)
    (hello,) = a.session.datagrams_to_send()
    assert a.session.hello_hash == "1.10 " + hashlib.sha256(hello[12:-4]).hexdigest()


@pytest.mark.parametrize(
    "changes",
    [
        {"key_agreements": ("DH4k",)},
        {"hashes": ()},
        {"ciphers": ("AES1", "AES1")},
        {"sas_types": ("B32", "B256", "B32", "B256", "B32", "B256", "B32", "B256")},
        {"client_id": "a client id longer than 16"},
    ],
)
def test_config_rejects_what_cannot_be_offered(changes: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        ZrtpConfig(**changes)  # type: ignore[arg-type]


def test_error_is_retransmitted_until_acknowledged() -> None:
    cache = MemoryZidCache()
    a, b = zrtp_end(cache=cache), zrtp_end(cache=MemoryZidCache(cache.our_zid))
    a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
    b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    exchange(a, b)
    assert a.failed is not None and b.failed is not None
    assert a.sent_types().count("Error") == 1 and "ErrorACK" in b.sent_types()
    assert a.session.get_timer() is None and b.session.get_timer() is None


@pytest.mark.parametrize("first", [b"\x00\x00", b"\xff\xff", b"\x7f\xff"])
def test_sequence_numbers_start_low_enough_never_to_wrap(first: bytes) -> None:
    chunks = [first]
    session = ZrtpSession(
        cache=MemoryZidCache(),
        ssrc=1,
        random_bytes=lambda n: chunks.pop() if chunks and n == 2 else bytes(n),
    )
    session.start(0.0)
    (hello,) = session.datagrams_to_send()
    assert 1 <= struct.unpack("!H", hello[2:4])[0] <= 0x8000


def test_replayed_multistream_nonce_is_error_0x80() -> None:
    ca, cb = MemoryZidCache(), MemoryZidCache()
    a, b = zrtp_end(cache=ca), zrtp_end(cache=cb, config=ZrtpConfig(passive=True))
    exchange(a, b)
    # b2 is passive: only a2 commits, so a2's nonce is the one used
    a2 = zrtp_end(cache=ca, parent=a.session)
    b2 = zrtp_end(ZrtpConfig(passive=True), cache=cb, parent=b.session)
    exchange(a2, b2)
    assert_agreed(a2, b2)
    hello, commit = (
        next(p for p in a2.sent if parse_packet(p).message.type_name == kind)
        for kind in ("Hello", "Commit")
    )
    replay = zrtp_end(cache=cb, parent=b.session)
    replay.session.start(0.0)
    replay.session.receive_datagram(hello, 0.0)
    replay.session.receive_datagram(commit, 0.0)
    assert replay.failed is not None and replay.failed.code == 0x80


# ---- forgeries before SECURE ---------------------------------------------------------------


def start_both(a: ZrtpEnd, b: ZrtpEnd, *, hashes: bool) -> None:
    if hashes:
        a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
        b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    a.session.start(0.0)
    b.session.start(0.0)


def test_forged_hello_not_matching_the_zrtp_hash_is_dropped() -> None:
    """One forged Hello (valid CRC, the peer's SSRC) arriving first no longer fails the
    exchange: it does not hash to a=zrtp-hash, so it is dropped, and the peer's completes."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    start_both(a, b, hashes=True)
    forged = FakePeer().hello()
    assert not a.session.receive_datagram(forged, 0.0)
    assert a.session.drops == {"unauthenticated": 1} and a.failed is None
    exchange(a, b, start=False)
    assert_agreed(a, b)
    assert a.session.peer_zid == b.cache.our_zid


@pytest.mark.parametrize("hashes", [True, False], ids=["zrtp-hash", "no-zrtp-hash"])
def test_forged_hello_with_the_peers_h3_loses_to_the_real_one(hashes: bool) -> None:
    """An on-path forger copies the peer's Hello (its H3, ZID and SSRC) but offers only DH3k
    and cannot key the MAC. With a=zrtp-hash it is dropped at once; without, both Hellos are
    held and the H2 in the peer's Commit shows which one is real (§9.1): same SAS both ends,
    and the downgrade does not happen."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    start_both(a, b, hashes=hashes)
    b.sent.extend(b.session.datagrams_to_send())
    real = parse_packet(b.sent[0])
    assert isinstance(real.message, Hello)
    downgraded = dataclasses.replace(real.message, key_agreements=("DH3k",), mac=b"\x00" * 8)
    forged = bytes(ZrtpPacket(real.sequence, real.ssrc, downgraded))
    assert not a.session.receive_datagram(forged, 0.0)
    for packet in b.sent:
        a.session.receive_datagram(packet, 0.0)
    exchange(a, b, start=False)
    secured_a, _ = assert_agreed(a, b)
    assert secured_a.key_agreement == "X255"
    assert a.session.peer_zid == b.cache.our_zid
    if hashes:
        assert a.session.drops["unauthenticated"] == 1
    else:
        assert secured_a.role == "responder"  # a held two Hellos, so it let b commit


def test_forged_helloack_does_not_stop_our_hello() -> None:
    """A HelloACK from another SSRC than the peer's Hello does not stop our Hello: if our
    first Hello was lost, the retransmission still reaches the peer and the exchange ends."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    start_both(a, b, hashes=True)
    a.session.datagrams_to_send()  # a's first Hello is lost
    assert not a.session.receive_datagram(bytes(ZrtpPacket(1, 0x0BAD, HelloAck())), 0.0)
    exchange(a, b, start=False)
    assert_agreed(a, b)


def test_forged_commit_does_not_stop_our_commit() -> None:
    """A Commit that would win the contention (highest hvi) but whose H2 is not the peer's is
    dropped before it touches our Commit's retransmission: when our first Commit is lost, the
    retransmission still reaches a passive peer."""
    a, b = zrtp_end(), zrtp_end(ZrtpConfig(passive=True), ssrc=0x5678)
    start_both(a, b, hashes=True)
    lost = {"commit": False}

    def lose_first_commit(packets: list[bytes]) -> list[bytes]:
        out = []
        for packet in packets:
            if parse_packet(packet).message.type_name == "Commit" and not lost["commit"]:
                lost["commit"] = True
                fake = FakePeer()
                forged = Commit(
                    fake.h2,
                    b.cache.our_zid,
                    "S256",
                    "AES1",
                    "HS80",
                    "X255",
                    "B32 ",
                    hvi=b"\xff" * 32,
                )
                a.session.receive_datagram(b.forge(forged), 0.0)
                continue
            out.append(packet)
        return out

    exchange(a, b, a_to_b=Wire(alter=lose_first_commit), start=False)
    assert lost["commit"] and a.session.drops["unauthenticated"] == 1
    assert_agreed(a, b)


def test_commit_that_wins_keeps_ours_going_until_its_dhpart2_proves_it() -> None:
    """§4.2 contention, with the peer's H2 proven: we answer as responder, but our own Commit
    is retransmitted until the DHPart2 proves the winning Commit's H1 (a forger who replays a
    real H2 in a Commit of his own cannot silence ours)."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    dropped: list[str] = []

    def lose_first_dhpart2(packets: list[bytes]) -> list[bytes]:
        out = []
        for packet in packets:
            if parse_packet(packet).message.type_name == "DHPart2" and not dropped:
                dropped.append("DHPart2")
                continue
            out.append(packet)
        return out

    start_both(a, b, hashes=True)
    exchange(
        a,
        b,
        start=False,
        a_to_b=Wire(alter=lose_first_dhpart2),
        b_to_a=Wire(alter=lose_first_dhpart2),
    )
    secured_a, _ = assert_agreed(a, b)
    responder = a if secured_a.role == "responder" else b
    assert dropped and responder.sent_types().count("Commit") >= 2
    assert responder.session.get_timer() is None


def test_only_authenticated_progress_vouches_for_the_sender() -> None:
    """receive_datagram says True (the media layer may follow the sender's address) only for a
    message that moved the exchange on and whose authenticity could be checked: not for a
    copy of one, nor for HelloACK or Error, which nothing authenticates."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    hellos_exchanged(a, b)  # b's Hello, matching its a=zrtp-hash: True
    assert not a.session.receive_datagram(b.sent[0], 0.0)  # the same Hello again
    assert not a.session.receive_datagram(b.forge(HelloAck()), 0.0)
    assert a.session.drops == {}


def test_sequence_numbers_cannot_be_poisoned() -> None:
    """The ZRTP header is not authenticated: a HelloACK with the peer's SSRC and a sequence
    number far ahead must not make the peer's real packets look old."""
    a, b = zrtp_end(), zrtp_end(ssrc=0x5678)
    hellos_exchanged(a, b)
    for packet in a.sent:
        b.session.receive_datagram(packet, 0.0)
    b.forged = 30000
    a.session.receive_datagram(b.forge(HelloAck()), 0.0)
    exchange(a, b, start=False)
    assert_agreed(a, b)


def test_the_names_a_phone_may_configure_are_one_list_each_and_all_work() -> None:
    """The configuration checks import these lists; every name in them is one ZrtpConfig
    takes and our Hello offers, and Multistream is never among what a person chooses."""
    from pidphone.zrtp import algorithms as alg

    lists = {
        "hashes": alg.HASHES,
        "ciphers": alg.CIPHERS,
        "auth_tags": alg.AUTH_TAGS,
        "key_agreements": alg.KEY_AGREEMENTS,
        "sas_types": alg.SAS_TYPES,
    }
    for kind, names in lists.items():
        assert tuple(n.strip() for n in alg.SUPPORTED[kind] if n != alg.MULTISTREAM) == names
        for name in names:
            end = zrtp_end(ZrtpConfig(**{kind: (name,)}))  # type: ignore[arg-type]
            end.session.start(0.0)
            hello = parse_packet(end.session.datagrams_to_send()[0]).message
            assert isinstance(hello, Hello) and name.ljust(4) in getattr(hello, kind)
    assert alg.MULTISTREAM not in alg.KEY_AGREEMENTS
