"""Jitter buffer scenarios, driven by a simulated clock: puts at arrival times, a pop per 20 ms."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.rtp import JitterBuffer, JitterFrame, RtpPacket

FRAME = 0.02


def packet(
    n: int, *, seq0: int = 1000, ts0: int = 5000, ssrc: int = 7, marker: bool = False
) -> RtpPacket:
    """Frame n of a stream; the payload names the frame so playback order can be read back."""
    return RtpPacket(
        0, (seq0 + n) & 0xFFFF, (ts0 + 160 * n) & 0xFFFFFFFF, ssrc, n.to_bytes(4, "big"), marker
    )


def frame_no(frame: JitterFrame) -> int:
    return int.from_bytes(frame.payload, "big")


def run(
    buffer: JitterBuffer, arrivals: list[tuple[float, RtpPacket]], pops: int, phase: float = 0.01
) -> list[JitterFrame]:
    """Deliver packets at their times and pop every 20 ms starting at `phase`."""
    pending = sorted(arrivals, key=lambda item: item[0])
    out = []
    i = 0
    for k in range(pops):
        now = phase + k * FRAME
        while i < len(pending) and pending[i][0] <= now:
            buffer.put(pending[i][1], pending[i][0])
            i += 1
        out.append(buffer.pop(now))
    return out


def played(frames: list[JitterFrame]) -> list[int | str]:
    return [frame_no(f) if f.kind == "audio" else f.kind[0] for f in frames]


def test_silence_before_anything() -> None:
    buffer = JitterBuffer()
    assert buffer.pop(0.0) == JitterFrame("silence", b"", None)


def test_steady_stream_plays_in_order_after_target_delay() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    frames = run(buffer, [(n * FRAME, packet(n)) for n in range(20)], 22)
    # target 2 frames: one frame of silence, then every frame, then concealment at the end
    assert played(frames) == ["s", *range(20), "l"]
    assert frames[1].payload_type == 0
    assert (buffer.lost, buffer.late, buffer.duplicates) == (0, 0, 0)


def test_target_of_one_frame_without_jitter() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    frames = run(buffer, [(n * FRAME, packet(n)) for n in range(10)], 10)
    assert played(frames) == list(range(10))
    assert buffer.target == 1


def test_reordered_packets_are_played_in_order() -> None:
    buffer = JitterBuffer(initial_delay=0.04)
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8]
    arrivals = [(i * FRAME, packet(n)) for i, n in enumerate(order)]
    assert played(run(buffer, arrivals, 12)) == ["s", "s", *range(10)]
    assert buffer.late == 0


def test_duplicates_are_dropped_and_counted() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(n * FRAME, packet(n)) for n in range(10)]
    arrivals += [(n * FRAME + 0.001, packet(n)) for n in (2, 3, 3)]
    arrivals += [(0.15, packet(1))]  # long after it was played: still a duplicate
    assert played(run(buffer, arrivals, 11)) == ["s", *range(10)]
    assert buffer.duplicates == 4
    assert buffer.late == 0


def test_loss_is_a_gap_to_conceal() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(n * FRAME, packet(n)) for n in range(10) if n not in (3, 6, 7)]
    frames = run(buffer, arrivals, 11)
    # a loss is a gap in place and never adds delay, two in a row as well
    assert played(frames) == ["s", 0, 1, 2, "l", 4, 5, "l", "l", 8, 9]
    assert frames[4].payload_type == 0
    assert buffer.lost == 2  # the first of the pair is skipped after its pop, so it is "lost"
    assert buffer.concealed == 3


def test_a_lost_frame_carries_the_next_payload_for_fec() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(n * FRAME, packet(n)) for n in range(8) if n != 3]
    frames = run(buffer, arrivals, 8)
    lost = frames[4]
    assert lost.kind == "lost"
    assert frame_no(JitterFrame("audio", lost.next_payload)) == 4
    # nothing after it yet (the stream's end): no payload to rebuild from
    assert run(JitterBuffer(), [(0.0, packet(0))], 2)[1].next_payload == b""


def test_late_packet_is_dropped() -> None:
    buffer = JitterBuffer(initial_delay=0.0, max_delay=0.02)
    arrivals = [(n * FRAME, packet(n)) for n in range(8) if n != 3] + [(0.15, packet(3))]
    frames = run(buffer, arrivals, 8)
    assert played(frames) == [0, 1, 2, "l", 4, 5, 6, 7]
    assert buffer.late == 1


def test_sequence_and_timestamp_wrap() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(n * FRAME, packet(n, seq0=0xFFF0, ts0=0xFFFFFFFF - 160 * 12)) for n in range(40)]
    arrivals[20], arrivals[21] = (
        (arrivals[20][0], arrivals[21][1]),
        (arrivals[21][0], arrivals[20][1]),
    )
    assert played(run(buffer, arrivals, 40)) == ["s", *range(39)]
    assert buffer.resyncs == 0


def test_timestamp_jump_resynchronises() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    arrivals = [(n * FRAME, packet(n)) for n in range(10)]
    # the sender restarts its clock: sequence continues, timestamp leaps a million samples
    arrivals += [(n * FRAME, packet(n, ts0=5000 + 1_000_000)) for n in range(10, 20)]
    frames = played(run(buffer, arrivals, 20))
    assert frames == list(range(20))
    assert buffer.resyncs == 1


def test_timestamp_jump_backwards_resynchronises() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    arrivals = [(n * FRAME, packet(n)) for n in range(20)]
    arrivals += [(n * FRAME, packet(n, ts0=5000 - 160 * 30)) for n in range(20, 50)]
    frames = played(run(buffer, arrivals, 50))
    assert frames[:20] == list(range(20))
    assert frames[20:] == list(range(20, 50))
    assert buffer.resyncs == 1
    assert buffer.late == 0
    assert buffer.target == 1


def test_ssrc_change_resynchronises() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    arrivals = [(n * FRAME, packet(n)) for n in range(10)]
    arrivals += [(n * FRAME, packet(n, seq0=3, ts0=99, ssrc=8)) for n in range(10, 20)]
    assert played(run(buffer, arrivals, 20)) == list(range(20))
    assert buffer.resyncs == 1


def test_late_start_and_talk_spurts() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    first = [(1.0 + n * FRAME, packet(n, marker=n == 0)) for n in range(5)]
    # silence suppression: the next spurt starts 2 s of timestamps later, with the marker bit
    second = [(3.0 + n * FRAME, packet(100 + n, marker=n == 0)) for n in range(5)]
    frames = played(run(buffer, first + second, 160))
    assert frames[:50] == ["s"] * 50
    assert frames[50:55] == list(range(5))
    assert frames[55:58] == ["l"] * 3  # concealment fades out, then silence
    assert frames[58:150] == ["s"] * 92
    assert frames[150:155] == list(range(100, 105))
    assert buffer.lost == 0


def test_jitter_raises_the_target_up_to_max_delay() -> None:
    rng = random.Random(4)
    buffer = JitterBuffer(initial_delay=0.0, max_delay=0.2)
    arrivals = [(n * FRAME + rng.uniform(0, 0.065), packet(n)) for n in range(500)]
    frames = run(buffer, arrivals, 505)
    assert 4 <= buffer.target <= 5  # 1 + ceil(65 ms / 20 ms)
    # once adapted (after the first second), nothing is late any more and order holds
    audio = [frame_no(f) for f in frames[60:] if f.kind == "audio"]
    assert audio == sorted(audio)
    assert len(audio) >= 430
    late_before = buffer.late
    assert late_before < 30

    huge = JitterBuffer(initial_delay=0.0, max_delay=0.1)
    run(huge, [(n * FRAME + rng.uniform(0, 0.5), packet(n)) for n in range(300)], 320)
    assert huge.target == 6  # the frame playing and 100 ms behind it
    assert huge.delay == pytest.approx(0.1)


def test_delay_shrinks_when_jitter_goes_away() -> None:
    rng = random.Random(7)
    buffer = JitterBuffer(initial_delay=0.0, max_delay=0.2)
    rough = [(n * FRAME + rng.uniform(0, 0.06), packet(n)) for n in range(250)]
    calm = [(n * FRAME, packet(n)) for n in range(250, 3000)]
    frames = run(buffer, rough + calm, 3000)
    grown = run(JitterBuffer(initial_delay=0.0, max_delay=0.2), rough, 250)
    assert played(grown).count("l") < 15  # the delay grew to cover the jitter
    assert buffer.target == 1
    assert buffer.dropped > 0
    audio = [frame_no(f) for f in frames if f.kind == "audio"]
    assert audio == sorted(audio)
    offset = buffer.offset
    assert offset is not None and offset < FRAME + 0.005  # drained back to under a frame
    assert audio[-1] >= 2998


def test_pop_early_takes_a_frame_only_above_the_target() -> None:
    buffer = JitterBuffer(initial_delay=0.06, max_delay=0.2)
    arrivals = [(n * FRAME, packet(n)) for n in range(400)]
    out: list[int | str] = []
    early = 0
    for k in range(400):
        now = 0.01 + k * FRAME
        for t, p in arrivals[k : k + 1]:
            buffer.put(p, t)
        if k == 0:
            assert buffer.pop_early(now) is None  # nothing played yet
        out += played([buffer.pop(now)])
        if (frame := buffer.pop_early(now)) is not None:  # as if each frame were quiet
            early += 1
            out += played([frame])
    audio = [n for n in out if isinstance(n, int)]
    assert audio == sorted(set(audio))
    # the initial 60 ms went down as the measured jitter decayed, a frame at a time, and
    # never below the target: the buffer keeps the smallest offset that covers it
    assert early == buffer.dropped
    assert 1 <= early <= 3
    offset = buffer.offset
    assert offset is not None and buffer.delay <= offset + 1e-9
    assert not buffer.excess


def test_burst_beyond_max_delay_drops_oldest() -> None:
    buffer = JitterBuffer(initial_delay=0.0, max_delay=0.1)
    arrivals = [(0.0, packet(0))] + [(0.5, packet(n)) for n in range(1, 30)]
    frames = played(run(buffer, arrivals, 40, phase=0.5))
    # the burst arrives before the first pop: only the newest target's worth is kept
    assert buffer.target == 6
    assert frames[:6] == [24, 25, 26, 27, 28, 29]
    assert buffer.dropped == 24


def test_bad_configuration() -> None:
    with pytest.raises(LocalProtocolError):
        JitterBuffer(max_delay=0)


def test_straggler_after_talk_spurt_does_not_restart_playback() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(n * FRAME, packet(n)) for n in range(5) if n != 2] + [(0.5, packet(2))]
    frames = played(run(buffer, arrivals, 40))
    assert frames[:6] == ["s", 0, 1, "l", 3, 4]
    assert set(frames[10:]) == {"s"}
    assert buffer.late == 1


def test_first_sequence_zero_and_reordered_predecessor() -> None:
    buffer = JitterBuffer(initial_delay=0.02)
    arrivals = [(0.0, packet(1, seq0=0xFFFF)), (0.001, packet(0, seq0=0xFFFF))]
    arrivals += [(n * FRAME, packet(n, seq0=0xFFFF)) for n in range(2, 6)]
    # frame 0 arrives after frame 1 anchored the stream, but within the pre-roll: played
    assert played(run(buffer, arrivals, 6)) == [0, 1, 2, 3, 4, 5]
    assert (buffer.duplicates, buffer.late) == (0, 0)


def test_payload_type_follows_the_stream() -> None:
    buffer = JitterBuffer(initial_delay=0.0)
    buffer.put(RtpPacket(8, 1, 160, 9, b"a"), 0.0)
    buffer.put(RtpPacket(13, 2, 320, 9, b"\x40"), 0.02)
    assert buffer.pop(0.02) == JitterFrame("audio", b"a", 8)
    assert buffer.pop(0.04) == JitterFrame("audio", b"\x40", 13)
    assert buffer.pop(0.06) == JitterFrame("lost", b"", 13)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 0.15), st.integers(0, 2), st.booleans()), min_size=1, max_size=120
    ),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_property_plays_each_frame_at_most_once_in_order(
    plan: list[tuple[float, int, bool]], seq0: int, ts0: int
) -> None:
    """Random delay, duplication and loss: whatever is played is in order, each frame once."""
    buffer = JitterBuffer()
    arrivals = []
    for n, (delay, copies, keep) in enumerate(plan):
        if keep:
            arrivals += [
                (n * FRAME + delay + 0.001 * c, packet(n, seq0=seq0, ts0=ts0))
                for c in range(copies + 1)
            ]
    frames = run(buffer, arrivals, len(plan) + 20)
    audio = [frame_no(f) for f in frames if f.kind == "audio"]
    assert audio == sorted(set(audio))
    assert all(f.kind in {"audio", "lost", "silence"} for f in frames)
    assert 1 <= buffer.target <= buffer.max_frames + 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 2),
            st.booleans(),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_fuzz_arbitrary_packets_never_break_it(
    items: list[tuple[int, int, int, bool, bool]],
) -> None:
    buffer = JitterBuffer()
    now = 0.0
    for seq, ts, ssrc, marker, pop in items:
        buffer.put(RtpPacket(0, seq, ts, ssrc, b"x", marker), now)
        if pop:
            assert buffer.pop(now).kind in {"audio", "lost", "silence"}
        now += 0.02
    for _ in range(15):
        buffer.pop(now)
        now += 0.02


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 2),
            st.booleans(),
            st.floats(0, 0.2),
            st.booleans(),
        ),
        max_size=80,
    )
)
def test_put_raw_behaves_as_put(plan: list[tuple[int, int, int, bool, float, bool]]) -> None:
    """The receive path feeds header fields; the buffer must not care which door they used."""
    by_packet, by_fields = JitterBuffer(), JitterBuffer()
    out_packet: list[JitterFrame] = []
    out_fields: list[JitterFrame] = []
    for n, (seq, ts, ssrc, marker, jitter, pop) in enumerate(plan):
        arrival = n * FRAME + jitter
        payload = bytes([n % 256])
        by_packet.put(RtpPacket(0, seq, ts, ssrc, payload, marker), arrival)
        by_fields.put_raw(seq, ts, ssrc, 0, payload, arrival=arrival, marker=marker)
        if pop:
            out_packet.append(by_packet.pop(arrival))
            out_fields.append(by_fields.pop(arrival))
    assert out_packet == out_fields
    counters = ("late", "duplicates", "lost", "resyncs", "target")
    assert [getattr(by_packet, c) for c in counters] == [getattr(by_fields, c) for c in counters]


def opus_packet(n: int, *, seq0: int = 22000, ts0: int = 234_000_000) -> RtpPacket:
    """Frame n of an Opus stream (48 kHz RTP clock, 960 ticks a frame)."""
    return RtpPacket(
        111, (seq0 + n) & 0xFFFF, (ts0 + 960 * n) & 0xFFFFFFFF, 9, n.to_bytes(4, "big")
    )


def test_a_sender_stall_moves_the_transit_floor_up() -> None:
    """The pattern of a real call through the relay at 30 ms jitter (delay uniform in 0-60 ms)
    whose sender stalled for 220 ms: its audio clock restarted, so every later packet comes
    220 ms later for its timestamp, for the rest of the call. The buffer must take the new
    transit as the floor within a second or so, not count 220 ms of jitter for minutes (it
    then played every frame against a floor 220 ms too low: a target stuck at `max_delay`, the
    delay shrunk by frames it thought were excess, and a stream of late packets: PESQ 1.3)."""
    rng = random.Random(11)
    step = 250
    arrivals = [
        (n * FRAME + (0.22 if n >= step else 0.0) + rng.uniform(0, 0.06), opus_packet(n))
        for n in range(1500)
    ]
    buffer = JitterBuffer(clock_rate=48000, samples_per_frame=960, max_delay=0.2)
    frames = run(buffer, arrivals, 1520)
    settled = step + 11 + 100  # the stall's gap, then two seconds to find the new floor
    late_before = buffer.late
    audio = [frame_no(f) for f in frames[settled:] if f.kind == "audio"]
    assert audio == sorted(audio)
    tail = [frame_no(f) for f in frames[settled + 100 :] if f.kind == "audio"]
    missing = set(range(tail[0], 1500)) - set(tail)
    assert len(missing) <= 5, sorted(missing)
    assert buffer.delay < 0.09  # back to what 60 ms of jitter needs, not max_delay
    assert late_before < 60
