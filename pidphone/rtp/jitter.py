"""An adaptive jitter buffer for one incoming audio stream: pure, driven by two calls.

`put(packet, arrival)` (or `put_raw` with the header fields, which builds no packet object) is
called by the receiving side with each RTP audio packet (RFC 4733 events go to the
telephone-event decoder instead) and its arrival time (any monotonic clock, in seconds);
`pop(now)` is called by the playback clock once per frame (20 ms), on the same clock, and
returns what to play: the frame's payload ("audio"), a gap the decoder must conceal ("lost"),
or "silence" (nothing started yet, or the talk-spurt is over). A lost frame carries the next
frame's payload when it is here, for a codec with in-band FEC (Opus) to rebuild the lost one.

The algorithm works in time, not in counts of packets:

* Position. Each packet gets a frame index: its extended RTP timestamp's distance from the
  first one, in whole frames (rounded); `pop` plays index `p` and advances it by one. One
  packet is one frame (we offer ptime 20). Timestamps count in the codec's RTP clock
  (`clock_rate` ticks, `samples_per_frame` of them a frame: 160 for G.711 and G.722, 960 for
  Opus).
* Delay variation. For every packet the transit time ``arrival - ts / clock_rate`` is compared
  to the transit floor, the smallest transit of the last half second's packets; the excess is the
  packet's delay variation, the time by which it came later than the fastest packet would
  have. Its peak attacks at once and decays over about ten seconds. The target delay is that
  peak (plus float noise), limited to `max_delay`: a packet that varies no more than the peak
  is still in time. The floor falls at once and rises as soon as half a second of packets all came
  later: so it follows clock drift, and a step of the path's delay (a sender whose audio clock
  restarted after a stall sends every later packet that much later for its timestamp; a route
  change) is a step of the floor, not jitter for the rest of the call. Offset and peak are
  moved with the floor.
* Play-out offset. Pops happen at known times, so the time frame `i` will be played is known
  once the stream plays: the last pop's time plus (i - p + 1) frames. The offset is that time
  minus the earliest the packet could have arrived (its arrival minus its variation): the same
  for every packet of a steady stream, it is the delay the buffer adds on top of the fastest
  packet. The offset moves only in whole frames (a frame held or skipped); the buffer keeps it
  at the smallest value on that grid that is at least the target.
* Anchoring. The first packet, the first after the stream went idle, and one with the marker
  bit while the buffer is empty (a new talk-spurt) set `p` so that the packet plays the target
  delay after its arrival, rounded up to the next pop: with no measured jitter it plays at the
  next pop. Frames before the first packet of a spurt are "silence", not losses.
* A frame missing at its pop. With the offset below the target the frame is probably late: `p`
  is held and the decoder conceals (the offset grows by a frame). At or above the target it is
  lost: skipped, and concealed (or rebuilt from the next packet's FEC). A loss never adds
  delay. Nothing buffered and nothing arriving for three frames (60 ms): the stream is idle
  and gives silence until the next packet anchors it again.
* Shrinking. When the offset is a frame (and a quarter) above the target, one frame can go.
  The caller takes it where it is least heard: `pop_early(now)` after a frame that decoded to
  near silence hands it the next frame at once, in place of the quiet one. A stream that stays
  above for two seconds without a quiet frame loses one frame at its next pop anyway; a level
  beyond `max_delay` drops the oldest frames at once.
* Late and duplicate packets. A packet whose index was already played is late (dropped and
  counted), and so is an older one arriving while the stream is idle; a sequence number seen
  among the last 256, or a second packet for a buffered timestamp, is a duplicate.
* Resynchronisation. A new SSRC, or a packet newer by sequence number whose timestamp went
  back (the sender's clock jumped) or lies more than ``max(50, 3 * max_frames)`` frames ahead
  of the play position, flushes the buffer, restarts the transit measurement and anchors
  again on the packet. Smaller jumps forward are the gaps of silence suppression.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from math import ceil as _ceil
from typing import Literal

from pidphone.errors import LocalProtocolError
from pidphone.rtp.packet import RtpPacket

FrameKind = Literal["audio", "lost", "silence"]

_IDLE_AFTER = 3
_PEAK_DECAY = 1 / 512
_FLOOR_WINDOW = 0.5
"""Seconds of packets whose smallest transit is the floor: long enough that some packet in it
came with little delay on a jittery path, short enough that a step of the delay is found
soon (after a 220 ms sender stall at 30 ms of jitter, bench.jitter --stall: Opus 3.49 with
half a second, 3.06 with one; the loss and jitter grid without a stall the same)."""
_JITTER_TOLERANCE = 0.0005
"""Delay variation below half a millisecond is float noise, not jitter."""
_OFFSET_TOLERANCE = 0.0001
"""The play-out offset and the target are measured from the transit floor: an offset this close
to the target is on it."""
_SHRINK_HYSTERESIS = 0.25
"""Frames the offset must exceed the target by, beyond the frame that goes, before shrinking."""
_FORCED_SHRINK_AFTER = 2.0
"""Seconds of excess delay without a quiet frame before a frame is dropped anyway."""
_NO_FRAME = -(1 << 62)
"""`_played` before any talk-spurt of the current timestamp base went idle."""


@dataclass(slots=True)
class JitterFrame:
    """What to play for one frame. `payload_type` is the last one received (None before any).
    A "lost" frame that the buffer skipped carries the next frame's payload in `next_payload`
    when that one is here (b"" otherwise, and for a frame held while the buffer grows).

    Not frozen: a frozen dataclass's __init__ costs a microsecond more per frame, 5% of the
    whole media path in bench.media."""

    kind: FrameKind
    payload: bytes = b""
    payload_type: int | None = None
    next_payload: bytes = b""


class JitterBuffer:
    """Reorders, times and thins one RTP audio stream for a playback clock (see module doc)."""

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        samples_per_frame: int = 160,
        max_delay: float = 0.2,
        initial_delay: float = 0.0,
    ) -> None:
        if clock_rate <= 0 or samples_per_frame <= 0 or max_delay <= 0:
            raise LocalProtocolError("jitter buffer needs a positive rate, frame and delay")
        self.clock_rate = clock_rate
        self.samples_per_frame = samples_per_frame
        self.frame_time = samples_per_frame / clock_rate
        self.max_delay = max_delay
        self.max_frames = max(1, int(max_delay / self.frame_time + 1e-9))
        self._jump_frames = max(50, 3 * self.max_frames)
        self._floor_packets = max(1, round(_FLOOR_WINDOW / self.frame_time))
        self._half_frame = samples_per_frame // 2
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
        self._peak = min(max(0.0, initial_delay), max_delay)
        self.fec_hold = 0.0
        """Seconds added to the target delay: a frame's worth lets a lost frame be rebuilt
        from the next packet's FEC, which must be here when the lost one is due. Added to the
        jitter, not a floor under it: the next packet varies as much as the lost one would
        have, and comes a frame later."""
        self._last_pop: float | None = None
        """When the last pop happened (it played index `_play - 1`)."""
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
        self._transits: deque[tuple[int, float]] = deque()
        """(packet count, transit) of the window's packets that could still be its minimum:
        each one smaller than those after it, the floor first."""
        self._packets = 0
        self._played = _NO_FRAME
        self._unanchor()

    def _unanchor(self) -> None:
        self._anchored = False
        self._play = 0
        self._first = 0
        self._newest = 0
        self._empty_pops = 0
        self._offset: float | None = None
        """Play-out offset in seconds (see the module doc), once the stream plays."""
        self._excess_since: float | None = None

    @property
    def delay(self) -> float:
        """The target delay in seconds: the peak delay variation plus `fec_hold`, within
        `max_delay`."""
        peak = self._peak - _JITTER_TOLERANCE
        peak = (peak if peak > 0.0 else 0.0) + self.fec_hold
        return peak if peak < self.max_delay else self.max_delay

    @property
    def target(self) -> int:
        """Frames the buffer holds to cover the target delay (the one being played included):
        1 on a path without jitter."""
        return 1 + _ceil(self.delay / self.frame_time - 1e-9)

    @property
    def offset(self) -> float | None:
        """The play-out offset in seconds (see the module doc), None until the stream plays."""
        return self._offset

    @property
    def excess(self) -> bool:
        """The offset is more than a frame above the target: `pop_early` may take a frame."""
        offset = self._offset
        return offset is not None and offset - self.frame_time >= self.delay + (
            _SHRINK_HYSTERESIS * self.frame_time
        )

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
        # the delay variation and its peak (see "Delay variation"), inline
        transit = arrival - ext_ts / self.clock_rate
        transits = self._transits
        count = self._packets = self._packets + 1
        while transits and transits[-1][1] >= transit:
            transits.pop()
        transits.append((count, transit))
        if transits[0][0] <= count - self._floor_packets:
            transits.popleft()
        floor = transits[0][1]
        previous = self._transit_floor
        peak = self._peak
        if previous is not None and floor != previous:
            if self._offset is not None:
                self._offset += previous - floor  # measured from the new floor
            if floor > previous:  # the path's delay rose: so much less of it was variation
                peak = peak - (floor - previous) if peak > floor - previous else 0.0
        self._transit_floor = floor
        variation = transit - floor
        if variation > peak:
            peak = variation
        else:
            peak += (variation - peak) * _PEAK_DECAY
        self._peak = peak
        if not anchored and not newer:  # a straggler from a finished talk-spurt
            self.late += 1
            return
        frames = self._frames
        if not anchored or (marker and not frames and newer):
            self._anchor(index, arrival, variation)
        elif index < self._play or index < self._played:  # behind this spurt or the last one
            self.late += 1
            return
        elif index in frames:  # same timestamp, another sequence number
            self.duplicates += 1
            return
        else:
            last_pop = self._last_pop
            if last_pop is not None:
                # when it will play, less the earliest it could have come (see "Play-out")
                self._offset = (
                    last_pop + (index - self._play + 1) * self.frame_time - arrival + variation
                )
        frames[index] = (payload, payload_type)
        if index > self._newest:  # noqa: PLR1730 - a comparison costs less than max() per packet
            self._newest = index

    def pop(self, now: float) -> JitterFrame:
        """Return the frame to play now; call once per frame time, `now` on the clock of the
        arrival times."""
        last_pop, self._last_pop = self._last_pop, now
        if not self._anchored:
            return JitterFrame("silence", b"", self._payload_type)
        frames = self._frames
        play = self._play
        frame_time = self.frame_time
        offset = self._offset
        if offset is not None and last_pop is not None:
            offset += now - last_pop - frame_time  # a late or early pop moves the play-out
            self._offset = offset
        level = self._newest - play + 1
        if level > self.max_frames + 1 and frames:
            skip_to = self._newest - self.target + 1
            for index in range(play, skip_to):
                if frames.pop(index, None) is not None:
                    self.dropped += 1
            if offset is not None:
                self._offset = offset = offset - (skip_to - play) * frame_time
            play = self._play = skip_to
        entry = frames.pop(play, None)
        if entry is not None:
            self._empty_pops = 0
            if offset is not None and self.excess:
                if self._excess_since is None:
                    self._excess_since = now
                elif now - self._excess_since >= _FORCED_SHRINK_AFTER and play + 1 in frames:
                    self._shrink(now)  # no quiet frame came: drop this one
                    play += 1
                    entry = frames.pop(play)
            else:
                self._excess_since = None
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
        if offset is not None and offset + _OFFSET_TOLERANCE < self.delay:
            # too shallow: the frame is probably late, wait a frame for it
            self._offset = offset + frame_time
            return JitterFrame("lost", b"", self._payload_type)
        if frames:  # a gap before frames that are here (an empty buffer may be a pause)
            self.lost += 1
        self._play = play + 1
        following = frames.get(play + 1)
        return JitterFrame("lost", b"", self._payload_type, following[0] if following else b"")

    def pop_early(self, now: float) -> JitterFrame | None:
        """The frame after the one just popped, to play in its place, when the delay is a frame
        above its target (`excess`) and that frame is here; None otherwise (nothing changes).
        For the caller that found the frame it just popped quiet: dropping a quiet frame is
        the least audible way to shrink the delay."""
        if not self.excess or self._play not in self._frames:
            return None
        self._shrink(now)
        self._excess_since = None
        payload, self._payload_type = self._frames.pop(self._play)
        self._play += 1
        return JitterFrame("audio", payload, self._payload_type)

    def _shrink(self, now: float) -> None:
        del now
        self.dropped += 1
        if self._offset is not None:
            self._offset -= self.frame_time

    def _anchor(self, index: int, arrival: float, variation: float) -> None:
        """Start a talk-spurt: the packet plays the target delay after the earliest it could
        have come, at the first pop from then on."""
        self._anchored = True
        frame_time = self.frame_time
        last_pop = self._last_pop
        next_pop = arrival if last_pop is None else last_pop + frame_time
        next_pop = max(next_pop, arrival)
        wait = arrival - variation + self.delay - next_pop
        frames_ahead = _ceil(wait / frame_time - 1e-9) if wait > 0 else 0
        self._play = index - frames_ahead
        self._first = index
        self._newest = index
        self._empty_pops = 0
        self._excess_since = None
        self._offset = next_pop + frames_ahead * frame_time - arrival + variation

    def _resync(self, ext_ts: int) -> None:
        self.resyncs += 1
        self.dropped += len(self._frames)
        self._frames.clear()
        self._ts_base = ext_ts
        self._ext_ts = ext_ts  # the sender's new clock is the reference from now on
        self._ts32 = ext_ts & 0xFFFFFFFF
        self._transit_floor = None
        self._transits.clear()
        self._played = _NO_FRAME
        self._unanchor()
