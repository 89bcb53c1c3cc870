"""The jitter buffer's counters reach the call's stats (and `pidphone call --json`), across a
codec change, so that a real call shows what its playout did; and the send side's RTP time
follows the capture's, across frames the card lost."""

from __future__ import annotations

import itertools
from collections import deque
from time import time

from pidphone.app.media_config import MediaConfig
from pidphone.app.media_events import MediaStats
from pidphone.app.media_stream import AudioStream
from pidphone.audio.codec import make_codec
from pidphone.rtp import RtpSender, rtp_fields

FRAME = 0.02


def feed(stream: AudioStream, sender: RtpSender, codec: str, frames: int, late: int) -> None:
    """`frames` packets, each read on the tick it was sent, except frame `late`: it comes five
    frames after its turn, when it has been concealed."""
    encoder = make_codec(codec, {})
    pcm = bytes(encoder.frame_bytes)
    packets = [sender.packet(encoder.encode(pcm)) for _ in range(frames)]
    for n in range(frames + 2):
        now = n * FRAME
        if n < frames and n != late:
            stream.receive_rtp(packets[n], now)
        if n == late + 5:
            stream.receive_rtp(packets[late], now)
        stream.pull_audio(now + 0.01)


def test_late_and_lost_frames_are_counted_across_a_codec_change() -> None:
    stats = MediaStats()
    stream = AudioStream(MediaConfig(), stats=stats, events=deque(), wall_clock=time)
    stream.configure("PCMU", 0, None)
    feed(stream, RtpSender(0), "PCMU", 50, late=20)
    stream.fill_playout_stats()
    assert (stats.playout_late, stats.playout_resyncs, stats.playout_dropped) == (1, 0, 0)
    concealed = stats.playout_concealed
    assert concealed >= 1
    assert 0.0 <= stats.playout_delay < 0.2

    stream.configure("G722", 9, None)  # a re-INVITE: a new jitter buffer, the counts go on
    feed(stream, RtpSender(9), "G722", 50, late=30)
    stream.fill_playout_stats()
    assert (stats.playout_late, stats.playout_resyncs, stats.playout_dropped) == (2, 0, 0)
    assert stats.playout_concealed > concealed


def test_a_gap_in_the_capture_times_is_skipped_in_the_timestamps_and_marked() -> None:
    """Frames captured every 20 ms, then none for 300 ms (the card lost them): the next packet's
    timestamp is 300 ms on, not 20, and it has the marker bit (a talk-spurt's first)."""
    stream = AudioStream(MediaConfig(), stats=MediaStats(), events=deque(), wall_clock=time)
    stream.configure("PCMU", 0, None)
    pcm = bytes(stream.codec.frame_bytes)
    times = [0.02 * n for n in range(1, 6)] + [0.1 + 0.3 + 0.02 * n for n in range(3)]
    packets = [stream.packet_for(pcm, True, at) for at in times]
    fields = [rtp_fields(p) for p in packets if p is not None]
    stamps = [ts for _, _, _, ts, _, _ in fields]
    steps = [(y - x) & 0xFFFFFFFF for x, y in itertools.pairwise(stamps)]
    assert steps == [160, 160, 160, 160, 160 * 15, 160, 160]
    assert [marker for _, marker, _, _, _, _ in fields] == [False] * 5 + [True, False, False]
    assert stream.stats.capture_skipped == 14

    # a frame withheld in the gap keeps the mark for the next one sent
    stream.packet_for(pcm, False, 1.0)
    assert rtp_fields(stream.packet_for(pcm, True, 1.02) or b"")[1] is True
    assert stream.stats.capture_skipped == 14 + 27


def test_a_frame_read_late_is_not_a_frame_lost() -> None:
    """A completion time read up to a frame late (a card whose pointer moves a period at a time,
    a late wake-up) makes one gap longer and the next shorter: nothing is skipped, the
    timestamps step by one frame each, and no packet is marked."""
    stream = AudioStream(MediaConfig(), stats=MediaStats(), events=deque(), wall_clock=time)
    stream.configure("PCMU", 0, None)
    pcm = bytes(stream.codec.frame_bytes)
    times = [0.02 * n for n in range(1, 11)]
    times[4] += 0.0105
    times[7] += 0.0199
    packets = [stream.packet_for(pcm, True, at) for at in times]
    fields = [rtp_fields(p) for p in packets if p is not None]
    stamps = [ts for _, _, _, ts, _, _ in fields]
    assert [(y - x) & 0xFFFFFFFF for x, y in itertools.pairwise(stamps)] == [160] * 9
    assert not any(marker for _, marker, _, _, _, _ in fields)
    assert stream.stats.capture_skipped == 0
