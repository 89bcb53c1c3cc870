"""Two media sessions back to back, time moved by hand: ZRTP, SRTP audio, policy, DTMF, RTCP."""

from __future__ import annotations

import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.app.media import NO_ZRTP_REASON, MediaConfig, MediaSession, Policy
from pidphone.app.media_events import (
    MediaDtmf,
    MediaPeerMoved,
    MediaSecured,
    MediaSecurityFailed,
    MediaSecurityLost,
)
from pidphone.app.media_security import NO_MEDIA_REASON
from pidphone.audio import g711
from pidphone.audio.analysis import dominant_frequencies
from pidphone.errors import LocalProtocolError
from pidphone.ports import FRAME_SAMPLES, Address
from pidphone.rtp import PacketKind, classify, stun
from pidphone.rtp.packet import RtpPacket
from pidphone.rtp.rtcp import ReceiverReport, SenderReport, parse_rtcp, serialize_rtcp
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.messages import Error, GoClear, Message, ZrtpPacket, parse_packet
from tests.harness import (
    A_ADDR,
    B_ADDR,
    STEP,
    Keep,
    MediaEnd,
    Wire,
    media_end,
    media_pair,
    talk,
    tone_frames,
)


def rtp_sent(end: MediaEnd) -> list[bytes]:
    return [data for _, data, _ in end.sent if classify(data) is PacketKind.RTP]


def test_zrtp_then_srtp_audio_both_ways() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 3.0)

    (sa,) = a.of(MediaSecured)
    (sb,) = b.of(MediaSecured)
    assert isinstance(sa, MediaSecured) and isinstance(sb, MediaSecured)
    assert sa.secured.sas == sb.secured.sas and len(sa.secured.sas) == 4
    assert {sa.secured.role, sb.secured.role} == {"initiator", "responder"}
    assert a.session.security == b.session.security == "secure"

    # Each side decodes the other's tone from what it received over SRTP.
    received_by_b = b"".join(b.played[-50:])
    received_by_a = b"".join(a.played[-50:])
    assert abs(dominant_frequencies(received_by_b)[0] - 1000) < 20
    assert abs(dominant_frequencies(received_by_a)[0] - 700) < 20
    assert b.session.stats.packets_received > 50
    assert a.session.stats.packets_sent > 50
    assert a.session.stats.clear_packets_sent == 0


def test_no_clear_audio_ever_leaves() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 2.0)
    clear_payloads = {g711.ulaw_encode(a.tone(n))[:40] for n in range(100)}
    for data in rtp_sent(a):
        # SRTP: the payload is encrypted, so no captured frame's G.711 bytes appear in it.
        assert not any(p in data for p in clear_payloads)
    secured_at = min(t for t, data, _ in a.sent if classify(data) is PacketKind.RTP)
    assert a.session.stats.frames_withheld > 0
    assert secured_at > 0.0


def test_require_peer_without_zrtp_fails_and_sends_no_rtp() -> None:
    a = media_end(A_ADDR, 1000, "require")
    b = media_end(B_ADDR, 700, "require")
    a.session.set_remote(B_ADDR, now=0.0)
    b.session.set_remote(A_ADDR, now=0.0)
    a.session.start(0.0)
    # b speaks no ZRTP: it is never started, and a's ZRTP packets fall on deaf ears; what
    # b's phone does send is clear RTP.
    deaf = Wire(keep=lambda data, now: classify(data) is not PacketKind.ZRTP)
    now = talk(a, b, 1.0, a_to_b=deaf)
    a.session.receive_datagram(clear_rtp(1), B_ADDR, now)
    talk(a, b, 7.0, start=now, a_to_b=deaf)

    failures = a.of(MediaSecurityFailed)
    assert len(failures) == 1
    failure = failures[0]
    assert isinstance(failure, MediaSecurityFailed)
    assert failure.reason == NO_ZRTP_REASON
    assert failure.fatal and failure.peer_without_zrtp
    assert rtp_sent(a) == []
    assert a.session.stats.packets_sent == 0
    assert not any(classify(d) is PacketKind.RTCP for _, d, _ in a.sent)


def clear_rtp(sequence: int) -> bytes:
    return bytes(RtpPacket(0, sequence, 160 * sequence, 0xB0B, b"\xff" * 160))


@pytest.mark.parametrize("policy", ["require", "prefer"])
def test_a_peer_never_heard_from_is_the_network_not_its_zrtp(policy: Policy) -> None:
    """Not one datagram from the peer: the reason names the network, not the peer's ZRTP,
    and the policy's outcome is what it was (fatal under require; under prefer insecure, and
    clear only once the screen says NOT SECURE)."""
    a = media_end(A_ADDR, 1000, policy)
    a.session.set_remote(B_ADDR, now=0.0)
    a.session.start(0.0)
    b = media_end(B_ADDR, 700, policy)  # never started: silent
    talk(a, b, 8.0, a_to_b=Wire(keep=lambda data, now: False))

    (failure,) = a.of(MediaSecurityFailed)
    assert isinstance(failure, MediaSecurityFailed)
    assert failure.reason == NO_MEDIA_REASON == "No audio from peer: check network"
    assert failure.fault == "network" and failure.code is None
    assert failure.fatal is (policy == "require")
    assert security(a) == ("failed" if policy == "require" else "insecure")
    assert rtp_sent(a) == [] and a.session.stats.clear_packets_sent == 0


def test_a_socket_that_sends_nothing_is_our_fault() -> None:
    """Every datagram our socket tried was refused: "Our media failed", even though the peer's
    own datagrams (its clear RTP here) did arrive."""
    a = media_end(A_ADDR, 1000, "require")
    a.session.set_remote(B_ADDR, now=0.0)
    a.session.start(0.0)
    now = 0.0
    while now < 8.0 and not a.of(MediaSecurityFailed):
        timer = a.session.get_timer()
        if timer is not None and timer <= now:
            a.session.handle_timer(now)
        for _, address in a.session.datagrams_to_send():
            a.session.send_failed(address, "Network is unreachable")
        a.session.receive_datagram(clear_rtp(int(now * 50) + 1), B_ADDR, now)
        a.drain()
        now += 0.02
    (failure,) = a.of(MediaSecurityFailed)
    assert isinstance(failure, MediaSecurityFailed)
    assert failure.reason == "Our media failed: cannot send to 127.0.0.1"
    assert failure.fault == "ours" and failure.fatal
    assert a.session.stats.send_errors >= a.session.stats.zrtp_sent > 0


def test_prefer_peer_without_zrtp_falls_back_to_clear_audio() -> None:
    a = media_end(A_ADDR, 1000, "prefer")
    b = media_end(B_ADDR, 700, "prefer")
    a.session.set_remote(B_ADDR, now=0.0)
    b.session.set_remote(A_ADDR, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    no_zrtp: Keep = lambda data, now: classify(data) is not PacketKind.ZRTP  # noqa: E731
    talk(a, b, 10.0, a_to_b=Wire(keep=no_zrtp), b_to_a=Wire(keep=no_zrtp))

    (failure,) = a.of(MediaSecurityFailed)
    assert isinstance(failure, MediaSecurityFailed) and not failure.fatal
    # nothing in clear until the screen shows NOT SECURE (the call says so: allow_clear)
    assert security(a) == "insecure" and a.session.stats.clear_packets_sent == 0
    assert rtp_sent(a) == []
    a.session.allow_clear()
    b.session.allow_clear()
    talk(a, b, 2.0, start=10.0)
    assert security(a) == "clear"
    assert a.session.stats.clear_packets_sent > 0
    assert abs(dominant_frequencies(b"".join(b.played[-50:]))[0] - 1000) < 20


def test_symmetric_rtp_latches_onto_authenticated_source() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    nat: Address = ("127.0.0.1", 50123)
    now = talk(a, b, 2.0)
    assert a.session.remote == B_ADDR
    talk(a, b, 0.5, start=now, b_source=nat)
    assert a.session.remote == nat
    assert MediaPeerMoved(nat) in a.events
    assert a.sent[-1][2] == nat


def test_forged_packets_do_not_move_the_peer_address() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    forged = bytes(rtp_sent(b)[-1])
    forged = forged[:-1] + bytes([forged[-1] ^ 1])
    dropped = a.session.stats.dropped
    a.session.receive_datagram(forged, ("127.0.0.1", 6666), now)
    assert a.session.remote == B_ADDR
    assert a.session.stats.dropped == dropped + 1


def test_dtmf_arrives_as_one_key_press() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    a.session.send_dtmf("5")
    talk(a, b, 1.0, start=now)
    assert [e for e in b.events if isinstance(e, MediaDtmf)] == [MediaDtmf("5")]


def test_rtcp_reports_go_out_over_srtcp() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 11.0)
    assert a.session.stats.rtcp_sent >= 2
    assert b.session.stats.rtcp_received >= 2


def test_loss_is_counted_and_concealed() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    count = 0

    def lossy(data: bytes, t: float) -> bool:
        nonlocal count
        if classify(data) is not PacketKind.RTP:
            return True
        count += 1
        return count % 10 != 0

    talk(a, b, 4.0, start=now, a_to_b=Wire(keep=lossy))
    assert b.session.stats.packets_lost >= 15
    assert abs(dominant_frequencies(b"".join(b.played[-100:]))[0] - 1000) < 25


@pytest.mark.parametrize("codec,pt", [("PCMA", 8), ("PCMU", 0)])
def test_codecs(codec: str, pt: int) -> None:
    a, b = media_pair(codec=(codec, pt))
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 3.0)
    assert abs(dominant_frequencies(b"".join(a.played[-50:]))[0] - 700) < 20


def test_srtcp_follows_a_peer_that_uses_the_32_bit_tag() -> None:
    """Linphone keys SRTCP with the RTP policy: a 4-byte SRTCP tag under HS32."""
    hs32 = ZrtpConfig(auth_tags=("HS32",))
    a = MediaEnd(
        MediaSession(MediaConfig(zrtp=hs32), cache=MemoryZidCache()), A_ADDR, tone_frames(1000)
    )
    like_linphone = MediaConfig(zrtp=hs32, srtcp_tag_len=4)
    b = MediaEnd(MediaSession(like_linphone, cache=MemoryZidCache()), B_ADDR, tone_frames(700))
    for end in (a, b):
        end.session.configure("PCMU", 0, 101)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 16.0)
    assert a.session.secured is not None and a.session.secured.auth_tag == "HS32"
    assert a.session.stats.rtcp_received >= 2
    assert b.session.stats.rtcp_received >= 2  # once a switched to the peer's tag length
    assert a.session.stats.dropped <= 1


def test_plain_stun_binding_requests_are_answered() -> None:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 1.0)
    transaction = bytes(range(12))
    a.session.receive_datagram(stun.build_binding_request(transaction), ("127.0.0.1", 7777), now)
    ((answer, to),) = [
        d for d in a.session.datagrams_to_send() if classify(d[0]) is PacketKind.STUN
    ]
    assert to == ("127.0.0.1", 7777)
    assert stun.parse_binding_response(answer, transaction) == ("127.0.0.1", 7777)


def test_a_hello_that_arrives_before_start_is_not_lost() -> None:
    a, b = media_pair()
    b.session.start(0.0)  # the callee answered; its Hello beats the 200 to the caller
    ((hello, _),) = b.session.datagrams_to_send()
    a.session.receive_datagram(hello, B_ADDR, 0.001)
    a.session.start(0.002)
    # Answered at once: a HelloACK (and a's own Hello) go out before any retransmission.
    kinds = [parse_packet(d).message.type_name for d, _ in a.session.datagrams_to_send()]
    assert "HelloACK" in kinds or "Commit" in kinds


@pytest.fixture(scope="module")
def secured() -> MediaSession:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 1.0)
    return a.session


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"\x80\x00" + b),  # RTP-looking
        st.binary(max_size=200).map(lambda b: b"\x80\xc8" + b),  # RTCP-looking
        st.binary(max_size=200).map(lambda b: b"\x10\x00\x00\x01ZRTP" + b),  # ZRTP-looking
        st.binary(max_size=200).map(lambda b: b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b),  # STUN
    )
)
def test_garbage_datagrams_are_dropped_never_raised(secured: MediaSession, data: bytes) -> None:
    secured.receive_datagram(data, ("127.0.0.1", 9), 100.0)
    secured.datagrams_to_send()
    assert secured.security == "secure"


# --------------------------------------------------------------------------- receive path details

PEER: Address = ("127.0.0.1", 40002)
LOUD = g711.ulaw_encode(tone_frames(1000, 20000)(0))
QUIET = g711.ulaw_encode(bytes(2 * FRAME_SAMPLES))


def clear_session() -> MediaSession:
    """A session that fell back to clear audio ("prefer", the peer never answered Hello)."""
    session = MediaSession(MediaConfig(policy="prefer"), cache=MemoryZidCache())
    session.configure("PCMU", 0, 101)
    session.set_remote(PEER, now=0.0)
    session.start(0.0)
    session.handle_timer(100.0)
    session.allow_clear()
    session.datagrams_to_send()
    assert session.security == "clear"
    return session


def rtp(seq: int, payload: bytes, *, first: int = 0x80, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", first, marker << 7, seq, seq * FRAME_SAMPLES, 7) + payload


def peak(pcm: bytes) -> int:
    samples: tuple[int, ...] = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return max(abs(v) for v in samples)


def test_rtp_padding_is_removed_and_a_zero_padding_count_dropped() -> None:
    session = clear_session()
    session.receive_datagram(rtp(1, LOUD + b"\0\0\3", first=0xA0), PEER, 100.0)
    assert session.stats.packets_received == 1
    session.receive_datagram(rtp(2, LOUD[:-1] + b"\0", first=0xA0), PEER, 100.02)
    assert session.stats.packets_received == 1
    assert session.stats.dropped == 1


def test_a_new_talk_spurt_does_not_replay_the_end_of_the_last_one() -> None:
    session = clear_session()
    for n in range(100):  # jittery arrivals: the buffer grows to 4 frames
        late = 0.06 if n % 10 == 0 else 0.0
        session.receive_datagram(rtp(n, LOUD), PEER, 100.0 + n * 0.02 + late)
        session.pull_audio(0.0)
    for _ in range(3):  # the 3 frames still buffered play: the buffer is empty
        session.pull_audio(0.0)
    played = []
    for k in range(10):  # a silent spurt, anchored 3 frames of silence deep
        n = 130 + k
        session.receive_datagram(rtp(n, QUIET, marker=k == 0), PEER, 100.0 + n * 0.02)
        played.append(session.pull_audio(0.0))
    # The 3.75 ms still in the concealer's delay line end the loud spurt at once; the silent
    # spurt that follows is silent from its first sample.
    assert [peak(pcm) for pcm in played[1:]] == [0] * 9


# --------------------------------------------------------------------------- a new ZRTP stream


def security(end: MediaEnd) -> str:
    """The session's security, read fresh (no narrowing across the calls that change it)."""
    return end.session.security


def held_back_rtp(a: MediaEnd, b: MediaEnd, now: float) -> tuple[bytes, float]:
    """One SRTP packet of b's that a never received (so not a replay at a), under today's keys."""
    before = len(b.sent)
    now = talk(
        a,
        b,
        STEP,
        start=now,
        b_to_a=Wire(keep=lambda data, t: classify(data) is not PacketKind.RTP),
    )
    return [d for _, d, _ in b.sent[before:] if classify(d) is PacketKind.RTP][-1], now


def secured_pair() -> tuple[MediaEnd, MediaEnd, float]:
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    assert security(a) == security(b) == "secure"
    return a, b, now


def test_a_new_peer_stream_rekeys_by_multistream_and_keeps_the_sas() -> None:
    a, b, now = secured_pair()
    (first,) = a.of(MediaSecured)
    assert isinstance(first, MediaSecured)
    old_key_packet, now = held_back_rtp(a, b, now)
    old_hash = a.session.hello_hash

    # a restarts its stream and signals the new Hello hash; b sees it in the re-INVITE's offer,
    # a sees b's new hash in the answer.
    a.session.restart_zrtp(now)
    assert a.session.hello_hash != old_hash and security(a) == "negotiating"
    b_hash = b.session.hello_hash
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    assert b.session.hello_hash != b_hash and security(b) == "negotiating"
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    marks = len(a.sent), len(b.sent)

    # Not one RTP packet from either side until its new stream is Secured.
    for _ in range(200):
        if security(a) == security(b) == "secure":
            break
        states = security(a), security(b)
        sizes = len(a.sent), len(b.sent)
        now = talk(a, b, STEP, start=now)
        for end, size, state in zip((a, b), sizes, states, strict=True):
            if state != "secure":
                assert not [d for _, d, _ in end.sent[size:] if classify(d) is PacketKind.RTP]
    assert security(a) == security(b) == "secure"
    zrtp_types = [
        parse_packet(d).message.type_name
        for end, mark in zip((a, b), marks, strict=True)
        for _, d, _ in end.sent[mark:]
        if classify(d) is PacketKind.ZRTP
    ]
    assert "Commit" in zrtp_types and "DHPart1" not in zrtp_types  # Multistream: no DH

    now = talk(a, b, 2.0, start=now)
    # The call's SAS and event stand; audio flows both ways again.
    assert a.of(MediaSecured) == [first] and len(b.of(MediaSecured)) == 1
    assert a.session.secured == first.secured
    assert abs(dominant_frequencies(b"".join(b.played[-50:]))[0] - 1000) < 20
    assert abs(dominant_frequencies(b"".join(a.played[-50:]))[0] - 700) < 20
    assert not a.of(MediaSecurityFailed) and not b.of(MediaSecurityFailed)

    # New keys: a packet under the old ones, never seen by a, is refused.
    received, dropped = a.session.stats.packets_received, a.session.stats.dropped
    a.session.receive_datagram(old_key_packet, B_ADDR, now)
    assert a.session.stats.packets_received == received
    assert a.session.stats.dropped == dropped + 1

    # And no clear audio ever left either side.
    for end in (a, b):
        clear = {g711.ulaw_encode(end.tone(n))[:40] for n in range(len(end.played))}
        assert not any(p in data for data in rtp_sent(end) for p in clear)
        assert end.session.stats.clear_packets_sent == 0


def test_the_same_peer_hash_keeps_the_stream_and_its_keys() -> None:
    a, b, now = secured_pair()
    held, now = held_back_rtp(a, b, now)
    hashes = a.session.hello_hash, b.session.hello_hash
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    assert (a.session.hello_hash, b.session.hello_hash) == hashes
    assert security(a) == security(b) == "secure"
    assert not a.session.datagrams_to_send() and not b.session.datagrams_to_send()
    received = a.session.stats.packets_received
    a.session.receive_datagram(held, B_ADDR, now)  # the keys are the same: accepted
    assert a.session.stats.packets_received == received + 1
    # Case and the "1.10 " prefix do not make a hash new.
    a.session.set_remote(B_ADDR, hashes[1].split()[1].upper(), now=now)
    assert a.session.hello_hash == hashes[0] and security(a) == "secure"


def test_confirming_the_sas_after_a_new_stream_marks_the_call_verified() -> None:
    cache = MemoryZidCache()
    a = media_end(A_ADDR, 1000, cache=cache)
    b = media_end(B_ADDR, 700)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    a.session.restart_zrtp(now)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    talk(a, b, 2.0, start=now)
    assert security(a) == "secure"
    a.session.confirm_sas(True)
    (first,) = a.of(MediaSecured)
    assert isinstance(first, MediaSecured)
    entry = cache.load(first.secured.peer_zid)
    assert entry is not None and entry.verified


def test_restarting_a_stream_that_never_started_is_refused() -> None:
    a, _ = media_pair()
    with pytest.raises(LocalProtocolError):
        a.session.restart_zrtp(0.0)


# --------------------------------------------------------------------------- under attack


def secured_pair_with(policy: Policy) -> tuple[MediaEnd, MediaEnd, float]:
    a = media_end(A_ADDR, 1000, policy)
    b = media_end(B_ADDR, 700, policy)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 2.0)
    assert security(a) == security(b) == "secure"
    return a, b, now


def peer_zrtp(b: MediaEnd, message: Message, ahead: int = 1) -> bytes:
    """`message` in a ZRTP packet as b would send it next: its SSRC, its next sequence."""
    last = [parse_packet(d) for _, d, _ in b.sent if classify(d) is PacketKind.ZRTP][-1]
    return bytes(ZrtpPacket((last.sequence + ahead) & 0xFFFF, last.ssrc, message))


def no_clear_audio(end: MediaEnd) -> None:
    """Not one RTP packet carried the end's own tone unencrypted."""
    assert end.session.stats.clear_packets_sent == 0
    clear = {g711.ulaw_encode(end.tone(n))[:40] for n in range(len(end.played))}
    assert not any(p in data for data in rtp_sent(end) for p in clear)


@pytest.mark.parametrize("policy", ["require", "prefer"])
def test_an_error_after_secure_is_ignored_under_both_policies(policy: Policy) -> None:
    """One unauthenticated Error (valid CRC, the peer's SSRC and address) used to end a
    secured call, and under "prefer" to switch it to clear RTP. It is dropped and counted."""
    a, b, now = secured_pair_with(policy)
    sas = a.session.secured
    a.session.receive_datagram(peer_zrtp(b, Error(0x20)), B_ADDR, now)
    now = talk(a, b, 2.0, start=now)
    assert security(a) == security(b) == "secure" and a.session.secured == sas
    assert not a.of(MediaSecurityLost) and not a.of(MediaSecurityFailed)
    assert a.session.stats.drops["zrtp_after_secure"] == 1
    assert abs(dominant_frequencies(b"".join(a.played[-50:]))[0] - 700) < 20
    no_clear_audio(a)


def test_zrtp_from_another_address_after_secure_is_dropped_before_the_session() -> None:
    a, b, now = secured_pair_with("require")
    a.session.receive_datagram(peer_zrtp(b, Error(0x20)), ("127.0.0.2", 40002), now)
    assert a.session.stats.drops["zrtp_source"] == 1 and security(a) == "secure"


@pytest.mark.parametrize("policy", ["require", "prefer"])
def test_an_authenticated_goclear_stops_audio_both_ways_and_never_goes_clear(
    policy: Policy,
) -> None:
    """The peer's GoClear with a good MAC (§4.7.2) is refused with Error 0x100, and the call
    has lost its security: no audio leaves or plays from then on, clear or not."""
    a, b, now = secured_pair_with(policy)
    zrtp, secured = a.session.zrtp, a.session.secured
    assert zrtp.secured is not None and zrtp._exchange.keys is not None and secured is not None
    keys = zrtp._exchange.keys  # the peer's MAC key: what only the real peer holds
    peer_key = keys.mac_key_r if secured.role == "initiator" else keys.mac_key_i
    clear_mac = hmac.new(peer_key, b"GoClear ", "sha256").digest()[:8]
    a.session.receive_datagram(peer_zrtp(b, GoClear(clear_mac)), B_ADDR, now)
    a.drain()
    (lost,) = a.of(MediaSecurityLost)
    assert isinstance(lost, MediaSecurityLost) and "GoClear" in lost.reason
    assert security(a) == "lost"
    replies = [parse_packet(d).message for d, _ in a.session.datagrams_to_send()]
    assert replies == [Error(0x100)]
    mark, played = len(a.sent), len(a.played)
    now = talk(a, b, 2.0, start=now)
    assert not [d for _, d, _ in a.sent[mark:] if classify(d) in (PacketKind.RTP, PacketKind.RTCP)]
    assert max(peak(f) for f in a.played[played + 10 :]) == 0  # nothing of b's plays
    assert a.session.stats.drops["rtp_unkeyed"] > 0
    assert security(b) == "secure"  # b ignores an Error after SECURE
    no_clear_audio(a)
    no_clear_audio(b)


@pytest.mark.parametrize("policy", ["require", "prefer"])
def test_a_new_stream_that_fails_after_secure_loses_security_never_clear(policy: Policy) -> None:
    """A re-INVITE with a new a=zrtp-hash whose exchange never completes (the new ZRTP is
    dropped on the path): under "prefer" too the call stays silent and is reported lost."""
    a, b, now = secured_pair_with(policy)
    a.session.restart_zrtp(now)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    no_zrtp: Keep = lambda data, t: classify(data) is not PacketKind.ZRTP  # noqa: E731
    now = talk(a, b, 30.0, start=now, a_to_b=Wire(keep=no_zrtp), b_to_a=Wire(keep=no_zrtp))
    assert security(a) == security(b) == "lost"
    assert a.of(MediaSecurityLost) and b.of(MediaSecurityLost)
    assert not a.of(MediaSecurityFailed) and not b.of(MediaSecurityFailed)
    no_clear_audio(a)
    no_clear_audio(b)


def test_lost_security_comes_back_with_a_new_stream() -> None:
    """After a loss, a new a=zrtp-hash starts a Multistream exchange; once it is Secured,
    the call's SAS is reported again and audio flows (encrypted) again."""
    a, b, now = secured_pair_with("require")
    first = a.session.secured
    a.session.restart_zrtp(now)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    no_zrtp: Keep = lambda data, t: classify(data) is not PacketKind.ZRTP  # noqa: E731
    now = talk(a, b, 30.0, start=now, a_to_b=Wire(keep=no_zrtp), b_to_a=Wire(keep=no_zrtp))
    assert security(a) == "lost"
    a.session.restart_zrtp(now)
    b.session.restart_zrtp(now)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=now)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=now)
    now = talk(a, b, 3.0, start=now)
    assert security(a) == security(b) == "secure"
    assert first is not None
    assert a.of(MediaSecured) == [MediaSecured(first), MediaSecured(first)]
    assert abs(dominant_frequencies(b"".join(a.played[-50:]))[0] - 700) < 20
    no_clear_audio(a)


def test_a_zrtp_looking_datagram_does_not_move_the_peer_address() -> None:
    """Before keys exist, only ZRTP packets the session took move the peer's address: not a
    datagram with the ZRTP cookie and a bad CRC, nor a well-formed Hello that does not match
    the a=zrtp-hash, from another address."""
    a, b = media_pair()
    a.session.start(0.0)
    b.session.start(0.0)
    evil: Address = ("127.0.0.2", 6666)
    junk = b"\x10\x00\x00\x01ZRTP" + bytes(40)
    a.session.receive_datagram(junk, evil, 0.0)
    hello = media_end(evil, 1).session
    hello.set_remote(A_ADDR, now=0.0)
    hello.start(0.0)
    forged = next(d for d, _ in hello.datagrams_to_send() if classify(d) is PacketKind.ZRTP)
    a.session.receive_datagram(forged, evil, 0.0)
    assert a.session.remote == B_ADDR and not a.of(MediaPeerMoved)
    assert a.session.stats.drops["zrtp_crc"] == 1
    assert a.session.stats.drops["zrtp_unauthenticated"] == 1
    talk(a, b, 2.0)
    assert security(a) == security(b) == "secure" and a.session.remote == B_ADDR


def test_rtcp_from_another_port_moves_only_the_rtcp_destination() -> None:
    """The peer declined rtcp-mux and sends its RTCP from its RTCP port to our RTP port (as
    linphonec 5.3 does): authenticated SRTCP from there must not move our RTP destination."""
    a = media_end(A_ADDR, 1000)
    b = media_end(B_ADDR, 700)
    b_rtcp: Address = (B_ADDR[0], B_ADDR[1] + 1)
    a.session.set_remote(B_ADDR, b.session.hello_hash, rtcp=b_rtcp, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)  # b sends its RTCP to our RTP port
    a.session.start(0.0)
    b.session.start(0.0)
    no_rtcp: Keep = lambda data, t: classify(data) is not PacketKind.RTCP  # noqa: E731
    now = talk(a, b, 6.0, b_to_a=Wire(keep=no_rtcp))
    rtcp = [d for _, d, _ in b.sent if classify(d) is PacketKind.RTCP]
    assert rtcp and a.session.stats.rtcp_received == 0
    for data in rtcp:  # they arrive from b's RTCP port
        a.session.receive_datagram(data, b_rtcp, now)
    assert a.session.stats.rtcp_received == len(rtcp)
    assert a.session.remote == B_ADDR and not a.of(MediaPeerMoved)
    mark = len(a.sent)
    talk(a, b, 0.2, start=now)
    assert {addr for _, d, addr in a.sent[mark:] if classify(d) is PacketKind.RTP} == {B_ADDR}


def srtcp_indices(end: MediaEnd, to: Address, short_from: float) -> list[int]:
    """The SRTCP index of each report `end` sent to `to`: with 10-byte tags before
    `short_from`, 4-byte ones from then on."""
    found = []
    for t, data, addr in end.sent:
        if addr == to and classify(data) is PacketKind.RTCP:
            tag_len = 10 if t < short_from else 4
            found.append(int.from_bytes(data[-tag_len - 4 : -tag_len], "big") & 0x7FFFFFFF)
    return found


def hs32_pair() -> tuple[MediaEnd, MediaEnd]:
    """a leaves the SRTCP tag length open; b uses 4 bytes under HS32, as Linphone does."""
    hs32 = ZrtpConfig(auth_tags=("HS32",))
    a = MediaEnd(
        MediaSession(MediaConfig(zrtp=hs32), cache=MemoryZidCache()), A_ADDR, tone_frames(1000)
    )
    like_linphone = MediaConfig(zrtp=hs32, srtcp_tag_len=4)
    b = MediaEnd(MediaSession(like_linphone, cache=MemoryZidCache()), B_ADDR, tone_frames(700))
    for end in (a, b):
        end.session.configure("PCMU", 0, 101)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    return a, b


def test_switching_to_the_peers_srtcp_tag_never_restarts_the_index() -> None:
    """a's first reports go out with 10-byte tags (index 1, 2 ...); once b's 4-byte-tag SRTCP
    has authenticated, a follows with 4-byte tags and the next index, never 1 again."""
    a, b = hs32_pair()
    # b's first reports are held back so that a sends some with 10-byte tags first
    now = talk(a, b, 11.0, b_to_a=Wire(keep=lambda d, t: classify(d) is not PacketKind.RTCP))
    now = talk(a, b, 12.0, start=now)
    first_heard = min(
        t for t, d, addr in b.sent if addr == A_ADDR and classify(d) is PacketKind.RTCP and t > 11
    )
    indices = srtcp_indices(a, B_ADDR, short_from=first_heard + STEP / 2)
    assert len(indices) >= 4 and indices == list(range(1, len(indices) + 1)), indices
    assert b.session.stats.rtcp_received >= 1  # a's 4-byte tags authenticate at b


def test_a_truncated_copy_of_accepted_srtcp_is_a_replay() -> None:
    """A copy of one of b's accepted reports cut to a 4-byte tag (still a valid HMAC prefix),
    sent from elsewhere, is refused as a replay and moves nothing."""
    a = media_end(A_ADDR, 1000)
    b = media_end(B_ADDR, 700)
    hs32 = MediaConfig(zrtp=ZrtpConfig(auth_tags=("HS32",)))
    a = MediaEnd(MediaSession(hs32, cache=MemoryZidCache()), A_ADDR, tone_frames(1000))
    b = MediaEnd(MediaSession(hs32, cache=MemoryZidCache()), B_ADDR, tone_frames(700))
    for end in (a, b):
        end.session.configure("PCMU", 0, 101)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    a.session.start(0.0)
    b.session.start(0.0)
    now = talk(a, b, 6.0)
    accepted = [d for _, d, addr in b.sent if addr == A_ADDR and classify(d) is PacketKind.RTCP]
    assert accepted and a.session.stats.rtcp_received == len(accepted)
    received = a.session.stats.rtcp_received
    a.session.receive_datagram(accepted[-1][:-6], ("127.0.0.2", 7777), now)
    assert a.session.stats.rtcp_received == received
    assert a.session.remote == B_ADDR and not a.of(MediaPeerMoved)
    assert a.session.stats.drops["srtcp_auth"] + a.session.stats.drops["srtcp_replay"] == 1


def test_an_sr_stamped_after_the_report_time_gives_a_zero_dlsr_not_a_dead_thread() -> None:
    """The SR's arrival is the kernel's stamp, which can be a little later than the wake-up's
    `now` that times the report (the datagram came in between): the delay since it is then
    0, not a negative DLSR that the report block cannot carry (that raised and killed the
    media thread, ending the call)."""
    session = clear_session()
    session.receive_datagram(rtp(1, LOUD), PEER, 104.9)
    sr = SenderReport(
        ssrc=7,
        ntp_timestamp=0x1234_5678_9ABC_DEF0,
        rtp_timestamp=0,
        packet_count=1,
        octet_count=160,
    )
    session.receive_datagram(serialize_rtcp([sr]), PEER, 105.01)
    session.handle_timer(105.0)  # the report timer, due at 105
    (report, *_) = parse_rtcp(session.datagrams_to_send()[-1][0])
    assert isinstance(report, SenderReport | ReceiverReport)
    (block,) = report.reports
    assert (block.ssrc, block.lsr, block.dlsr) == (7, 0x5678_9ABC, 0)
