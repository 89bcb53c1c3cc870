"""Fragmented ZRTP packets, as bzrtp 5.5 sends the large post-quantum Commit and DHPart1.

A post-quantum Commit or DHPart1 is larger than a datagram should be (an X3M3 Commit is 1740
bytes), so bzrtp splits a message whose packet would exceed the MTU into fragments. A fragment
is a ZRTP packet whose first byte is 0x11 (0x10 otherwise), followed by the usual sequence
number, magic cookie and SSRC, then four 16-bit fields, the ZRTP message slice and its own
CRC-32C (over everything before it, least-significant byte first, like every ZRTP packet):

    message id | message total length | offset | fragment length

Lengths and the offset count 32-bit words. The message id is the sender's message counter:
bzrtp starts it at the sequence number it drew at random (one below its first packet's, never
0) and adds one per fragmented message; its receiver drops fragments of an id lower than the
one it is collecting, and never takes id 0 while it collects nothing.
bzrtp fragments when MTU < message length + 16 (header and CRC), with fragments of at most
MTU - 24 bytes (1428 with its default MTU of 1452).

The reassembler is bounded, since anyone on the path can send fragments: a message is at most
`max_message_bytes`, at most `max_messages` are collected at once (the oldest is dropped for a
new one), and a message not completed within `lifetime` seconds of its first fragment is
dropped. Duplicates, reordering and overlaps are safe: a fragment must agree with the bytes
already collected where they overlap, or the partial message is discarded (a retransmission
can then complete it). Completion is decided on the words actually received, never on the
length fields. The last `max_messages` messages completed are remembered: a retransmission
carries the same bytes under the same id, so a fragment of one of them that disagrees with it
is a forgery and is refused before it is collected (else it would wait, and spoil the next
retransmission of that message). Every error is a `ZrtpParseError`; the caller drops the
fragment and counts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pidphone.errors import LocalProtocolError
from pidphone.zrtp.crc import crc32c
from pidphone.zrtp.messages import CRC_LEN, HEADER_LEN, MAGIC_COOKIE, ZrtpCrcError, ZrtpParseError

FRAGMENT_FIRST_BYTE = 0x11
FRAGMENT_HEADER_LEN = HEADER_LEN + 8
"""Packet header (12) and the fragment fields (8)."""
FRAGMENT_OVERHEAD = FRAGMENT_HEADER_LEN + CRC_LEN
PACKET_OVERHEAD = HEADER_LEN + CRC_LEN
DEFAULT_MTU = 1452
"""bzrtp's default maximum ZRTP packet size (BZRTP_DEFAULT_MTU)."""
MIN_MTU = FRAGMENT_OVERHEAD + 4
MAX_MESSAGE_BYTES = 4096
"""Above every message pidphone accepts (an X3M3 Commit is 1740 bytes, DHPart1 1708)."""
MAX_MESSAGES = 4
LIFETIME = 10.0
"""Seconds; a partial message older than this is dropped (about the §6 timeouts)."""

_FIELDS = struct.Struct("!HHHH")


def needs_fragments(message_len: int, mtu: int = DEFAULT_MTU) -> bool:
    """Whether a message of this length is sent in fragments (bzrtp's rule)."""
    return mtu < message_len + PACKET_OVERHEAD


@dataclass(frozen=True)
class Fragment:
    """One fragment packet, parsed and CRC-checked."""

    sequence: int
    ssrc: int
    message_id: int
    total_words: int
    offset_words: int
    payload: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: bytes) -> Fragment:
        if len(data) < FRAGMENT_OVERHEAD + 4 or len(data) % 4:
            raise ZrtpParseError(f"ZRTP fragment of {len(data)} bytes")
        if data[0] != FRAGMENT_FIRST_BYTE:
            raise ZrtpParseError(f"not a ZRTP fragment: first byte 0x{data[0]:02x}")
        _, sequence, cookie, ssrc = struct.unpack_from("!HHII", data)
        if cookie != MAGIC_COOKIE:
            raise ZrtpParseError(f"bad ZRTP magic cookie 0x{cookie:08x}")
        (crc,) = struct.unpack_from("<I", data, len(data) - CRC_LEN)
        if crc != crc32c(data[:-CRC_LEN]):
            raise ZrtpCrcError("ZRTP fragment CRC-32C mismatch")
        message_id, total, offset, length = _FIELDS.unpack_from(data, HEADER_LEN)
        payload = bytes(data[FRAGMENT_HEADER_LEN:-CRC_LEN])
        if length * 4 != len(payload):
            raise ZrtpParseError(
                f"ZRTP fragment says {length} words but carries {len(payload)} bytes"
            )
        if total == 0 or offset + length > total:
            raise ZrtpParseError(
                f"ZRTP fragment at word {offset} (+{length}) outside a {total}-word message"
            )
        return cls(sequence, ssrc, message_id, total, offset, payload)

    def __bytes__(self) -> bytes:
        return encode_fragment(
            sequence=self.sequence,
            ssrc=self.ssrc,
            message_id=self.message_id,
            total_words=self.total_words,
            offset_words=self.offset_words,
            payload=self.payload,
        )


def encode_fragment(
    *,
    sequence: int,
    ssrc: int,
    message_id: int,
    total_words: int,
    offset_words: int,
    payload: bytes,
) -> bytes:
    """One fragment packet with its CRC."""
    data = (
        struct.pack("!BBHII", FRAGMENT_FIRST_BYTE, 0, sequence & 0xFFFF, MAGIC_COOKIE, ssrc)
        + _FIELDS.pack(message_id & 0xFFFF, total_words, offset_words, len(payload) // 4)
        + payload
    )
    return data + struct.pack("<I", crc32c(data))


def fragment_message(
    message: bytes, *, ssrc: int, message_id: int, first_sequence: int, mtu: int = DEFAULT_MTU
) -> list[bytes]:
    """Split one ZRTP message into fragment packets of at most `mtu` bytes.

    Fragment i carries sequence number `first_sequence + i` (mod 2^16); a retransmission
    sends the same fragments again with new sequence numbers and the same message id.
    """
    if mtu < MIN_MTU:
        raise LocalProtocolError(f"an MTU of {mtu} bytes leaves no room for a fragment")
    if not message or len(message) % 4 or len(message) > 0xFFFF * 4:
        raise LocalProtocolError(f"a ZRTP message of {len(message)} bytes cannot be fragmented")
    step = (mtu - FRAGMENT_OVERHEAD) & ~3
    total = len(message) // 4
    return [
        encode_fragment(
            sequence=first_sequence + i,
            ssrc=ssrc,
            message_id=message_id,
            total_words=total,
            offset_words=offset // 4,
            payload=message[offset : offset + step],
        )
        for i, offset in enumerate(range(0, len(message), step))
    ]


@dataclass(frozen=True)
class Reassembled:
    """A complete message: the SSRC, the sequence number of the fragment that completed it."""

    sequence: int
    ssrc: int
    message: bytes = field(repr=False)


@dataclass
class _Partial:
    started: float
    total_words: int
    data: bytearray
    have: bytearray
    """One byte per word: 1 once received."""
    missing: int


class Reassembler:
    """Collects fragments by (SSRC, message id) until a message is whole; bounded (see above)."""

    def __init__(
        self,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_messages: int = MAX_MESSAGES,
        lifetime: float = LIFETIME,
    ) -> None:
        if max_message_bytes < 4 or max_messages < 1 or lifetime <= 0:
            raise LocalProtocolError("reassembler bounds must be positive")
        self.max_message_bytes = max_message_bytes
        self.max_messages = max_messages
        self.lifetime = lifetime
        self._partial: dict[tuple[int, int], _Partial] = {}
        self._completed: dict[tuple[int, int], bytes] = {}
        """(SSRC, message id) -> the message, the last `max_messages` completed, oldest first."""

    def __len__(self) -> int:
        """How many messages are partly collected."""
        return len(self._partial)

    def get_timer(self) -> float | None:
        """When the oldest partial message expires (None when nothing is collected)."""
        if not self._partial:
            return None
        return min(p.started for p in self._partial.values()) + self.lifetime

    def expire(self, now: float) -> None:
        """Drop partial messages older than the lifetime."""
        for key in [k for k, p in self._partial.items() if now - p.started >= self.lifetime]:
            del self._partial[key]

    def receive(self, data: bytes, now: float) -> Reassembled | None:
        """Take one fragment packet; return the message once all its words have arrived.

        Raises `ZrtpParseError` for a malformed fragment or one that contradicts what was
        collected (that partial message is then dropped).
        """
        self.expire(now)
        fragment = Fragment.parse(data)
        if fragment.total_words * 4 > self.max_message_bytes:
            raise ZrtpParseError(
                f"fragmented ZRTP message of {fragment.total_words * 4} bytes is above "
                f"{self.max_message_bytes}"
            )
        key = (fragment.ssrc, fragment.message_id)
        completed = self._completed.get(key)
        if completed is not None:
            begin = fragment.offset_words * 4
            if (
                len(completed) != fragment.total_words * 4
                or completed[begin : begin + len(fragment.payload)] != fragment.payload
            ):
                raise ZrtpParseError("ZRTP fragment contradicts the message completed under its id")
        partial = self._partial.get(key)
        if partial is not None and partial.total_words != fragment.total_words:
            del self._partial[key]
            raise ZrtpParseError("ZRTP fragments of one message disagree on its length")
        if partial is None:
            if len(self._partial) >= self.max_messages:
                oldest = min(self._partial, key=lambda k: self._partial[k].started)
                del self._partial[oldest]
            words = fragment.total_words
            partial = _Partial(now, words, bytearray(words * 4), bytearray(words), words)
            self._partial[key] = partial
        start = fragment.offset_words
        count = len(fragment.payload) // 4
        begin, end = start * 4, (start + count) * 4
        seen = partial.have[start : start + count]
        if any(seen):
            # the overlapping words must be the ones we have; the rest fills in
            for i in range(count):
                if (
                    seen[i]
                    and partial.data[begin + 4 * i : begin + 4 * i + 4]
                    != (fragment.payload[4 * i : 4 * i + 4])
                ):
                    del self._partial[key]
                    raise ZrtpParseError("ZRTP fragment contradicts one received before")
        partial.data[begin:end] = fragment.payload
        partial.missing -= count - sum(seen)
        partial.have[start : start + count] = b"\x01" * count
        if partial.missing:
            return None
        del self._partial[key]
        message = bytes(partial.data)
        self._completed.pop(key, None)
        if len(self._completed) >= self.max_messages:
            del self._completed[next(iter(self._completed))]
        self._completed[key] = message
        return Reassembled(fragment.sequence, fragment.ssrc, message)
