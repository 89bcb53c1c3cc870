"""Post-quantum ZRTP in the session (bzrtp 5.5's KEM mode), pidphone against pidphone.

X3M3 (X448 + ML-KEM-1024), MLK3 (ML-KEM-1024) and MLK2 (ML-KEM-768): the Commit carries the
initiator's public key, DHPart1 the responder's ciphertext, DHPart2 a 16-byte nonce. Their
Commit and DHPart1 are longer than a datagram should be, so they travel in fragments: these
tests lose, duplicate, reorder and forge fragments. bzrtp itself is checked in
test_zrtp_bzrtp_pq.py (its own exchanges) and test_zrtp_bzrtp_replay.py (pidphone against it).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest

from pidphone.zrtp import (
    Commit,
    DHPart1,
    DHPart2,
    Error,
    Hello,
    MemoryZidCache,
    Message,
    ZrtpConfig,
    kem,
    parse_message,
    parse_packet,
)
from pidphone.zrtp.agreement import KemInitiator, KemResponder
from pidphone.zrtp.algorithms import Suite
from pidphone.zrtp.fragment import (
    DEFAULT_MTU,
    FRAGMENT_FIRST_BYTE,
    Fragment,
    Reassembler,
    encode_fragment,
    fragment_message,
)
from pidphone.zrtp.keyagreement import BadPublicValueError
from pidphone.zrtp.messages import encode_packet, split_packet
from tests.harness import Channel, Wire, ZrtpEnd, exchange, zrtp_end

PQ = ("X3M3", "MLK3", "MLK2")
COMBINATIONS = list(itertools.product(PQ, ("HS80", "HS32", "GCM"), ("B32", "B256")))
PATTERNS = {
    "every-third-lost": {"loss": [False, False, True]},
    "all-twice": {"duplicate": [True]},
    "swapped-pairs": {"hold": [True, False]},
    "mixed": {
        "loss": [False, False, True],
        "duplicate": [False, True],
        "hold": [True, False, False],
    },
}


def pq(ka: str, auth: str = "HS80", sas: str = "B32", **changes: object) -> ZrtpConfig:
    return ZrtpConfig(key_agreements=(ka,), auth_tags=(auth,), sas_types=(sas,), **changes)  # type: ignore[arg-type]


def agreed(a: ZrtpEnd, b: ZrtpEnd) -> None:
    sa, sb = a.secured, b.secured
    assert sa is not None and sb is not None, (a.events, b.events)
    assert sa.sas == sb.sas and {sa.role, sb.role} == {"initiator", "responder"}
    assert a.keys.send_key == b.keys.recv_key and a.keys.send_salt == b.keys.recv_salt
    assert b.keys.send_key == a.keys.recv_key and b.keys.send_salt == a.keys.recv_salt


def initiator_and_responder(a: ZrtpEnd, b: ZrtpEnd) -> tuple[ZrtpEnd, ZrtpEnd]:
    assert a.secured is not None
    return (a, b) if a.secured.role == "initiator" else (b, a)


# ---- agreement ------------------------------------------------------------------------------


@pytest.mark.parametrize(("ka", "auth", "sas"), COMBINATIONS)
def test_every_post_quantum_combination_agrees(ka: str, auth: str, sas: str) -> None:
    a, b = zrtp_end(pq(ka, auth, sas), ssrc=1), zrtp_end(pq(ka, auth, sas), ssrc=2)
    exchange(a, b)
    agreed(a, b)
    secured = a.secured
    assert secured is not None
    assert (secured.key_agreement, secured.auth_tag, secured.sas_scheme) == (ka, auth, sas)
    # with a post-quantum key agreement both offer and take AES3 and S512 (as bzrtp does)
    assert (secured.cipher, secured.hash) == ("AES3", "S512")
    assert secured.post_quantum and b.secured is not None and b.secured.post_quantum
    assert len(a.keys.send_key) == 32
    assert len(a.keys.send_salt) == (12 if auth == "GCM" else 14)
    assert a.keys.profile == (
        "AEAD_AES_256_GCM" if auth == "GCM" else f"AES_256_CM_HMAC_SHA1_{auth[2:]}"
    )
    assert a.session.dropped == b.session.dropped == 0


def test_kem_messages_carry_the_public_key_the_ciphertext_and_the_nonce() -> None:
    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    exchange(a, b)
    agreed(a, b)
    commit = next(m for m in a.sent_messages() if isinstance(m, Commit))
    dhpart1 = next(m for m in b.sent_messages() if isinstance(m, DHPart1))
    dhpart2 = next(m for m in a.sent_messages() if isinstance(m, DHPart2))
    assert len(bytes(commit)) == 1740 and len(bytes(dhpart1)) == 1708  # bzrtp's sizes
    assert len(commit.public_key) == 56 + 1568 and len(commit.hvi) == 32
    assert len(dhpart1.pv) == 56 + 1568
    assert len(dhpart2.pv) == kem.DHPART2_NONCE_BYTES
    assert not any(isinstance(m, Commit) for m in b.sent_messages())  # passive


def test_a_post_quantum_hello_offers_aes3_and_s512_too() -> None:
    end = zrtp_end(ZrtpConfig(key_agreements=("X3M3", "X255"), ciphers=("AES1",), hashes=("S256",)))
    end.session.start(0.0)
    hello = parse_packet(end.session.datagrams_to_send()[0]).message
    assert isinstance(hello, Hello)
    assert hello.ciphers == ("AES1", "AES3") and hello.hashes == ("S256", "S512")
    classical = zrtp_end(ZrtpConfig(key_agreements=("X255",), ciphers=("AES1",), hashes=("S256",)))
    classical.session.start(0.0)
    hello = parse_packet(classical.session.datagrams_to_send()[0]).message
    assert isinstance(hello, Hello) and hello.ciphers == ("AES1",) and hello.hashes == ("S256",)


def test_x3m3_is_chosen_only_when_both_list_it_first() -> None:
    x3m3_first = ZrtpConfig(key_agreements=("X3M3", "X255"))
    x255_first = ZrtpConfig(key_agreements=("X255", "X3M3"))
    a, b = zrtp_end(x3m3_first, ssrc=1), zrtp_end(x255_first, ssrc=2)
    exchange(a, b)
    agreed(a, b)
    assert a.secured is not None and a.secured.key_agreement == "X255"
    assert not a.secured.post_quantum
    a, b = zrtp_end(x3m3_first, ssrc=1), zrtp_end(x3m3_first, ssrc=2)
    exchange(a, b)
    assert a.secured is not None and a.secured.key_agreement == "X3M3"


def test_the_loser_of_the_contention_encapsulates_afresh_to_the_winners_key() -> None:
    keys_seen: dict[str, list[bytes]] = {"a": [], "b": []}

    def recorder(name: str) -> kem.MlKemEncapsulate:
        def encapsulate(variant: str, public_key: bytes) -> tuple[bytes, bytes]:
            keys_seen[name].append(public_key)
            return kem.mlkem_encapsulate(variant, public_key)

        return encapsulate

    from pidphone.zrtp import ZrtpSession
    from tests.harness import ZrtpEnd as End

    ends = []
    for name, ssrc in (("a", 1), ("b", 2)):
        cache = MemoryZidCache()
        session = ZrtpSession(
            cache=cache, ssrc=ssrc, config=pq("MLK3"), encapsulate_mlkem=recorder(name)
        )
        ends.append(End(session, cache))
    a, b = ends
    exchange(a, b)
    agreed(a, b)
    # both sent a Commit with its own key; only the responder encapsulated, once, to the
    # key of the Commit that won
    assert "Commit" in a.sent_types() and "Commit" in b.sent_types()
    initiator, responder = initiator_and_responder(a, b)
    winner = next(m for m in initiator.sent_messages() if isinstance(m, Commit))
    seen = keys_seen["a" if responder is a else "b"]
    assert seen == [winner.public_key]
    assert keys_seen["a" if initiator is a else "b"] == []


# ---- fragments ------------------------------------------------------------------------------


def fragments_of(end: ZrtpEnd) -> list[Fragment]:
    return [Fragment.parse(p) for p in end.sent if p[0] == FRAGMENT_FIRST_BYTE]


def test_fragments_stay_within_the_mtu_with_increasing_ids_kept_by_retransmissions() -> None:
    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    # the responder's first DHPart1 is lost: the initiator retransmits its Commit
    exchange(a, b, b_to_a=Wire(keep=lambda data, now: not (data[0] == 0x11 and now < 0.1)))
    agreed(a, b)
    assert max(len(p) for p in a.sent + b.sent) <= DEFAULT_MTU
    commits = fragments_of(a)
    assert [len(bytes(f)) for f in commits[:2]] == [1452, 336]  # 1428 + 312 bytes of message
    ids = {f.message_id for f in commits}
    assert len(ids) == 1 and 0 not in ids  # every copy of the Commit under one id
    sequences = [f.sequence for f in commits]
    assert len(commits) >= 4 and len(set(sequences)) == len(sequences)  # new numbers each time
    dhpart1 = fragments_of(b)
    assert len({f.message_id for f in dhpart1}) == 1 and dhpart1[0].message_id != 0
    # bzrtp's rule: each new fragmented message of a stream gets a higher id
    assert min(f.message_id for f in dhpart1) >= 1


def test_a_stream_gives_each_new_fragmented_message_the_next_id() -> None:
    # the loser of a contention sends its Commit, then its DHPart1, in fragments
    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3"), ssrc=2)
    exchange(a, b)
    agreed(a, b)
    _, responder = initiator_and_responder(a, b)
    by_message: dict[int, set[bytes]] = {}
    reassembler = Reassembler()
    for packet in responder.sent:
        if packet[0] == FRAGMENT_FIRST_BYTE:
            whole = reassembler.receive(packet, 0.0)
            if whole is not None:
                by_message.setdefault(Fragment.parse(packet).message_id, set()).add(
                    whole.message[4:12]
                )
    assert list(by_message.values()) == [{b"Commit  "}, {b"DHPart1 "}]
    first, second = by_message
    assert 0 < first < second


@pytest.mark.parametrize(("ka", "auth", "sas"), COMBINATIONS)
@pytest.mark.parametrize("pattern", PATTERNS.values(), ids=PATTERNS.keys())
def test_lost_duplicated_and_reordered_fragments(
    ka: str, auth: str, sas: str, pattern: dict[str, list[bool]]
) -> None:
    """The same impairment both ways, on every packet, fragments included: a lost fragment
    costs a retransmission, a copy or an early one changes nothing."""
    config = pq(ka, auth, sas)
    a, b = zrtp_end(config, ssrc=1), zrtp_end(config, ssrc=2)
    exchange(a, b, a_to_b=Wire(**pattern), b_to_a=Wire(**pattern))  # type: ignore[arg-type]
    agreed(a, b)
    assert a.session.drops["unauthenticated"] == b.session.drops["unauthenticated"] == 0


def rewrite(type_block: bytes, change: Callable[[bytes], bytes]) -> Channel:
    """An on-path forger: the first message of this type, reassembled from its fragments (or
    whole), is changed and sent on in their place with valid CRCs."""
    done = {"changed": False}
    reassembler = Reassembler()

    def channel(batch: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for packet in batch:
            if done["changed"]:
                out.append(packet)
            elif packet[0] == FRAGMENT_FIRST_BYTE:
                first = Fragment.parse(packet)
                whole = reassembler.receive(packet, 0.0)
                if whole is None:
                    continue
                message = whole.message
                if message[4:12] == type_block:
                    message = change(message)
                    done["changed"] = True
                out.extend(
                    fragment_message(
                        message,
                        ssrc=first.ssrc,
                        message_id=first.message_id,
                        first_sequence=first.sequence,
                    )
                )
            else:
                sequence, ssrc, message = split_packet(packet)
                if message[4:12] == type_block:
                    done["changed"] = True
                    packet = encode_packet(sequence, ssrc, change(message))
                out.append(packet)
        return out

    return channel


COMMIT_KEY_AT = 12 + 32 + 12 + 20 + 32
DHPART_VALUE_AT = 12 + 32 + 32


@pytest.mark.parametrize(
    ("ka", "where", "bad"),
    [
        ("X3M3", "x448", bytes(56)),  # the all-zero X448 value: an all-zero secret
        ("MLK3", "mlkem", b"\xff" * 1568),  # coefficients above q: FIPS 203's key check fails
        ("MLK2", "mlkem", b"\xff" * 1184),
    ],
)
def test_a_commit_with_an_unusable_public_key_is_error_0x61(
    ka: str, where: str, bad: bytes
) -> None:
    def spoil(message: bytes) -> bytes:
        at = COMMIT_KEY_AT + (56 if ka == "X3M3" and where == "mlkem" else 0)
        return message[:at] + bad + message[at + len(bad) :]

    a, b = zrtp_end(pq(ka), ssrc=1), zrtp_end(pq(ka, passive=True), ssrc=2)
    exchange(a, b, a_to_b=Wire(alter=rewrite(b"Commit  ", spoil)), until=3.0)
    assert b.failed is not None and b.failed.code == 0x61, b.events
    assert Error(0x61) in b.sent_messages()
    assert a.secured is None and b.secured is None


@pytest.mark.parametrize("ka", PQ)
def test_a_dhpart1_whose_ciphertext_has_the_wrong_size_is_error_0x61(ka: str) -> None:
    def shorten(message: bytes) -> bytes:
        body = message[:DHPART_VALUE_AT] + message[DHPART_VALUE_AT + 4 :]
        return body[:2] + struct.pack("!H", len(body) // 4) + body[4:]

    a, b = zrtp_end(pq(ka), ssrc=1), zrtp_end(pq(ka, passive=True), ssrc=2)
    exchange(a, b, b_to_a=Wire(alter=rewrite(b"DHPart1 ", shorten)), until=3.0)
    assert a.failed is not None and a.failed.code == 0x61, a.events
    assert Error(0x61) in a.sent_messages()


def test_kem_values_of_the_wrong_size_are_refused() -> None:
    suite = Suite("S512", "AES3", "HS80", "MLK2", "B32 ")
    initiator = KemInitiator(suite, __import__("os").urandom)
    with pytest.raises(BadPublicValueError):
        initiator.secret(bytes(1088 + 4))
    with pytest.raises(BadPublicValueError):
        KemResponder(
            suite, initiator.commit_value[:-4], __import__("os").urandom, kem.mlkem_encapsulate
        )
    responder = KemResponder(
        suite, initiator.commit_value, __import__("os").urandom, kem.mlkem_encapsulate
    )
    with pytest.raises(BadPublicValueError):
        responder.secret(bytes(32))  # DHPart2's nonce is 16 bytes
    assert responder.secret(bytes(16)) == initiator.secret(responder.value)


def forged_fragment(
    end: ZrtpEnd, data: bytes, *, message_id: int, ssrc: int | None = None
) -> bytes:
    """A fragment that says it is word 0 of `end`'s message `message_id`, with a valid CRC."""
    first = fragments_of(end)[0]
    return encode_fragment(
        sequence=first.sequence,
        ssrc=first.ssrc if ssrc is None else ssrc,
        message_id=message_id,
        total_words=first.total_words,
        offset_words=0,
        payload=data,
    )


def test_a_forged_fragment_costs_at_most_a_retransmission() -> None:
    """An on-path forger who read the SSRC and message id slips a fragment of its own in
    front of the real ones: the partial message is discarded when the real fragment
    contradicts it, and the Commit's retransmission completes it."""
    plain_a, plain_b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    exchange(plain_a, plain_b)
    agreed(plain_a, plain_b)
    forged: list[bytes] = []

    def forge(batch: list[bytes]) -> list[bytes]:
        at = next((i for i, data in enumerate(batch) if data[0] == FRAGMENT_FIRST_BYTE), None)
        if forged or at is None:
            return batch
        real = Fragment.parse(batch[at])
        forged.append(
            encode_fragment(
                sequence=real.sequence,
                ssrc=real.ssrc,
                message_id=real.message_id,
                total_words=real.total_words,
                offset_words=0,
                payload=bytes(len(real.payload)),
            )
        )
        return [*batch[:at], *forged, *batch[at:]]

    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    exchange(a, b, a_to_b=Wire(alter=forge))
    agreed(a, b)
    assert forged
    assert b.session.drops["malformed"] == 1  # the real fragment that contradicted the forgery
    assert a.sent_types().count("Commit") == 2  # the first copy and one retransmission
    # the responder answered (its DHPart1 fragments) one retransmission later than unharmed
    delay = dhpart1_at(b) - dhpart1_at(plain_b)
    assert 0 < delay <= ZrtpConfig().retransmit_interval + 0.01


def dhpart1_at(end: ZrtpEnd) -> float:
    """When `end` sent its first fragment (its DHPart1's, as the responder)."""
    return next(
        at for at, p in zip(end.sent_at, end.sent, strict=True) if p[0] == FRAGMENT_FIRST_BYTE
    )


def test_fragments_from_another_ssrc_are_never_collected() -> None:
    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    exchange(a, b)
    agreed(a, b)
    for message_id in range(1, 20):
        fake = forged_fragment(a, bytes(1428), message_id=fragments_of(a)[0].message_id, ssrc=0xBAD)
        assert not b.session.receive_datagram(fake, 5.0 + message_id)
    assert b.session.drops["foreign_ssrc"] == 19
    assert b.session.get_timer() is None  # nothing collected, nothing to expire


def test_fragments_after_secure_change_nothing_and_expire_with_the_session_timer() -> None:
    a, b = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3", passive=True), ssrc=2)
    exchange(a, b)
    agreed(a, b)
    secured = b.secured
    # the peer's own SSRC, a new message id: taken as a part, never whole
    fake = forged_fragment(a, bytes(1428), message_id=0x7FFF)
    assert not b.session.receive_datagram(fake, 20.0)
    assert b.session.last_drop is None and b.session.get_timer() == 30.0
    b.session.handle_timer(30.0)
    assert b.session.get_timer() is None
    # the real Commit, all its fragments again (an on-path replay): whole, then dropped
    for packet in a.sent:
        if packet[0] == FRAGMENT_FIRST_BYTE:
            assert not b.session.receive_datagram(packet, 31.0)
    assert b.session.drops["after_secure"] >= 1
    assert b.session.state == "secure" and b.secured == secured
    assert b.session.datagrams_to_send() == []


def test_a_man_in_the_middle_of_a_post_quantum_call_shows_two_sas() -> None:
    """PQ changes nothing about an active attacker who runs an exchange with each end: the
    SAS differs, as with DH, and comparing it aloud catches the relay."""
    relay_cache = MemoryZidCache()
    alice, r1 = zrtp_end(pq("X3M3"), ssrc=1), zrtp_end(pq("X3M3"), cache=relay_cache, ssrc=2)
    r2, bob = zrtp_end(pq("X3M3"), cache=relay_cache, ssrc=3), zrtp_end(pq("X3M3"), ssrc=4)
    exchange(alice, r1)
    exchange(r2, bob)
    agreed(alice, r1)
    agreed(r2, bob)
    assert alice.secured is not None and bob.secured is not None
    assert alice.secured.post_quantum and bob.secured.post_quantum
    assert alice.secured.sas != bob.secured.sas


def test_messages_parse_back_from_what_the_session_sent() -> None:
    a, b = zrtp_end(pq("MLK3"), ssrc=1), zrtp_end(pq("MLK3"), ssrc=2)
    exchange(a, b)
    for message in a.sent_messages() + b.sent_messages():
        assert parse_message(bytes(message)) == message
    sent: list[Message] = a.sent_messages()
    assert any(isinstance(m, Commit) and m.public_key for m in sent)
