"""Framing SIP messages on a byte stream (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626
§3.5.1).

On a stream, Content-Length says where a message ends. The framer hands out each whole message
as bytes (parsing is the caller's job, so a malformed but framed request can still be answered),
a `KeepAlivePing` for a CRLFCRLF keep-alive (answer it with `PONG`) or a `KeepAlivePong` for
the lone CRLF that answers our own ping (`ping_sent`); other stray CRLFs between messages are
skipped. The
buffer has a cap: a message that does not fit, or a head that cannot be framed, raises
SipParseError and the connection must be closed — there is no way to find the next message.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import parse_number

PING = b"\r\n\r\n"
PONG = b"\r\n"
DEFAULT_MAX_MESSAGE = 65536

_CONTENT_LENGTH_NAMES = (b"content-length", b"l")


@dataclass(frozen=True)
class KeepAlivePing:
    """The peer sent a CRLFCRLF keep-alive; it expects `PONG` back."""


@dataclass(frozen=True)
class KeepAlivePong:
    """The peer answered our keep-alive."""


@dataclass(frozen=True)
class Frame:
    """One whole message, not yet parsed."""

    data: bytes


StreamItem = Frame | KeepAlivePing | KeepAlivePong


class StreamFramer:
    """Feed bytes with `feed`, take items with `next_item` until it returns None."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self._awaiting_pong = False
        self._scanned = 0
        """Bytes at the start of the buffer already searched for the end of the head, so a
        head arriving in many small pieces is searched once, not once per piece."""
        self._total: int | None = None
        """The length of the message whose head is in, while its body is still arriving."""

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def ping_sent(self) -> None:
        """We sent a CRLFCRLF ping: the next lone CRLF is its pong. (Without this a lone CRLF
        could be the first half of a ping from the peer.)"""
        self._awaiting_pong = True

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_item(self) -> StreamItem | None:
        """The next complete item, None if more bytes are needed.

        Raises SipParseError if the stream cannot be framed or a message exceeds the cap."""
        buf = self._buffer
        while self._total is None and buf.startswith(PONG):
            self._scanned = 0
            if buf.startswith(PING):
                del buf[:4]
                return KeepAlivePing()
            if self._awaiting_pong and buf[2:3] != b"\r":
                self._awaiting_pong = False
                del buf[:2]
                return KeepAlivePong()
            if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                return None  # perhaps a ping still arriving
            del buf[:2]  # a stray CRLF before a message (§7.5): ignored
        total = self._total
        if total is None:
            total = self._head_and_body_length(buf)
            if total is None:
                return None
        if len(buf) < total:
            self._total = total
            return None
        data = bytes(buf[:total])
        del buf[:total]
        self._scanned = 0
        self._total = None
        return Frame(data)

    def _head_and_body_length(self, buf: bytearray) -> int | None:
        """The whole length of the message starting at `buf`, once its head is complete."""
        end = buf.find(b"\r\n\r\n", max(self._scanned - 3, 0))
        if end < 0:
            self._scanned = len(buf)
            if len(buf) > self._max:
                raise SipParseError("message head exceeds the buffer cap", error_status_hint=513)
            return None
        total = end + 4 + _content_length(bytes(buf[:end]))
        if total > self._max:
            raise SipParseError(
                f"message of {total} bytes exceeds the cap of {self._max}", error_status_hint=513
            )
        return total


def _content_length(head: bytes) -> int:
    """The first Content-Length (or `l`) header of a head, 0 without one. Only framing needs
    it here; `parse_message` checks that the head has no second, different one."""
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.rstrip(b" \t").lower() in _CONTENT_LENGTH_NAMES:
            text = value.strip().decode("latin-1")
            return parse_number(text, "Content-Length", 9)
    return 0
