"""A call's milestones in the journal: what happened, with the fields that find one call."""

from __future__ import annotations

import logging

from .call import Call
from .call_events import (
    CallConnected,
    CallEvent,
    CallFinished,
    CallIncoming,
    CallInsecure,
    CallMismatch,
    CallPlaced,
    CallSecure,
    CallSecurityLost,
    CallVerified,
)


def log_milestone(log: logging.Logger, call: Call, event: CallEvent) -> None:
    """The call's milestones on `log`, with the journal fields that find one call:
    `journalctl CALL_ID=...`. Never the keys; the SAS stays on the screen."""
    fields = {"CALL_ID": call.call_id, "PEER": call.remote_uri}
    if isinstance(event, CallPlaced):
        log.info("calling %s", event.target, extra=fields)
    elif isinstance(event, CallIncoming):
        log.info("incoming call from %s", event.remote_uri, extra=fields)
    elif isinstance(event, CallConnected):
        log.info("call answered", extra=fields)
    elif isinstance(event, CallSecure):
        fields["SAS_VERIFIED"] = "yes" if event.secured.verified else "no"
        log.info(
            "call secured: %s, %s, SAS %s",
            event.secured.key_agreement,
            event.secured.cipher,
            "verified" if event.secured.verified else "not verified",
            extra=fields,
        )
    elif isinstance(event, CallMismatch):
        log.warning(
            "cached secret mismatch: possible man in the middle; SAS to be compared",
            extra=fields,
        )
    elif isinstance(event, CallVerified) and event.verified:
        fields["SAS_VERIFIED"] = "yes"
        log.info("SAS confirmed by the user", extra=fields)
    elif isinstance(event, CallVerified):
        fields["SAS_VERIFIED"] = "no"
        log.warning("SAS REJECTED by the user: possible man in the middle", extra=fields)
    elif isinstance(event, CallInsecure):
        log.warning("call NOT SECURE: %s", event.failure.reason, extra=fields)
    elif isinstance(event, CallSecurityLost):
        log.warning("call security LOST, audio stopped: %s", event.lost.reason, extra=fields)
    elif isinstance(event, CallFinished):
        log.info("call ended: %s", event.reason, extra=fields)
