"""STUN Binding (RFC 8489): learn our public address on the media socket, answer a peer's check.

Only what a phone needs: Binding requests and success responses with XOR-MAPPED-ADDRESS
(MAPPED-ADDRESS read as a fallback for RFC 3489 servers), FINGERPRINT (§14.7, recommended when
STUN shares a port with RTP and ZRTP) and short-term MESSAGE-INTEGRITY (§14.5), checked when a
key is given. Pure: the caller sends the bytes and supplies the random transaction id.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass

from pidphone.errors import LocalProtocolError, ParseError

MAGIC_COOKIE = 0x2112A442
HEADER_LEN = 20
TRANSACTION_ID_LEN = 12

BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02
FINGERPRINT_XOR = 0x5354554E
_HMAC_LEN = 20
_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")


class StunParseError(ParseError):
    """Bytes that are not the STUN message we expected."""


@dataclass(frozen=True)
class StunMessage:
    """A decoded STUN message: type, transaction id and attributes in wire order."""

    msg_type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...]

    def attribute(self, attr_type: int) -> bytes | None:
        """The value of the first attribute of this type, or None."""
        for t, value in self.attributes:
            if t == attr_type:
                return value
        return None


def _padded(value: bytes) -> bytes:
    return value + bytes(-len(value) % 4)


def _fingerprint(data: bytes) -> int:
    return binascii.crc32(data) ^ FINGERPRINT_XOR


def _integrity(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def _check_transaction_id(transaction_id: bytes) -> None:
    if len(transaction_id) != TRANSACTION_ID_LEN:
        raise LocalProtocolError(f"a STUN transaction id is {TRANSACTION_ID_LEN} bytes")


def build_message(
    msg_type: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]],
    *,
    key: bytes | None = None,
    fingerprint: bool = True,
) -> bytes:
    """Encode a message; MESSAGE-INTEGRITY (with `key`) then FINGERPRINT go last (§14.5, §14.7)."""
    _check_transaction_id(transaction_id)
    body = b"".join(_ATTR.pack(t, len(v)) + _padded(v) for t, v in attributes)

    def header(length: int) -> bytes:
        return _HEADER.pack(msg_type, length, MAGIC_COOKIE, transaction_id)

    if key is not None:
        mac = _integrity(key, header(len(body) + 4 + _HMAC_LEN) + body)
        body += _ATTR.pack(ATTR_MESSAGE_INTEGRITY, _HMAC_LEN) + mac
    if fingerprint:
        crc = _fingerprint(header(len(body) + 8) + body)
        body += _ATTR.pack(ATTR_FINGERPRINT, 4) + crc.to_bytes(4, "big")
    return header(len(body)) + body


def parse_message(data: bytes, *, key: bytes | None = None) -> StunMessage:
    """Decode and check one STUN message (header, attribute framing, FINGERPRINT).

    With `key`, MESSAGE-INTEGRITY must be present and correct. Attributes after
    MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as §14.5 requires.
    """
    if len(data) < HEADER_LEN:
        raise StunParseError(f"STUN message of {len(data)} bytes is shorter than its header")
    msg_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunParseError("not STUN: the first two bits are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunParseError("not STUN: wrong magic cookie")
    if length % 4 or HEADER_LEN + length != len(data):
        raise StunParseError(
            f"STUN length {length} does not match the {len(data) - HEADER_LEN} bytes that follow"
        )
    attributes: list[tuple[int, bytes]] = []
    integrity_at: int | None = None
    pos = HEADER_LEN
    while pos < len(data):
        if pos + 4 > len(data):
            raise StunParseError("STUN attribute header runs past the message")
        attr_type, attr_len = _ATTR.unpack_from(data, pos)
        value_end = pos + 4 + attr_len
        if value_end > len(data):
            raise StunParseError(f"STUN attribute 0x{attr_type:04x} runs past the message")
        value = data[pos + 4 : value_end]
        if attr_type == ATTR_FINGERPRINT:
            if attr_len != 4 or value_end != len(data):
                raise StunParseError("FINGERPRINT must be the last attribute, 4 bytes long")
            expected = _fingerprint(data[:pos])
            if int.from_bytes(value, "big") != expected:
                raise StunParseError("STUN FINGERPRINT does not match")
        elif integrity_at is None:
            if attr_type == ATTR_MESSAGE_INTEGRITY:
                if attr_len != _HMAC_LEN:
                    raise StunParseError("MESSAGE-INTEGRITY must be 20 bytes long")
                integrity_at = pos
            attributes.append((attr_type, value))
        pos = value_end + (-attr_len % 4)
    if key is not None:
        if integrity_at is None:
            raise StunParseError("STUN message lacks MESSAGE-INTEGRITY")
        end = integrity_at + 4 + _HMAC_LEN
        signed = data[:2] + (end - HEADER_LEN).to_bytes(2, "big") + data[4:integrity_at]
        mac = data[integrity_at + 4 : end]
        if not hmac.compare_digest(_integrity(key, signed), mac):
            raise StunParseError("STUN MESSAGE-INTEGRITY does not match")
    return StunMessage(msg_type, transaction_id, tuple(attributes))


def _xor_mask(transaction_id: bytes) -> int:
    return int.from_bytes(MAGIC_COOKIE.to_bytes(4, "big") + transaction_id, "big")


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    """The value of an XOR-MAPPED-ADDRESS attribute (§14.2)."""
    address = ipaddress.ip_address(host)
    if not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port {port} out of range")
    x_port = port ^ (MAGIC_COOKIE >> 16)
    if address.version == 4:
        x_addr = (int(address) ^ MAGIC_COOKIE).to_bytes(4, "big")
        return struct.pack("!BBH", 0, FAMILY_IPV4, x_port) + x_addr
    x_addr = (int(address) ^ _xor_mask(transaction_id)).to_bytes(16, "big")
    return struct.pack("!BBH", 0, FAMILY_IPV6, x_port) + x_addr


def _decode_address(value: bytes, mask: tuple[int, int, int] | None) -> tuple[str, int]:
    """MAPPED-ADDRESS (mask None) or XOR-MAPPED-ADDRESS (mask = port, IPv4, IPv6 masks)."""
    if len(value) < 4:
        raise StunParseError("STUN address attribute is too short")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:]
    port_mask, v4_mask, v6_mask = mask or (0, 0, 0)
    if family == FAMILY_IPV4 and len(raw) == 4:
        host = str(ipaddress.IPv4Address(int.from_bytes(raw, "big") ^ v4_mask))
    elif family == FAMILY_IPV6 and len(raw) == 16:
        host = str(ipaddress.IPv6Address(int.from_bytes(raw, "big") ^ v6_mask))
    else:
        raise StunParseError(f"STUN address family {family} with {len(raw)} address bytes")
    return host, port ^ port_mask


def build_binding_request(
    transaction_id: bytes, *, software: str | None = None, fingerprint: bool = True
) -> bytes:
    """A Binding request (§3). FINGERPRINT is on by default: our media port is shared."""
    attributes = [] if software is None else [(ATTR_SOFTWARE, software.encode())]
    return build_message(BINDING_REQUEST, transaction_id, attributes, fingerprint=fingerprint)


def build_binding_response(
    transaction_id: bytes,
    host: str,
    port: int,
    *,
    software: str | None = None,
    key: bytes | None = None,
    fingerprint: bool = True,
) -> bytes:
    """A Binding success response telling the requester it was seen at (host, port)."""
    attributes = [] if software is None else [(ATTR_SOFTWARE, software.encode())]
    attributes.append((ATTR_XOR_MAPPED_ADDRESS, encode_xor_address(host, port, transaction_id)))
    return build_message(
        BINDING_SUCCESS, transaction_id, attributes, key=key, fingerprint=fingerprint
    )


def parse_binding_response(
    data: bytes, transaction_id: bytes, *, key: bytes | None = None
) -> tuple[str, int]:
    """The (host, port) a Binding success response reports for our request.

    Refuses another transaction's response, an error response (naming its code) and a
    response without an address.
    """
    _check_transaction_id(transaction_id)
    message = parse_message(data, key=key)
    if message.transaction_id != transaction_id:
        raise StunParseError("STUN response for another transaction")
    if message.msg_type == BINDING_ERROR:
        code = message.attribute(ATTR_ERROR_CODE)
        detail = ""
        if code is not None and len(code) >= 4:
            reason = code[4:].decode("utf-8", "replace")
            detail = f" {(code[2] & 0x07) * 100 + code[3]} {reason}"
        raise StunParseError(f"STUN Binding error response{detail}")
    if message.msg_type != BINDING_SUCCESS:
        raise StunParseError(f"not a Binding success response: type 0x{message.msg_type:04x}")
    xor_value = message.attribute(ATTR_XOR_MAPPED_ADDRESS)
    if xor_value is not None:
        mask = (MAGIC_COOKIE >> 16, MAGIC_COOKIE, _xor_mask(transaction_id))
        return _decode_address(xor_value, mask)
    plain = message.attribute(ATTR_MAPPED_ADDRESS)
    if plain is not None:
        return _decode_address(plain, None)
    raise StunParseError("STUN Binding response carries no mapped address")
