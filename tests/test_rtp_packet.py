"""RTP packet parse/serialize (RFC 3550 §5.1), classification (RFC 7983) and the sender."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.rtp import (
    PacketKind,
    RtpExtension,
    RtpPacket,
    RtpParseError,
    RtpSender,
    classify,
    rtp_fields,
    rtp_header_fields,
)

# A G.711 packet as linphone sends it: V=2, PT=0, seq 0x1234, ts 0x00000a00, SSRC 0xdeadbeef.
PCMU = bytes.fromhex("80001234 00000a00 deadbeef") + b"\xff" * 160


def test_parse_plain_packet() -> None:
    packet = RtpPacket.parse(PCMU)
    assert packet == RtpPacket(
        payload_type=0, sequence=0x1234, timestamp=0xA00, ssrc=0xDEADBEEF, payload=b"\xff" * 160
    )
    assert bytes(packet) == PCMU


def test_parse_marker_csrc_extension_padding() -> None:
    data = (
        bytes.fromhex("b2e0 0001 00000002 00000003")  # V=2 P X CC=2, M, PT=96
        + bytes.fromhex("00000011 00000022")
        + bytes.fromhex("bede 0001 12345678")
        + b"abc"
        + b"\x00\x00\x03"
    )
    packet = RtpPacket.parse(data)
    assert packet.marker is True
    assert packet.payload_type == 96
    assert packet.csrc == (0x11, 0x22)
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("12345678"))
    assert packet.payload == b"abc"
    assert packet.padding == 3
    assert bytes(packet) == data
    assert rtp_header_fields(data) == (96, 1, 2, 3, 12 + 8 + 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00" * 5, "RTP packet length is less than 12 bytes"),
        (b"\x40" + bytes(11), "RTP packet has invalid version"),
        (b"\x81" + bytes(11), "RTP packet has truncated CSRC"),
        (b"\x90" + bytes(11) + b"\x00", "RTP packet has truncated extension profile / length"),
        (
            b"\x90" + bytes(11) + b"\x00\x00\x00\x02" + bytes(4),
            "RTP packet has truncated extension value",
        ),
        (b"\xa0" + bytes(11) + b"\x00", "RTP packet padding length is invalid"),
        (b"\xa0" + bytes(11) + b"\x00\x05", "RTP packet padding length is invalid"),
    ],
)
def test_parse_errors_are_pinned(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError, match=f"^{message}$"):
        RtpPacket.parse(data)


def test_header_fields_errors() -> None:
    with pytest.raises(RtpParseError, match="invalid version"):
        rtp_header_fields(b"\x00" * 12)
    with pytest.raises(RtpParseError, match="truncated header"):
        rtp_header_fields(b"\x83" + bytes(11))


def test_serialize_rejects_bad_fields() -> None:
    with pytest.raises(LocalProtocolError):
        bytes(RtpPacket(128, 0, 0, 0, b""))
    with pytest.raises(LocalProtocolError):
        bytes(RtpPacket(0, 70000, 0, 0, b""))
    with pytest.raises(LocalProtocolError):
        bytes(RtpPacket(0, 0, 0, 0, b"", extension=RtpExtension(1, b"abc")))
    with pytest.raises(LocalProtocolError):
        bytes(RtpPacket(0, 0, 0, 0, b"", csrc=tuple(range(16))))


u32 = st.integers(0, 0xFFFFFFFF)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        st.integers(0, 0xFFFF),
        st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]),
    ),
    padding=st.integers(0, 255),
)


@settings(max_examples=200, deadline=None)
@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    pt, seq, ts, ssrc, header_len = rtp_header_fields(data)
    assert (pt, seq, ts, ssrc) == (
        packet.payload_type,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )
    assert data[header_len : header_len + len(packet.payload)] == packet.payload


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_classify_never_fails(data: bytes) -> None:
    assert isinstance(classify(data), PacketKind)


def test_classify() -> None:
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    zrtp = b"\x10\x00\x00\x01ZRTP" + bytes(8)
    rtcp_rr = bytes.fromhex("80c9 0001 deadbeef")
    assert classify(PCMU) is PacketKind.RTP
    assert classify(rtcp_rr) is PacketKind.RTCP
    assert classify(bytes.fromhex("81c8 0006") + bytes(24)) is PacketKind.RTCP
    # RTP with the marker bit and PT 0x48 would look like 0xc8 = SR: RFC 5761 forbids those PTs
    assert classify(bytes.fromhex("80df") + bytes(10)) is PacketKind.RTCP
    assert classify(bytes.fromhex("80e0") + bytes(10)) is PacketKind.RTP
    assert classify(zrtp) is PacketKind.ZRTP
    assert classify(b"\x10\x00\x00\x01ZRTX" + bytes(8)) is PacketKind.OTHER
    assert classify(b"\x11" + zrtp[1:]) is PacketKind.ZRTP  # a fragment (bzrtp 5.5)
    assert classify(b"\x11\x00\x00\x01ZRTX" + bytes(8)) is PacketKind.OTHER
    assert classify(b"\x12" + zrtp[1:]) is PacketKind.OTHER
    assert classify(stun) is PacketKind.STUN
    assert classify(b"\x00\x01\x00\x00\x21\x12\xa4\x43" + bytes(12)) is PacketKind.OTHER
    assert classify(b"\x16\xfe\xfd" + bytes(10)) is PacketKind.DTLS
    assert classify(b"\x80\x00\x00") is PacketKind.OTHER
    assert classify(b"\xff" * 20) is PacketKind.OTHER


def counter_bytes(n: int) -> bytes:
    return bytes(range(1, n + 1))


def test_sender_numbers_packets() -> None:
    sender = RtpSender(0, random_bytes=counter_bytes)
    assert sender.ssrc == 0x01020304
    assert sender.sequence == 0x0506
    first = RtpPacket.parse(sender.packet(b"\x7f" * 160, marker=True))
    second = RtpPacket.parse(sender.packet(b"\x7f" * 160))
    assert first == RtpPacket(0, 0x0506, 0x0708090A, 0x01020304, b"\x7f" * 160, marker=True)
    assert (second.sequence, second.timestamp, second.marker) == (0x0507, 0x0708090A + 160, False)
    sender.skip(320)
    event = RtpPacket.parse(sender.event_packet(101, b"\x01\x0a\x00\xa0", timestamp=5, marker=True))
    assert (event.payload_type, event.sequence, event.timestamp, event.marker) == (
        101,
        0x508,
        5,
        True,
    )
    third = RtpPacket.parse(sender.packet(b""))
    assert (third.sequence, third.timestamp) == (0x509, 0x0708090A + 640)
    assert sender.packets_sent == 4
    assert sender.octets_sent == 324


def test_sender_initial_sequence_in_lower_half_and_wraps() -> None:
    sender = RtpSender(8, random_bytes=lambda n: b"\xff" * n)
    assert sender.sequence == 0x7FFF
    assert sender.timestamp == 0xFFFFFFFF
    sender.sequence = 0xFFFF
    packet = RtpPacket.parse(sender.packet(b"x"))
    assert packet.sequence == 0xFFFF
    assert packet.timestamp == 0xFFFFFFFF
    assert (sender.sequence, sender.timestamp) == (0, 159)


def test_sender_random_by_default() -> None:
    a, b = RtpSender(0), RtpSender(0)
    assert a.ssrc != b.ssrc or a.timestamp != b.timestamp
    with pytest.raises(LocalProtocolError):
        RtpSender(200)
    assert struct.unpack("!H", a.packet(b"")[2:4])[0] < 0x8000


def _packet_bytes(
    pt: int, marker: bool, seq: int, ts: int, ssrc: int, csrc: list[int], payload: bytes
) -> bytes:
    return bytes(RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrc)))


packet_bytes = st.builds(
    _packet_bytes,
    st.integers(0, 127),
    st.booleans(),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=3),
    st.binary(max_size=24),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=40), packet_bytes, packet_bytes.map(lambda b: b[:-1])))
def test_rtp_fields_agrees_with_parse(data: bytes) -> None:
    """The receive path's fast header read accepts and rejects exactly what `parse` does."""
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        with pytest.raises(RtpParseError):
            rtp_fields(data)
        return
    fields = rtp_fields(data)
    assert fields == (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
        packet.payload,
    )
    assert type(fields[5]) is bytes
