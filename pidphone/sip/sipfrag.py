"""The status line of a `message/sipfrag` body (RFC 3420), as NOTIFYs of a REFER carry the
progress of the call it asked for (RFC 3515 §2.4.5): "SIP/2.0 180 Ringing".

Only the first line matters to a transferor; the rest of the fragment (headers the notifier
chose to copy) is ignored. The line is bounded and its status must be three ASCII digits.
"""

from __future__ import annotations

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import parse_number
from pidphone.sip.message import reason_phrase

MAX_STATUS_LINE = 256
MEDIA_TYPE = "message/sipfrag"


def parse_status_line(body: bytes) -> tuple[int, str]:
    """(status, reason phrase) of a sipfrag body that starts with a status line."""
    first = body[: MAX_STATUS_LINE + 2].split(b"\n", 1)[0].rstrip(b"\r")
    if len(first) > MAX_STATUS_LINE:
        raise SipParseError("sipfrag status line too long")
    try:
        text = first.decode("ascii")
    except UnicodeDecodeError:
        raise SipParseError("sipfrag status line is not ASCII") from None
    version, _, rest = text.partition(" ")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"sipfrag does not start with a status line: {text[:40]!r}")
    code, _, reason = rest.partition(" ")
    status = parse_number(code, "sipfrag status", 3)
    if not 100 <= status <= 699:
        raise SipParseError(f"sipfrag status {status} out of range")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason):
        raise SipParseError("control character in the sipfrag reason")
    return status, reason.strip()


def status_line(status: int, reason: str = "") -> bytes:
    """The body of our NOTIFY for `status`: one line, printable ASCII whatever `reason` holds."""
    text = "".join(c if c.isprintable() else " " for c in reason[: MAX_STATUS_LINE - 12])
    return f"SIP/2.0 {status} {text or reason_phrase(status)}\r\n".encode("ascii", "replace")
