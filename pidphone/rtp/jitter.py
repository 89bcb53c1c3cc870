"""An adaptive jitter buffer for one incoming audio stream: pure, driven by two calls.

`put(packet, arrival)` (or `put_raw` with the header fields, which builds no packet object) is
called by the receiving side with each RTP audio packet (RFC 4733 events go to the
telephone-event decoder instead) and its arrival time (any monotonic clock,
in seconds); `pop()` is called by the playback clock once per frame (20 ms) and returns what
to play: the frame's payload ("audio"), a gap the decoder must conceal ("lost"), or
"silence" (nothing started yet, or the talk-spurt is over).

The algorithm:

* Position. Each packet gets a frame index: its extended RTP timestamp's distance from the
  first one, in whole frames (rounded); `pop` plays index `p` and advances it by one. One
  packet is one frame (we offer ptime 20).
* Anchoring. The first packet, the first after the stream went idle, and one with the
  marker bit while the buffer is empty (a new talk-spurt) set ``p = index - (target - 1)``:
  the spurt starts after `target - 1` frames of silence, so the buffer starts at its target
  depth. Frames before the first packet of a spurt are "silence", not losses.
* Target delay. For every packet the transit time ``arrival - ts / clock_rate`` is compared to
  the smallest recent transit (which creeps upward slowly to follow clock drift); the excess is
  the packet's delay variation. Its peak attacks at once and decays over about ten seconds.
  The target is ``1 + ceil(peak / frame_time)`` frames (a frame of margin for the unknown phase
  between arrivals and playback), limited to one frame .. ``max_delay``.
* Level. At each `pop` the level is the number of frames from `p` to the newest index
  received. Frame `p` missing with the level below the target: the buffer is too shallow and
  the frame is probably late, so `p` is held and the decoder conceals (the delay grows by a
  frame). Missing with the level at or above the target: the frame is counted lost and skipped.
  Nothing buffered at all: concealment for up to three frames (60 ms, when G.711 Appendix I
  concealment is silent anyway), then the stream is idle and gives silence until the next
  packet anchors it again.
* Shrinking. Over each window of 50 played frames (one second) the smallest level is kept;
  if it stayed above the target, one frame is dropped, so excess delay drains by a frame per
  second. A level beyond `max_delay` drops the oldest frames at once.
* Late and duplicate packets. A packet whose index was already played is late (dropped and
  counted), and so is an older one arriving while the stream is idle; a sequence number seen
  among the last 256, or a second packet for a buffered timestamp, is a duplicate.
* Resynchronisation. A new SSRC, or a packet newer by sequence number whose timestamp went
  back (the sender's clock jumped) or lies more than ``max(50, 3 * max_frames)`` frames ahead
  of the play position, flushes the buffer, restarts the transit measurement and anchors
  again on the packet. Smaller jumps forward are the gaps of silence suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil as _ceil
from typing import Literal

from pidphone.errors import LocalProtocolError
from pidphone.rtp.packet import RtpPacket

FrameKind = Literal["audio", "lost", "silence"]

_SHRINK_WINDOW = 50
_IDLE_AFTER = 3
_PEAK_DECAY = 1 / 512
_BASE_CREEP = 5e-6
"""Seconds per packet the transit floor rises, to follow a sender clock slower than ours."""
_JITTER_TOLERANCE = 0.0005
"""Delay variation below half a millisecond is float noise, not jitter."""
_NO_FRAME = -(1 << 62)
"""`_played` before any talk-spurt of the current timestamp base went idle."""


@dataclass(slots=True)
class JitterFrame:
    """What to play for one frame. `payload_type` is the last one received (None before any).

    Not frozen: a frozen dataclass's __init__ costs a microsecond more per frame, 5% of the
    whole media path in bench.media."""

    kind: FrameKind
    payload: bytes = b""
    payload_type: int | None = None


class JitterBuffer:
    """Reorders, times and thins one RTP audio stream for a playback clock (see module doc)."""

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        samples_per_frame: int = 160,
        max_delay: float = 0.2,
        initial_delay: float = 0.04,
    ) -> None:
        if clock_rate <= 0 or samples_per_frame <= 0 or max_delay <= 0:
            raise LocalProtocolError("jitter buffer needs a positive rate, frame and delay")
        self.clock_rate = clock_rate
        self.samples_per_frame = samples_per_frame
        self.frame_time = samples_per_frame / clock_rate
        self.max_frames = max(1, int(max_delay / self.frame_time + 1e-9))
        self._jump_frames = max(50, 3 * self.max_frames)
        self._half_frame = samples_per_frame // 2
        self.target = min(self.max_frames, max(1, round(initial_delay / self.frame_time)))
        """The target depth in frames."""
        self.late = 0
        self.duplicates = 0
        self.lost = 0
        """Frames declared lost (a gap the decoder concealed and that was skipped)."""
        self.concealed = 0
        """Pops that returned "lost": losses plus frames held while the buffer grew."""
        self.dropped = 0
        """Frames discarded to shrink the delay or because they exceeded `max_delay`."""
        self.resyncs = 0
        self._ssrc: int | None = None
        self._payload_type: int | None = None
        self._peak = (self.target - 1) * self.frame_time
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._frames: dict[int, tuple[bytes, int]] = {}
        """Frame index -> (payload, payload type)."""
        self._seen = [-1] * 256
        self._seq16 = 0
        self._ext_seq = -1
        self._ts32 = 0
        self._ext_ts = 0
        self._ts_base: int | None = None
        self._transit_floor: float | None = None
        self._played = _NO_FRAME
        self._unanchor()

    def _unanchor(self) -> None:
        self._anchored = False
        self._play = 0
        self._first = 0
        self._newest = 0
        self._empty_pops = 0
        self._window_min = 1 << 30
        self._window_count = 0

    @property
    def delay(self) -> float:
        """The target delay in seconds."""
        return self.target * self.frame_time

    def put(self, packet: RtpPacket, arrival: float) -> None:
        """Store one received packet (arrival in seconds on any monotonic clock)."""
        self.put_raw(
            packet.sequence,
            packet.timestamp,
            packet.ssrc,
            packet.payload_type,
            packet.payload,
            arrival=arrival,
            marker=packet.marker,
        )

    def put_raw(
        self,
        sequence: int,
        timestamp: int,
        ssrc: int,
        payload_type: int,
        payload: bytes,
        *,
        arrival: float,
        marker: bool = False,
    ) -> None:
        """`put` for a packet given as its header fields, so the receive path builds no object.

        The fields are those of `RtpPacket` (see `rtp_fields`); the payload is kept as given.
        """
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.resyncs += 1
            self._ssrc = ssrc
            self._reset_stream()
        # extend the 16-bit sequence number and the 32-bit timestamp (inline: per packet)
        if self._ext_seq < 0:  # the first packet; start one cycle up so nothing goes negative
            self._seq16 = sequence
            ext_seq = sequence + 0x10000
        else:
            delta = ((sequence - self._seq16 + 0x8000) & 0xFFFF) - 0x8000
            ext_seq = self._ext_seq + delta
            if delta > 0:
                self._seq16 = sequence
        seen = self._seen
        slot = ext_seq & 0xFF
        if seen[slot] == ext_seq:
            self.duplicates += 1
            return
        seen[slot] = ext_seq
        newer = ext_seq > self._ext_seq
        if newer:
            self._ext_seq = ext_seq
        highest_ts = self._ext_ts
        ts_base = self._ts_base
        if ts_base is None:
            self._ts32 = self._ext_ts = self._ts_base = ts_base = ext_ts = timestamp
        else:
            delta = ((timestamp - self._ts32 + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            ext_ts = highest_ts + delta
            if delta > 0:
                self._ts32 = timestamp
                self._ext_ts = ext_ts
        index = (ext_ts - ts_base + self._half_frame) // self.samples_per_frame
        anchored = self._anchored
        if anchored and newer and (ext_ts < highest_ts or index - self._play > self._jump_frames):
            self._resync(ext_ts)
            index = 0
            anchored = False
        # the delay variation and the target it asks for (see "Target delay"), inline
        transit = arrival - ext_ts / self.clock_rate
        floor = self._transit_floor
        if floor is None or transit < floor:
            floor = transit
        else:
            floor += _BASE_CREEP
        self._transit_floor = floor
        variation = transit - floor
        peak = self._peak
        if variation > peak:
            peak = variation
        else:
            peak += (variation - peak) * _PEAK_DECAY
        self._peak = peak
        target = 1 + _ceil((peak - _JITTER_TOLERANCE) / self.frame_time)
        if target < 1:
            target = 1
        elif target > self.max_frames:
            target = self.max_frames
        self.target = target
        if not anchored and not newer:  # a straggler from a finished talk-spurt
            self.late += 1
            return
        frames = self._frames
        if not anchored or (marker and not frames and newer):
            self._anchor(index)
        elif index < self._play or index < self._played:  # behind this spurt or the last one
            self.late += 1
            return
        elif index in frames:  # same timestamp, another sequence number
            self.duplicates += 1
            return
        frames[index] = (payload, payload_type)
        if index > self._newest:  # noqa: PLR1730 - a comparison costs less than max() per packet
            self._newest = index

    def pop(self) -> JitterFrame:
        """Return the frame to play now; call once per frame time."""
        if not self._anchored:
            return JitterFrame("silence", b"", self._payload_type)
        frames = self._frames
        play = self._play
        level = self._newest - play + 1
        if level > self.max_frames and frames:
            skip_to = self._newest - self.target + 1
            for index in range(play, skip_to):
                if frames.pop(index, None) is not None:
                    self.dropped += 1
            play = self._play = skip_to
            level = self.target
        entry = frames.pop(play, None)
        if entry is not None:
            self._empty_pops = 0
            if level < self._window_min:  # noqa: PLR1730 - cheaper than min() per frame
                self._window_min = level
            self._window_count += 1
            if self._window_count >= _SHRINK_WINDOW:
                if self._window_min > self.target and play + 1 in frames:
                    self.dropped += 1
                    play += 1
                    entry = frames.pop(play)
                self._window_min = 1 << 30
                self._window_count = 0
            self._play = play + 1
            payload, self._payload_type = entry
            return JitterFrame("audio", payload, self._payload_type)
        if play < self._first:
            self._play = play + 1
            return JitterFrame("silence", b"", self._payload_type)
        if not frames:
            self._empty_pops += 1
            if self._empty_pops > _IDLE_AFTER:
                self._played = play
                self._unanchor()
                return JitterFrame("silence", b"", self._payload_type)
            self.concealed += 1
            return JitterFrame("lost", b"", self._payload_type)
        self.concealed += 1
        if level >= self.target:
            self.lost += 1
            self._play = play + 1
        return JitterFrame("lost", b"", self._payload_type)

    def _anchor(self, index: int) -> None:
        self._anchored = True
        self._play = index - (self.target - 1)
        self._first = index
        self._newest = index
        self._empty_pops = 0

    def _resync(self, ext_ts: int) -> None:
        self.resyncs += 1
        self.dropped += len(self._frames)
        self._frames.clear()
        self._ts_base = ext_ts
        self._ext_ts = ext_ts  # the sender's new clock is the reference from now on
        self._ts32 = ext_ts & 0xFFFFFFFF
        self._transit_floor = None
        self._played = _NO_FRAME
        self._unanchor()
