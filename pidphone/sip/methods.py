"""The SIP methods the agent knows by name, and which of them it serves (RFC 3261 §8.2.1).

A request's method is any token on the wire (`Request.method` is a str); the agent decides on
`Method` members, never on string literals. A method we know but do not serve is answered 405
with `ALLOW`; one we do not know at all, 501.
"""

from __future__ import annotations

import enum


class Method(enum.StrEnum):
    INVITE = "INVITE"
    ACK = "ACK"
    CANCEL = "CANCEL"
    BYE = "BYE"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    PRACK = "PRACK"
    UPDATE = "UPDATE"
    INFO = "INFO"
    REFER = "REFER"
    SUBSCRIBE = "SUBSCRIBE"
    NOTIFY = "NOTIFY"
    MESSAGE = "MESSAGE"
    PUBLISH = "PUBLISH"

    @classmethod
    def of(cls, text: str) -> Method | None:
        """The method a request names (methods are case-sensitive, §7.1), None if unknown."""
        try:
            return cls(text)
        except ValueError:
            return None


SERVED = (
    Method.INVITE,
    Method.ACK,
    Method.CANCEL,
    Method.BYE,
    Method.OPTIONS,
    Method.REFER,
    Method.NOTIFY,
)
"""What we answer, in the order of our Allow header."""
ALLOW = ", ".join(SERVED)
