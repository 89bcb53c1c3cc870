"""What the SIP side says of the phone's account, as the facts the phone shows.

The agent reports its registration and the voicemail box by transaction (`Registered`,
`RegistrationFailed`, `VoicemailStatus`, `VoicemailUnavailable`) and `Signalling` adds
`LinkFailed`. The phone sees one registration state (`RegistrationChanged`) and one voicemail
indicator (`VoicemailChanged`). A failed link is the registration's state only when it is the
link to the registrar ("no_network" when the server cannot be reached, else "tls_error"); it
also goes on as it is, for the listeners that name the certificate problem. None of this is a
call's, so the switchboard hands it here and sends on what comes back.
"""

from __future__ import annotations

import logging

from pidphone.ports import Address
from pidphone.sip import events as sip

from .phone_events import RegistrationChanged, RegistrationState, VoicemailChanged
from .signalling import LinkFailed

log = logging.getLogger(__name__)

ACCOUNT_EVENTS = (
    sip.Registered,
    sip.RegistrationFailed,
    sip.VoicemailStatus,
    sip.VoicemailUnavailable,
    LinkFailed,
)
"""The SIP events `account_facts` takes."""

NETWORK_REASONS = frozenset({"unreachable", "timeout", "reset"})
"""Link failures that say the server cannot be reached, not that TLS refused it."""

AccountFact = RegistrationChanged | VoicemailChanged | LinkFailed


def account_facts(event: sip.SipEvent, registrar: Address | None) -> list[AccountFact]:
    """The facts one of `ACCOUNT_EVENTS` brings, in order (none for any other event)."""
    if isinstance(event, sip.Registered):
        return [RegistrationChanged("registered")]
    if isinstance(event, sip.RegistrationFailed):
        reason = f"{event.status or ''} {event.reason}".strip()
        return [RegistrationChanged("failed", reason)]
    if isinstance(event, sip.VoicemailStatus):
        return [VoicemailChanged(event)]
    if isinstance(event, sip.VoicemailUnavailable):
        log.info("voicemail indicator: %s %s", event.status or "", event.reason)
        return [VoicemailChanged(None)] if event.retry_at is None else []
    if isinstance(event, LinkFailed):
        facts: list[AccountFact] = []
        if event.peer == registrar:
            state: RegistrationState = "tls_error"
            reason = event.reason
            if reason in NETWORK_REASONS:
                state = "no_network"
            elif reason == "refused":  # the server's host is up: nothing takes SIP there
                state, reason = "failed", "connection refused"
            facts.append(RegistrationChanged(state, reason))
        log.info("SIP link to %s:%d failed: %s (%s)", *event.peer, event.reason, event.detail)
        return [*facts, event]
    return []
