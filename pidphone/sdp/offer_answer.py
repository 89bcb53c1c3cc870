"""The offer/answer model (RFC 3264) for one audio stream keyed by ZRTP.

pidphone offers RTP/AVP audio with the configured voice codecs in the configured order — Opus
(RFC 7587: opus/48000/2 with its fmtp), G.722 (static payload type 9, G722/8000: an 8000 Hz RTP
clock although it samples at 16 kHz, RFC 3551 §4.5.2), PCMU and PCMA (0 and 8) —,
telephone-event (RFC 4733) at the clock rate of every offered codec (§2.1: 48000 beside Opus,
8000 beside the rest), ptime 20, a direction attribute and `a=zrtp-hash` (RFC 6189 §8).

As answerer it picks one voice codec: the first codec in the *offer's* order that it has
enabled (RFC 3264 §6.1: the offerer lists its preferred formats first). That is what desk
phones do by default, and it is the safer choice: an offerer that puts G.711 first often knows
something about the path (a PSTN gateway that would otherwise transcode, a narrow uplink), and
two pidphones both offer wideband first anyway. The answer names exactly that codec under the
offer's payload type number, and the offer's telephone-event at the same clock rate (else at
any rate it offered), so both ends send the same codec; it never lists a format the offer did
not (§6.1). Every other m-line is refused with port 0 (§6). `negotiate` turns a local and a
remote description into the parameters the media session needs; after a re-INVITE it names
the codec of the new exchange, which may differ from the call's first one.
"""

from __future__ import annotations

import ipaddress
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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


@dataclass(frozen=True)
class CodecSpec:
    """How a voice codec appears in SDP."""

    name: str
    """The encoding name in a=rtpmap, as pidphone writes it (matched without case)."""
    clock_rate: int
    """The RTP clock rate in a=rtpmap (not always the sample rate: G.722)."""
    channels: int | None
    """The channel count in a=rtpmap (Opus always says 2, RFC 7587 §7), or None."""
    payload_type: int
    """The static payload type (RFC 3551 §6), or the dynamic one pidphone offers."""
    wideband: bool
    """It carries more than the 300-3400 Hz telephone band."""


CODECS: dict[str, CodecSpec] = {
    "opus": CodecSpec("opus", 48000, 2, 111, wideband=True),
    "G722": CodecSpec("G722", 8000, None, 9, wideband=True),
    "PCMU": CodecSpec("PCMU", 8000, None, 0, wideband=False),
    "PCMA": CodecSpec("PCMA", 8000, None, 8, wideband=False),
}
"""Voice codecs pidphone can negotiate, by the name the config uses."""

DEFAULT_CODECS = ("opus", "G722", "PCMU", "PCMA")
"""The config's default order of preference: wideband first."""

G711_CODECS = ("PCMU", "PCMA")
"""What `build_offer` and `build_answer` use when no codecs are given: what every phone has."""

TELEPHONE_EVENT_PT = 101
"""The dynamic payload type pidphone offers for telephone-event/8000."""

TELEPHONE_EVENT_PTS = {8000: TELEPHONE_EVENT_PT, 48000: 110}
"""The payload type pidphone offers telephone-event with, per clock rate."""

TELEPHONE_EVENT_FMTP = "0-16"
"""DTMF digits, * and #, A-D and flash (RFC 4733 §3.2)."""

OPUS_MAX_RATE = 16000
"""Hz: the maxplaybackrate and sprop-maxcapturerate pidphone announces for Opus by default:
wideband, what it encodes itself (pidphone.audio.codec.OPUS_AUDIO_RATE) and what a handset's
earpiece reproduces; a peer then spends its bits on the speech band."""

ZRTP_VERSION = "1.10"
"""The ZRTP protocol version named in a=zrtp-hash (RFC 6189 §8.1)."""

DEFAULT_PTIME = 20
"""Milliseconds of audio per packet when the peer names no a=ptime."""

PROFILE = "RTP/AVP"
"""ZRTP keys the media in band, so the SDP profile is plain RTP/AVP."""


SDES_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
"""Profiles whose keys come in the SDP itself (a=crypto, RFC 4568): never accepted, since
whoever relays the signalling could read them."""


class NoCommonCodec(RemoteProtocolError):  # noqa: N818 (the name the SIP layer uses)
    """The peer's description leaves no audio stream both ends can use: answer 488."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, error_status_hint=488)


class SdesOffered(NoCommonCodec):
    """The offer's only audio wants SDES-SRTP keys, which this phone never takes: 488."""


_NO_PARAMETERS: Mapping[str, str] = types.MappingProxyType({})


@dataclass(frozen=True)
class MediaParams:
    """What the media session needs from a completed offer/answer exchange."""

    remote_address: tuple[str, int]
    """Where to send RTP and ZRTP: the peer's connection address and m= port."""
    payload_type: int
    """The RTP payload type number to send the voice codec with (and to expect)."""
    codec: str
    """"opus", "G722", "PCMU" or "PCMA" (pidphone.audio.codec.make_codec takes it)."""
    telephone_event_pt: int | None
    """The peer's payload type for telephone-event, None if DTMF events are not agreed."""
    direction: str
    """Our direction after both sides have spoken: "sendrecv", "sendonly", "recvonly" or
    "inactive"."""
    remote_zrtp_hash: str | None
    """The peer's a=zrtp-hash (version 1.10) as lower-case hex, to check its Hello against."""
    ptime: int
    """The packet duration in ms the peer wants to receive."""
    clock_rate: int = 8000
    """The codec's RTP clock rate: timestamps count in it (48000 for Opus, 8000 for G.722)."""
    fmtp: Mapping[str, str] = field(default_factory=lambda: _NO_PARAMETERS)
    """The peer's format parameters for the codec (what it wants to receive, RFC 7587 §6.1:
    useinbandfec, usedtx, maxplaybackrate, maxaveragebitrate …), keys in lower case."""
    telephone_event_rate: int = 8000
    """The clock rate of the telephone-event payload type (RFC 4733 §2.1)."""

    @property
    def wideband(self) -> bool:
        """The call carries wideband audio ("HD" on the screen)."""
        spec = CODECS.get(self.codec)
        if spec is None or not spec.wideband:
            return False
        rate = read_number(self.fmtp.get("maxplaybackrate", "48000"), 6)
        return rate is None or rate > 8000


def _addrtype(host: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
    except ValueError:
        return "IP4"  # a host name: IP4 is the common choice (RFC 8866 §5.7)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise LocalProtocolError(f"SDP direction must be one of {DIRECTIONS}: {direction!r}")


def _codec_specs(codecs: Sequence[str]) -> list[CodecSpec]:
    if not codecs:
        raise LocalProtocolError("at least one codec is needed")
    chosen: list[CodecSpec] = []
    for name in codecs:
        spec = CODECS.get(name)
        if spec is None:
            raise LocalProtocolError(f"unsupported codec {name!r}: use one of {tuple(CODECS)}")
        if spec not in chosen:
            chosen.append(spec)
    return chosen


def _rtpmap_text(pt: int, encoding: str, clock_rate: int, channels: int | None) -> str:
    return f"{pt} {encoding}/{clock_rate}" + ("" if channels is None else f"/{channels}")


def opus_fmtp(max_rate: int = OPUS_MAX_RATE, *, dtx: bool = False) -> str:
    """What pidphone asks of an Opus sender (RFC 7587 §6.1): in-band FEC on, DTX as asked,
    mono, audio up to `max_rate` Hz (the earpiece's rate)."""
    return (
        f"maxplaybackrate={max_rate}; sprop-maxcapturerate={max_rate}; stereo=0; "
        f"sprop-stereo=0; useinbandfec=1; usedtx={int(dtx)}"
    )


@dataclass(frozen=True)
class _Chosen:
    """A voice codec and the payload type number it goes by in this description."""

    spec: CodecSpec
    pt: int


def _audio_attributes(
    codecs: Sequence[_Chosen],
    events: Sequence[tuple[int, int]],
    zrtp_hash: str | None,
    direction: str,
    opus_parameters: str,
) -> tuple[Attribute, ...]:
    """rtpmap (and fmtp) for every codec, then telephone-event as (pt, rate) pairs."""
    attributes: list[Attribute] = []
    for chosen in codecs:
        spec = chosen.spec
        attributes.append(
            Attribute("rtpmap", _rtpmap_text(chosen.pt, spec.name, spec.clock_rate, spec.channels))
        )
        if spec.name == "opus":
            attributes.append(Attribute("fmtp", f"{chosen.pt} {opus_parameters}"))
    for pt, rate in events:
        attributes.append(Attribute("rtpmap", f"{pt} telephone-event/{rate}"))
        attributes.append(Attribute("fmtp", f"{pt} {TELEPHONE_EVENT_FMTP}"))
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
    codecs: Sequence[str] = G711_CODECS,
    zrtp_hash: str | None,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
    username: str = "pidphone",
    opus_max_rate: int = OPUS_MAX_RATE,
    opus_dtx: bool = False,
) -> SessionDescription:
    """An offer of one audio stream received at `address` (RFC 3264 §5), the voice codecs in
    the order of `codecs`, telephone-event at each of their clock rates."""
    _check_direction(direction)
    chosen = [_Chosen(spec, spec.payload_type) for spec in _codec_specs(codecs)]
    rates = sorted({c.spec.clock_rate for c in chosen}, key=lambda r: r != 48000)
    events = [(TELEPHONE_EVENT_PTS[rate], rate) for rate in rates]
    formats = (*(str(c.pt) for c in chosen), *(str(pt) for pt, _ in events))
    audio = MediaDescription(
        media="audio",
        port=address[1],
        proto=PROFILE,
        formats=formats,
        attributes=_audio_attributes(
            chosen, events, zrtp_hash, direction, opus_fmtp(opus_max_rate, dtx=opus_dtx)
        ),
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


def _spec_of(rtpmap: RtpMap) -> CodecSpec | None:
    """The codec an rtpmap names, if pidphone has it at that clock rate (G.722 only at 8000:
    a peer that writes G722/16000 would stamp its packets at the wrong rate)."""
    encoding = rtpmap.encoding.lower()
    for spec in CODECS.values():
        if encoding == spec.name.lower() and rtpmap.clock_rate == spec.clock_rate:
            if spec.name == "opus":
                return spec if rtpmap.channels in (None, 1, 2) else None
            return spec if rtpmap.channels in (None, 1) else None
    return None


def _payload_types(media: MediaDescription) -> list[tuple[int, RtpMap]]:
    """The m= line's formats with what they stand for, in the line's order."""
    mapping = media.rtpmap()
    found: list[tuple[int, RtpMap]] = []
    for text in media.formats:
        pt = payload_type(text)
        if pt is not None and pt in mapping:
            found.append((pt, mapping[pt]))
    return found


def _telephone_events(media: MediaDescription) -> list[tuple[int, int]]:
    """(payload type, clock rate) of every telephone-event format, in the line's order."""
    return [
        (pt, rtpmap.clock_rate)
        for pt, rtpmap in _payload_types(media)
        if rtpmap.encoding.lower() == "telephone-event"
    ]


def _telephone_event(media: MediaDescription, clock_rate: int) -> tuple[int, int] | None:
    """The telephone-event format at the codec's clock rate (RFC 4733 §2.1), else the first
    one at another rate (many peers offer only /8000 beside Opus), else None."""
    events = _telephone_events(media)
    for pt, rate in events:
        if rate == clock_rate:
            return pt, rate
    return events[0] if events else None


def _usable_audio(media: MediaDescription) -> bool:
    return media.media == "audio" and media.port != 0 and media.proto == PROFILE


def _rejected(media: MediaDescription) -> MediaDescription:
    """The answer to a stream pidphone does not take: same type, port 0 (RFC 3264 §6)."""
    return MediaDescription(media=media.media, port=0, proto=media.proto, formats=media.formats)


def build_answer(
    offer: SessionDescription,
    *,
    address: tuple[str, int],
    codecs: Sequence[str] = G711_CODECS,
    zrtp_hash: str | None,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
    username: str = "pidphone",
    opus_max_rate: int = OPUS_MAX_RATE,
    opus_dtx: bool = False,
) -> SessionDescription:
    """Answer `offer` with one audio stream received at `address` (RFC 3264 §6).

    The first usable RTP/AVP audio stream is accepted with the first codec in the offer's
    order that `codecs` enables; every other stream gets port 0. Raises `NoCommonCodec` when
    no audio stream can be accepted."""
    _check_direction(direction)
    enabled = _codec_specs(codecs)
    answered: list[MediaDescription] = []
    accepted = False
    for media in offer.media:
        choice = _choose_codec(media, enabled) if not accepted and _usable_audio(media) else None
        if choice is None:
            answered.append(_rejected(media))
            continue
        accepted = True
        event = _telephone_event(media, choice.spec.clock_rate)
        events = [] if event is None else [event]
        answer_direction = _intersect(direction, _reverse(_stream_direction(offer, media)))
        formats = (str(choice.pt), *(str(pt) for pt, _ in events))
        answered.append(
            MediaDescription(
                media="audio",
                port=address[1],
                proto=PROFILE,
                formats=formats,
                attributes=_audio_attributes(
                    [choice],
                    events,
                    zrtp_hash,
                    answer_direction,
                    opus_fmtp(opus_max_rate, dtx=opus_dtx),
                ),
            )
        )
    if not accepted:
        if any(
            m.media == "audio" and m.port != 0 and m.proto in SDES_PROFILES for m in offer.media
        ):
            raise SdesOffered(
                "the offer wants SDES-SRTP (RTP/SAVP, keys in the signalling): this phone keys"
                " media only with ZRTP on RTP/AVP"
            )
        names = ", ".join(spec.name for spec in enabled)
        raise NoCommonCodec(f"the offer has no RTP/AVP audio stream with {names}")
    return _session(address[0], session_id, session_version, username, tuple(answered))


def _choose_codec(media: MediaDescription, enabled: list[CodecSpec]) -> _Chosen | None:
    """The offer's first codec that we enable, with the payload type number it uses."""
    for pt, rtpmap in _payload_types(media):
        spec = _spec_of(rtpmap)
        if spec is not None and spec in enabled:
            return _Chosen(spec, pt)
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


MAX_FMTP_PARAMETERS = 16
"""Format parameters kept from one a=fmtp line; more are ignored."""


def parse_fmtp(text: str | None) -> Mapping[str, str]:
    """`key=value; key=value` (RFC 7587 §6.1 style) as a mapping with lower-case keys.
    Words without "=" and anything past `MAX_FMTP_PARAMETERS` are ignored."""
    found: dict[str, str] = {}
    for part in (text or "").split(";")[:MAX_FMTP_PARAMETERS]:
        key, equals, value = part.strip().partition("=")
        if equals and key.strip():
            found.setdefault(key.strip().lower(), value.strip())
    return types.MappingProxyType(found)


def _agreed_event(
    local: MediaDescription, remote: MediaDescription, clock_rate: int
) -> tuple[int, int] | None:
    """The remote's telephone-event (payload type, rate) at a rate both list: the codec's
    clock rate if possible (RFC 4733 §2.1), else the first rate in the remote's order."""
    local_rates = {rate for _, rate in _telephone_events(local)}
    common = [(pt, rate) for pt, rate in _telephone_events(remote) if rate in local_rates]
    return next((e for e in common if e[1] == clock_rate), common[0] if common else None)


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
        local_specs = {_spec_of(rtpmap) for _, rtpmap in _payload_types(local_media)}
        for pt, rtpmap in _payload_types(remote_media):
            spec = _spec_of(rtpmap)
            if spec is None or spec not in local_specs:
                continue
            connection = (
                remote_media.connections[0] if remote_media.connections else remote.connection
            )
            if connection is None:
                raise NoCommonCodec("the remote audio stream has no connection address")
            agreed = _agreed_event(local_media, remote_media, spec.clock_rate)
            ours = _stream_direction(local, local_media)
            theirs = _reverse(_stream_direction(remote, remote_media))
            return MediaParams(
                remote_address=(connection.address.split("/")[0], remote_media.port),
                payload_type=pt,
                codec=spec.name,
                telephone_event_pt=None if agreed is None else agreed[0],
                direction=_intersect(ours, theirs),
                remote_zrtp_hash=_zrtp_hash(remote, remote_media),
                ptime=_ptime(remote_media),
                clock_rate=spec.clock_rate,
                fmtp=parse_fmtp(remote_media.fmtp(pt)),
                telephone_event_rate=spec.clock_rate if agreed is None else agreed[1],
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
