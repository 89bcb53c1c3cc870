"""One fuzz target per entry point that takes bytes from outside: who can send them is in
SECURITY.md; here, what the phone does with them.

A target feeds one input to the code the way the phone does and may raise only `expected`,
the error the phone catches for that input (and drops, rejects or shows); the phone's own
objects (the SIP agent, the ZRTP session) may raise nothing at all. Any other exception is a
finding, and so is a failed assertion about what came out: a parsed message that does not
serialize back to itself, SRTP that decrypts a tampered packet, two ZRTP ends that both
report a secured call with different keys.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fuzz import seeds
from pidphone.app.media import MediaConfig, MediaSession
from pidphone.app.media_events import MediaSecurityFailed, MediaSecurityLost
from pidphone.config import parse_config
from pidphone.errors import ConfigError, ProtocolError
from pidphone.ports import Address
from pidphone.rtp import PacketKind, classify, stun
from pidphone.rtp.packet import RtpPacket, RtpParseError, build_rtp, rtp_fields
from pidphone.rtp.rtcp import RtcpParseError, parse_rtcp
from pidphone.rtp.telephone_event import (
    TelephoneEvent,
    TelephoneEventDecoder,
    TelephoneEventParseError,
)
from pidphone.sdp.message import SessionDescription
from pidphone.sdp.offer_answer import build_answer, negotiate
from pidphone.sip.errors import SipParseError
from pidphone.sip.framing import Frame, StreamFramer
from pidphone.sip.message import parse_message
from pidphone.srtp.context import SrtpError
from pidphone.srtp.gcm import GCM_KEY_LENGTHS
from pidphone.srtp.profiles import PROFILES
from pidphone.zrtp import (
    MemoryZidCache,
    Secured,
    SrtpKeysReady,
    ZrtpConfig,
    ZrtpEvent,
    ZrtpParseError,
    ZrtpSession,
    crc32c,
    kem,
    parse_packet,
)
from pidphone.zrtp import parse_message as parse_zrtp_message
from pidphone.zrtp.fragment import MAX_MESSAGE_BYTES, MAX_MESSAGES, Reassembler


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    expected: tuple[type[Exception], ...]
    """What `run` may raise: the parser's own error (nothing for the phone's objects)."""
    seeds: Callable[[], list[bytes]]
    max_len: int = 4096
    """The largest input worth trying (a datagram, a SIP message)."""
    dictionary: tuple[bytes, ...] = ()
    """Tokens of the format, inserted whole by the fuzzer (seeds.TOKENS come first)."""


# ---- SIP ------------------------------------------------------------------------------


def sip_message(data: bytes) -> None:
    message = parse_message(data)
    again = parse_message(bytes(message))
    assert again == message, "a parsed SIP message does not serialize back to itself"


def sip_framer(data: bytes) -> None:
    """The first byte chooses how the stream is cut into TLS records."""
    if not data:
        return
    size, stream = data[0] % 64 + 1, data[1:]
    framer = StreamFramer(max_message=2048)
    framed = 0
    for start in range(0, len(stream), size):
        framer.feed(stream[start : start + size])
        while (item := framer.next_item()) is not None:
            if isinstance(item, Frame):
                framed += len(item.data)
    assert framed + framer.buffered <= len(stream)


def sip_agent(data: bytes) -> None:
    """What the registrar's flow delivers to the phone while it registers and calls: never
    an exception, whatever the bytes."""
    ua = seeds.agent()
    ua.data_to_send()
    ua.receive_data(data, seeds.REGISTRAR, 0.5)
    for now in (0.5, 2.0, 40.0):
        while ua.next_event() is not None:
            pass
        ua.data_to_send()
        ua.flows_to_close()
        timer = ua.get_timer()
        if timer is not None and timer <= now:
            ua.handle_timer(now)


# ---- SDP ------------------------------------------------------------------------------


def sdp(data: bytes) -> None:
    """A peer's offer: parsed, answered and negotiated as the call does (ProtocolError ends
    the call with a status; anything else would be a crash)."""
    offer = SessionDescription.parse(data)
    assert SessionDescription.parse(bytes(offer)) == offer, "SDP does not round-trip"
    answer = build_answer(
        offer,
        address=("192.0.2.20", 17078),
        zrtp_hash="1.10 " + "ab" * 32,
        session_id=1,
        session_version=1,
    )
    negotiate(answer, offer)


# ---- RTP, RTCP, telephone-event, STUN -------------------------------------------------


def rtp(data: bytes) -> None:
    try:
        fields = rtp_fields(data)
    except RtpParseError:
        fields = None
    packet = RtpPacket.parse(data)
    assert fields is not None, "rtp_fields refused a packet that RtpPacket.parse accepts"
    assert RtpPacket.parse(bytes(packet)) == packet, "RTP does not round-trip"


def rtcp(data: bytes) -> None:
    parse_rtcp(data)


def telephone_event(data: bytes) -> None:
    """A stream of RFC 4733 payloads (4 bytes each) with timestamps from the input."""
    TelephoneEvent.parse(data)
    decoder = TelephoneEventDecoder()
    for start in range(0, len(data) - 5, 6):
        timestamp = int.from_bytes(data[start : start + 2], "big") * 160
        decoder.receive(data[start + 2 : start + 6], timestamp)


def stun_message(data: bytes) -> None:
    """As the media port takes a STUN datagram: a request, or the answer to ours."""
    for key in (None, seeds.STUN_KEY):
        with contextlib.suppress(stun.StunParseError):
            stun.parse_message(data, key=key)
    with contextlib.suppress(stun.StunParseError):
        stun.parse_binding_response(data, seeds.STUN_TRANSACTION, key=seeds.STUN_KEY)
    stun.parse_binding_response(data, seeds.STUN_TRANSACTION)


# ---- SRTP -----------------------------------------------------------------------------

_PROFILE_NAMES = sorted(PROFILES)


def srtp(data: bytes) -> None:
    """The first byte chooses the profile and whether the input is a datagram to unprotect
    as it is, or an RTP packet to protect, damage at one byte and unprotect."""
    if len(data) < 2:
        return
    tx, rx = seeds.srtp_pair(_PROFILE_NAMES[data[0] & 3])
    body = data[1:]
    if not data[0] & 4:
        with contextlib.suppress(SrtpError):
            rx.unprotect(body)
        rx.unprotect_rtcp(body)
        return
    packet = build_rtp(body[0] & 0x7F, len(body), len(body) * 160, 0x1234, body[1:])
    protected = tx.protect(packet)
    assert rx.unprotect(protected) == packet, "SRTP does not round-trip"
    try:
        rx.unprotect(protected)
    except SrtpError as exc:
        assert exc.reason == "replay", exc.reason
    else:
        raise AssertionError("a replayed SRTP packet was accepted")
    damaged = bytearray(protected)
    position = body[0] * 7 % len(damaged)
    damaged[position] ^= (data[0] >> 3) | 1
    try:
        rx.unprotect(bytes(damaged))
    except SrtpError:
        return
    # (a 32-bit tag is forged by chance once in 2**32 inputs)
    raise AssertionError(f"SRTP accepted a packet damaged at byte {position}")


_GCM_PROFILES = sorted(GCM_KEY_LENGTHS)


def srtp_gcm(data: bytes) -> None:
    """srtp()'s checks for SRTP AEAD AES-GCM (RFC 7714): a 16-byte tag is never forged."""
    if len(data) < 2:
        return
    tx, rx = seeds.srtp_gcm_pair(_GCM_PROFILES[data[0] & 1])
    body = data[1:]
    if not data[0] & 4:
        with contextlib.suppress(SrtpError):
            rx.unprotect(body)
        rx.unprotect_rtcp(body)
        return
    packet = build_rtp(body[0] & 0x7F, len(body), len(body) * 160, 0x1234, body[1:])
    protected = tx.protect(packet)
    assert rx.unprotect(protected) == packet, "SRTP-GCM does not round-trip"
    try:
        rx.unprotect(protected)
    except SrtpError as exc:
        assert exc.reason == "replay", exc.reason
    else:
        raise AssertionError("a replayed SRTP-GCM packet was accepted")
    damaged = bytearray(protected)
    position = body[0] * 7 % len(damaged)
    damaged[position] ^= (data[0] >> 3) | 1
    try:
        rx.unprotect(bytes(damaged))
    except SrtpError:
        return
    raise AssertionError(f"SRTP-GCM accepted a packet damaged at byte {position}")


# ---- ZRTP -----------------------------------------------------------------------------


def zrtp_packet(data: bytes) -> None:
    with contextlib.suppress(ZrtpParseError):
        parse_zrtp_message(data[12:-4])
    packet = parse_packet(data)
    again = bytes(packet)
    assert again == data or packet.message.type_name == "Hello", "ZRTP does not round-trip"


class _End:
    def __init__(self, session: ZrtpSession) -> None:
        self.session = session
        self.events: list[ZrtpEvent] = []

    def drain(self) -> None:
        while (event := self.session.next_event()) is not None:
            self.events.append(event)

    def of(self, kind: type[ZrtpEvent]) -> list[ZrtpEvent]:
        return [e for e in self.events if isinstance(e, kind)]


def _with_crc(packet: bytes) -> bytes:
    """The packet with a correct CRC-32C: anyone can compute it, so forgeries have one."""
    if len(packet) < 16:
        return packet
    body = packet[:-4]
    return body + crc32c(body).to_bytes(4, "little")


def zrtp_session(data: bytes) -> None:
    """Two of our sessions run a whole exchange; the input, a forged datagram, is slipped in
    at one point of it.

    data[0]: after which delivery the forgery arrives (past the end: once both are secure);
    data[1]: bit 0 fix its CRC, bit 1 to the caller instead of the callee, bit 2 twice, bit 3
    both know the other's a=zrtp-hash. Nothing may raise; when both ends report Secured,
    their SAS and keys agree; a forgery that arrives once both are secure changes nothing
    (no event at all: no failure, no lost security).
    """
    _forged_into_exchange(data, seeds.ZRTP_FAST)


def zrtp_pq_session(data: bytes) -> None:
    """zrtp_session() for a post-quantum exchange (X3M3), whose Commit and DHPart1 travel in
    fragments: the forgery is mostly a fragment, which the session's reassembler collects
    (a fragment with its CRC fixed, an id or length that contradicts the real ones, words
    past the end, a stranger's SSRC); the same checks hold."""
    _forged_into_exchange(data, seeds.ZRTP_PQ)


def memoize_pure_crypto() -> Callable[[], None]:
    """Cache the X448/X25519 and ML-KEM key arithmetic of pidphone.zrtp.kem for this process;
    returns what undoes it.

    Both ends draw their keys from seeded generators, so every input of the ZRTP session
    targets repeats the same scalar multiplications: cached, a post-quantum exchange costs a
    few times less and a million inputs fit in an hour. The functions are pure (a forged value
    is simply a new key to the cache, and an error is raised, not cached); only the fuzzing
    process calls this, so the slowest inputs are retimed without it.
    """
    originals = {name: getattr(kem, name) for name in ("_ecdh_public", "_ecdh", "_mlkem_private")}
    for name, function in originals.items():
        setattr(kem, name, functools.lru_cache(maxsize=4096)(function))

    def undo() -> None:
        for name, function in originals.items():
            setattr(kem, name, function)

    return undo


def _forged_into_exchange(data: bytes, config: ZrtpConfig) -> None:
    if len(data) < 3:
        return
    point, flags, forged = data[0], data[1], data[2:]
    if flags & 1:
        forged = _with_crc(forged)
    a = _End(
        ZrtpSession(
            cache=MemoryZidCache(bytes(12)),
            ssrc=1,
            config=config,
            random_bytes=seeds.seeded(1),
        )
    )
    b = _End(
        ZrtpSession(
            cache=MemoryZidCache(bytes([1] * 12)),
            ssrc=2,
            config=config,
            random_bytes=seeds.seeded(2),
        )
    )
    if flags & 8:
        a.session.set_peer_hello_hash(b.session.hello_hash, 0.0)
        b.session.set_peer_hello_hash(a.session.hello_hash, 0.0)
    victim = a if flags & 2 else b
    copies = 2 if flags & 4 else 1
    a.session.start(0.0)
    b.session.start(0.0)
    delivered = 0
    now = 0.0

    def inject() -> None:
        for _ in range(copies):
            victim.session.receive_datagram(forged, now)

    while now < 30.0:
        moved = False
        for src, dst in ((a, b), (b, a)):
            for packet in src.session.datagrams_to_send():
                if delivered == point:
                    inject()
                delivered += 1
                dst.session.receive_datagram(packet, now)
                moved = True
        if moved:
            continue
        timers = [t for t in (a.session.get_timer(), b.session.get_timer()) if t is not None]
        if not timers:
            break
        now = max(now, min(timers))
        for end in (a, b):
            timer = end.session.get_timer()
            if timer is not None and timer <= now:
                end.session.handle_timer(now)
    a.drain()
    b.drain()
    if delivered <= point:
        before = len(victim.events)
        inject()
        a.session.datagrams_to_send()
        b.session.datagrams_to_send()
        victim.drain()
        if a.of(Secured) and b.of(Secured):
            after = victim.events[before:]
            assert not after, f"a forgery after both were secure gave {after}"
    secured_a, secured_b = a.of(Secured), b.of(Secured)
    if secured_a and secured_b:
        first_a, first_b = secured_a[0], secured_b[0]
        assert isinstance(first_a, Secured) and isinstance(first_b, Secured)
        assert first_a.sas == first_b.sas, "both ends secured with different SAS"
        assert first_a.peer_zid == b.session.our_zid and first_b.peer_zid == a.session.our_zid
        (keys_a,) = a.of(SrtpKeysReady)
        (keys_b,) = b.of(SrtpKeysReady)
        assert isinstance(keys_a, SrtpKeysReady) and isinstance(keys_b, SrtpKeysReady)
        assert (keys_a.send_key, keys_a.send_salt) == (keys_b.recv_key, keys_b.recv_salt)
        assert (keys_b.send_key, keys_b.send_salt) == (keys_a.recv_key, keys_a.recv_salt)


# ---- the media port of a secured call -------------------------------------------------


class _Call:
    """Two media sessions in a secured call, stepped 20 ms at a time with audio both ways."""

    ATTACKER: Address = ("203.0.113.9", 5004)

    def __init__(self) -> None:
        self.a = MediaSession(MediaConfig(), cache=MemoryZidCache(bytes(12)))
        self.b = MediaSession(MediaConfig(), cache=MemoryZidCache(bytes([1] * 12)))
        for session in (self.a, self.b):
            session.configure("PCMU", 0, 101)
        self.a.set_remote(seeds.MEDIA_B, self.b.hello_hash, now=0.0)
        self.b.set_remote(seeds.MEDIA_A, self.a.hello_hash, now=0.0)
        self.now = 0.0
        self.b_sent: list[bytes] = []
        self.a.start(0.0)
        self.b.start(0.0)
        for _ in range(100):
            self.step()
        assert self.a.security == self.b.security == "secure"

    def step(self) -> None:
        for end in (self.a, self.b):
            timer = end.get_timer()
            if timer is not None and timer <= self.now:
                end.handle_timer(self.now)
            end.send_audio(seeds.TONE, self.now)
            end.pull_audio(self.now)
        for data, to in self.a.datagrams_to_send():
            if to != seeds.MEDIA_B:
                assert classify(data) is PacketKind.STUN, f"{classify(data)} sent to {to}"
                continue
            self.b.receive_datagram(data, seeds.MEDIA_A, self.now)
        for data, _ in self.b.datagrams_to_send():
            self.b_sent.append(data)
            self.a.receive_datagram(data, seeds.MEDIA_B, self.now)
        for end in (self.a, self.b):
            while (event := end.next_event()) is not None:
                assert not isinstance(event, MediaSecurityFailed | MediaSecurityLost), event
        self.now += 0.02


_CALLS: list[_Call] = []


def media(data: bytes) -> None:
    """A datagram on the media port of a secured call, from anywhere (data[0] bit 0: with the
    peer's address as its source; bit 1: a ZRTP packet's CRC fixed). The call is one long
    call shared by every input, as an attacker's packets share one. Nothing may raise; the
    call stays secure, with the same peer address, sends no clear RTP and sends nothing but
    STUN answers anywhere else."""
    if not data:
        return
    if not _CALLS or _CALLS[0].now > 3600:
        _CALLS[:] = [_Call()]
    call = _CALLS[0]
    datagram = _with_crc(data[1:]) if data[0] & 2 else data[1:]
    source = seeds.MEDIA_B if data[0] & 1 else _Call.ATTACKER
    call.a.receive_datagram(datagram, source, call.now)
    call.step()
    assert call.a.security == "secure", call.a.security
    assert call.a.remote == seeds.MEDIA_B, call.a.remote
    assert call.a.stats.clear_packets_sent == 0


# ---- config ---------------------------------------------------------------------------

_CONFIG_DIR = Path(tempfile.gettempdir()) / "pidphone-fuzz"


def zrtp_fragments(data: bytes) -> None:
    """Length-prefixed datagrams into one reassembler, half a second apart: each may be
    refused (ZrtpParseError, dropped), but the bounds always hold and whatever completes has
    the announced size."""
    reassembler = Reassembler()
    now = 0.0
    while len(data) >= 2:
        size = int.from_bytes(data[:2], "big")
        packet, data = data[2 : 2 + size], data[2 + size :]
        now += 0.5
        try:
            done = reassembler.receive(packet, now)
        except ZrtpParseError:
            continue
        assert len(reassembler) <= MAX_MESSAGES, len(reassembler)
        if done is not None:
            assert 0 < len(done.message) <= MAX_MESSAGE_BYTES, len(done.message)


def config(data: bytes) -> None:
    """The boot-partition file: a ConfigError naming what is wrong, whatever the bytes; one
    that only wraps an exception our checks did not foresee is a finding too."""
    try:
        parse_config(data, _CONFIG_DIR / "pidphone.toml", warn=lambda _: None)
    except ConfigError as exc:
        if exc.__cause__ is not None:
            raise AssertionError(f"unforeseen: {exc.problem}") from exc.__cause__
        raise


_SIP_AND_SDP = seeds.SIP_TOKENS + seeds.SDP_TOKENS

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "sip_message",
            sip_message,
            (SipParseError,),
            seeds.sip,
            8192,
            seeds.SIP_TOKENS + seeds.SDP_TOKENS,
        ),
        Target("sip_framer", sip_framer, (SipParseError,), seeds.sip, 8192, seeds.SIP_TOKENS),
        Target("sip_agent", sip_agent, (), seeds.sip, 8192, _SIP_AND_SDP),
        Target("sdp", sdp, (ProtocolError,), seeds.sdp, 4096, seeds.SDP_TOKENS),
        Target("rtp", rtp, (RtpParseError,), seeds.rtp, 1500),
        Target("rtcp", rtcp, (RtcpParseError,), seeds.rtcp_packets, 1500),
        Target("srtp", srtp, (SrtpError,), seeds.srtp, 1500),
        Target("srtp_gcm", srtp_gcm, (SrtpError,), seeds.srtp_gcm, 1500),
        Target("stun", stun_message, (stun.StunParseError,), seeds.stun_messages, 1500),
        Target(
            "telephone_event",
            telephone_event,
            (TelephoneEventParseError,),
            seeds.telephone_events,
            256,
        ),
        Target("zrtp_packet", zrtp_packet, (ZrtpParseError,), seeds.zrtp, 3072, seeds.ZRTP_TOKENS),
        Target("zrtp_session", zrtp_session, (), seeds.zrtp_session, 3072, seeds.ZRTP_TOKENS),
        Target(
            "zrtp_pq_session", zrtp_pq_session, (), seeds.zrtp_pq_session, 3072, seeds.ZRTP_TOKENS
        ),
        Target("zrtp_fragments", zrtp_fragments, (), seeds.zrtp_fragments, 8192, seeds.ZRTP_TOKENS),
        Target("media", media, (), seeds.media, 2048, seeds.ZRTP_TOKENS),
        Target("config", config, (ConfigError,), seeds.configs, 16384, seeds.CONFIG_TOKENS),
    )
}
