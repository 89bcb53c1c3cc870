"""SDP session descriptions as typed, frozen values (RFC 8866 §5 syntax).

`SessionDescription.parse(data)` reads a description and `bytes(sd)` writes it back in the
order RFC 8866 §5 prescribes, with CRLF line ends. Lines whose meaning pidphone never needs
(i=, u=, e=, p=, b=, r=, z=, k=) are kept as their text; attributes stay in their order, and
attributes nobody here understands are carried through intact, so a description parsed and
written back says the same thing.

Parsing is lenient where real peers are sloppy (LF-only line ends, blank lines, session-level
lines out of order) and strict where a misreading would be dangerous (a malformed origin,
connection, timing or media line, an unknown type letter, bytes that are not UTF-8).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Self, TypeVar

from pidphone.errors import LocalProtocolError, ParseError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
"""The direction attributes of RFC 8866 §6.7; without one a stream is sendrecv."""

_SESSION_TEXT_LINES = "iuk"
"""Session-level lines held as one optional text value: information, URI, key."""


class SdpParseError(ParseError):
    """Bytes that are not a session description pidphone can read.

    A SIP server answers an INVITE carrying one with 400 (the hint)."""


def _check_text(what: str, value: str) -> None:
    """Refuse values that would break the line structure when written out."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise LocalProtocolError(f"SDP {what} must not contain CR, LF or NUL: {value!r}")


def _check_token(what: str, value: str) -> None:
    _check_text(what, value)
    if not value or " " in value:
        raise LocalProtocolError(f"SDP {what} must be a non-empty word: {value!r}")


@dataclass(frozen=True)
class Origin:
    """The o= line: who made the description and which version of it this is (§5.2)."""

    username: str
    """The user on the originating host, "-" when there is none."""
    session_id: int
    """Numeric session identifier, unique per originator."""
    session_version: int
    """Incremented on every change (RFC 3264 §8): a re-offer with a new version."""
    address: str
    """The originating host: an IP literal or a name."""
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __post_init__(self) -> None:
        for what, value in (
            ("origin username", self.username),
            ("origin address", self.address),
            ("origin nettype", self.nettype),
            ("origin addrtype", self.addrtype),
        ):
            _check_token(what, value)
        if self.session_id < 0 or self.session_version < 0:
            raise LocalProtocolError("SDP origin session id and version must not be negative")

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """A c= line: where media is sent (§5.7). Multicast suffixes stay in `address`."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __post_init__(self) -> None:
        for what, value in (
            ("connection address", self.address),
            ("connection nettype", self.nettype),
            ("connection addrtype", self.addrtype),
        ):
            _check_token(what, value)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Timing:
    """A t= line with its r= repeat lines (§5.9, §5.10); "0 0" is an unbounded session."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()
    """The r= lines, verbatim."""

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < 0:
            raise LocalProtocolError("SDP times must not be negative")
        for value in self.repeats:
            _check_text("repeat", value)


@dataclass(frozen=True)
class Attribute:
    """An a= line (§5.13): a property `name` or a value attribute `name:value`."""

    name: str
    value: str | None = None
    """None for a property attribute (a=sendrecv); a string, maybe empty, after a colon."""

    def __post_init__(self) -> None:
        _check_token("attribute name", self.name)
        if ":" in self.name:
            raise LocalProtocolError(f"SDP attribute name must not contain ':': {self.name!r}")
        if self.value is not None:
            _check_text("attribute value", self.value)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class RtpMap:
    """What a payload type number stands for (a=rtpmap, RFC 8866 §6.6)."""

    encoding: str
    clock_rate: int
    channels: int | None = None


STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),  # RFC 3551 §4.5.2: an 8000 Hz clock for 16 kHz audio
}
"""The static RTP/AVP payload types pidphone speaks (RFC 3551 §6); others need an rtpmap."""


def read_number(text: str, max_digits: int = 20) -> int | None:
    """The value of `text` when it is 1 to `max_digits` ASCII digits, else None.

    Every number in a description is read here: `str.isdigit` alone would let "²" through,
    on which `int()` raises ValueError, and the length bound keeps `int()` cheap."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def payload_type(text: str) -> int | None:
    """The RTP payload type a format word names (0-127 written canonically), else None."""
    value = read_number(text, 3)
    if value is None or value > 127 or text != str(value):
        return None
    return value


def _find(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    for attribute in attributes:
        if attribute.name == name:
            return attribute
    return None


def _direction(attributes: tuple[Attribute, ...]) -> str | None:
    for attribute in attributes:
        if attribute.name in DIRECTIONS and attribute.value is None:
            return attribute.name
    return None


@dataclass(frozen=True)
class MediaDescription:
    """One m= section with its own lines (§5.14)."""

    media: str
    """"audio", "video", "application", ..."""
    port: int
    """The transport port; 0 marks a rejected or disabled stream (RFC 3264 §6)."""
    proto: str
    """"RTP/AVP" for ZRTP-keyed audio."""
    formats: tuple[str, ...]
    """Payload type numbers for RTP, kept as the words of the m= line."""
    port_count: int | None = None
    """The "/<number of ports>" suffix, when present."""
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[str, ...] = ()
    """b= lines, verbatim ("AS:64")."""
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _check_token("media type", self.media)
        _check_token("media protocol", self.proto)
        if not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"SDP media port out of range: {self.port}")
        if self.port_count is not None and self.port_count < 1:
            raise LocalProtocolError(f"SDP media port count must be positive: {self.port_count}")
        if not self.formats:
            raise LocalProtocolError("SDP media line needs at least one format")
        for value in self.formats:
            _check_token("media format", value)
        for value in self.bandwidths:
            _check_text("bandwidth", value)
        for what, text in (("information", self.information), ("key", self.key)):
            if text is not None:
                _check_text(what, text)

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called `name`, or None."""
        return _find(self.attributes, name)

    def values(self, name: str) -> tuple[str, ...]:
        """The values of every value attribute called `name`, in order."""
        return tuple(a.value for a in self.attributes if a.name == name and a.value is not None)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None when the section names none."""
        return _direction(self.attributes)

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type number → codec for every format: rtpmap lines first, then the static
        table. Malformed rtpmap lines are skipped (the format is then simply unknown)."""
        mapping: dict[int, RtpMap] = {}
        for value in self.values("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            parts = encoding.strip().split("/")
            pt = payload_type(pt_text)
            if pt is None or len(parts) not in (2, 3):
                continue
            clock_rate = read_number(parts[1], 10)
            channels = read_number(parts[2], 3) if len(parts) == 3 else None
            if clock_rate is None or (len(parts) == 3 and channels is None):
                continue
            mapping.setdefault(pt, RtpMap(parts[0], clock_rate, channels))
        for value in self.formats:
            pt = payload_type(value)
            if pt in STATIC_PAYLOAD_TYPES:
                mapping.setdefault(pt, STATIC_PAYLOAD_TYPES[pt])
        return mapping

    def fmtp(self, payload_type: int) -> str | None:
        """The format parameters given for a payload type, or None."""
        prefix = f"{payload_type} "
        for value in self.values("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    def with_attributes(self, attributes: tuple[Attribute, ...]) -> MediaDescription:
        return replace(self, attributes=attributes)

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        out.extend(f"c={c}" for c in self.connections)
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        return out


@dataclass(frozen=True)
class SessionDescription:
    """A whole SDP body: the session-level lines and the media sections in order."""

    origin: Origin
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    timings: tuple[Timing, ...] = field(default_factory=lambda: (Timing(),))
    zone: str | None = None
    """The z= line, verbatim."""
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        if not self.timings:
            raise LocalProtocolError("SDP needs at least one t= line")
        _check_text("session name", self.session_name)
        if not self.session_name:
            raise LocalProtocolError("SDP session name must not be empty (use '-')")
        for what, text in (
            ("information", self.information),
            ("URI", self.uri),
            ("zone", self.zone),
            ("key", self.key),
        ):
            if text is not None:
                _check_text(what, text)
        for value in (*self.emails, *self.phones, *self.bandwidths):
            _check_text("session line", value)

    def attribute(self, name: str) -> Attribute | None:
        """The first session-level attribute called `name`, or None."""
        return _find(self.attributes, name)

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, or None."""
        return _direction(self.attributes)

    def __bytes__(self) -> bytes:
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for timing in self.timings:
            out.append(f"t={timing.start} {timing.stop}")
            out.extend(f"r={r}" for r in timing.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return ("\r\n".join(out) + "\r\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read a session description; raise `SdpParseError` saying what is wrong and where."""
        try:
            return _Reader(data).read(cls)
        except LocalProtocolError as exc:  # a value the typed fields refuse
            raise SdpParseError(str(exc)) from None


_S = TypeVar("_S", bound=SessionDescription)

MAX_SDP_BYTES = 65536
"""Larger bodies are refused before any work is done on them."""


def _int(text: str, what: str, number: int) -> int:
    value = read_number(text)
    if value is None:
        raise SdpParseError(f"SDP line {number}: {what} is not a number: {text[:30]!r}")
    return value


def _words(value: str, count: int, what: str, number: int) -> list[str]:
    words = value.split(" ")
    if len(words) != count or not all(words):
        raise SdpParseError(f"SDP line {number}: {what} needs {count} words: {value!r}")
    return words


class _Reader:
    """One pass over the lines; collects session fields, then media sections."""

    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_SDP_BYTES:
            raise SdpParseError(f"SDP body of {len(data)} bytes is over {MAX_SDP_BYTES}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"SDP is not UTF-8 at byte {exc.start}") from None
        self.lines: list[tuple[int, str, str]] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.removesuffix("\r")
            if not line.strip():
                continue
            if "\r" in line or "\0" in line:
                raise SdpParseError(f"SDP line {number}: stray CR or NUL")
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise SdpParseError(f"SDP line {number}: not of the form <letter>=<value>")
            self.lines.append((number, line[0], line[2:]))

    def read(self, cls: type[_S]) -> _S:
        if not self.lines:
            raise SdpParseError("SDP is empty")
        number, kind, value = self.lines[0]
        if kind != "v" or value != "0":
            raise SdpParseError("SDP must start with v=0")
        session: dict[str, str] = {}
        multi: dict[str, list[str]] = {"e": [], "p": [], "b": []}
        origin: Origin | None = None
        connection: Connection | None = None
        # each t= line with its r= lines in a list: a tuple grown line by line would make
        # many r= lines cost quadratic time
        timings: list[tuple[Timing, list[str]]] = []
        attributes: list[Attribute] = []
        index = 1
        while index < len(self.lines) and self.lines[index][1] != "m":
            number, kind, value = self.lines[index]
            index += 1
            if kind == "o":
                if origin is not None:
                    raise SdpParseError(f"SDP line {number}: second o= line")
                origin = self._origin(value, number)
            elif kind == "s":
                if "s" in session:
                    raise SdpParseError(f"SDP line {number}: second s= line")
                session["s"] = value
            elif kind in _SESSION_TEXT_LINES or kind == "z":
                if kind in session:
                    raise SdpParseError(f"SDP line {number}: second {kind}= line")
                session[kind] = value
            elif kind in multi:
                multi[kind].append(value)
            elif kind == "c":
                if connection is not None:
                    raise SdpParseError(f"SDP line {number}: second session-level c= line")
                connection = self._connection(value, number)
            elif kind == "t":
                start, stop = _words(value, 2, "t=", number)
                timing = Timing(_int(start, "start time", number), _int(stop, "stop time", number))
                timings.append((timing, []))
            elif kind == "r":
                if not timings:
                    raise SdpParseError(f"SDP line {number}: r= before any t=")
                timings[-1][1].append(value)
            elif kind == "a":
                attributes.append(self._attribute(value, number))
            else:
                raise SdpParseError(f"SDP line {number}: {kind}= is not a session-level line")
        if origin is None:
            raise SdpParseError("SDP has no o= line")
        if not session.get("s"):
            raise SdpParseError("SDP has no (or an empty) s= line")
        if not timings:
            raise SdpParseError("SDP has no t= line")
        media: list[MediaDescription] = []
        while index < len(self.lines):
            section, index = self._media(index)
            media.append(section)
        return cls(
            origin=origin,
            session_name=session["s"],
            information=session.get("i"),
            uri=session.get("u"),
            emails=tuple(multi["e"]),
            phones=tuple(multi["p"]),
            connection=connection,
            bandwidths=tuple(multi["b"]),
            timings=tuple(replace(t, repeats=tuple(r)) if r else t for t, r in timings),
            zone=session.get("z"),
            key=session.get("k"),
            attributes=tuple(attributes),
            media=tuple(media),
        )

    def _media(self, index: int) -> tuple[MediaDescription, int]:
        number, _, value = self.lines[index]
        words = value.split(" ")
        if len(words) < 4 or not all(words):
            raise SdpParseError(f"SDP line {number}: m= needs media, port, proto and formats")
        port_text, _, count_text = words[1].partition("/")
        port = _int(port_text, "media port", number)
        if port > 65535:
            raise SdpParseError(f"SDP line {number}: media port {port} out of range")
        port_count = _int(count_text, "port count", number) if count_text else None
        if port_count == 0:
            raise SdpParseError(f"SDP line {number}: port count 0")
        texts: dict[str, str] = {}
        connections: list[Connection] = []
        bandwidths: list[str] = []
        attributes: list[Attribute] = []
        index += 1
        while index < len(self.lines) and self.lines[index][1] != "m":
            number, kind, line_value = self.lines[index]
            index += 1
            if kind in "ik":
                if kind in texts:
                    raise SdpParseError(f"SDP line {number}: second {kind}= in a media section")
                texts[kind] = line_value
            elif kind == "c":
                connections.append(self._connection(line_value, number))
            elif kind == "b":
                bandwidths.append(line_value)
            elif kind == "a":
                attributes.append(self._attribute(line_value, number))
            else:
                raise SdpParseError(f"SDP line {number}: {kind}= is not allowed in a media section")
        return (
            MediaDescription(
                media=words[0],
                port=port,
                proto=words[2],
                formats=tuple(words[3:]),
                port_count=port_count,
                information=texts.get("i"),
                connections=tuple(connections),
                bandwidths=tuple(bandwidths),
                key=texts.get("k"),
                attributes=tuple(attributes),
            ),
            index,
        )

    @staticmethod
    def _origin(value: str, number: int) -> Origin:
        username, sid, version, nettype, addrtype, address = _words(value, 6, "o=", number)
        return Origin(
            username=username,
            session_id=_int(sid, "session id", number),
            session_version=_int(version, "session version", number),
            address=address,
            nettype=nettype,
            addrtype=addrtype,
        )

    @staticmethod
    def _connection(value: str, number: int) -> Connection:
        nettype, addrtype, address = _words(value, 3, "c=", number)
        return Connection(address=address, nettype=nettype, addrtype=addrtype)

    @staticmethod
    def _attribute(value: str, number: int) -> Attribute:
        name, colon, rest = value.partition(":")
        if not name or " " in name:
            raise SdpParseError(f"SDP line {number}: attribute without a proper name: {value!r}")
        return Attribute(name, rest if colon else None)
