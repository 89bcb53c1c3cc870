"""STUN Binding against the RFC 5769 sample messages, plus round trips and refusals."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError, ParseError
from pidphone.rtp.stun import (
    ATTR_ERROR_CODE,
    ATTR_FINGERPRINT,
    ATTR_MAPPED_ADDRESS,
    ATTR_SOFTWARE,
    ATTR_USERNAME,
    ATTR_XOR_MAPPED_ADDRESS,
    BINDING_ERROR,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    StunParseError,
    build_binding_request,
    build_binding_response,
    build_message,
    parse_binding_response,
    parse_message,
)

H = bytes.fromhex
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = H("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.1-2.3
SAMPLE_REQUEST = H(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
SAMPLE_IPV4_RESPONSE = H(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
SAMPLE_IPV6_RESPONSE = H(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)


def test_rfc5769_sample_request() -> None:
    message = parse_message(SAMPLE_REQUEST, key=PASSWORD)
    assert message.msg_type == BINDING_REQUEST
    assert message.transaction_id == TID
    assert message.attribute(ATTR_SOFTWARE) == b"STUN test client"
    assert message.attribute(ATTR_USERNAME) == b"evtj:h6vY"


def test_rfc5769_sample_ipv4_response() -> None:
    assert parse_binding_response(SAMPLE_IPV4_RESPONSE, TID, key=PASSWORD) == ("192.0.2.1", 32853)
    assert parse_message(SAMPLE_IPV4_RESPONSE).attribute(ATTR_SOFTWARE) == b"test vector"


def test_rfc5769_sample_ipv6_response() -> None:
    assert parse_binding_response(SAMPLE_IPV6_RESPONSE, TID, key=PASSWORD) == (
        "2001:db8:1234:5678:11:2233:4455:6677",
        32853,
    )


@pytest.mark.parametrize(
    ("sample", "host"),
    [
        (SAMPLE_IPV4_RESPONSE, "192.0.2.1"),
        (SAMPLE_IPV6_RESPONSE, "2001:db8:1234:5678:11:2233:4455:6677"),
    ],
)
def test_xor_mapped_address_encoding_matches_the_samples(sample: bytes, host: str) -> None:
    ours = build_binding_response(TID, host, 32853, fingerprint=False)
    xor_attr = parse_message(ours).attribute(ATTR_XOR_MAPPED_ADDRESS)
    assert xor_attr == parse_message(sample).attribute(ATTR_XOR_MAPPED_ADDRESS)


@pytest.mark.parametrize("sample", [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE])
def test_samples_with_wrong_password_or_a_flipped_bit_are_refused(sample: bytes) -> None:
    with pytest.raises(StunParseError, match="MESSAGE-INTEGRITY"):
        parse_message(sample, key=b"wrong")
    forged = bytearray(sample)
    forged[30] ^= 0x01
    with pytest.raises(StunParseError, match="FINGERPRINT"):
        parse_message(bytes(forged))


def test_binding_request_bytes() -> None:
    request = build_binding_request(TID, fingerprint=False)
    assert request == H("000100002112a442") + TID
    with_fp = build_binding_request(TID, software="pidphone")
    message = parse_message(with_fp)
    assert message.msg_type == BINDING_REQUEST
    assert message.attribute(ATTR_SOFTWARE) == b"pidphone"
    assert with_fp[-8:-4] == struct.pack("!HH", ATTR_FINGERPRINT, 4)


@pytest.mark.parametrize("host", ["203.0.113.9", "::1", "2001:db8::42"])
def test_response_round_trip_with_integrity(host: str) -> None:
    data = build_binding_response(TID, host, 4000, software="pidphone", key=b"secret")
    assert parse_binding_response(data, TID, key=b"secret") == (host, 4000)
    with pytest.raises(StunParseError, match="MESSAGE-INTEGRITY"):
        parse_binding_response(data, TID, key=b"other")


def test_mapped_address_fallback() -> None:
    value = struct.pack("!BBH", 0, 1, 5060) + bytes([198, 51, 100, 7])
    data = build_message(BINDING_SUCCESS, TID, [(ATTR_MAPPED_ADDRESS, value)])
    assert parse_binding_response(data, TID) == ("198.51.100.7", 5060)


def test_xor_mapped_address_wins_over_mapped_address() -> None:
    plain = struct.pack("!BBH", 0, 1, 1) + bytes(4)
    xored = parse_message(build_binding_response(TID, "192.0.2.5", 7078)).attribute(
        ATTR_XOR_MAPPED_ADDRESS
    )
    assert xored is not None
    data = build_message(
        BINDING_SUCCESS, TID, [(ATTR_MAPPED_ADDRESS, plain), (ATTR_XOR_MAPPED_ADDRESS, xored)]
    )
    assert parse_binding_response(data, TID) == ("192.0.2.5", 7078)


def test_refusals() -> None:
    response = build_binding_response(TID, "192.0.2.1", 1)
    with pytest.raises(StunParseError, match="another transaction"):
        parse_binding_response(response, bytes(12))
    with pytest.raises(StunParseError, match="not a Binding success"):
        parse_binding_response(build_binding_request(TID), TID)
    error = build_message(BINDING_ERROR, TID, [(ATTR_ERROR_CODE, b"\x00\x00\x04\x01Unauthorized")])
    with pytest.raises(StunParseError, match="401 Unauthorized"):
        parse_binding_response(error, TID)
    with pytest.raises(StunParseError, match="no mapped address"):
        parse_binding_response(build_message(BINDING_SUCCESS, TID, []), TID)
    with pytest.raises(StunParseError, match="magic cookie"):
        parse_message(b"\x00\x01\x00\x00" + bytes(16))
    with pytest.raises(StunParseError, match="first two bits"):
        parse_message(b"\x80" + response[1:])
    with pytest.raises(StunParseError, match="does not match the"):
        parse_message(response + b"\x00\x00\x00\x00")
    with pytest.raises(StunParseError, match="shorter than its header"):
        parse_message(response[:10])
    with pytest.raises(StunParseError, match="family"):
        bad = struct.pack("!BBH", 0, 3, 1) + bytes(4)
        parse_binding_response(
            build_message(BINDING_SUCCESS, TID, [(ATTR_MAPPED_ADDRESS, bad)]), TID
        )
    with pytest.raises(LocalProtocolError):
        build_binding_request(b"short")
    with pytest.raises(LocalProtocolError):
        build_binding_response(TID, "192.0.2.1", 70000)


def test_stun_parse_error_is_a_parse_error() -> None:
    assert issubclass(StunParseError, ParseError)


@settings(max_examples=200, deadline=None)
@given(
    tid=st.binary(min_size=12, max_size=12),
    host=st.ip_addresses().map(str),
    port=st.integers(0, 65535),
    fingerprint=st.booleans(),
)
def test_round_trip(tid: bytes, host: str, port: int, fingerprint: bool) -> None:
    data = build_binding_response(tid, host, port, fingerprint=fingerprint)
    assert parse_binding_response(data, tid) == (host, port)
