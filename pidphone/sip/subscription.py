"""A subscriber's side of one subscription (RFC 6665 §4.1), as a state table.

Everything that moves a subscription from one `SubState` to another is in `TRANSITIONS`:
(state, input) -> new state. The handler (pidphone.sip.voicemail for message-summary, RFC
3842) sends what each move asks for and reads what comes back; an input the table does not
list in the current state is a stray message or a late answer, and changes nothing.

The subscription lives on the registrar's flow. When that flow goes, so does every way the
notifier had to reach us (it sends NOTIFYs over the connection the SUBSCRIBE came on), so the
subscription waits in RECONNECTING for the account to register again, and then subscribes
anew with a new dialog; a retry timer stands in if registration takes long. A failure the
notifier may get over (a timeout, 481 to a refresh, 5xx) waits in BACKING_OFF for a retry
with exponential backoff; one it will not (403, 404, 489 Bad Event, a wrong password) ends
in IDLE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pidphone.sip.dialog import Dialog
from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import get_param, parse_number, parse_params, split_outside
from pidphone.sip.message import Request


class SubState(enum.Enum):
    IDLE = "idle"
    """Not subscribed, and not trying to be."""
    SUBSCRIBING = "subscribing"
    """Our first SUBSCRIBE is out (or waits for its flow); no dialog yet."""
    ACTIVE = "active"
    """Accepted (2xx) or notified: the dialog exists and a refresh is scheduled."""
    REFRESHING = "refreshing"
    """A refresh SUBSCRIBE is out; NOTIFYs still count."""
    BACKING_OFF = "backing off"
    """Failed; a new subscription starts at the retry time."""
    RECONNECTING = "reconnecting"
    """The registrar's flow went down; a new subscription starts once registered again."""
    UNSUBSCRIBING = "unsubscribing"
    """Our SUBSCRIBE with Expires: 0 is out."""


class SubInput(enum.Enum):
    START = "watch"
    ACCEPTED = "2xx to our SUBSCRIBE"
    NOTIFIED = "NOTIFY active or pending"
    TERMINATED = "NOTIFY terminated"
    FAILED = "failure to retry later"
    REFUSED = "failure for good"
    REFRESH_DUE = "refresh time"
    RETRY_DUE = "retry time"
    FLOW_LOST = "registrar flow lost"
    REGISTERED = "registered again"
    STOP = "unwatch"


S, In = SubState, SubInput
TRANSITIONS: dict[tuple[SubState, SubInput], SubState] = {
    (S.IDLE, In.START): S.SUBSCRIBING,
    (S.IDLE, In.STOP): S.IDLE,
    # §4.1.2.1 the first SUBSCRIBE; a NOTIFY may overtake its 2xx (§4.1.2.4)
    (S.SUBSCRIBING, In.ACCEPTED): S.ACTIVE,
    (S.SUBSCRIBING, In.NOTIFIED): S.ACTIVE,
    (S.SUBSCRIBING, In.TERMINATED): S.BACKING_OFF,
    (S.SUBSCRIBING, In.FAILED): S.BACKING_OFF,
    (S.SUBSCRIBING, In.REFUSED): S.IDLE,
    (S.SUBSCRIBING, In.FLOW_LOST): S.RECONNECTING,
    (S.SUBSCRIBING, In.STOP): S.IDLE,  # no dialog to end; a late 2xx is stale
    # §4.1.2.2 refreshing, §4.1.3 notifications
    (S.ACTIVE, In.NOTIFIED): S.ACTIVE,
    (S.ACTIVE, In.TERMINATED): S.BACKING_OFF,
    (S.ACTIVE, In.REFRESH_DUE): S.REFRESHING,
    (S.ACTIVE, In.FLOW_LOST): S.RECONNECTING,
    (S.ACTIVE, In.STOP): S.UNSUBSCRIBING,
    (S.REFRESHING, In.ACCEPTED): S.ACTIVE,
    (S.REFRESHING, In.NOTIFIED): S.REFRESHING,
    (S.REFRESHING, In.TERMINATED): S.BACKING_OFF,
    (S.REFRESHING, In.FAILED): S.BACKING_OFF,  # 481: the notifier forgot us
    (S.REFRESHING, In.REFUSED): S.IDLE,
    (S.REFRESHING, In.FLOW_LOST): S.RECONNECTING,
    (S.REFRESHING, In.STOP): S.UNSUBSCRIBING,
    # waiting to start again
    (S.BACKING_OFF, In.RETRY_DUE): S.SUBSCRIBING,
    (S.BACKING_OFF, In.FLOW_LOST): S.RECONNECTING,
    (S.BACKING_OFF, In.STOP): S.IDLE,
    (S.RECONNECTING, In.REGISTERED): S.SUBSCRIBING,
    (S.RECONNECTING, In.RETRY_DUE): S.SUBSCRIBING,
    (S.RECONNECTING, In.STOP): S.IDLE,
    # §4.1.2.3 unsubscribing: whatever the answer, we are done
    (S.UNSUBSCRIBING, In.ACCEPTED): S.IDLE,
    (S.UNSUBSCRIBING, In.NOTIFIED): S.UNSUBSCRIBING,
    (S.UNSUBSCRIBING, In.TERMINATED): S.IDLE,
    (S.UNSUBSCRIBING, In.FAILED): S.IDLE,
    (S.UNSUBSCRIBING, In.REFUSED): S.IDLE,
    (S.UNSUBSCRIBING, In.FLOW_LOST): S.IDLE,
    (S.UNSUBSCRIBING, In.STOP): S.UNSUBSCRIBING,
}
del S, In

LIVE = frozenset(
    {SubState.SUBSCRIBING, SubState.ACTIVE, SubState.REFRESHING, SubState.UNSUBSCRIBING}
)
"""States in which a NOTIFY in the subscription's dialog is taken."""

RETRY_BASE = 5.0
"""First retry delay after a failure, seconds; doubled per failure."""
RETRY_MAX = 300.0
"""The longest wait between two attempts, seconds (a Retry-After too is capped here)."""
RECONNECT_RETRY = 60.0
"""After the registrar's flow went down: when to subscribe again if no registration came
first (it normally does, within the registration's own backoff)."""
MIN_REFRESH = 5.0
"""Never refresh sooner than this after an answer, whatever the notifier granted."""


@dataclass
class Subscription:
    """One subscription's bookkeeping: its dialog identity, its state and its timers."""

    call_id: str
    from_tag: str
    expires: int
    """What we ask for; raised by a 423's Min-Expires."""
    state: SubState = SubState.IDLE
    dialog: Dialog | None = None
    request: Request | None = None
    """The SUBSCRIBE last sent (answered with credentials on a challenge)."""
    cseq: int = 0
    """The CSeq of the last out-of-dialog SUBSCRIBE."""
    refresh_at: float | None = None
    retry_at: float | None = None
    failures: int = 0
    auth_attempts: int = 0

    def can(self, event: SubInput) -> bool:
        return (self.state, event) in TRANSITIONS

    def apply(self, event: SubInput) -> bool:
        """Move along the table; False (and no change) for an input the state does not take."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return False
        self.state = new
        if new not in (SubState.ACTIVE, SubState.REFRESHING):
            self.refresh_at = None
        if new not in (SubState.BACKING_OFF, SubState.RECONNECTING):
            self.retry_at = None
        if new in (SubState.IDLE, SubState.BACKING_OFF, SubState.RECONNECTING):
            self.dialog = None
        return True

    def renew(self, call_id: str, from_tag: str) -> None:
        """Start over as a new subscription: a new dialog identity, nothing of the old one."""
        self.call_id, self.from_tag = call_id, from_tag
        self.dialog = self.request = None
        self.cseq = self.auth_attempts = 0

    def back_off(self, now: float, jitter: float, retry_after: float | None = None) -> float:
        """When to try again: `retry_after` if the notifier said, else exponential backoff."""
        self.failures += 1
        if retry_after is not None:
            delay = float(min(retry_after, RETRY_MAX))
        else:
            delay = min(RETRY_BASE * 2 ** (self.failures - 1), RETRY_MAX) * (0.8 + 0.4 * jitter)
        self.retry_at = now + delay
        return self.retry_at

    def deadlines(self) -> list[float]:
        return [t for t in (self.refresh_at, self.retry_at) if t is not None]


@dataclass(frozen=True)
class SubscriptionStateHeader:
    """Subscription-State (RFC 6665 §8.2.3): `active`, `pending` or `terminated`, with the
    expires, reason and retry-after parameters."""

    state: str
    expires: int | None = None
    reason: str = ""
    retry_after: int | None = None

    @classmethod
    def parse(cls, text: str) -> SubscriptionStateHeader:
        parts = split_outside(text, ";")
        state = parts[0].strip().lower()
        if state not in ("active", "pending", "terminated"):
            raise SipParseError(f"unknown Subscription-State: {state[:20]!r}")
        params = parse_params(parts[1:], "Subscription-State")
        expires = get_param(params, "expires")
        retry = get_param(params, "retry-after")
        return cls(
            state=state,
            expires=None if expires is None else parse_number(expires, "expires"),
            reason=(get_param(params, "reason") or "").lower()[:32],
            retry_after=None if retry is None else parse_number(retry, "retry-after"),
        )

    @property
    def resubscribe_now(self) -> bool:
        """§4.1.3: after "deactivated" or "timeout" a new subscription may start at once."""
        return self.state == "terminated" and self.reason in ("deactivated", "timeout")

    @property
    def final(self) -> bool:
        """§4.1.3: after "rejected", "noresource" or "invariant" there is no point retrying."""
        return self.state == "terminated" and self.reason in ("rejected", "noresource", "invariant")
