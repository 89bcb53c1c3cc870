"""Where a call's media and INVITE go: the address our SDP gives, the caller's media host,
and a dialled number made a SIP target. Used by the switchboard on the loop."""

from __future__ import annotations

import dataclasses
import logging

from pidphone.errors import ProtocolError
from pidphone.ports import Address, LocalAddress
from pidphone.sdp import SessionDescription

from .call import CallSettings
from .media_messages import MediaOpened

log = logging.getLogger(__name__)

ANY_ADDRESS = ("0.0.0.0", "::")


async def sdp_address(
    opened: MediaOpened,
    toward: str | None,
    *,
    configured: str | None,
    local_address: LocalAddress | None,
) -> Address:
    """The address for our SDP: learnt by STUN (the NAT's port too), `configured`, or the
    local address that routes `toward` the peer."""
    if opened.mapped is not None:
        return opened.mapped
    port = opened.local[1]
    if configured is not None:
        return configured, port
    bound = opened.local[0]
    if bound not in ANY_ADDRESS or toward is None or local_address is None:
        return (bound if bound not in ANY_ADDRESS else "127.0.0.1"), port
    try:
        return await local_address(toward), port
    except OSError as exc:
        log.warning("no route towards %s (%s): media address 127.0.0.1", toward, exc)
        return "127.0.0.1", port


def offer_host(sdp: bytes) -> str | None:
    """The caller's media address from its offer: our media will go there."""
    try:
        offer = SessionDescription.parse(sdp)
    except ProtocolError:
        return None
    for media in offer.media:
        if media.connections:
            return media.connections[0].address.split("/")[0]
    return offer.connection.address.split("/")[0] if offer.connection else None


def settings_for_host(base: CallSettings, host: str) -> CallSettings:
    """`base` with the media host our SDP gives."""
    return base if host == base.media_host else dataclasses.replace(base, media_host=host)


def dial_target(number: str, dial_domain: str) -> str:
    """A dialled number as a SIP target: a URI as it is, else `number@dial_domain`."""
    text = number.strip()
    if text.lower().startswith(("sip:", "sips:")) or "@" in text:
        return text
    if dial_domain:
        return f"{text}@{dial_domain}"
    return text
