"""SrtpContext behaviour: replay window, rollover, tampering, wrong keys, SRTCP details."""

from __future__ import annotations

import hmac
import struct
from hashlib import sha1

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.srtp import PROFILES, SrtpContext, SrtpError
from pidphone.srtp.gcm import SrtpGcmContext
from pidphone.srtp.kdf import derive_session_keys

P80 = "AES_CM_128_HMAC_SHA1_80"
KEY = bytes(range(16))
SALT = bytes(range(50, 64))
SSRC = 0xCAFEBABE


def rtp(seq: int, payload: bytes = b"\x55" * 160, *, ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, 0, ssrc) + payload


def pair(profile: str = P80, **kw: int) -> tuple[SrtpContext, SrtpContext]:
    key = bytes(range(PROFILES[profile].key_len))
    return SrtpContext(profile, key, SALT, **kw), SrtpContext(profile, key, SALT, **kw)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_round_trip_and_tag_length(profile: str) -> None:
    tx, rx = pair(profile)
    packet = rtp(7)
    protected = tx.protect(packet)
    assert len(protected) == len(packet) + PROFILES[profile].srtp_tag_len
    assert protected[12:172] != packet[12:]
    assert rx.unprotect(protected) == packet
    report = struct.pack("!BBHI", 0x80, 201, 1, SSRC)
    srtcp = tx.protect_rtcp(report)
    assert len(srtcp) == len(report) + 4 + 10
    assert rx.unprotect_rtcp(srtcp) == report


def test_replay_is_rejected() -> None:
    tx, rx = pair()
    protected = tx.protect(rtp(100))
    rx.unprotect(protected)
    with pytest.raises(SrtpError, match="replayed") as err:
        rx.unprotect(protected)
    assert err.value.reason == "replay"


def test_window_accepts_late_packets_and_rejects_too_old_ones() -> None:
    tx, rx = pair(replay_window=128)
    protected = [tx.protect(rtp(1000 + i)) for i in range(300)]
    rx.unprotect(protected[299])
    rx.unprotect(protected[299 - 127])  # the oldest index the window still covers
    with pytest.raises(SrtpError) as err:
        rx.unprotect(protected[299 - 128])
    assert err.value.reason == "replay"
    for i in range(299 - 126, 299):
        assert rx.unprotect(protected[i]) == rtp(1000 + i)


def test_a_wider_window() -> None:
    tx, rx = pair(replay_window=1024)
    protected = [tx.protect(rtp(i)) for i in range(1100)]
    rx.unprotect(protected[1099])
    assert rx.unprotect(protected[1099 - 1000]) == rtp(1099 - 1000)


def test_rollover_with_late_packet_from_before_the_wrap() -> None:
    tx, rx = pair()
    seqs = [65_530 + i for i in range(20)]  # wraps after 65,535
    protected = {s: tx.protect(rtp(s)) for s in seqs}
    assert tx.roc(SSRC) == 1
    for s in seqs:
        if s != 65_534:
            rx.unprotect(protected[s])
    assert rx.roc(SSRC) == 1
    assert rx.unprotect(protected[65_534]) == rtp(65_534)  # ROC 0, after ROC 1 packets


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_single_bit_flip_is_rejected(profile: str) -> None:
    tx, rx = pair(profile)
    rx.unprotect(tx.protect(rtp(1)))
    protected = tx.protect(rtp(2, b"hello"))
    for bit in range(len(protected) * 8):
        forged = bytearray(protected)
        forged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SrtpError):
            rx.unprotect(bytes(forged))
    assert rx.unprotect(protected) == rtp(2, b"hello")


def test_wrong_key_and_wrong_salt_are_rejected() -> None:
    tx, _ = pair()
    protected = tx.protect(rtp(1))
    report = tx.protect_rtcp(struct.pack("!BBHI", 0x80, 201, 1, SSRC))
    for key, salt in ((bytes(16), SALT), (bytes(range(16)), bytes(14))):
        with pytest.raises(SrtpError) as err:
            SrtpContext(P80, key, salt).unprotect(protected)
        assert err.value.reason == "auth"
        with pytest.raises(SrtpError) as err:
            SrtpContext(P80, key, salt).unprotect_rtcp(report)
        assert err.value.reason == "auth"


def test_forgery_does_not_move_the_window() -> None:
    tx, rx = pair()
    rx.unprotect(tx.protect(rtp(10)))
    forged = bytearray(tx.protect(rtp(20_000)))
    forged[-1] ^= 1
    with pytest.raises(SrtpError):
        rx.unprotect(bytes(forged))
    assert rx.roc(SSRC) == 0
    assert rx.unprotect(tx.protect(rtp(11))) == rtp(11)


def test_forgery_from_an_unknown_ssrc_creates_no_state() -> None:
    _, rx = pair()
    with pytest.raises(SrtpError):
        rx.unprotect(rtp(1, bytes(40), ssrc=99))
    assert "99" not in repr(rx)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80" * 11, rtp(1, b"")[:12] + b"\x00" * 5, b"\x8f" + rtp(1, b"")[1:] + bytes(30)],
)
def test_short_packets(data: bytes) -> None:
    _, rx = pair()
    with pytest.raises(SrtpError) as err:
        rx.unprotect(data)
    assert err.value.reason in {"short", "auth"}
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(data)


def test_short_rtp_to_protect() -> None:
    tx, _ = pair()
    with pytest.raises(SrtpError, match="shorter than its header"):
        tx.protect(b"\x80\x00")
    with pytest.raises(SrtpError, match="extension"):
        tx.protect(b"\x90" + rtp(1, b"")[1:])
    with pytest.raises(SrtpError, match="shorter than its header"):
        tx.protect_rtcp(b"\x80\xc9\x00")


def test_header_with_csrcs_and_extension_stays_clear() -> None:
    tx, rx = pair()
    header = (
        struct.pack("!BBHII", 0x92, 8, 5, 0, SSRC)
        + struct.pack("!II", 1, 2)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
    )
    packet = header + b"voice" * 10
    protected = tx.protect(packet)
    assert protected.startswith(header)
    assert rx.unprotect(protected) == packet


def test_streams_are_kept_per_ssrc() -> None:
    tx, rx = pair()
    a = [tx.protect(rtp(65_535 + i, ssrc=1)) for i in range(3)]
    b = [tx.protect(rtp(3 + i, ssrc=2)) for i in range(3)]
    for x, y in zip(a, b, strict=True):
        rx.unprotect(x)
        rx.unprotect(y)
    assert (rx.roc(1), rx.roc(2)) == (1, 0)


def test_srtcp_replay_and_tamper() -> None:
    tx, rx = pair()
    report = struct.pack("!BBHI", 0x81, 200, 6, SSRC) + bytes(20)
    first, second = tx.protect_rtcp(report), tx.protect_rtcp(report)
    assert first[-14:-10] == b"\x80\x00\x00\x01" and second[-14:-10] == b"\x80\x00\x00\x02"
    assert rx.unprotect_rtcp(second) == report
    assert rx.unprotect_rtcp(first) == report
    with pytest.raises(SrtpError) as err:
        rx.unprotect_rtcp(first)
    assert err.value.reason == "replay"
    forged = bytearray(tx.protect_rtcp(report))
    forged[10] ^= 0x40
    with pytest.raises(SrtpError) as err:
        rx.unprotect_rtcp(bytes(forged))
    assert err.value.reason == "auth"


def test_srtcp_without_e_flag_is_authenticated_but_clear() -> None:
    keys = derive_session_keys(KEY, SALT, rtcp=True)
    report = struct.pack("!BBHI", 0x81, 201, 1, SSRC)
    m = report + (5).to_bytes(4, "big")
    packet = m + hmac.new(keys.auth, m, sha1).digest()[:10]
    assert SrtpContext(P80, KEY, SALT).unprotect_rtcp(packet) == report


def test_srtcp_tag_length_override_for_32_bit_peers() -> None:
    tx, rx = pair("AES_CM_128_HMAC_SHA1_32", srtcp_tag_len=4)
    report = struct.pack("!BBHI", 0x81, 201, 1, SSRC)
    srtcp = tx.protect_rtcp(report)
    assert len(srtcp) == len(report) + 4 + 4
    assert rx.unprotect_rtcp(srtcp) == report


@settings(max_examples=200, deadline=None)
@given(
    profile=st.sampled_from(list(PROFILES)),
    payload=st.binary(max_size=1500),
    seq=st.integers(0, 65535),
    ssrc=st.integers(0, 2**32 - 1),
)
def test_random_payloads_round_trip(profile: str, payload: bytes, seq: int, ssrc: int) -> None:
    tx, rx = pair(profile)
    packet = rtp(seq, payload, ssrc=ssrc)
    assert rx.unprotect(tx.protect(packet)) == packet
    report = struct.pack("!BBHI", 0x81, 202, 0, ssrc) + payload
    assert rx.unprotect_rtcp(tx.protect_rtcp(report)) == report


P32 = "AES_CM_128_HMAC_SHA1_32"


def srtcp_index(packet: bytes, tag_len: int) -> int:
    return int.from_bytes(packet[-tag_len - 4 : -tag_len], "big") & 0x7FFFFFFF


def test_srtcp_tag_length_is_learned_once_in_one_stream_state() -> None:
    """Under a 32-bit profile a receiver that leaves the SRTCP tag length open tries 10 bytes,
    then 4; the first that authenticates is kept. Whichever it is, the replay window is the
    stream's own: a copy of an accepted packet cut to a 4-byte tag (its HMAC's first four
    bytes are a valid 4-byte tag) is a replay, and after 10 has been seen 4 is never tried."""
    tx, rx = pair(P32)
    report = struct.pack("!BBHI", 0x81, 201, 1, SSRC)
    first = tx.protect_rtcp(report)
    assert rx.unprotect_rtcp(first) == report and rx.srtcp_tag_len == 10
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(first[:-6])
    second = tx.protect_rtcp(report)
    with pytest.raises(SrtpError):  # fresh, but 4-byte tags are no longer taken
        rx.unprotect_rtcp(second[:-6])

    tx4, rx_open = pair(P32, srtcp_tag_len=4)
    short = tx4.protect_rtcp(report)
    assert rx_open.unprotect_rtcp(short) == report and rx_open.srtcp_tag_len == 4
    with pytest.raises(SrtpError) as again:
        rx_open.unprotect_rtcp(short)
    assert again.value.reason == "replay"


def test_following_the_peers_srtcp_tag_keeps_the_index() -> None:
    """A send context that switches to 4-byte SRTCP tags goes on with its index: the same
    key never encrypts two packets under one index (keystream reuse)."""
    tx, _ = pair(P32)
    report = struct.pack("!BBHI", 0x81, 201, 1, SSRC)
    indices = [srtcp_index(tx.protect_rtcp(report), 10) for _ in range(3)]
    tx.use_srtcp_tag_len(4)
    indices += [srtcp_index(tx.protect_rtcp(report), 4) for _ in range(3)]
    assert indices == [1, 2, 3, 4, 5, 6]
    with pytest.raises(LocalProtocolError):
        pair(P80)[0].use_srtcp_tag_len(4)


def both_kinds_of_context(kind: str) -> tuple[SrtpContext | SrtpGcmContext, ...]:
    if kind == "gcm":
        key = bytes(range(16))
        return tuple(
            SrtpGcmContext("AEAD_AES_128_GCM", key, SALT[:12], replay_window=64) for _ in "ab"
        )
    return pair(replay_window=64)


@pytest.mark.parametrize("kind", ["cm", "gcm"])
@pytest.mark.parametrize("rtcp", [False, True], ids=["srtp", "srtcp"])
def test_one_replay_window_for_srtp_srtcp_and_gcm(kind: str, rtcp: bool) -> None:
    """AES-CM and AES-GCM, SRTP and SRTCP keep the same §3.3.2 window: the newest index, the
    64 before it once each, nothing older, and no state from a packet that failed its tag."""
    tx, rx = both_kinds_of_context(kind)
    report = struct.pack("!BBHI", 0x80, 201, 1, SSRC)
    sent = [tx.protect_rtcp(report) if rtcp else tx.protect(rtp(i)) for i in range(100)]
    unprotect = rx.unprotect_rtcp if rtcp else rx.unprotect

    def reason(packet: bytes) -> str | None:
        try:
            unprotect(packet)
        except SrtpError as error:
            return error.reason
        return None

    assert reason(sent[90]) is None
    assert reason(sent[27]) is None  # 63 behind the newest: inside the window
    assert reason(sent[26]) == "replay"  # 64 behind: too old to tell
    assert reason(sent[27]) == "replay"
    forged = sent[95][:-1] + bytes([sent[95][-1] ^ 1])
    assert reason(forged) == "auth"
    assert reason(sent[95]) is None  # the forgery moved nothing
    assert reason(sent[90]) == "replay"
