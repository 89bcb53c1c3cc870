"""The SIP core (RFC 3261 over a reliable transport), pure: bytes and `now` in; bytes, timer
deadlines and typed events out.

- `message`: parse and serialize requests/responses; `uri`, `headers`: the typed pieces.
- `framing`: Content-Length framing on a stream and CRLF keep-alives.
- `transaction`, `dialog`, `auth`, `registration`: RFC 3261 §17, §12, digest, §10.
- `agent`: `UserAgent`, the object drivers and the app talk to; `events`: what it reports.
"""

from pidphone.sip.errors import SipParseError
from pidphone.sip.framing import Frame, Ping, Pong, StreamFramer
from pidphone.sip.headers import CSeq, Via
from pidphone.sip.message import Message, Request, Response, parse_message, reason_phrase
from pidphone.sip.uri import NameAddr, Uri

__all__ = [
    "CSeq",
    "Frame",
    "Message",
    "NameAddr",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "Via",
    "parse_message",
    "reason_phrase",
]
