"""ZRTP packets and every message of RFC 6189 §5, as frozen dataclasses.

A packet (§5, Figure 2) is a 12-byte header (`0001` + 12 ignored bits + a 16-bit sequence
number, the magic cookie "ZRTP", the SSRC), one message, and a CRC-32C sent least-significant
byte first. A message (§5.1) is the preamble 0x505a, its length in 32-bit words, an 8-byte type
block, and the fields of §5.2-§5.16. `parse` takes the whole message (preamble included) and
`bytes(...)` gives it back; `parse_packet` checks the CRC and raises `ZrtpParseError` (and
nothing else) for anything malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Self

from pidphone.errors import ParseError
from pidphone.zrtp.algorithms import MULTISTREAM
from pidphone.zrtp.crc import crc32c
from pidphone.zrtp.kem import SCHEMES as KEM_SCHEMES
from pidphone.zrtp.kem import wire_length

PREAMBLE = 0x505A
MAGIC_COOKIE = 0x5A525450
HEADER_LEN = 12
CRC_LEN = 4
HASH_IMAGE_LEN = 32
MAC_LEN = 8
MAX_ALGORITHMS = 7
CONFIRM_PLAIN_MIN = 40
MAX_PACKET_LEN = 4096
"""Longest ZRTP datagram taken in, checked before the CRC is computed (it costs CPU per byte).
The largest message sent whole today is a post-quantum Commit (1740 bytes for X3M3); longer
ones travel in fragments of at most 1452 bytes."""


class ZrtpParseError(ParseError):
    """Bytes that are not a well-formed ZRTP packet or message."""


class ZrtpCrcError(ZrtpParseError):
    """A ZRTP packet whose CRC-32C does not match (§5: silently discarded)."""


def _need(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise ZrtpParseError(f"{what} must be {length} bytes, got {len(data)}")


def _frame(type_block: bytes, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("!HH", PREAMBLE, total // 4) + type_block + body


@dataclass(frozen=True)
class Hello:
    """§5.2: version, client id, H3, ZID, flags and the offered algorithms, MAC keyed by H2."""

    type_name: ClassVar[str] = "Hello"
    version: str
    client_id: bytes
    h3: bytes = field(repr=False)
    zid: bytes
    signature_capable: bool = False
    mitm: bool = False
    passive: bool = False
    hashes: tuple[str, ...] = ()
    ciphers: tuple[str, ...] = ()
    auth_tags: tuple[str, ...] = ()
    key_agreements: tuple[str, ...] = ()
    sas_types: tuple[str, ...] = ()
    mac: bytes = field(default=bytes(MAC_LEN), repr=False)

    def _lists(self) -> tuple[tuple[str, ...], ...]:
        return (self.hashes, self.ciphers, self.auth_tags, self.key_agreements, self.sas_types)

    def __bytes__(self) -> bytes:
        flags = (self.signature_capable << 30) | (self.mitm << 29) | (self.passive << 28)
        for shift, algorithms in zip((16, 12, 8, 4, 0), self._lists(), strict=True):
            flags |= len(algorithms) << shift
        names = b"".join(name.encode("latin-1") for group in self._lists() for name in group)
        body = (
            self.version.encode("latin-1")
            + self.client_id
            + self.h3
            + self.zid
            + struct.pack("!I", flags)
            + names
            + self.mac
        )
        return _frame(b"Hello   ", body)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"Hello   ")
        if len(body) < 76:
            raise ZrtpParseError(f"Hello too short: {len(data)} bytes")
        (flags,) = struct.unpack_from("!I", body, 64)
        counts = [(flags >> shift) & 0xF for shift in (16, 12, 8, 4, 0)]
        if any(count > MAX_ALGORITHMS for count in counts):
            raise ZrtpParseError(f"Hello algorithm count above {MAX_ALGORITHMS}: {counts}")
        _need(body, 76 + 4 * sum(counts), "Hello body with these algorithm counts")
        names = body[68:-MAC_LEN]
        groups: list[tuple[str, ...]] = []
        offset = 0
        for count in counts:
            groups.append(
                tuple(
                    names[i : i + 4].decode("latin-1") for i in range(offset, offset + 4 * count, 4)
                )
            )
            offset += 4 * count
        return cls(
            version=body[0:4].decode("latin-1"),
            client_id=body[4:20],
            h3=body[20:52],
            zid=body[52:64],
            signature_capable=bool(flags & (1 << 30)),
            mitm=bool(flags & (1 << 29)),
            passive=bool(flags & (1 << 28)),
            hashes=groups[0],
            ciphers=groups[1],
            auth_tags=groups[2],
            key_agreements=groups[3],
            sas_types=groups[4],
            mac=body[-MAC_LEN:],
        )


@dataclass(frozen=True)
class _Empty:
    """A message with no fields (HelloACK, Conf2ACK, ErrorACK, ClearACK, RelayACK)."""

    type_name: ClassVar[str] = ""
    type_block: ClassVar[bytes] = b""

    def __bytes__(self) -> bytes:
        return _frame(self.type_block, b"")

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _need(_body(data, cls.type_block), 0, f"{cls.type_name} body")
        return cls()


@dataclass(frozen=True)
class HelloAck(_Empty):
    """§5.3: acknowledges a Hello."""

    type_name: ClassVar[str] = "HelloACK"
    type_block: ClassVar[bytes] = b"HelloACK"


@dataclass(frozen=True)
class Conf2Ack(_Empty):
    """§5.8: acknowledges Confirm2; the exchange is complete."""

    type_name: ClassVar[str] = "Conf2ACK"
    type_block: ClassVar[bytes] = b"Conf2ACK"


@dataclass(frozen=True)
class ErrorAck(_Empty):
    """§5.10: acknowledges an Error."""

    type_name: ClassVar[str] = "ErrorACK"
    type_block: ClassVar[bytes] = b"ErrorACK"


@dataclass(frozen=True)
class ClearAck(_Empty):
    """§5.12: acknowledges GoClear."""

    type_name: ClassVar[str] = "ClearACK"
    type_block: ClassVar[bytes] = b"ClearACK"


@dataclass(frozen=True)
class RelayAck(_Empty):
    """§5.14: acknowledges SASrelay."""

    type_name: ClassVar[str] = "RelayACK"
    type_block: ClassVar[bytes] = b"RelayACK"


PRESHARED = "Prsh"


@dataclass(frozen=True)
class Commit:
    """§5.4: the initiator's choice of algorithms and its commitment.

    DH mode carries `hvi` (32 bytes); Multistream mode a 16-byte `nonce`; Preshared mode a
    `nonce` and an 8-byte `key_id`. The key agreement field says which. A KEM key agreement
    (bzrtp 5.5's post-quantum ones, pidphone.zrtp.kem) carries `hvi`, then the initiator's
    `public_key`, zero-padded to a multiple of 4 bytes.
    """

    type_name: ClassVar[str] = "Commit"
    h2: bytes = field(repr=False)
    zid: bytes
    hash: str
    cipher: str
    auth_tag: str
    key_agreement: str
    sas: str
    hvi: bytes = b""
    nonce: bytes = b""
    key_id: bytes = b""
    mac: bytes = field(default=bytes(MAC_LEN), repr=False)
    public_key: bytes = field(default=b"", repr=False)

    def __bytes__(self) -> bytes:
        names = (self.hash, self.cipher, self.auth_tag, self.key_agreement, self.sas)
        body = (
            self.h2
            + self.zid
            + "".join(names).encode("latin-1")
            + self.hvi
            + self.public_key
            + self.nonce
            + self.key_id
            + self.mac
        )
        return _frame(b"Commit  ", body)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"Commit  ")
        if len(body) < 64:
            raise ZrtpParseError(f"Commit too short: {len(data)} bytes")
        names = [body[i : i + 4].decode("latin-1") for i in range(44, 64, 4)]
        rest = body[64:-MAC_LEN]
        hvi = nonce = key_id = public_key = b""
        kem = KEM_SCHEMES.get(names[3])
        if names[3] == MULTISTREAM:
            _need(rest, 16, "Multistream Commit nonce")
            nonce = rest
        elif names[3] == PRESHARED:
            _need(rest, 24, "Preshared Commit nonce and key ID")
            nonce, key_id = rest[:16], rest[16:]
        elif kem is not None:
            size = HASH_IMAGE_LEN + wire_length(kem.public_key_bytes)
            _need(rest, size, f"{kem.name} Commit hvi and public key")
            hvi, public_key = rest[:HASH_IMAGE_LEN], rest[HASH_IMAGE_LEN:]
        else:
            _need(rest, HASH_IMAGE_LEN, "DH Commit hvi")
            hvi = rest
        return cls(
            h2=body[0:32],
            zid=body[32:44],
            hash=names[0],
            cipher=names[1],
            auth_tag=names[2],
            key_agreement=names[3],
            sas=names[4],
            hvi=hvi,
            nonce=nonce,
            key_id=key_id,
            mac=body[-MAC_LEN:],
            public_key=public_key,
        )


@dataclass(frozen=True)
class _DHPart:
    """§5.5/§5.6: H1, the four secret IDs, the public value, MAC keyed by H0."""

    type_name: ClassVar[str] = ""
    type_block: ClassVar[bytes] = b""
    h1: bytes = field(repr=False)
    rs1_id: bytes
    rs2_id: bytes
    auxsecret_id: bytes
    pbxsecret_id: bytes
    pv: bytes = field(repr=False)
    mac: bytes = field(default=bytes(MAC_LEN), repr=False)

    def __bytes__(self) -> bytes:
        body = (
            self.h1
            + self.rs1_id
            + self.rs2_id
            + self.auxsecret_id
            + self.pbxsecret_id
            + self.pv
            + self.mac
        )
        return _frame(self.type_block, body)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, cls.type_block)
        if len(body) < 76:
            raise ZrtpParseError(f"{cls.type_name} has no public value: {len(data)} bytes")
        return cls(
            h1=body[0:32],
            rs1_id=body[32:40],
            rs2_id=body[40:48],
            auxsecret_id=body[48:56],
            pbxsecret_id=body[56:64],
            pv=body[64:-MAC_LEN],
            mac=body[-MAC_LEN:],
        )


@dataclass(frozen=True)
class DHPart1(_DHPart):
    """§5.5: the responder's public value."""

    type_name: ClassVar[str] = "DHPart1"
    type_block: ClassVar[bytes] = b"DHPart1 "


@dataclass(frozen=True)
class DHPart2(_DHPart):
    """§5.6: the initiator's public value."""

    type_name: ClassVar[str] = "DHPart2"
    type_block: ClassVar[bytes] = b"DHPart2 "


@dataclass(frozen=True)
class _Encrypted:
    """Confirm1/Confirm2 (§5.7) and SASrelay (§5.13): a MAC, a CFB IV, an encrypted part."""

    type_name: ClassVar[str] = ""
    type_block: ClassVar[bytes] = b""
    mac: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)

    def __bytes__(self) -> bytes:
        return _frame(self.type_block, self.mac + self.iv + self.encrypted)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, cls.type_block)
        if len(body) < 24 + CONFIRM_PLAIN_MIN:
            raise ZrtpParseError(f"{cls.type_name} too short: {len(data)} bytes")
        return cls(mac=body[0:8], iv=body[8:24], encrypted=body[24:])


@dataclass(frozen=True)
class Confirm1(_Encrypted):
    """§5.7: the responder's confirmation."""

    type_name: ClassVar[str] = "Confirm1"
    type_block: ClassVar[bytes] = b"Confirm1"


@dataclass(frozen=True)
class Confirm2(_Encrypted):
    """§5.7: the initiator's confirmation."""

    type_name: ClassVar[str] = "Confirm2"
    type_block: ClassVar[bytes] = b"Confirm2"


@dataclass(frozen=True)
class SasRelay(_Encrypted):
    """§5.13: a PBX relaying a SAS; this phone refuses it (Error 0x63)."""

    type_name: ClassVar[str] = "SASrelay"
    type_block: ClassVar[bytes] = b"SASrelay"


@dataclass(frozen=True)
class ConfirmPlaintext:
    """§5.7: the encrypted part of a Confirm message once decrypted."""

    h0: bytes = field(repr=False)
    sas_verified: bool = False
    allow_clear: bool = False
    disclosure: bool = False
    pbx_enrollment: bool = False
    cache_expiry: int = 0xFFFFFFFF
    signature: bytes = field(default=b"", repr=False)

    def __bytes__(self) -> bytes:
        flags = (
            (self.pbx_enrollment << 3)
            | (self.sas_verified << 2)
            | (self.allow_clear << 1)
            | self.disclosure
        )
        word = ((len(self.signature) // 4) << 8) | flags
        return self.h0 + struct.pack("!II", word, self.cache_expiry) + self.signature

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < CONFIRM_PLAIN_MIN or len(data) % 4:
            raise ZrtpParseError(f"Confirm plaintext of {len(data)} bytes")
        word, expiry = struct.unpack_from("!II", data, 32)
        signature = data[40:]
        if ((word >> 8) & 0x1FF) * 4 != len(signature):
            raise ZrtpParseError("Confirm signature length does not match its field")
        return cls(
            h0=data[:32],
            pbx_enrollment=bool(word & 8),
            sas_verified=bool(word & 4),
            allow_clear=bool(word & 2),
            disclosure=bool(word & 1),
            cache_expiry=expiry,
            signature=signature,
        )


@dataclass(frozen=True)
class Error:
    """§5.9: the exchange failed; `code` is one of Table 6."""

    type_name: ClassVar[str] = "Error"
    code: int

    def __bytes__(self) -> bytes:
        return _frame(b"Error   ", struct.pack("!I", self.code))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"Error   ")
        _need(body, 4, "Error body")
        return cls(code=struct.unpack("!I", body)[0])


@dataclass(frozen=True)
class GoClear:
    """§5.11: a request to stop SRTP; this phone refuses it (Error 0x100)."""

    type_name: ClassVar[str] = "GoClear"
    clear_mac: bytes

    def __bytes__(self) -> bytes:
        return _frame(b"GoClear ", self.clear_mac)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"GoClear ")
        _need(body, 8, "GoClear body")
        return cls(clear_mac=body)


@dataclass(frozen=True)
class Ping:
    """§5.15: a liveness probe from a ZRTP-aware middlebox."""

    type_name: ClassVar[str] = "Ping"
    version: str
    endpoint_hash: bytes

    def __bytes__(self) -> bytes:
        return _frame(b"Ping    ", self.version.encode("latin-1") + self.endpoint_hash)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"Ping    ")
        _need(body, 12, "Ping body")
        return cls(version=body[:4].decode("latin-1"), endpoint_hash=body[4:])


@dataclass(frozen=True)
class PingAck:
    """§5.16: the answer to Ping."""

    type_name: ClassVar[str] = "PingACK"
    version: str
    sender_endpoint_hash: bytes
    received_endpoint_hash: bytes
    ssrc: int

    def __bytes__(self) -> bytes:
        body = (
            self.version.encode("latin-1")
            + self.sender_endpoint_hash
            + self.received_endpoint_hash
            + struct.pack("!I", self.ssrc)
        )
        return _frame(b"PingACK ", body)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        body = _body(data, b"PingACK ")
        _need(body, 24, "PingACK body")
        return cls(
            version=body[:4].decode("latin-1"),
            sender_endpoint_hash=body[4:12],
            received_endpoint_hash=body[12:20],
            ssrc=struct.unpack_from("!I", body, 20)[0],
        )


Message = (
    Hello
    | HelloAck
    | Commit
    | DHPart1
    | DHPart2
    | Confirm1
    | Confirm2
    | Conf2Ack
    | Error
    | ErrorAck
    | GoClear
    | ClearAck
    | SasRelay
    | RelayAck
    | Ping
    | PingAck
)

_PARSERS: dict[bytes, type[Message]] = {
    b"Hello   ": Hello,
    b"HelloACK": HelloAck,
    b"Commit  ": Commit,
    b"DHPart1 ": DHPart1,
    b"DHPart2 ": DHPart2,
    b"Confirm1": Confirm1,
    b"Confirm2": Confirm2,
    b"Conf2ACK": Conf2Ack,
    b"Error   ": Error,
    b"ErrorACK": ErrorAck,
    b"GoClear ": GoClear,
    b"ClearACK": ClearAck,
    b"SASrelay": SasRelay,
    b"RelayACK": RelayAck,
    b"Ping    ": Ping,
    b"PingACK ": PingAck,
}


def _body(data: bytes, type_block: bytes) -> bytes:
    """Check preamble, length and type; return the fields after the type block."""
    if len(data) < 12:
        raise ZrtpParseError(f"ZRTP message too short: {len(data)} bytes")
    preamble, words = struct.unpack_from("!HH", data)
    if preamble != PREAMBLE:
        raise ZrtpParseError(f"bad ZRTP message preamble 0x{preamble:04x}")
    if words * 4 != len(data):
        raise ZrtpParseError(f"ZRTP message length field says {words} words, got {len(data)} bytes")
    if data[4:12] != type_block:
        raise ZrtpParseError(f"expected a {type_block!r} message, got {data[4:12]!r}")
    return data[12:]


def parse_message(data: bytes) -> Message:
    """Parse one ZRTP message (preamble to MAC, without packet header and CRC)."""
    if len(data) < 12:
        raise ZrtpParseError(f"ZRTP message too short: {len(data)} bytes")
    parser = _PARSERS.get(bytes(data[4:12]))
    if parser is None:
        raise ZrtpParseError(f"unknown ZRTP message type {bytes(data[4:12])!r}")
    return parser.parse(data)


@dataclass(frozen=True)
class ZrtpPacket:
    """§5, Figure 2: header, one message, CRC."""

    sequence: int
    ssrc: int
    message: Message

    def __bytes__(self) -> bytes:
        return encode_packet(self.sequence, self.ssrc, bytes(self.message))


def encode_packet(sequence: int, ssrc: int, message: bytes) -> bytes:
    """Frame already-serialized message bytes into a packet with its CRC."""
    data = struct.pack("!HHII", 0x1000, sequence & 0xFFFF, MAGIC_COOKIE, ssrc) + message
    return data + struct.pack("<I", crc32c(data))


def split_packet(data: bytes) -> tuple[int, int, bytes]:
    """Check length, header and CRC (in that order); return (sequence, ssrc, message bytes)."""
    if len(data) < HEADER_LEN + 12 + CRC_LEN or len(data) > MAX_PACKET_LEN or len(data) % 4:
        raise ZrtpParseError(f"ZRTP packet of {len(data)} bytes")
    if data[0] >> 4 != 1:
        raise ZrtpParseError(f"not a ZRTP packet: first byte 0x{data[0]:02x}")
    _, sequence, cookie, ssrc = struct.unpack_from("!HHII", data)
    if cookie != MAGIC_COOKIE:
        raise ZrtpParseError(f"bad ZRTP magic cookie 0x{cookie:08x}")
    (crc,) = struct.unpack_from("<I", data, len(data) - CRC_LEN)
    if crc != crc32c(data[:-CRC_LEN]):
        raise ZrtpCrcError("ZRTP packet CRC-32C mismatch")
    return sequence, ssrc, bytes(data[HEADER_LEN:-CRC_LEN])


def parse_packet(data: bytes) -> ZrtpPacket:
    """Parse a whole ZRTP packet (UDP payload); raises `ZrtpParseError` on anything wrong."""
    sequence, ssrc, message = split_packet(data)
    return ZrtpPacket(sequence=sequence, ssrc=ssrc, message=parse_message(message))
