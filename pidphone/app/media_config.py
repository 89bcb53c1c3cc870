"""What a call's media needs besides the negotiated codec: policy, ZRTP settings, timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pidphone.zrtp.config import ZrtpConfig

Policy = Literal["require", "prefer"]


@dataclass(frozen=True)
class MediaConfig:
    """What a call's media needs besides the negotiated codec (see `MediaSession.configure`)."""

    policy: Policy = "require"
    """"require": never clear audio; "prefer": clear audio when ZRTP fails (NOT SECURE)."""
    zrtp: ZrtpConfig = field(default_factory=ZrtpConfig)
    """Algorithm preferences and timers handed to the ZRTP session."""
    secure_timeout: float = 20.0
    """Seconds from start to Secured before the exchange is declared failed, a backstop to
    ZRTP's own timers (Hello gives up after 3.75 s, or 12 s when the peer's a=zrtp-hash
    says it speaks ZRTP; the other messages after 9.45 s)."""
    rtcp_interval: float = 5.0
    """Seconds between RTCP reports (RFC 3550 §6.2: fixed for a two-party call)."""
    max_jitter_delay: float = 0.2
    """Upper bound of the jitter buffer's adaptive delay, in seconds."""
    cname: str = "pidphone"
    """RTCP SDES CNAME."""
    srtcp_tag_len: int | None = None
    """SRTCP tag bytes: 10 (RFC 3711), 4 (the 32-bit SRTP tag reused, as Linphone does under
    HS32), or None: 10, but under a 32-bit profile switch to 4 once the peer's SRTCP
    authenticates only that way."""
