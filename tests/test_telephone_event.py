"""RFC 4733 telephone-events: payload, encoder timing, decoder collapsing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.rtp import RtpPacket, RtpSender
from pidphone.rtp.telephone_event import (
    DtmfPress,
    EventPacket,
    TelephoneEvent,
    TelephoneEventDecoder,
    TelephoneEventEncoder,
    TelephoneEventParseError,
)


def test_payload_layout() -> None:
    # RFC 4733 §2.3: event 9, E=1, volume 10, duration 1600
    event = TelephoneEvent(9, True, 10, 1600)
    assert bytes(event) == bytes.fromhex("098a0640")
    assert TelephoneEvent.parse(bytes.fromhex("098a0640")) == event
    assert TelephoneEvent.parse(bytes.fromhex("0b0a00a0")).key == "#"
    assert TelephoneEvent.parse(bytes.fromhex("100a00a0")).key is None
    with pytest.raises(TelephoneEventParseError, match=r"^telephone-event payload is shorter"):
        TelephoneEvent.parse(b"\x01\x02")
    with pytest.raises(LocalProtocolError):
        bytes(TelephoneEvent(1, volume=64))
    with pytest.raises(LocalProtocolError):
        bytes(TelephoneEvent(1, duration=70000))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    value = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(bytes(value)) == value


def drain(encoder: TelephoneEventEncoder) -> list[EventPacket]:
    out = []
    while (packet := encoder.frame()) is not None:
        out.append(packet)
    return out


def test_encoder_fixed_duration() -> None:
    encoder = TelephoneEventEncoder()
    encoder.start("5", 12345, duration=800)
    packets = drain(encoder)
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {12345}
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert len(events) == 7
    assert {e.event for e in events} == {5}
    assert not encoder.busy


def test_encoder_start_stop_and_errors() -> None:
    encoder = TelephoneEventEncoder(volume=7)
    assert encoder.frame() is None
    encoder.start("#", 1)
    assert encoder.busy
    with pytest.raises(LocalProtocolError, match="still being sent"):
        encoder.start("1", 2)
    first = encoder.frame()
    encoder.frame()
    encoder.stop()
    ends = drain(encoder)
    assert first is not None
    assert TelephoneEvent.parse(first.payload) == TelephoneEvent(11, False, 7, 160)
    assert [TelephoneEvent.parse(p.payload) for p in ends] == [TelephoneEvent(11, True, 7, 320)] * 3
    # stopped before any frame: one start packet that is also the end
    encoder.start("A", 9)
    encoder.stop()
    packets = drain(encoder)
    assert packets[0].marker
    assert [TelephoneEvent.parse(p.payload) for p in packets] == [
        TelephoneEvent(12, True, 7, 160)
    ] * 3
    with pytest.raises(LocalProtocolError, match="not a DTMF key"):
        encoder.start("x", 0)
    with pytest.raises(LocalProtocolError):
        TelephoneEventEncoder(volume=99)


def test_encoder_long_event_segments() -> None:
    encoder = TelephoneEventEncoder()
    encoder.start("1", 0xFFFFFF00, duration=0x10000 + 800)
    packets = drain(encoder)
    stamps = sorted({p.timestamp for p in packets})
    # first segment ends below 0xFFFF samples, the next starts at old timestamp + duration
    first_segment = [
        TelephoneEvent.parse(p.payload).duration for p in packets if p.timestamp == 0xFFFFFF00
    ]
    assert max(first_segment) == 65440
    assert stamps == sorted([0xFFFFFF00, (0xFFFFFF00 + 65440) & 0xFFFFFFFF])
    assert sum(p.marker for p in packets) == 1
    decoder = TelephoneEventDecoder()
    presses = [decoder.receive(p.payload, p.timestamp) for p in packets]
    assert [p for p in presses if p] == [DtmfPress("1", 0xFFFFFF00, 10)]


def test_with_rtp_sender() -> None:
    sender = RtpSender(0, random_bytes=bytes)
    encoder = TelephoneEventEncoder()
    sender.packet(b"\xff" * 160)
    encoder.start("7", sender.timestamp, duration=320)
    wire = []
    while encoder.busy:
        packet = encoder.frame()
        assert packet is not None
        wire.append(
            sender.event_packet(
                101, packet.payload, timestamp=packet.timestamp, marker=packet.marker
            )
        )
        sender.skip(160)
    wire.append(sender.packet(b"\xff" * 160))
    parsed = [RtpPacket.parse(w) for w in wire]
    assert [p.sequence for p in parsed] == [1, 2, 3, 4, 5]
    assert [p.payload_type for p in parsed] == [101] * 4 + [0]
    assert [p.timestamp for p in parsed] == [160] * 4 + [160 + 4 * 160]


def test_decoder_reports_each_press_once() -> None:
    encoder = TelephoneEventEncoder()
    stream: list[EventPacket] = []
    ts = 1000
    for key in "1233#":  # the repeated 3 is two presses: two timestamps
        encoder.start(key, ts, duration=480)
        stream.extend(drain(encoder))
        ts += 2000
    rng = random.Random(1)
    noisy = []
    for packet in stream:
        noisy.extend([packet] * rng.randint(1, 3))  # duplicates
    # swap some neighbours, drop the very first start packet of one press
    for i in range(0, len(noisy) - 1, 5):
        noisy[i], noisy[i + 1] = noisy[i + 1], noisy[i]
    noisy = [p for p in noisy if not (p.timestamp == 3000 and p.marker)]
    decoder = TelephoneEventDecoder()
    presses = [press for p in noisy if (press := decoder.receive(p.payload, p.timestamp))]
    assert [p.key for p in presses] == list("1233#")
    assert [p.timestamp for p in presses] == [1000, 3000, 5000, 7000, 9000]
    assert decoder.last_duration == 480


def test_decoder_ignores_non_dtmf_and_rejects_short() -> None:
    decoder = TelephoneEventDecoder()
    assert decoder.receive(bytes(TelephoneEvent(16)), 5) is None
    with pytest.raises(TelephoneEventParseError):
        decoder.receive(b"", 5)
