"""The one parse error of the SIP core (pidphone.errors has the whole family).

`error_status_hint` says what a server answers to a request it could frame but not accept:
400 by default, 505 for an unsupported SIP version, 416 for a Request-URI scheme we do not
serve, 513 for a message that is too large.
"""

from __future__ import annotations

from pidphone.errors import ParseError


class SipParseError(ParseError):
    """Bytes that do not form a valid SIP message, URI or header."""
