"""ZRTP packet and message parsing (RFC 6189 §5) against packets captured from linphonec."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.zrtp import (
    ClearAck,
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    ZrtpPacket,
    ZrtpParseError,
    crc32c,
    parse_message,
    parse_packet,
)
from pidphone.zrtp.crc import IMPLEMENTATION, crc32c_table
from pidphone.zrtp.kdf import implicit_mac

DATA = Path(__file__).parent / "data" / "zrtp"


def captured_exchange(name: str) -> list[tuple[str, bytes]]:
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, _, kind, payload = line.split("\t")
        rows.append((kind.strip(), bytes.fromhex(payload)))
    return rows


EXCHANGES = ["linphone-zrtp-exchange-dh3k.tsv", "linphone-zrtp-exchange-x255-b256.tsv"]
CAPTURED = [row for name in EXCHANGES for row in captured_exchange(name)]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == crc32c_table(b"123456789") == 0xE3069283


def test_crc32c_is_the_c_implementation() -> None:
    """pyproject.toml brings google-crc32c, whose wheels carry the C extension (x86_64 and
    aarch64): the table in Python is only the fallback where it cannot load."""
    assert IMPLEMENTATION == "c"


@settings(max_examples=300)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3000))
def test_crc32c_c_and_table_agree(seed: int, size: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert crc32c(data) == crc32c_table(data)


@pytest.mark.parametrize(
    ("kind", "data"), CAPTURED, ids=[f"{i}-{k}" for i, (k, _) in enumerate(CAPTURED)]
)
def test_captured_packets_round_trip(kind: str, data: bytes) -> None:
    packet = parse_packet(data)
    assert packet.message.type_name == kind
    assert bytes(packet) == data
    # the CRC is the standard CRC-32C, least significant byte first
    assert data[-4:] == struct.pack("<I", crc32c(data[:-4]))


def test_every_captured_message_type_is_covered() -> None:
    kinds = {kind for kind, _ in CAPTURED}
    assert kinds == {
        "Hello",
        "HelloACK",
        "Commit",
        "DHPart1",
        "DHPart2",
        "Confirm1",
        "Confirm2",
        "Conf2ACK",
    }


def test_captured_hello_fields() -> None:
    data = bytes.fromhex((DATA / "linphone-bzrtp-hello-allsuites.hex").read_text().strip())
    packet = parse_packet(data)
    hello = packet.message
    assert isinstance(hello, Hello)
    assert packet.ssrc == struct.unpack("!I", data[8:12])[0]
    assert hello.version == "1.10"
    assert hello.client_id.rstrip(b"\x00") == b"BZRTPv1.1"
    assert hello.hashes == ("S384", "S256")
    assert hello.ciphers == ("AES3", "AES1")
    assert hello.auth_tags == ("HS32", "HS80")
    assert hello.key_agreements == ("X255", "X448", "DH3k", "DH2k", "Mult")
    assert hello.sas_types == ("B256", "B32 ")
    assert bytes(packet) == data


def test_captured_x255_dhpart_has_32_byte_public_value() -> None:
    rows = dict(captured_exchange("linphone-zrtp-exchange-x255-b256.tsv"))
    dhpart = parse_packet(rows["DHPart1"]).message
    assert isinstance(dhpart, DHPart1)
    assert len(dhpart.pv) == 32
    commit = parse_packet(rows["Commit"]).message
    assert isinstance(commit, Commit)
    assert (commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas) == (
        "S384",
        "AES3",
        "HS32",
        "X255",
        "B256",
    )


def test_captured_dh3k_dhpart_has_384_byte_public_value() -> None:
    rows = dict(captured_exchange("linphone-zrtp-exchange-dh3k.tsv"))
    dhpart = parse_packet(rows["DHPart2"]).message
    assert isinstance(dhpart, DHPart2)
    assert len(dhpart.pv) == 384


# bzrtp test/bzrtpCryptoTest.c: CRC vectors generated with GNU ZRTP C++. bzrtp returns the CRC
# byte-swapped; these are the values as bzrtp prints them.
BZRTP_HELLO = bytes.fromhex(
    "100018ca5a525450"
    "63674bfb505a001d"
    "48656c6c6f202020"
    "312e31304c494e50"
    "484f4e452d5a5254"
    "504350505d9c1a31"
    "fa1de7fd0a903392"
    "3a7be5fbf9a3d323"
    "286efc7249eb7b71"
    "3e067cc994a90690"
    "cf9ced13998c5134"
    "0001122153323536"
    "4145533148533332"
    "48533830"
    "4448336b"
    "4d756c74"
    "42333220"
    "80473713dcd6ef54"
)
BZRTP_HELLOACK = bytes.fromhex("100018cd5a52545063674bfb505a000348656c6c6f41434b")


def bzrtp_crc(data: bytes) -> int:
    return int.from_bytes(crc32c(data).to_bytes(4, "little"), "big")


def test_bzrtp_crc_vectors() -> None:
    assert len(BZRTP_HELLO) == 128
    assert bzrtp_crc(BZRTP_HELLO) == 0x5065AB04
    assert bzrtp_crc(BZRTP_HELLOACK) == 0x9C9EDCCD
    for vector in (BZRTP_HELLO, BZRTP_HELLOACK):
        assert crc32c_table(vector) == crc32c(vector)


def test_bzrtp_hello_vector_parses() -> None:
    data = BZRTP_HELLO + struct.pack("<I", crc32c(BZRTP_HELLO))
    hello = parse_packet(data).message
    assert isinstance(hello, Hello)
    assert hello.client_id == b"LINPHONE-ZRTPCPP"
    assert hello.key_agreements == ("DH3k", "Mult")


# ---- hypothesis round trips -------------------------------------------------------------


def fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", min_size=4, max_size=4)
name_lists = st.lists(names, max_size=7).map(tuple)
words = st.integers(min_value=0, max_value=40).map(lambda n: n * 4)

hellos = st.builds(
    Hello,
    version=names,
    client_id=fixed(16),
    h3=fixed(32),
    zid=fixed(12),
    signature_capable=st.booleans(),
    mitm=st.booleans(),
    passive=st.booleans(),
    hashes=name_lists,
    ciphers=name_lists,
    auth_tags=name_lists,
    key_agreements=name_lists,
    sas_types=name_lists,
    mac=fixed(8),
)


def commits(
    key_agreement: st.SearchStrategy[str], **mode: st.SearchStrategy[bytes]
) -> st.SearchStrategy[Commit]:
    """Commits of one mode (§5.4): `mode` draws its fields (hvi; nonce; nonce and key_id)."""
    return st.builds(
        Commit,
        h2=fixed(32),
        zid=fixed(12),
        hash=names,
        cipher=names,
        auth_tag=names,
        key_agreement=key_agreement,
        sas=names,
        mac=fixed(8),
        **mode,
    )


dh_commits = commits(
    st.sampled_from(["DH3k", "DH2k", "EC25", "EC38", "X255", "X448"]), hvi=fixed(32)
)
mult_commits = commits(st.just("Mult"), nonce=fixed(16))
prsh_commits = commits(st.just("Prsh"), nonce=fixed(16), key_id=fixed(8))


def dhparts(cls: type[DHPart1] | type[DHPart2]) -> st.SearchStrategy[Message]:
    return st.builds(
        cls,
        h1=fixed(32),
        rs1_id=fixed(8),
        rs2_id=fixed(8),
        auxsecret_id=fixed(8),
        pbxsecret_id=fixed(8),
        pv=st.integers(min_value=1, max_value=100).flatmap(lambda n: fixed(4 * n)),
        mac=fixed(8),
    )


def encrypted(cls: type[Confirm1] | type[Confirm2] | type[SasRelay]) -> st.SearchStrategy[Message]:
    return st.builds(
        cls,
        mac=fixed(8),
        iv=fixed(16),
        encrypted=st.integers(min_value=10, max_value=30).flatmap(lambda n: fixed(4 * n)),
    )


messages: st.SearchStrategy[Message] = st.one_of(
    hellos,
    st.just(HelloAck()),
    dh_commits,
    mult_commits,
    prsh_commits,
    dhparts(DHPart1),
    dhparts(DHPart2),
    encrypted(Confirm1),
    encrypted(Confirm2),
    encrypted(SasRelay),
    st.just(Conf2Ack()),
    st.builds(Error, code=st.integers(min_value=0, max_value=2**32 - 1)),
    st.just(ErrorAck()),
    st.builds(GoClear, clear_mac=fixed(8)),
    st.just(ClearAck()),
    st.just(RelayAck()),
    st.builds(Ping, version=names, endpoint_hash=fixed(8)),
    st.builds(
        PingAck,
        version=names,
        sender_endpoint_hash=fixed(8),
        received_endpoint_hash=fixed(8),
        ssrc=st.integers(min_value=0, max_value=2**32 - 1),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    message=messages,
    sequence=st.integers(min_value=0, max_value=0xFFFF),
    ssrc=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_message_round_trips(message: Message, sequence: int, ssrc: int) -> None:
    assert parse_message(bytes(message)) == message
    packet = ZrtpPacket(sequence=sequence, ssrc=ssrc, message=message)
    assert parse_packet(bytes(packet)) == packet


@settings(max_examples=200, deadline=None)
@given(
    h0=fixed(32),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    expiry=st.integers(min_value=0, max_value=2**32 - 1),
    signature=st.integers(min_value=0, max_value=20).flatmap(lambda n: fixed(4 * n)),
)
def test_confirm_plaintext_round_trips(
    h0: bytes, flags: tuple[bool, bool, bool, bool], expiry: int, signature: bytes
) -> None:
    plain = ConfirmPlaintext(h0, *flags, cache_expiry=expiry, signature=signature)
    assert ConfirmPlaintext.parse(bytes(plain)) == plain


def test_bad_crc_is_rejected() -> None:
    data = bytearray(CAPTURED[0][1])
    data[-1] ^= 1
    with pytest.raises(ZrtpParseError, match="CRC"):
        parse_packet(bytes(data))


def test_bad_magic_cookie_is_rejected() -> None:
    data = bytearray(CAPTURED[0][1][:-4])
    data[4] = 0
    with pytest.raises(ZrtpParseError, match="magic cookie"):
        parse_packet(bytes(data) + struct.pack("<I", crc32c(bytes(data))))


def test_length_field_must_match() -> None:
    message = bytearray(bytes(HelloAck()))
    message[3] = 4
    with pytest.raises(ZrtpParseError, match="length field"):
        parse_message(bytes(message))


# ---- the captured exchanges check out against our reading of §4.2, §4.4.1 and §9 ---------


def exchange_by_sender(name: str) -> dict[tuple[str, str], bytes]:
    """(sending port, message type) -> the first such message (without header and CRC)."""
    found: dict[tuple[str, str], bytes] = {}
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("#"):
            continue
        _, ports, kind, payload = line.split("\t")
        found.setdefault((ports.split("->")[0], kind.strip()), bytes.fromhex(payload)[12:-4])
    return found


@pytest.mark.parametrize("name", EXCHANGES)
def test_captured_exchange_hash_chain_macs_and_hvi(name: str) -> None:
    sent = exchange_by_sender(name)
    ports = {port for port, _ in sent}
    (initiator,) = [port for port in ports if (port, "DHPart2") in sent]
    (responder,) = ports - {initiator}
    hello_i, hello_r = (Hello.parse(sent[p, "Hello"]) for p in (initiator, responder))
    commit_raw = sent[initiator, "Commit"]
    commit = Commit.parse(commit_raw)
    part1 = DHPart1.parse(sent[responder, "DHPart1"])
    part2_raw = sent[initiator, "DHPart2"]
    part2 = DHPart2.parse(part2_raw)
    sha256 = hashlib.sha256
    # Commit reveals the initiator's H2: it hashes to H3 and keys the Hello MAC
    assert sha256(commit.h2).digest() == hello_i.h3
    assert implicit_mac(commit.h2, sent[initiator, "Hello"][:-8]) == hello_i.mac
    # DHPart1 reveals the responder's H1
    h2_r = sha256(part1.h1).digest()
    assert sha256(h2_r).digest() == hello_r.h3
    assert implicit_mac(h2_r, sent[responder, "Hello"][:-8]) == hello_r.mac
    # DHPart2 reveals the initiator's H1, which keys the Commit MAC
    assert sha256(part2.h1).digest() == commit.h2
    assert implicit_mac(part2.h1, commit_raw[:-8]) == commit.mac
    # hvi = hash(DHPart2 || responder's Hello), truncated to 256 bits, in the negotiated hash
    algorithm = {"S256": "sha256", "S384": "sha384"}[commit.hash]
    hvi = hashlib.new(algorithm, part2_raw + sent[responder, "Hello"]).digest()[:32]
    assert hvi == commit.hvi
    # contention (§4.2): the losing Commit has the lower hvi
    losing = Commit.parse(sent[responder, "Commit"])
    assert int.from_bytes(losing.hvi, "big") < int.from_bytes(commit.hvi, "big")
