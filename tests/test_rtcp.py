"""RTCP compound packets (RFC 3550 §6) and receiver statistics (Appendix A)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.rtp import (
    Bye,
    ReceiverReport,
    ReceiverStats,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)

# SR with one report block, then SDES CNAME "alice@host", written out field by field.
SR_SDES = bytes.fromhex(
    "81c8000c"  # V=2 RC=1 PT=200 length=12
    "11223344"  # SSRC
    "e93c7f00 80000000"  # NTP 2024-01-01T00:00:00.5Z
    "00001f40"  # RTP timestamp 8000
    "00000032 00001f40"  # 50 packets, 8000 octets
    "55667788 05fffffe 0001000a 00000010 7f008000 00008000"  # block: lost -2, frac 5
    "81ca0005"  # V=2 SC=1 PT=202 length=5
    "11223344 010a616c 69636540 686f7374 00000000"
)


def test_parse_sender_report_and_sdes() -> None:
    sr, sdes = parse_rtcp(SR_SDES)
    assert sr == SenderReport(
        ssrc=0x11223344,
        ntp_timestamp=0xE93C7F0080000000,
        rtp_timestamp=8000,
        packet_count=50,
        octet_count=8000,
        reports=(ReportBlock(0x55667788, 5, -2, 0x1000A, 16, 0x7F008000, 0x8000),),
    )
    assert sdes == SourceDescription((SdesChunk(0x11223344, (SdesItem(1, b"alice@host"),)),))
    assert serialize_rtcp([sr, sdes]) == SR_SDES


def test_ntp_helpers() -> None:
    ntp = ntp_timestamp(1704067200.5)  # 2024-01-01T00:00:00.5Z
    assert ntp == 0xE93C7F0080000000
    assert ntp_middle32(ntp) == 0x7F008000


def test_receiver_report_bye_unknown_and_padding() -> None:
    packets: list[RtcpPacket] = [
        ReceiverReport(7),
        Bye((7, 8), b"hung up"),
        UnknownRtcp(204, 3, b"name1234"),
    ]
    data = serialize_rtcp(packets)
    assert data[:8] == bytes.fromhex("80c90001 00000007")
    assert data[8:20] == bytes.fromhex("82cb0004 00000007 00000008")
    assert parse_rtcp(data) == packets
    # a padded BYE (P bit, 4 octets of padding)
    padded = bytes.fromhex("a1cb0002 00000009 00000004")
    assert parse_rtcp(padded) == [Bye((9,))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP packet length is less than 4 bytes"),
        (bytes.fromhex("80c90001 00000007 80"), "RTCP packet length is less than 4 bytes"),
        (bytes.fromhex("40c90001 00000007"), "RTCP packet has invalid version"),
        (bytes.fromhex("80c90002 00000007"), "RTCP packet is truncated"),
        (bytes.fromhex("a0c90001 00000000"), "RTCP packet padding length is invalid"),
        (bytes.fromhex("a0c90001 00000009"), "RTCP packet padding length is invalid"),
        (bytes.fromhex("80c80001 00000007"), "RTCP sender report length is invalid"),
        (bytes.fromhex("81c90001 00000007"), "RTCP receiver report length is invalid"),
        (bytes.fromhex("80c90000"), "RTCP receiver report length is invalid"),
        (bytes.fromhex("81ca0001 00000007"), "RTCP SDES chunk is truncated"),
        (bytes.fromhex("81ca0002 00000007 01050000"), "RTCP SDES item is truncated"),
        (bytes.fromhex("82cb0001 00000007"), "RTCP BYE is truncated"),
        (bytes.fromhex("81cb0002 00000007 05410000"), "RTCP BYE reason is truncated"),
    ],
)
def test_parse_errors_are_pinned(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError, match=f"^{message}$"):
        parse_rtcp(data)


def test_serialize_rejects_bad_fields() -> None:
    with pytest.raises(LocalProtocolError):
        serialize_rtcp([ReceiverReport(1 << 32)])
    with pytest.raises(LocalProtocolError):
        serialize_rtcp([ReceiverReport(1, (ReportBlock(1, 0, 1 << 23, 0, 0),))])
    with pytest.raises(LocalProtocolError):
        serialize_rtcp([Bye((1,), b"x" * 256)])
    with pytest.raises(LocalProtocolError):
        serialize_rtcp([SourceDescription((SdesChunk(1, (SdesItem(0, b""),)),))])
    with pytest.raises(LocalProtocolError):
        serialize_rtcp([UnknownRtcp(204, 0, b"abc")])


u32 = st.integers(0, 0xFFFFFFFF)
words = st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])
blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    u32,
    u32,
    u32,
    u32,
)
block_lists = st.lists(blocks, max_size=4).map(tuple)
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32, block_lists, words),
    st.builds(ReceiverReport, u32, block_lists, words),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(
                    st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=20)), max_size=3
                ).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(u32, max_size=4).map(tuple), st.binary(max_size=30)),
    st.builds(
        UnknownRtcp,
        st.integers(0, 255).filter(lambda t: not 200 <= t <= 203),
        st.integers(0, 31),
        words,
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_round_trip(packets: list[RtcpPacket]) -> None:
    assert parse_rtcp(serialize_rtcp(packets)) == packets


def feed(stats: ReceiverStats, seqs: list[int], *, jitter_every: float = 0.0) -> None:
    for i, seq in enumerate(seqs):
        stats.update(seq, seq * 160, i * 0.02 + (jitter_every if i % 2 else 0.0))


def test_stats_probation_loss_and_fraction() -> None:
    stats = ReceiverStats()
    assert stats.update(100, 0, 0.0) is False  # probation
    feed(stats, list(range(101, 111)))
    assert stats.expected == 10
    assert stats.cumulative_lost == 0
    feed(stats, [111, 112, 115, 116])  # 113, 114 lost
    block = stats.report_block(0xABC)
    assert block.ssrc == 0xABC
    assert block.packets_lost == 2
    assert block.fraction_lost == 2 * 256 // 16
    assert block.highest_sequence == 116
    feed(stats, [117, 118, 119, 120])
    assert stats.report_block(0xABC).fraction_lost == 0


def test_stats_wrap_duplicates_and_jump() -> None:
    stats = ReceiverStats()
    feed(stats, [65533, 65534, 65535, 0, 1, 2, 2, 2])
    assert stats.extended_highest_sequence == (1 << 16) + 2
    assert stats.cumulative_lost == -2  # duplicates count, as RFC 3550 says
    # a jump of 20000 is believed only when the next packet confirms it
    assert stats.update(20000, 0, 1.0) is False
    assert stats.update(20001, 160, 1.02) is True
    assert stats.expected == 1
    assert stats.extended_highest_sequence == 20001


def test_stats_jitter_and_lsr() -> None:
    stats = ReceiverStats()
    # every other packet 10 ms late: |D| = 80 timestamp units each time, jitter tends to 80
    feed(stats, list(range(500)), jitter_every=0.01)
    assert stats.jitter == pytest.approx(80, abs=0.5)
    block = stats.report_block(1, last_sr_ntp_middle32=0x12345678, delay_since_last_sr=0.5)
    assert block.jitter == 79
    assert (block.lsr, block.dlsr) == (0x12345678, 32768)
    assert stats.report_block(1).dlsr == 0
