"""The SIP core (RFC 3261 over a reliable transport), pure: bytes and `now` in; bytes, timer
deadlines and typed events out.

- `message`: parse and serialize requests/responses; `uri`, `headers`: the typed pieces;
  `methods`: the methods we know and serve; `factory`: how our messages look.
- `framing`: Content-Length framing on a stream and CRLF keep-alives; `flows`: RFC 5626 flows.
- `transaction` (the §17 state table), `transaction_layer` (the live transactions and what
  each is for), `dialog` (§12), `auth` and `account_auth` (§22 digest, and whom the password
  answers), `stack` (what every part shares).
- `registration` (§10); the INVITE usage: `invite_usage` (a call's state table),
  `invite_client` (§13.2, §9.1), `invite_server` (§13.3, §9.2), `in_dialog` (§14, §15);
  `uas` (§8.2, what every request goes through); `callers` (the direct listener's policy).
- `agent`: `UserAgent`, the object drivers and the app talk to, and the one place that routes
  messages and API calls to those parts; `events`: what it reports.
"""

from pidphone.sip.errors import SipParseError
from pidphone.sip.framing import Frame, KeepAlivePing, KeepAlivePong, StreamFramer
from pidphone.sip.headers import CSeq, Via
from pidphone.sip.message import Message, Request, Response, parse_message, reason_phrase
from pidphone.sip.uri import NameAddr, Uri

__all__ = [
    "CSeq",
    "Frame",
    "KeepAlivePing",
    "KeepAlivePong",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "Via",
    "parse_message",
    "reason_phrase",
]
