"""What the user agent is told at start: who we are, where the registrar is, how we speak.

Only `pidphone.sip` reads it; the composition root builds it from the phone's configuration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pidphone.sip.callers import CallerPolicy

Address = tuple[str, int]


class Transport(enum.Enum):
    """The stream our flows run on: the Via transport and a sip: Contact's `;transport=`."""

    TLS = "tls"
    TCP = "tcp"
    """For tests against plain peers."""

    @property
    def default_port(self) -> int | None:
        """The port of a sips: or TLS URI that names none (RFC 3261 §19.1.2); None: the URI's
        own default."""
        return 5061 if self is Transport.TLS else None


@dataclass(frozen=True)
class AgentConfig:
    """Who we are and where the registrar is. Times are in seconds."""

    aor: str
    """Address of record, e.g. "sips:alice@example.org" or "sip:alice@127.0.0.1"."""
    display_name: str = ""
    """Shown to the people we call (From), e.g. "Alice"."""
    auth_user: str | None = None
    """Digest user name; defaults to the AOR's user."""
    password: str | None = field(default=None, repr=False)
    registrar: Address | None = None
    """Where REGISTER and out-of-dialog requests go (the outbound proxy); None means no
    registration, direct calls only."""
    register_expires: int = 600
    """Seconds of registration asked for; refreshed halfway through (at most 30 s before)."""
    keepalive_interval: float = 30.0
    """CRLF ping on every open flow (RFC 5626 §3.5.1); 0 disables."""
    user_agent: str = "pidphone/0.1.0"
    """User-Agent of our requests and Server of our responses."""
    transport: Transport = Transport.TLS
    """TLS (or TCP for tests against plain peers)."""
    instance_id: str | None = None
    """RFC 5626 `+sip.instance` URN ("urn:uuid:..."); made up at start when None."""
    auth_realms: tuple[str, ...] = ()
    """Digest realms the password may answer besides the AOR's domain (a provider whose
    realm is not its domain). Only challenges from `registrar` are answered in any case."""
    callers: CallerPolicy | None = None
    """Who may start calls on connections a peer opened to our listener, checked against the
    certificate the transport verified (`connection_made`); None: no check."""
