"""The two words the app uses about a call, each defined once: where it stands, and how its
media is protected. The call (SIP side), the media session, the reducer and the screen all
speak them; nothing compares either with a string literal.
"""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    """Where a call stands, from either end."""

    CALLING = "calling"
    """Our INVITE is out, no answer yet."""
    ALERTING = "alerting"
    """The called phone is ringing (180 or 183): ringback here."""
    INCOMING = "incoming"
    """An INVITE arrived: this phone is ringing."""
    ANSWERED = "answered"
    """We answered an INVITE that had no offer: the peer's answer comes in the ACK."""
    CONNECTED = "connected"
    """The dialog is established; the media runs."""
    ENDED = "ended"


class Security(StrEnum):
    """How a call's media is protected (RFC 6189 through the media session's policy)."""

    NEGOTIATING = "negotiating"
    """No outcome yet: no audio either way."""
    SECURE = "secure"
    """ZRTP keyed SRTP both ways: show the SAS."""
    INSECURE = "insecure"
    """"prefer" policy, a peer that never negotiated ZRTP: NOT SECURE, and no audio until
    the screen says so (`allow_clear`)."""
    CLEAR = "clear"
    """Plain RTP, NOT SECURE on the screen ("prefer" only)."""
    FAILED = "failed"
    """ZRTP failed: no audio, the call ends."""
    LOST = "lost"
    """It was secure and its security is gone (authenticated): no audio either way."""

    @property
    def not_secure(self) -> bool:
        """The screen says NOT SECURE."""
        return self in (Security.INSECURE, Security.CLEAR)
