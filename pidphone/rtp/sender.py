"""The sending side of one RTP stream (RFC 3550 §5.1, §8): SSRC, sequence and timestamp.

The SSRC, the first sequence number and the first timestamp are random (§5.1 asks for
unpredictable starting values so plaintext attacks on SRTP get no help); the first sequence
number is kept in the lower half so the SRTP rollover counter is not about to wrap at once.
Each audio packet advances the timestamp by one frame; RFC 4733 events share the SSRC and the
sequence space but carry the event's own start timestamp.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable

from pidphone.errors import LocalProtocolError
from pidphone.rtp.packet import build_rtp

_pack_header = struct.Struct("!BBHII").pack
"""The fixed RTP header (RFC 3550 §5.1) of a packet with no CSRC, extension or padding."""


class RtpSender:
    """Numbers the packets of one outgoing stream and counts them for the RTCP SR."""

    def __init__(
        self,
        payload_type: int,
        *,
        clock_rate: int = 8000,
        samples_per_packet: int = 160,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise LocalProtocolError(f"RTP payload type {payload_type} is not in 0..127")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.samples_per_packet = samples_per_packet
        rand = random_bytes(10)
        self.ssrc = int.from_bytes(rand[0:4], "big")
        self.sequence = int.from_bytes(rand[4:6], "big") & 0x7FFF
        """The sequence number of the next packet."""
        self.timestamp = int.from_bytes(rand[6:10], "big")
        """The RTP timestamp of the next audio frame."""
        self.packets_sent = 0
        self.octets_sent = 0
        """Payload octets sent (RFC 3550 §6.4.1 sender's octet count)."""

    def packet(self, payload: bytes, *, marker: bool = False) -> bytes:
        """Return the next audio packet and advance by one frame."""
        sequence, timestamp = self.sequence, self.timestamp
        data = (
            _pack_header(0x80, marker << 7 | self.payload_type, sequence, timestamp, self.ssrc)
            + payload
        )
        self.sequence = (sequence + 1) & 0xFFFF
        self.timestamp = (timestamp + self.samples_per_packet) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data

    def skip(self, samples: int) -> None:
        """Advance the timestamp over `samples` that were not sent (silence, or an event)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def event_packet(
        self, payload_type: int, payload: bytes, *, timestamp: int, marker: bool = False
    ) -> bytes:
        """Return an RFC 4733 packet with its own payload type and event `timestamp`.

        It takes the next sequence number but leaves the audio timestamp alone: call `skip`
        once per frame the event replaces so audio resumes at the right time.
        """
        if not 0 <= payload_type <= 127:
            raise LocalProtocolError(f"RTP payload type {payload_type} is not in 0..127")
        data = build_rtp(
            payload_type, self.sequence, timestamp & 0xFFFFFFFF, self.ssrc, payload, marker=marker
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data
