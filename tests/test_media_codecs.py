"""Wideband calls through the media session, back to back and secured by ZRTP: Opus (48 kHz RTP
clock, FEC, its own PLC) and G.722 (8 kHz RTP clock for 16 kHz audio), RFC 4733 events at the
codec's clock, and a codec change in the middle of a call (a re-INVITE)."""

from __future__ import annotations

import itertools
from collections import deque
from time import time

import pytest

from pidphone.app.media_config import MediaConfig
from pidphone.app.media_events import MediaDtmf, MediaStats
from pidphone.app.media_stream import AudioStream
from pidphone.audio.analysis import dominant_frequencies, rms
from pidphone.audio.codec import make_codec
from pidphone.rtp import PacketKind, RtpSender, classify, rtp_fields
from tests.harness import A_ADDR, B_ADDR, MediaEnd, media_end, talk, tone_frames


def pair(codec: str, pt: int, freq: float = 5000) -> tuple[MediaEnd, MediaEnd]:
    a = media_end(A_ADDR, freq, codec=(codec, pt))
    b = media_end(B_ADDR, 700, codec=(codec, pt))
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    return a, b


def strongest(frames: list[bytes], rate: int) -> float:
    found = dominant_frequencies(b"".join(frames), rate, count=1)
    return found[0] if found else 0.0


def rtp_timestamps(end: MediaEnd) -> list[int]:
    """The RTP timestamps of the audio packets `end` sent (the header is clear under SRTP)."""
    stamps = []
    for _, data, _ in end.sent:
        if classify(data) == PacketKind.RTP:
            pt, _, _, ts, _, _ = rtp_fields(data)
            if pt != 101:
                stamps.append(ts)
    return stamps


@pytest.mark.parametrize(("codec", "pt", "ticks"), [("opus", 111, 960), ("G722", 9, 160)])
def test_a_wideband_codec_carries_a_5_khz_tone(codec: str, pt: int, ticks: int) -> None:
    a, b = pair(codec, pt)
    talk(a, b, 2.0)
    assert a.session.security == b.session.security == "secure"
    assert a.session.audio_rate == b.session.audio_rate == 16000
    assert {len(f) for f in b.played[-50:]} == {640}  # 20 ms at 16 kHz
    assert abs(strongest(b.played[-25:], 16000) - 5000) < 40
    assert abs(strongest(a.played[-25:], 16000) - 700) < 40
    stamps = rtp_timestamps(a)
    assert len(stamps) > 50
    assert {(y - x) & 0xFFFFFFFF for x, y in itertools.pairwise(stamps)} == {ticks}


def test_narrowband_cannot_carry_it() -> None:
    a, b = pair("PCMU", 0, freq=3000)  # the 5 kHz tone's alias at 8 kHz: what G.711 can send
    talk(a, b, 2.0)
    assert a.session.audio_rate == 8000 and {len(f) for f in b.played[-50:]} == {320}
    assert abs(strongest(b.played[-25:], 8000) - 3000) < 40


def test_opus_rebuilds_lost_frames_from_the_next_packets_fec() -> None:
    """The receive side alone, clocked as the media worker runs it: on each tick the packets
    that came since the last one are read, then a frame is played. Every tenth is lost. The
    first loss finds no next packet (the buffer holds no more than the path needs); from then
    on the buffer holds one frame more, so the next packet and its FEC copy are here."""
    stream = AudioStream(MediaConfig(), stats=MediaStats(), events=deque(), wall_clock=time)
    stream.configure("opus", 111, None, {"useinbandfec": "1"})
    sender = RtpSender(111, clock_rate=48000, samples_per_packet=960)
    encoder = make_codec("opus", {"useinbandfec": "1"}, sample_rate=16000)
    tone = tone_frames(1000)
    lost = 0
    played = []
    for n in range(200):
        now = n * 0.02
        packet = sender.packet(encoder.encode(tone(n, 16000)))
        if n % 10 == 5:
            lost += 1
        else:
            assert stream.receive_rtp(packet, now)
        played.append(stream.pull_audio(now))
    assert lost == 20
    assert stream.stats.fec_recovered == lost - 1
    assert abs(strongest(played[-50:], 16000) - 1000) < 20
    assert min(rms(f) for f in played[10:]) > 1000  # no frame fell silent


def test_opus_fec_holds_a_frame_beyond_the_jitter() -> None:
    """On a path with jitter the next packet varies as much as the lost one would have, and
    comes a frame later: the FEC hold is added to the jitter, so every lost frame whose next
    packet is the most delayed is still rebuilt (with the hold as a floor under the jitter,
    that next packet came after the lost frame was due)."""
    stream = AudioStream(MediaConfig(), stats=MediaStats(), events=deque(), wall_clock=time)
    stream.configure("opus", 111, None, {"useinbandfec": "1"})
    sender = RtpSender(111, clock_rate=48000, samples_per_packet=960)
    encoder = make_codec("opus", {"useinbandfec": "1"}, sample_rate=16000)
    tone = tone_frames(1000)
    delays = itertools.cycle([0.0, 0.06, 0.11, 0.03, 0.09, 0.12, 0.01, 0.07, 0.05, 0.1])
    arrivals: list[tuple[float, bytes]] = []
    lost = 0
    for n in range(600):
        packet = sender.packet(encoder.encode(tone(n, 16000)))
        delay = next(delays)
        if n % 10 == 4 and n > 100:  # the next packet is the most delayed
            lost += 1
        else:
            arrivals.append((n * 0.02 + delay, packet))
    arrivals.sort(key=lambda item: item[0])
    for tick in range(640):
        now = tick * 0.02 + 0.01
        while arrivals and arrivals[0][0] <= now:
            stream.receive_rtp(arrivals.pop(0)[1], now)
        stream.pull_audio(now)
    assert lost == 50
    assert stream.stats.fec_recovered >= lost - 2, stream.stats.fec_recovered


@pytest.mark.parametrize(("codec", "pt"), [("opus", 111), ("G722", 9)])
def test_dtmf_events_at_the_codecs_clock(codec: str, pt: int) -> None:
    a, b = pair(codec, pt)
    now = talk(a, b, 1.0)
    a.session.send_dtmf("5")
    talk(a, b, 0.5, start=now)
    assert b.of(MediaDtmf) == [MediaDtmf("5")]
    # the event's packets carry the timestamp of its start, in the codec's clock: the audio
    # after it goes on as if the event's frames had been audio
    stamps = rtp_timestamps(a)
    gaps = {(y - x) & 0xFFFFFFFF for x, y in itertools.pairwise(stamps)}
    frame = 960 if codec == "opus" else 160
    assert min(gaps) == frame and all(g % frame == 0 for g in gaps)


def test_a_reinvite_moves_the_call_from_g711_to_opus() -> None:
    a, b = pair("PCMU", 0, freq=1000)
    now = talk(a, b, 1.5)
    assert abs(strongest(b.played[-25:], 8000) - 1000) < 20
    for end in (a, b):
        end.session.configure("opus", 111, 101, {"useinbandfec": "1"})
    talk(a, b, 1.5, start=now)
    assert b.session.security == "secure"
    assert {len(f) for f in b.played[-25:]} == {640}
    assert abs(strongest(b.played[-25:], 16000) - 1000) < 20
    assert abs(strongest(a.played[-25:], 16000) - 700) < 20
