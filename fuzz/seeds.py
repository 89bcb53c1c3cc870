"""Seed inputs for the fuzz targets: real captures from tests/data, and whole exchanges run
between our own objects (so that every message type a call carries is there to mutate).

Every function is deterministic: the same seeds on every run, so that a finding reproduces.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import struct
from collections.abc import Callable
from pathlib import Path

from pidphone.rtp import rtcp, stun
from pidphone.rtp.packet import build_rtp
from pidphone.rtp.telephone_event import TelephoneEvent
from pidphone.sdp.offer_answer import build_answer, build_offer
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.srtp.context import SrtpContext
from pidphone.srtp.gcm import GCM_KEY_LENGTHS, SrtpGcmContext
from pidphone.srtp.profiles import PROFILES
from pidphone.zrtp import (
    ClearAck,
    Conf2Ack,
    Error,
    ErrorAck,
    GoClear,
    HelloAck,
    MemoryZidCache,
    Ping,
    RelayAck,
    ZrtpConfig,
    ZrtpSession,
)
from pidphone.zrtp.fragment import FRAGMENT_FIRST_BYTE, Fragment, encode_fragment
from pidphone.zrtp.messages import encode_packet

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
"""The captures of real peers that the tests use too."""

Address = tuple[str, int]


def seeded(seed: int) -> Callable[[int], bytes]:
    """A deterministic stand-in for secrets.token_bytes."""
    return random.Random(seed).randbytes


# ---- ZRTP -----------------------------------------------------------------------------


def captured_zrtp() -> list[bytes]:
    """Every ZRTP datagram captured from linphonec (bzrtp): two whole exchanges and Hellos."""
    packets: list[bytes] = []
    for path in sorted((DATA / "zrtp").glob("*.tsv")):
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                packets.append(bytes.fromhex(line.split("\t")[-1]))
    for path in sorted((DATA / "zrtp").glob("*.hex")):
        packets.append(bytes.fromhex(path.read_text().strip()))
    return packets


ZRTP_FAST = ZrtpConfig(key_agreements=("X255",), hashes=("S256",))
"""The cheapest suite, for exchanges run once per fuzz input."""
ZRTP_PQ = ZrtpConfig(key_agreements=("X3M3",), auth_tags=("GCM",))
"""A post-quantum exchange: its Commit and DHPart1 go in fragments."""


@functools.cache
def zrtp_exchange(config: ZrtpConfig = ZRTP_FAST) -> tuple[bytes, ...]:
    """Every packet of a clean exchange between two of our sessions, in the order sent."""
    sent: list[bytes] = []
    a, b = (
        ZrtpSession(cache=MemoryZidCache(bytes(12)), ssrc=1, config=config, random_bytes=seeded(1)),
        ZrtpSession(
            cache=MemoryZidCache(bytes([1] * 12)), ssrc=2, config=config, random_bytes=seeded(2)
        ),
    )
    a.start(0.0)
    b.start(0.0)
    for _ in range(40):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for packet in src.datagrams_to_send():
                sent.append(packet)
                dst.receive_datagram(packet, 0.0)
                moved = True
        if not moved:
            break
    return tuple(sent)


def zrtp() -> list[bytes]:
    return captured_zrtp() + list(zrtp_exchange()) + list(zrtp_exchange(ZrtpConfig()))


def zrtp_session() -> list[bytes]:
    """For fuzz.targets.zrtp_session: each packet of the exchange replayed (CRC fixed) where
    it belongs and one step late, and each captured packet once both ends are secure."""
    exchange = zrtp_exchange()
    out: list[bytes] = []
    for index, packet in enumerate(exchange):
        out += [bytes([index, 1]) + packet, bytes([index + 1, 0b1111]) + packet]
    out += [bytes([255, 1]) + packet for packet in captured_zrtp()]
    for message in forged_zrtp_messages():
        for ssrc, flags in ((1, 1), (2, 3), (7, 9)):  # as the caller, the callee, a stranger
            packet = encode_packet(0x7000, ssrc, message)
            out += [bytes([point, flags]) + packet for point in (2, 6, 255)]
    return out


def zrtp_pq_session() -> list[bytes]:
    """For fuzz.targets.zrtp_pq_session: each packet of a post-quantum exchange replayed (CRC
    fixed) where it belongs and one step late, and forged fragments of its messages: one that
    says the message is longer (what overflowed bzrtp 5.5.15's reassembly), id 0, words past
    the end, another SSRC."""
    exchange = zrtp_exchange(ZRTP_PQ)
    out: list[bytes] = []
    for index, packet in enumerate(exchange):
        out += [bytes([index, 1]) + packet, bytes([index + 1, 0b1111]) + packet]
    for index, packet in enumerate(exchange):
        if packet[0] != FRAGMENT_FIRST_BYTE:
            continue
        real = Fragment.parse(packet)
        for fake in (
            dataclasses.replace(real, total_words=real.total_words + 900),
            dataclasses.replace(real, message_id=0),
            dataclasses.replace(real, offset_words=real.total_words - 1),
            dataclasses.replace(real, ssrc=7),
            dataclasses.replace(real, payload=bytes(len(real.payload))),
        ):
            forged = encode_fragment(
                sequence=fake.sequence,
                ssrc=fake.ssrc,
                message_id=fake.message_id,
                total_words=fake.total_words,
                offset_words=fake.offset_words,
                payload=fake.payload,
            )
            out += [bytes([index, 0]) + forged, bytes([index + 1, 0b110]) + forged]
    return out


def forged_zrtp_messages() -> list[bytes]:
    """What anyone can send without a key: the messages with no MAC or a made-up one."""
    return [
        bytes(Error(0x10)),
        bytes(Error(0x61)),
        bytes(ErrorAck()),
        bytes(GoClear(bytes(8))),
        bytes(ClearAck()),
        bytes(HelloAck()),
        bytes(Conf2Ack()),
        bytes(RelayAck()),
        bytes(Ping("1.10", bytes(8))),
    ]


# ---- dictionaries: tokens the fuzzer inserts whole ------------------------------------

TOKENS = (
    b"\x00",
    b"\xff",
    b"\r\n",
    b"\r\n\r\n",
    b" " * 64,
    b"\t",
    b":",
    b";",
    b",",
    b"=",
    b'"',
    b"<",
    b">",
    b"\\",
    b"%",
    b"[",
    b"]",
    b"0",
    b"9" * 12,
    b"-1",
    b"\xc2\xb2",  # superscript two: isdigit() but not int()
    b"\xd9\xa1",  # Arabic-Indic one: isdigit(), and int() reads it
    b"\xef\xbc\x91",  # fullwidth one
    b"\xed\xa0\x80",  # a UTF-8 encoded surrogate
    b"\x00\x00\xff\xff",
    b"\xff\xff\xff\xff",
)
"""Byte strings that have broken parsers before: delimiters, digits that are not ASCII,
lengths, NULs. Every target's dictionary starts with them."""

SIP_TOKENS = (
    b"Via: SIP/2.0/TLS ",
    b";branch=z9hG4bK",
    b";received=",
    b";rport=",
    b"CSeq: ",
    b"Max-Forwards: ",
    b"Expires: ",
    b"Content-Length: ",
    b"Call-ID: ",
    b"From: ",
    b"To: ",
    b";tag=",
    b"Contact: ",
    b"Record-Route: ",
    b"WWW-Authenticate: Digest ",
    b"Proxy-Authenticate: Digest ",
    b'realm="',
    b'nonce="',
    b"algorithm=MD5",
    b"algorithm=SHA-256",
    b'qop="auth"',
    b"sips:",
    b"SIP/2.0 ",
    b"INVITE ",
    b"BYE ",
    b"ACK ",
)
SDP_TOKENS = (
    b"m=audio ",
    b" RTP/AVP ",
    b"a=rtpmap:",
    b"PCMU/8000",
    b"telephone-event/8000",
    b"a=zrtp-hash:1.10 ",
    b"c=IN IP4 ",
    b"c=IN IP6 ",
    b"a=rtcp:",
    b"a=rtcp-mux",
    b"a=sendrecv",
    b"a=inactive",
    b"a=ptime:",
    b"o=- ",
)
ZRTP_TOKENS = (
    b"PZ",
    b"ZRTP",
    b"Hello   ",
    b"HelloACK",
    b"Commit  ",
    b"DHPart1 ",
    b"DHPart2 ",
    b"Confirm1",
    b"Confirm2",
    b"Conf2ACK",
    b"Error   ",
    b"ErrorACK",
    b"GoClear ",
    b"ClearACK",
    b"SASrelay",
    b"RelayACK",
    b"Ping    ",
    b"PingACK ",
    b"1.10",
    b"X255",
    b"DH3k",
    b"Mult",
    b"Prsh",
    b"S256",
    b"HS80",
    b"AES1",
    b"B32 ",
)
CONFIG_TOKENS = (
    b"[account]",
    b"[server]",
    b"[security]",
    b"[audio]",
    b"[keypad]",
    b"[display]",
    b"[phone]",
    b"[sim]",
    b'aor = "sip:',
    b'password_file = "',
    b'registrar = "',
    b'hardware = "simulated"',
    b"rows = [",
    b'"""',
    b"'''",
    b"[[",
    b"]]",
    b"= {",
    b"inf",
    b"nan",
    b"0x",
    b"1979-05-27T07:32:00Z",
    b"\\u0000",
    b"\\U0001F600",
)


# ---- SIP and SDP ----------------------------------------------------------------------

REGISTRAR: Address = ("192.0.2.10", 5061)
LOCAL: Address = ("192.0.2.20", 40000)
PEER: Address = ("198.51.100.7", 5061)


def offer() -> bytes:
    """An offer as pidphone makes it: PCMU, PCMA, telephone-event, a=zrtp-hash."""
    hello_hash = "1.10 " + "ab" * 32
    sd = build_offer(
        address=("192.0.2.20", 17078), zrtp_hash=hello_hash, session_id=7, session_version=1
    )
    return bytes(sd)


def answer() -> bytes:
    from pidphone.sdp.message import SessionDescription

    sd = build_answer(
        SessionDescription.parse(offer()),
        address=("198.51.100.7", 17178),
        zrtp_hash="1.10 " + "cd" * 32,
        session_id=9,
        session_version=1,
    )
    return bytes(sd)


def sdp() -> list[bytes]:
    captured = sorted((DATA / "sdp").glob("*.sdp")) if (DATA / "sdp").is_dir() else []
    return [offer(), answer(), *(path.read_bytes() for path in captured)]


def agent(seed: int = 3) -> UserAgent:
    """The phone's user agent with a registration and a call on their way to the registrar
    (deterministic, so that responses to them can be seeds)."""
    ua = UserAgent(
        AgentConfig(
            aor="sips:alice@example.org",
            password="not-the-real-one",
            registrar=REGISTRAR,
            keepalive_interval=0,
        ),
        random_bytes=seeded(seed),
    )
    ua.connection_made(REGISTRAR, LOCAL, 0.0)
    ua.register(0.0)
    ua.invite("sips:bob@example.org", offer(), 0.0)
    return ua


def _headers(request: bytes) -> dict[str, str]:
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    out: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), value.strip())
    return out


def respond(request: bytes, status: str, extra: str = "", body: bytes = b"") -> bytes:
    """A response to `request` the way a registrar or a peer would write it."""
    h = _headers(request)
    to = h["to"] if ";tag=" in h["to"] else h["to"] + ";tag=9fxced76sl"
    lines = [
        f"SIP/2.0 {status}",
        f"Via: {h['via']};received=192.0.2.20",
        f"From: {h['from']}",
        f"To: {to}",
        f"Call-ID: {h['call-id']}",
        f"CSeq: {h['cseq']}",
        *([extra] if extra else []),
        f"Content-Length: {len(body)}",
    ]
    if body:
        lines.insert(-1, "Content-Type: application/sdp")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


CHALLENGE = 'WWW-Authenticate: Digest realm="example.org", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", algorithm=SHA-256, qop="auth"'  # noqa: E501


def incoming_invite() -> bytes:
    body = answer()
    return (
        "INVITE sips:alice@192.0.2.20:40000;transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 198.51.100.7:5061;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Bob" <sips:bob@example.org>;tag=1928301774\r\n'
        "To: <sips:alice@example.org>\r\n"
        "Call-ID: a84b4c76e66710@198.51.100.7\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sips:bob@198.51.100.7:5061;transport=tls>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def sip() -> list[bytes]:
    """Requests the phone sends, responses a registrar and a peer send back to them, and
    requests that arrive unasked."""
    ua = agent()
    sent = [data for data, _ in ua.data_to_send()]
    register = next(m for m in sent if m.startswith(b"REGISTER"))
    invite = next(m for m in sent if m.startswith(b"INVITE"))
    proxy_challenge = CHALLENGE.replace("WWW", "Proxy")
    incoming = incoming_invite()
    bye = (
        incoming.replace(b"INVITE sips", b"BYE sips", 1)
        .replace(b"CSeq: 314159 INVITE", b"CSeq: 314160 BYE")
        .split(b"Content-Type")[0]
        + b"Content-Length: 0\r\n\r\n"
    )
    captured = sorted((DATA / "sip").glob("*.sip")) if (DATA / "sip").is_dir() else []
    return [
        register,
        invite,
        respond(register, "401 Unauthorized", CHALLENGE),
        respond(register, "200 OK", "Contact: <sips:alice@192.0.2.20:40000>;expires=600"),
        respond(invite, "100 Trying"),
        respond(invite, "180 Ringing", "Contact: <sips:bob@198.51.100.7:5061>"),
        respond(invite, "407 Proxy Authentication Required", proxy_challenge),
        respond(invite, "200 OK", "Contact: <sips:bob@198.51.100.7:5061>", answer()),
        respond(invite, "486 Busy Here"),
        incoming,
        bye,
        *(path.read_bytes() for path in captured),
    ]


# ---- media ----------------------------------------------------------------------------


def rtp() -> list[bytes]:
    rng = random.Random(4)
    packets = [build_rtp(0, seq, seq * 160, 0x1234, rng.randbytes(160)) for seq in range(3)]
    packets.append(build_rtp(101, 7, 1280, 0x1234, bytes(TelephoneEvent(5, True, 10, 800))))
    # CSRC, header extension (RFC 8285 one-byte) and padding
    extended = struct.pack("!BBHII", 0x92, 8, 9, 1440, 0x1234) + (7).to_bytes(4, "big")
    extended += b"\xbe\xde\x00\x01\x10\xaa\x00\x00" + bytes(20) + b"\x00\x00\x00\x04"
    packets.append(bytes([extended[0] | 0x20]) + extended[1:])
    return packets


def rtcp_packets() -> list[bytes]:
    block = rtcp.ReportBlock(0x5678, 12, 3, 70000, 45, 0x11223344, 6554)
    return [
        rtcp.serialize_rtcp(
            [
                rtcp.SenderReport(0x1234, 0xE0000000_80000000, 1600, 10, 1600, (block,)),
                rtcp.SourceDescription(
                    (rtcp.SdesChunk(0x1234, (rtcp.SdesItem(1, b"alice@example.org"),)),)
                ),
            ]
        ),
        rtcp.serialize_rtcp([rtcp.ReceiverReport(0x5678, (block, block)), rtcp.Bye((0x5678,))]),
    ]


def srtp_pair(profile: str = "AES_CM_128_HMAC_SHA1_80") -> tuple[SrtpContext, SrtpContext]:
    """A sending and a receiving context with the same keys."""
    key = bytes(range(PROFILES[profile].key_len))
    salt = bytes(range(100, 114))
    return SrtpContext(profile, key, salt), SrtpContext(profile, key, salt)


def srtp() -> list[bytes]:
    """For fuzz.targets.srtp: a mode byte, then packets that authenticate with the target's
    keys (to unprotect) or RTP payloads (to protect, damage and unprotect)."""
    out: list[bytes] = []
    for index, profile in enumerate(sorted(PROFILES)):
        tx, _ = srtp_pair(profile)
        out += [bytes([index]) + tx.protect(packet) for packet in rtp()[:2]]
        out += [bytes([index]) + tx.protect_rtcp(packet) for packet in rtcp_packets()]
        out.append(bytes([index | 4, 0]) + rtp()[0][12:])
    return out


def srtp_gcm_pair(profile: str) -> tuple[SrtpGcmContext, SrtpGcmContext]:
    """A sending and a receiving AES-GCM context with the same keys."""
    key, salt = bytes(range(GCM_KEY_LENGTHS[profile])), bytes(range(100, 112))
    return SrtpGcmContext(profile, key, salt), SrtpGcmContext(profile, key, salt)


def srtp_gcm() -> list[bytes]:
    """For fuzz.targets.srtp_gcm: srtp()'s layout with the two AES-GCM profiles."""
    out: list[bytes] = []
    for index, profile in enumerate(sorted(GCM_KEY_LENGTHS)):
        tx, _ = srtp_gcm_pair(profile)
        out += [bytes([index]) + tx.protect(packet) for packet in rtp()[:2]]
        out += [bytes([index]) + tx.protect_rtcp(packet) for packet in rtcp_packets()]
        out.append(bytes([index | 4, 0]) + rtp()[0][12:])
    return out


def zrtp_fragments() -> list[bytes]:
    """For fuzz.targets.zrtp_fragments: bzrtp 5.5's fragments (tests/data), each message's
    fragments as one input of length-prefixed datagrams, in order and reversed."""
    out: list[bytes] = []
    for path in sorted((DATA / "zrtp").glob("bzrtp55-*.tsv")):
        fragments = [
            bytes.fromhex(line.split("\t")[-1])
            for line in path.read_text().splitlines()
            if line and not line.startswith("#") and line.split("\t")[2] == "fragment"
        ]
        framed = [struct.pack("!H", len(f)) + f for f in fragments]
        out += [b"".join(framed), b"".join(reversed(framed))]
    return out


MEDIA_A: Address = ("192.0.2.20", 17078)
MEDIA_B: Address = ("198.51.100.7", 17178)
TONE = bytes(range(160)) * 2
"""One 20 ms frame of 16-bit PCM."""


def media() -> list[bytes]:
    """For fuzz.targets.media: what the peer sent in a secured call (ZRTP, SRTP, SRTCP),
    from the peer's address and from elsewhere, and a STUN request. The call goes on as the
    one the target fuzzes, so that these replays carry its keys."""
    from fuzz.targets import _CALLS, _Call

    call = _Call()
    for _ in range(260):  # past the first RTCP report
        call.step()
    _CALLS[:] = [call]
    by_kind: dict[str, bytes] = {}
    for data in call.b_sent:
        by_kind.setdefault(f"{data[0] >> 6}:{data[1]}:{len(data) > 100}", data)
    datagrams = [*by_kind.values(), *zrtp_exchange(), stun.build_binding_request(STUN_TRANSACTION)]
    return [bytes([flags]) + d for d in datagrams for flags in (1, 3, 0)]


STUN_TRANSACTION = bytes(range(12))
STUN_KEY = b"stun-key"


def stun_messages() -> list[bytes]:
    return [
        stun.build_binding_request(STUN_TRANSACTION),
        stun.build_binding_response(STUN_TRANSACTION, "203.0.113.4", 40000),
        stun.build_binding_response(STUN_TRANSACTION, "2001:db8::4", 40000, key=STUN_KEY),
    ]


def telephone_events() -> list[bytes]:
    events = [
        TelephoneEvent(event, end, 10, duration)
        for event in (1, 11, 16)
        for end in (False, True)
        for duration in (160, 800)
    ]
    return [b"".join(bytes(e) for e in events[i : i + 3]) for i in range(0, len(events), 3)]


# ---- config ---------------------------------------------------------------------------


def configs() -> list[bytes]:
    root = Path(__file__).resolve().parent.parent
    files = [root / "examples" / "pidphone.toml", *sorted((root / "examples").glob("*.toml"))]
    seen: set[Path] = set()
    out: list[bytes] = []
    for path in files:
        if path.is_file() and path not in seen:
            seen.add(path)
            out.append(path.read_bytes())
    out.append(b'hardware = "simulated"\n[account]\naor = "sip:alice@example.org"\n')
    return out
