"""Fragmented ZRTP messages (bzrtp 5.5's 0x11 packets): splitting, bounded reassembly, fuzz.

bzrtp's own fragments are checked byte for byte in test_zrtp_bzrtp_pq.py.
"""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.zrtp.crc import crc32c
from pidphone.zrtp.fragment import (
    DEFAULT_MTU,
    FRAGMENT_OVERHEAD,
    Fragment,
    Reassembler,
    encode_fragment,
    fragment_message,
    needs_fragments,
)
from pidphone.zrtp.messages import ZrtpParseError, encode_packet, parse_packet
from tests.bzrtp_transcripts import load

SSRC = 0xB0B


def message(words: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(4 * words))


def fragments(data: bytes, mtu: int = DEFAULT_MTU, message_id: int = 0x2C4) -> list[bytes]:
    return fragment_message(data, ssrc=SSRC, message_id=message_id, first_sequence=0x2C7, mtu=mtu)


def reassemble(packets: list[bytes], reassembler: Reassembler | None = None) -> bytes | None:
    if reassembler is None:
        reassembler = Reassembler()
    result = None
    for packet in packets:
        done = reassembler.receive(packet, 0.0)
        if done is not None:
            assert result is None
            result = done.message
    return result


def test_bzrtp_rule_for_when_to_fragment() -> None:
    assert not needs_fragments(1436)  # 1436 + 16 = 1452 = MTU
    assert needs_fragments(1440)
    assert needs_fragments(1740)  # an X3M3 Commit
    assert not needs_fragments(1740, mtu=2000)


def test_x3m3_commit_is_two_fragments_of_1428_and_312_bytes() -> None:
    packets = fragments(message(435))
    assert [len(p) - FRAGMENT_OVERHEAD for p in packets] == [1428, 312]
    first = Fragment.parse(packets[0])
    assert (first.message_id, first.total_words, first.offset_words, first.sequence) == (
        0x2C4,
        435,
        0,
        0x2C7,
    )
    assert packets[0][0] == 0x11
    assert Fragment.parse(packets[1]).offset_words == 357


def test_fragments_round_trip_and_carry_their_own_crc() -> None:
    data = message(435)
    packets = fragments(data)
    assert reassemble(packets) == data
    for packet in packets:
        assert struct.unpack("<I", packet[-4:])[0] == crc32c(packet[:-4])
        assert bytes(Fragment.parse(packet)) == packet


@settings(max_examples=200, deadline=None)
@given(
    words=st.integers(1, 1024),
    mtu=st.integers(32, 1600),
    seed=st.integers(0, 2**32),
    duplicates=st.integers(0, 5),
)
def test_any_order_with_duplicates_gives_the_message_once(
    words: int, mtu: int, seed: int, duplicates: int
) -> None:
    data = message(words, seed)
    packets = fragments(data, mtu=mtu)
    assert all(len(p) <= mtu for p in packets)
    rng = random.Random(seed)
    order = packets + [rng.choice(packets) for _ in range(duplicates)]
    rng.shuffle(order)
    reassembler = Reassembler()
    results = [r for p in order if (r := reassembler.receive(p, 0.0)) is not None]
    # a duplicate after completion starts a new partial message, so at least one completion
    assert results and all(r.message == data for r in results)
    assert results[0].ssrc == SSRC


def test_overlapping_fragments_that_agree_complete_the_message() -> None:
    data = message(100)
    small = fragments(data, mtu=FRAGMENT_OVERHEAD + 40)  # 10 words each
    big = fragments(data, mtu=FRAGMENT_OVERHEAD + 100)  # 25 words each
    reassembler = Reassembler()
    assert reassemble([*small[:3], big[0], *big[1:3]], reassembler) is None
    assert reassemble([big[3]], reassembler) == data


def test_contradicting_overlap_drops_the_partial_message_and_a_retransmission_recovers() -> None:
    data = message(100)
    packets = fragments(data, mtu=FRAGMENT_OVERHEAD + 100)
    forged = encode_fragment(
        sequence=1, ssrc=SSRC, message_id=0x2C4, total_words=100, offset_words=10,
        payload=b"\xee" * 40,
    )  # fmt: skip
    reassembler = Reassembler()
    assert reassembler.receive(packets[0], 0.0) is None
    with pytest.raises(ZrtpParseError, match="contradicts"):
        reassembler.receive(forged, 0.0)
    assert len(reassembler) == 0
    assert reassemble(packets, reassembler) == data


def test_a_fragment_announcing_another_length_drops_the_partial_message() -> None:
    # bytes that fill a gap are taken as they come (the session's MAC and hvi checks judge the
    # whole message), but every fragment of a message must announce the same length
    data = message(50)
    packets = fragments(data, mtu=FRAGMENT_OVERHEAD + 100)
    other_length = encode_fragment(
        sequence=1, ssrc=SSRC, message_id=0x2C4, total_words=60, offset_words=0,
        payload=b"\x00" * 40,
    )  # fmt: skip
    reassembler = Reassembler()
    reassembler.receive(packets[0], 0.0)
    with pytest.raises(ZrtpParseError, match="length"):
        reassembler.receive(other_length, 0.0)


def test_after_completion_only_the_same_bytes_are_collected_under_that_id() -> None:
    """A forged fragment that arrives once a message is whole is refused at once; kept, it
    would spoil the retransmission (the real fragments would complete a message with the
    forged bytes in it). A retransmission of the real message completes it again."""
    data = message(100)
    packets = fragments(data, mtu=FRAGMENT_OVERHEAD + 100)
    reassembler = Reassembler()
    assert reassemble(packets, reassembler) == data
    last = Fragment.parse(packets[-1])
    for total, payload in ((last.total_words, b"\xee" * len(last.payload)), (120, last.payload)):
        forged = encode_fragment(
            sequence=9, ssrc=SSRC, message_id=last.message_id, total_words=total,
            offset_words=last.offset_words, payload=payload,
        )  # fmt: skip
        with pytest.raises(ZrtpParseError, match="completed"):
            reassembler.receive(forged, 1.0)
    assert len(reassembler) == 0
    assert reassemble(packets, reassembler) == data  # the retransmission, whole again
    other = fragments(message(100, 3), mtu=FRAGMENT_OVERHEAD + 100, message_id=0x2C5)
    assert reassemble(other, reassembler) == message(100, 3)  # the next id is a new message


def test_messages_are_told_apart_by_ssrc_and_id() -> None:
    one, two = message(400, 1), message(400, 2)
    a = fragments(one, message_id=7)
    b = fragment_message(two, ssrc=SSRC, message_id=8, first_sequence=1)
    c = fragment_message(two, ssrc=SSRC + 1, message_id=7, first_sequence=1)
    reassembler = Reassembler()
    got = [
        r.message for p in (a[0], b[0], c[0], a[1], b[1], c[1]) if (r := reassembler.receive(p, 0))
    ]
    assert got == [one, two, two]


def test_size_bound() -> None:
    reassembler = Reassembler(max_message_bytes=2048)
    ok = fragments(message(512))
    assert reassemble(ok, reassembler) is not None
    too_big = encode_fragment(
        sequence=1, ssrc=SSRC, message_id=1, total_words=513, offset_words=0, payload=bytes(40)
    )
    with pytest.raises(ZrtpParseError, match="above"):
        reassembler.receive(too_big, 0.0)
    assert len(reassembler) == 0


def test_count_bound_drops_the_oldest() -> None:
    reassembler = Reassembler(max_messages=2)
    firsts = [fragments(message(400), message_id=i)[0] for i in (1, 2, 3)]
    for when, packet in enumerate(firsts):
        reassembler.receive(packet, float(when))
    assert len(reassembler) == 2
    # message 1 was dropped: its second fragment alone starts over and does not complete
    assert reassembler.receive(fragments(message(400), message_id=1)[1], 3.0) is None
    assert reassembler.receive(fragments(message(400), message_id=3)[1], 3.0) is not None


def test_time_bound() -> None:
    reassembler = Reassembler(lifetime=5.0)
    packets = fragments(message(400))
    reassembler.receive(packets[0], 100.0)
    assert reassembler.get_timer() == 105.0
    reassembler.expire(104.9)
    assert len(reassembler) == 1
    assert reassembler.receive(packets[1], 105.0) is None  # the first half expired
    assert reassembler.get_timer() == 110.0
    reassembler.expire(110.0)
    assert len(reassembler) == 0 and reassembler.get_timer() is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p[:-1] + bytes([p[-1] ^ 1]), "CRC"),
        (lambda p: b"\x10" + p[1:], "first byte"),
        (lambda p: p[:4] + b"ZRTQ" + p[8:], "cookie"),
        (lambda p: p[:8], "bytes"),
    ],
)
def test_malformed_fragments_are_parse_errors(mutate: object, reason: str) -> None:
    packet = fragments(message(435))[0]
    assert callable(mutate)
    with pytest.raises(ZrtpParseError, match=reason):
        Reassembler().receive(mutate(packet), 0.0)


def _with_fields(total: int, offset: int, length: int, payload_words: int) -> bytes:
    data = (
        struct.pack("!BBHII", 0x11, 0, 1, 0x5A525450, SSRC)
        + struct.pack("!HHHH", 1, total, offset, length)
        + bytes(4 * payload_words)
    )
    return data + struct.pack("<I", crc32c(data))


@pytest.mark.parametrize(
    ("total", "offset", "length", "payload_words"),
    [
        (10, 0, 5, 4),  # length field says more than it carries
        (10, 0, 3, 4),  # ... or less (bzrtp sums these fields: we never trust them)
        (10, 8, 4, 4),  # runs past the message
        (0, 0, 1, 1),  # empty message
        (0xFFFF, 0xFFFF, 1, 1),  # offset at the end of a huge message
    ],
)
def test_lengths_and_offsets_are_bounded(
    total: int, offset: int, length: int, payload_words: int
) -> None:
    with pytest.raises(ZrtpParseError):
        Reassembler().receive(_with_fields(total, offset, length, payload_words), 0.0)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_only_ever_raise_the_parse_error(data: bytes) -> None:
    reassembler = Reassembler()
    with contextlib.suppress(ZrtpParseError):
        reassembler.receive(data, 0.0)
    assert len(reassembler) <= 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(1, 64),
            st.integers(0, 70),
            st.integers(1, 8),
            st.binary(min_size=1, max_size=1),
        ),
        max_size=60,
    )
)
def test_random_valid_fragments_never_break_the_bounds(
    items: list[tuple[int, int, int, int, bytes]],
) -> None:
    reassembler = Reassembler(max_message_bytes=128, max_messages=2)
    for now, (message_id, total, offset, words, fill) in enumerate(items):
        packet = encode_fragment(
            sequence=now, ssrc=SSRC, message_id=message_id, total_words=total,
            offset_words=offset, payload=fill * (4 * words),
        )  # fmt: skip
        try:
            done = reassembler.receive(packet, float(now))
        except ZrtpParseError:
            continue
        assert len(reassembler) <= 2
        if done is not None:
            assert len(done.message) == 4 * total <= 128


def test_misuse_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        fragment_message(message(10), ssrc=1, message_id=1, first_sequence=1, mtu=20)
    with pytest.raises(LocalProtocolError):
        fragment_message(b"abc", ssrc=1, message_id=1, first_sequence=1)
    with pytest.raises(LocalProtocolError):
        Reassembler(max_messages=0)


def test_a_normal_packet_is_no_fragment_and_a_fragment_no_normal_packet() -> None:
    t = load("bzrtp55-x3m3")
    hello = next(r.data for r in t.rows if r.kind == "Hello")
    with pytest.raises(ZrtpParseError):
        Fragment.parse(hello)
    fragment = next(r.data for r in t.rows if r.kind == "fragment")
    with pytest.raises(ZrtpParseError):
        parse_packet(fragment)
    assert parse_packet(encode_packet(1, SSRC, parse_packet(hello).message.__bytes__()))
