"""DTMF as RTP telephone-events (RFC 4733 §2.3, §2.5): the payload, a sender and a receiver.

Each key press is one event with one RTP timestamp (its start). The sender emits a packet per
frame while the key is held: the first with the marker bit, then updates whose duration grows,
then the final packet with the E bit three times (one per frame, so a short burst of loss
does not swallow the end). An event longer than the 16-bit duration field continues in a new
segment whose timestamp is the old one plus the old duration (§2.5.2.3). The receiver reports
each press once, as soon as its first packet arrives, whatever mix of updates, duplicates and
repeated ends follows.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError, ParseError

EVENT_KEYS = "0123456789*#ABCD"
"""Events 0-15 are these DTMF keys (RFC 4733 §3.2)."""

_PAYLOAD = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


class TelephoneEventParseError(ParseError):
    """A telephone-event payload that cannot be read."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 §2.3)."""

    event: int
    end: bool = False
    volume: int = 10
    """Power level in -dBm0 (0..63); DTMF is typically sent at 10."""
    duration: int = 0
    """Duration so far in timestamp units (samples of the 8 kHz clock)."""

    @property
    def key(self) -> str | None:
        """The DTMF key for events 0-15, else None."""
        return EVENT_KEYS[self.event] if self.event < len(EVENT_KEYS) else None

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise TelephoneEventParseError("telephone-event payload is shorter than 4 bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.volume <= 63:
            raise LocalProtocolError(f"telephone-event volume {self.volume} is not in 0..63")
        try:
            return _PAYLOAD.pack(self.event, self.end << 7 | self.volume, self.duration)
        except struct.error as exc:
            raise LocalProtocolError(f"telephone-event field out of range: {exc}") from None


def event_of_key(key: str) -> int:
    """The event number of a DTMF key "0"-"9", "*", "#", "A"-"D"."""
    index = EVENT_KEYS.find(key.upper()) if len(key) == 1 else -1
    if index < 0:
        raise LocalProtocolError(f"{key!r} is not a DTMF key")
    return index


@dataclass(frozen=True, slots=True)
class EventPacket:
    """What to send for one frame: the payload, its event timestamp and the marker bit."""

    payload: bytes
    timestamp: int
    marker: bool


class TelephoneEventEncoder:
    """Turns key presses into one RFC 4733 packet per frame.

    Usage per frame: if `busy`, send `frame()` with `RtpSender.event_packet` (and skip the
    audio timestamp by one frame); otherwise send audio. `start` takes the RTP timestamp of
    the frame the event begins in.
    """

    def __init__(self, *, volume: int = 10, samples_per_packet: int = 160) -> None:
        if not 0 <= volume <= 63:
            raise LocalProtocolError(f"telephone-event volume {volume} is not in 0..63")
        self.volume = volume
        self.samples_per_packet = samples_per_packet
        self._event = 0
        self._timestamp = 0
        self._duration = 0
        self._elapsed = 0
        """Samples since the start, across segments."""
        self._limit: int | None = None
        self._active = False
        self._ends_left = 0
        self._marker = False

    @property
    def busy(self) -> bool:
        """True while an event or its repeated end packets remain to be sent."""
        return self._active or self._ends_left > 0

    def start(self, key: str, timestamp: int, *, duration: int | None = None) -> None:
        """Begin a key press at RTP `timestamp`; it lasts `duration` samples, or until
        `stop` when None."""
        if self.busy:
            raise LocalProtocolError("a telephone-event is still being sent")
        self._event = event_of_key(key)
        self._timestamp = timestamp & 0xFFFFFFFF
        self._duration = 0
        self._elapsed = 0
        self._limit = duration
        self._active = True
        self._marker = True

    def stop(self) -> None:
        """The key was released: the next frames carry the end packet three times."""
        if self._active:
            self._active = False
            self._ends_left = 3

    def frame(self) -> EventPacket | None:
        """The packet for this frame, or None when idle."""
        if self._active:
            if self._duration + self.samples_per_packet > _MAX_DURATION:
                # §2.5.2.3: continue in a new segment
                self._timestamp = (self._timestamp + self._duration) & 0xFFFFFFFF
                self._duration = 0
            self._duration += self.samples_per_packet
            self._elapsed += self.samples_per_packet
            if self._limit is not None and self._elapsed >= self._limit:
                self.stop()
        elif self._ends_left == 0:
            return None
        elif self._duration == 0:  # stopped before its first frame
            self._duration = self.samples_per_packet
        end = not self._active
        if end:
            self._ends_left -= 1
        event = TelephoneEvent(self._event, end, self.volume, self._duration)
        packet = EventPacket(bytes(event), self._timestamp, self._marker)
        self._marker = False
        return packet


@dataclass(frozen=True, slots=True)
class DtmfPress:
    """A key press received as a telephone-event (reported once, at its first packet)."""

    key: str
    timestamp: int
    volume: int


class TelephoneEventDecoder:
    """Collapses the packets of each event into one `DtmfPress`.

    An event is known by its RTP timestamp; the last 16 are remembered, so duplicates,
    updates, repeated ends and late reordered packets of a reported event are ignored. A new
    timestamp that continues the previous event's segment (same event, timestamp = previous
    timestamp + its duration, not ended) is the same press. Events above 15 are not DTMF and
    are ignored.
    """

    def __init__(self) -> None:
        self._seen: deque[int] = deque(maxlen=16)
        self._last: tuple[int, int, int, bool] | None = None  # timestamp, event, duration, end
        self.last_duration = 0
        """The duration in samples of the latest event segment, as far as received."""

    def receive(self, payload: bytes, timestamp: int) -> DtmfPress | None:
        """Account one packet; return the press if this packet starts a new one."""
        event = TelephoneEvent.parse(payload)
        key = event.key
        if key is None:
            return None
        last = self._last
        if last is not None and timestamp == last[0]:
            if event.duration >= last[2]:
                self._last = (timestamp, event.event, event.duration, event.end or last[3])
                self.last_duration = event.duration
            return None
        if timestamp in self._seen:
            return None
        self._seen.append(timestamp)
        continues = (
            last is not None
            and not last[3]
            and event.event == last[1]
            and timestamp == (last[0] + last[2]) & 0xFFFFFFFF
        )
        self._last = (timestamp, event.event, event.duration, event.end)
        self.last_duration = event.duration
        if continues:
            return None
        return DtmfPress(key, timestamp, event.volume)
