"""The message-summary body (RFC 3842 §5): whether voicemail waits, and how many messages.

    Messages-Waiting: yes
    Message-Account: sip:alice@vmail.example.org
    Voice-Message: 2/8 (0/2)

Only the registrar's flow can bring one (pidphone.sip.subscription checks that), but the body
is still read as hostile: at most `MAX_BODY` bytes of printable ASCII in at most `MAX_LINES`
lines, counts of at most `MAX_COUNT_DIGITS` digits, and anything else is one `SipParseError`
with a precise message. Header names are matched without regard to case (§5.2 uses SIP's
HCOLON); LF alone ends a line as CRLF does; message classes other than voice (fax, pager,
multimedia, text, none) are checked but not kept; lines of other names, and the optional
headers after a blank line, are read past.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import parse_number

CONTENT_TYPE = "application/simple-message-summary"
EVENT_PACKAGE = "message-summary"

MAX_BODY = 4096
"""Bytes of body read at all; a longer one is refused whole."""
MAX_LINES = 64
MAX_COUNT_DIGITS = 6
"""A count of a million messages or more is not a voicemail box but an attack."""
MAX_ACCOUNT = 256
"""Characters of Message-Account kept."""

MESSAGE_CLASSES = frozenset(
    {
        "voice-message",
        "fax-message",
        "pager-message",
        "multimedia-message",
        "text-message",
        "none",
    }
)


@dataclass(frozen=True)
class MessageCounts:
    """One message class's `new/old (urgent_new/urgent_old)` (§5.2)."""

    new: int
    old: int
    urgent_new: int = 0
    urgent_old: int = 0

    @classmethod
    def parse(cls, text: str) -> MessageCounts:
        text = text.strip()
        urgent = ""
        if "(" in text:
            text, _, urgent = text.partition("(")
            if not urgent.endswith(")"):
                raise SipParseError(f"message counts without a closing parenthesis: {text[:40]!r}")
            urgent = urgent[:-1]
        new, old = _pair(text, "message count")
        if not urgent:
            return cls(new, old)
        urgent_new, urgent_old = _pair(urgent, "urgent message count")
        return cls(new, old, urgent_new, urgent_old)


@dataclass(frozen=True)
class MessageSummary:
    """What a message-summary body says; `voice` is None when it gives no voice counts."""

    waiting: bool
    voice: MessageCounts | None = None
    account: str = ""

    @property
    def new_voice(self) -> int:
        """New voice messages; a box that says only "yes" counts as one."""
        if self.voice is not None:
            return self.voice.new
        return 1 if self.waiting else 0

    @classmethod
    def parse(cls, body: bytes) -> MessageSummary:
        if len(body) > MAX_BODY:
            raise SipParseError(f"message summary of {len(body)} bytes (at most {MAX_BODY})")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise SipParseError("message summary is not ASCII") from None
        lines = text.replace("\r\n", "\n").split("\n")
        if len(lines) > MAX_LINES:
            raise SipParseError(f"message summary of {len(lines)} lines (at most {MAX_LINES})")
        for line in lines:
            if not all(c == "\t" or " " <= c <= "~" for c in line):
                raise SipParseError("control character in the message summary")
        name, _, value = lines[0].partition(":")
        value = value.strip()
        if name.strip().lower() != "messages-waiting":
            raise SipParseError("message summary does not start with Messages-Waiting")
        status = value.lower()
        if status not in ("yes", "no"):
            raise SipParseError(f"Messages-Waiting is neither yes nor no: {value[:20]!r}")
        voice: MessageCounts | None = None
        account = ""
        for line in lines[1:]:
            if not line.strip():
                break  # the optional message headers follow (§5.2): not ours to read
            name, value = _header_line(line)
            if name == "message-account":
                account = value[:MAX_ACCOUNT]
            elif name == "voice-message":
                if voice is not None:
                    raise SipParseError("Voice-Message given twice")
                voice = MessageCounts.parse(value)
            elif name in MESSAGE_CLASSES:
                MessageCounts.parse(value)  # well-formed, though not shown
            # other lines (a class registered later, a server's own) are read past
        return cls(waiting=status == "yes", voice=voice, account=account)


def _header_line(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not name.strip():
        raise SipParseError(f"message summary line without a name: {line[:40]!r}")
    return name.strip().lower(), value.strip()


def _pair(text: str, what: str) -> tuple[int, int]:
    first, slash, second = text.partition("/")
    if not slash:
        raise SipParseError(f"{what} is not new/old: {text[:40]!r}")
    return (
        parse_number(first.strip(), what, MAX_COUNT_DIGITS),
        parse_number(second.strip(), what, MAX_COUNT_DIGITS),
    )
