"""Registration bookkeeping (RFC 3261 §10, RFC 5626 outbound): when to refresh, how long to
back off after a failure, and which binding in a 200 is ours.

The agent builds and sends the REGISTER requests; this module holds the state between them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pidphone.sip.message import Response
from pidphone.sip.uri import NameAddr, Uri

RETRY_BASE = 5.0
"""First retry delay after a failed REGISTER, seconds; doubled per failure."""
RETRY_MAX = 300.0
"""The longest wait between two attempts, seconds."""


class RegState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"


@dataclass
class Registration:
    call_id: str
    from_tag: str
    expires: int
    """What we ask for; raised by a 423's Min-Expires."""
    cseq: int = 0
    state: RegState = RegState.IDLE
    refresh_at: float | None = None
    retry_at: float | None = None
    failures: int = 0
    auth_attempts: int = 0
    granted: int = 0
    """The expiry the registrar gave our binding in its last 200."""

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq

    def succeeded(self, granted: int, now: float) -> None:
        self.state = RegState.REGISTERED
        self.granted = granted
        self.failures = 0
        self.auth_attempts = 0
        self.retry_at = None
        self.refresh_at = now + refresh_delay(granted)

    def failed(self, now: float, jitter: float, *, retry: bool = True) -> float | None:
        """Record a failure; returns when to try again (None: do not)."""
        self.state = RegState.IDLE
        self.refresh_at = None
        self.auth_attempts = 0
        if not retry:
            self.retry_at = None
            return None
        self.failures += 1
        delay = min(RETRY_BASE * 2 ** (self.failures - 1), RETRY_MAX)
        self.retry_at = now + delay * (0.8 + 0.4 * jitter)
        return self.retry_at


def refresh_delay(expires: int) -> float:
    """Refresh at most halfway through or 30 s before expiry, whichever comes first, but never
    sooner than a quarter of the interval (short grants would otherwise refresh at once)."""
    return max(min(expires / 2, expires - 30), expires / 4)


def our_binding(response: Response, contact: NameAddr, instance: str) -> NameAddr | None:
    """Find our Contact among the bindings a registrar returns (§10.2.4): by `+sip.instance`
    (RFC 5626) or else by the URI's user, host and port."""
    ours_key = contact.uri.address_key()
    for binding in response.contacts:
        if binding.wildcard:
            continue
        inst = binding.param("+sip.instance")
        if inst is not None and inst.strip('"') == f"<{instance}>":
            return binding
        if _same_uri(binding.uri, ours_key):
            return binding
    return None


def _same_uri(uri: Uri, key: tuple[str, str, str, int | None]) -> bool:
    return uri.address_key() == key
