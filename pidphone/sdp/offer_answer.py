"""The offer/answer model (RFC 3264) for one G.711 audio stream keyed by ZRTP.

pidphone offers RTP/AVP audio with PCMU and/or PCMA (static payload types 0 and 8, in the
configured order), telephone-event/8000 (RFC 4733) as payload type 101, ptime 20, a direction
attribute and `a=zrtp-hash` (RFC 6189 §8). It answers with exactly one voice codec (its own
first choice among those offered, under the offer's payload type number) so that both ends
send the same codec; the answer never lists a format the offer did not (§6.1). Every other
m-line is refused with port 0 (§6). `negotiate` turns a local and a remote description into
the parameters the media session needs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pidphone.errors import LocalProtocolError, RemoteProtocolError
from pidphone.sdp.message import (
    DIRECTIONS,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    payload_type,
    read_number,
)

SUPPORTED_CODECS = {"PCMU": 0, "PCMA": 8}
"""Voice codecs pidphone can encode, with their static RTP/AVP payload type (RFC 3551)."""

TELEPHONE_EVENT_PT = 101
"""The dynamic payload type pidphone offers for telephone-event/8000."""

TELEPHONE_EVENT_FMTP = "0-16"
"""DTMF digits, * and #, A-D and flash (RFC 4733 §3.2)."""

ZRTP_VERSION = "1.10"
"""The ZRTP protocol version named in a=zrtp-hash (RFC 6189 §8.1)."""

DEFAULT_PTIME = 20
"""Milliseconds of audio per packet when the peer names no a=ptime."""

PROFILE = "RTP/AVP"
"""ZRTP keys the media in band, so the SDP profile is plain RTP/AVP."""


class NoCommonCodec(RemoteProtocolError):  # noqa: N818 (the name the SIP layer uses)
    """The peer's description leaves no audio stream both ends can use: answer 488."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, error_status_hint=488)


@dataclass(frozen=True)
class MediaParams:
    """What the media session needs from a completed offer/answer exchange."""

    remote_address: tuple[str, int]
    """Where to send RTP and ZRTP: the peer's connection address and m= port."""
    payload_type: int
    """The RTP payload type number to send the voice codec with."""
    codec: str
    """"PCMU" or "PCMA"."""
    telephone_event_pt: int | None
    """The peer's payload type for telephone-event/8000, None if DTMF events are not agreed."""
    direction: str
    """Our direction after both sides have spoken: "sendrecv", "sendonly", "recvonly" or
    "inactive"."""
    remote_zrtp_hash: str | None
    """The peer's a=zrtp-hash (version 1.10) as lower-case hex, to check its Hello against."""
    ptime: int
    """The packet duration in ms the peer wants to receive."""


def _addrtype(host: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
    except ValueError:
        return "IP4"  # a host name: IP4 is the common choice (RFC 8866 §5.7)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise LocalProtocolError(f"SDP direction must be one of {DIRECTIONS}: {direction!r}")


def _codec_payload_types(codecs: Sequence[str]) -> list[tuple[str, int]]:
    if not codecs:
        raise LocalProtocolError("at least one codec is needed")
    chosen: list[tuple[str, int]] = []
    for name in codecs:
        if name not in SUPPORTED_CODECS:
            raise LocalProtocolError(f"unsupported codec {name!r}: use PCMU or PCMA")
        if (name, SUPPORTED_CODECS[name]) not in chosen:
            chosen.append((name, SUPPORTED_CODECS[name]))
    return chosen


def _audio_attributes(
    codecs: list[tuple[str, int]],
    event_pt: int | None,
    zrtp_hash: str | None,
    direction: str,
) -> tuple[Attribute, ...]:
    attributes = [Attribute("rtpmap", f"{pt} {name}/8000") for name, pt in codecs]
    if event_pt is not None:
        attributes.append(Attribute("rtpmap", f"{event_pt} telephone-event/8000"))
        attributes.append(Attribute("fmtp", f"{event_pt} {TELEPHONE_EVENT_FMTP}"))
    attributes.append(Attribute("ptime", str(DEFAULT_PTIME)))
    if zrtp_hash is not None:
        attributes.append(Attribute("zrtp-hash", f"{ZRTP_VERSION} {zrtp_hash}"))
    attributes.append(Attribute(direction))
    return tuple(attributes)


def _session(
    address: str,
    session_id: int,
    session_version: int,
    username: str,
    media: tuple[MediaDescription, ...],
) -> SessionDescription:
    addrtype = _addrtype(address)
    return SessionDescription(
        origin=Origin(username, session_id, session_version, address, addrtype=addrtype),
        session_name="pidphone",
        connection=Connection(address, addrtype=addrtype),
        media=media,
    )


def build_offer(
    *,
    address: tuple[str, int],
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    zrtp_hash: str | None,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
    username: str = "pidphone",
) -> SessionDescription:
    """An offer of one audio stream received at `address` (RFC 3264 §5)."""
    _check_direction(direction)
    chosen = _codec_payload_types(codecs)
    formats = (*(str(pt) for _, pt in chosen), str(TELEPHONE_EVENT_PT))
    audio = MediaDescription(
        media="audio",
        port=address[1],
        proto=PROFILE,
        formats=formats,
        attributes=_audio_attributes(chosen, TELEPHONE_EVENT_PT, zrtp_hash, direction),
    )
    return _session(address[0], session_id, session_version, username, (audio,))


def _reverse(direction: str) -> str:
    """The direction as seen from the other end."""
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


def _intersect(ours: str, theirs_reversed: str) -> str:
    """What both allow: a stream sends only if both agree that it may (RFC 3264 §6.1)."""
    send = ours in ("sendrecv", "sendonly") and theirs_reversed in ("sendrecv", "sendonly")
    recv = ours in ("sendrecv", "recvonly") and theirs_reversed in ("sendrecv", "recvonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    return "recvonly" if recv else "inactive"


def _stream_direction(sd: SessionDescription, media: MediaDescription) -> str:
    return media.direction or sd.direction or "sendrecv"


def _is_g711(rtpmap: RtpMap, name: str) -> bool:
    return (
        rtpmap.encoding.upper() == name
        and rtpmap.clock_rate == 8000
        and rtpmap.channels in (None, 1)
    )


def _payload_types(media: MediaDescription) -> list[tuple[int, RtpMap]]:
    """The m= line's formats with what they stand for, in the line's order."""
    mapping = media.rtpmap()
    found: list[tuple[int, RtpMap]] = []
    for text in media.formats:
        pt = payload_type(text)
        if pt is not None and pt in mapping:
            found.append((pt, mapping[pt]))
    return found


def _telephone_event(media: MediaDescription) -> int | None:
    for pt, rtpmap in _payload_types(media):
        if rtpmap.encoding.lower() == "telephone-event" and rtpmap.clock_rate == 8000:
            return pt
    return None


def _usable_audio(media: MediaDescription) -> bool:
    return media.media == "audio" and media.port != 0 and media.proto == PROFILE


def _rejected(media: MediaDescription) -> MediaDescription:
    """The answer to a stream pidphone does not take: same type, port 0 (RFC 3264 §6)."""
    return MediaDescription(media=media.media, port=0, proto=media.proto, formats=media.formats)


def build_answer(
    offer: SessionDescription,
    *,
    address: tuple[str, int],
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    zrtp_hash: str | None,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
    username: str = "pidphone",
) -> SessionDescription:
    """Answer `offer` with one audio stream received at `address` (RFC 3264 §6).

    The first usable RTP/AVP audio stream is accepted with the first of our `codecs` it
    offers; every other stream gets port 0. Raises `NoCommonCodec` when no audio stream can
    be accepted."""
    _check_direction(direction)
    preferred = _codec_payload_types(codecs)
    answered: list[MediaDescription] = []
    accepted = False
    for media in offer.media:
        choice = _choose_codec(media, preferred) if not accepted and _usable_audio(media) else None
        if choice is None:
            answered.append(_rejected(media))
            continue
        accepted = True
        event_pt = _telephone_event(media)
        answer_direction = _intersect(direction, _reverse(_stream_direction(offer, media)))
        formats = (str(choice[1]),) + (() if event_pt is None else (str(event_pt),))
        answered.append(
            MediaDescription(
                media="audio",
                port=address[1],
                proto=PROFILE,
                formats=formats,
                attributes=_audio_attributes([choice], event_pt, zrtp_hash, answer_direction),
            )
        )
    if not accepted:
        raise NoCommonCodec("the offer has no RTP/AVP audio stream with PCMU or PCMA")
    return _session(address[0], session_id, session_version, username, tuple(answered))


def _choose_codec(
    media: MediaDescription, preferred: list[tuple[str, int]]
) -> tuple[str, int] | None:
    """Our first codec the stream offers, with the payload type number the offer uses."""
    offered = _payload_types(media)
    for name, _ in preferred:
        for pt, rtpmap in offered:
            if _is_g711(rtpmap, name):
                return (name, pt)
    return None


def _zrtp_hash(sd: SessionDescription, media: MediaDescription) -> str | None:
    values = media.values("zrtp-hash") or tuple(
        a.value for a in sd.attributes if a.name == "zrtp-hash" and a.value is not None
    )
    for value in values:
        version, _, digest = value.strip().partition(" ")
        digest = digest.strip().lower()
        if (
            version == ZRTP_VERSION
            and len(digest) == 64
            and all(c in "0123456789abcdef" for c in digest)
        ):
            return digest
    return None


def _ptime(media: MediaDescription) -> int:
    value = media.attribute("ptime")
    text = "" if value is None or value.value is None else value.value.strip()
    ptime = read_number(text, 4)
    return ptime if ptime is not None and 0 < ptime <= 1000 else DEFAULT_PTIME


def negotiate(local: SessionDescription, remote: SessionDescription) -> MediaParams:
    """The media parameters of the audio stream agreed by `local` and `remote`.

    Works from either end: the offerer passes (offer, answer), the answerer (answer, offer).
    m-lines pair up by position (RFC 3264 §6); the first audio stream that is live on both
    sides is used. The voice codec is the first one in the remote's list that the local
    description also lists, so both ends of a one-codec answer pick the same. Raises
    `NoCommonCodec` when nothing usable remains."""
    for local_media, remote_media in zip(local.media, remote.media, strict=False):
        if not (_usable_audio(local_media) and _usable_audio(remote_media)):
            continue
        local_codecs = [rtpmap for _, rtpmap in _payload_types(local_media)]
        for pt, rtpmap in _payload_types(remote_media):
            name = next((n for n in SUPPORTED_CODECS if _is_g711(rtpmap, n)), None)
            if name is None or not any(_is_g711(mine, name) for mine in local_codecs):
                continue
            connection = (
                remote_media.connections[0] if remote_media.connections else remote.connection
            )
            if connection is None:
                raise NoCommonCodec("the remote audio stream has no connection address")
            local_event = _telephone_event(local_media)
            remote_event = _telephone_event(remote_media)
            ours = _stream_direction(local, local_media)
            theirs = _reverse(_stream_direction(remote, remote_media))
            return MediaParams(
                remote_address=(connection.address.split("/")[0], remote_media.port),
                payload_type=pt,
                codec=name,
                telephone_event_pt=remote_event if local_event is not None else None,
                direction=_intersect(ours, theirs),
                remote_zrtp_hash=_zrtp_hash(remote, remote_media),
                ptime=_ptime(remote_media),
            )
    raise NoCommonCodec("no audio stream with a common codec in both descriptions")


def with_direction(sd: SessionDescription, direction: str, version: int) -> SessionDescription:
    """`sd` as a new version whose live audio streams have `direction` (hold and resume,
    RFC 3264 §8.4). A session-level direction is dropped so the media-level one rules."""
    _check_direction(direction)
    media: list[MediaDescription] = []
    for section in sd.media:
        if section.media != "audio" or section.port == 0:
            media.append(section)
            continue
        attributes = [a for a in section.attributes if not _is_direction(a)]
        position = next(
            (i for i, a in enumerate(section.attributes) if _is_direction(a)), len(attributes)
        )
        attributes.insert(min(position, len(attributes)), Attribute(direction))
        media.append(section.with_attributes(tuple(attributes)))
    return replace(
        sd,
        origin=replace(sd.origin, session_version=version),
        attributes=tuple(a for a in sd.attributes if not _is_direction(a)),
        media=tuple(media),
    )


def _is_direction(attribute: Attribute) -> bool:
    return attribute.name in DIRECTIONS and attribute.value is None
