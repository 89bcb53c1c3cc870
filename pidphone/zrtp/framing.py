"""ZRTP messages in and out of packets (RFC 6189 §5): the one place that sees the packet layer.

A stream sends each message in a packet with its SSRC, the next sequence number and a CRC, and
reads each datagram back to (SSRC, message). The sequence number starts at random in 1..0x8000:
bzrtp drops a packet whose sequence number is not above the last one it accepted (starting
from 0), so ours must never wrap mid-call. Received sequence numbers are not checked: the
header is not authenticated, so an on-path sender could poison them at no cost.

Post-quantum messages (issue 16) are longer than a datagram should be; their fragments
(`pidphone.zrtp.fragment`, first byte 0x11) belong here: `frame` then gives several packets
for one message, and `unframe` gives nothing until a fragmented message is whole.
"""

from __future__ import annotations

from pidphone.zrtp.messages import encode_packet, split_packet


class Framer:
    """Our side of the packet layer: SSRC and sequence numbers."""

    def __init__(self, ssrc: int, first_sequence: int) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self._sequence = first_sequence

    def frame(self, message: bytes) -> list[bytes]:
        """The packets that carry one message (a retransmission frames it again)."""
        packet = encode_packet(self._sequence, self.ssrc, message)
        self._sequence = (self._sequence + 1) & 0xFFFF
        return [packet]

    def unframe(self, data: bytes) -> tuple[int, bytes]:
        """(SSRC, message) of one datagram. Raises `ZrtpCrcError` or `ZrtpParseError`."""
        _, ssrc, message = split_packet(data)
        return ssrc, message
