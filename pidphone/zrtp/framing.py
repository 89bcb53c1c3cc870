"""ZRTP messages in and out of packets (RFC 6189 §5): the one place that sees the packet layer.

A stream sends each message in a packet with its SSRC, the next sequence number and a CRC, and
reads each datagram back to (SSRC, message). The sequence number starts at random in 1..0x8000:
bzrtp drops a packet whose sequence number is not above the last one it accepted (starting
from 0), so ours must never wrap mid-call. Received sequence numbers are not checked: the
header is not authenticated, so an on-path sender could poison them at no cost.

A message too long for one packet within the MTU (a post-quantum Commit or DHPart1) goes out
in fragments (`pidphone.zrtp.fragment`, first byte 0x11), as bzrtp 5.5 sends and takes them.
Each fragmented message gets a message id: never 0, one more for each new message (bzrtp drops
fragments of an id below the one it is collecting, and never takes id 0); a retransmission
sends the same fragments under the same id with new sequence numbers, so that the receiver
can complete a message from fragments of different copies. Fragments received are collected
by the bounded `Reassembler`, whose expiry is part of the stream's timer; `unframe` gives
nothing until a message is whole.
"""

from __future__ import annotations

from pidphone.zrtp.fragment import (
    DEFAULT_MTU,
    FRAGMENT_FIRST_BYTE,
    Reassembler,
    fragment_message,
    needs_fragments,
)
from pidphone.zrtp.messages import encode_packet, split_packet

MESSAGE_IDS_KEPT = 4
"""Fragmented messages whose id is remembered for their retransmissions (a stream has at most
two in flight: our Commit, while it may still win, and our DHPart1)."""


def is_fragment(data: bytes) -> bool:
    """A fragment packet (first byte 0x11), not a whole one (0x10)."""
    return bool(data) and data[0] == FRAGMENT_FIRST_BYTE


def packet_ssrc(data: bytes) -> int:
    """The SSRC a packet or fragment says it comes from (unchecked: header bytes 8-11)."""
    return int.from_bytes(data[8:12], "big")


class Framer:
    """Our side of the packet layer: SSRC, sequence numbers, message ids, reassembly."""

    def __init__(self, ssrc: int, first_sequence: int, mtu: int = DEFAULT_MTU) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.mtu = mtu
        self._sequence = first_sequence
        self._next_id = first_sequence & 0xFFFF or 1
        self._ids: dict[bytes, int] = {}
        """Fragmented messages sent, oldest first -> their message id."""
        self.reassembler = Reassembler()

    def frame(self, message: bytes) -> list[bytes]:
        """The packets that carry one message: one packet, or its fragments (see above)."""
        if not needs_fragments(len(message), self.mtu):
            packet = encode_packet(self._sequence, self.ssrc, message)
            self._sequence = (self._sequence + 1) & 0xFFFF
            return [packet]
        message_id = self._ids.get(message)
        if message_id is None:
            message_id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFF or 1
            if len(self._ids) >= MESSAGE_IDS_KEPT:
                del self._ids[next(iter(self._ids))]
            self._ids[message] = message_id
        packets = fragment_message(
            message,
            ssrc=self.ssrc,
            message_id=message_id,
            first_sequence=self._sequence,
            mtu=self.mtu,
        )
        self._sequence = (self._sequence + len(packets)) & 0xFFFF
        return packets

    def unframe(self, data: bytes, now: float) -> tuple[int, bytes] | None:
        """(SSRC, message) of one datagram, or None while a fragmented message is incomplete.
        Raises `ZrtpCrcError` or `ZrtpParseError` (a fragment that contradicts the ones before
        it also discards them: a retransmission completes the message)."""
        if is_fragment(data):
            whole = self.reassembler.receive(data, now)
            return None if whole is None else (whole.ssrc, whole.message)
        _, ssrc, message = split_packet(data)
        return ssrc, message

    def get_timer(self) -> float | None:
        """When a partly received message expires (None when none is)."""
        return self.reassembler.get_timer()

    def handle_timer(self, now: float) -> None:
        self.reassembler.expire(now)

    def forget(self) -> None:
        """Drop what was collected and the messages remembered (the stream is over)."""
        self.reassembler = Reassembler()
        self._ids.clear()
