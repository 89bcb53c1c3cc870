"""Our SRTP against libsrtp (pylibsrtp) as an oracle, both ways, for the AES-128 profiles.

pylibsrtp 1.0 offers only the AES-128 counter-mode profiles (and GCM), so the AES-256 ones are
covered by the RFC 6188 and libsrtp vectors in test_srtp_vectors.py.
"""

from __future__ import annotations

import struct

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.srtp import SrtpContext

KEY = bytes(range(1, 17))
SALT = bytes(range(100, 114))
SSRC = 0x1234ABCD

LIB_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


def lib_session(profile: str, *, outbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=KEY + SALT,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        ),
        srtp_profile=LIB_PROFILES[profile],
    )
    return pylibsrtp.Session(policy)


def rtp(seq: int, payload: bytes, *, ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


def rtcp_rr(n: int) -> bytes:
    # A receiver report with one report block; `n` varies the block's content.
    block = struct.pack("!IIIIII", 0x55667788, n, n * 3, n * 5, n * 7, n * 11)
    return struct.pack("!BBHI", 0x81, 201, 7, SSRC) + block


def delivery_order(count: int) -> list[int]:
    """In order, but every 7th pair swapped and every 50th packet lost."""
    order = list(range(count))
    for i in range(0, count - 1, 7):
        order[i], order[i + 1] = order[i + 1], order[i]
    return [i for i in order if i % 50 != 49]


ROC_RUN = 70_000
"""More than 65,536 packets from sequence 65,000: the rollover counter wraps twice."""


@pytest.mark.parametrize("profile", list(LIB_PROFILES))
def test_ours_to_libsrtp_across_two_rollovers(profile: str) -> None:
    ours = SrtpContext(profile, KEY, SALT)
    lib = lib_session(profile, outbound=False)
    packets = [rtp(65_000 + i, i.to_bytes(4, "big") * 5) for i in range(ROC_RUN)]
    protected = [ours.protect(p) for p in packets]
    assert ours.roc(SSRC) == 2
    for i in delivery_order(ROC_RUN):
        assert lib.unprotect(protected[i]) == packets[i]


@pytest.mark.parametrize("profile", list(LIB_PROFILES))
def test_libsrtp_to_ours_across_two_rollovers(profile: str) -> None:
    lib = lib_session(profile, outbound=True)
    ours = SrtpContext(profile, KEY, SALT)
    packets = [rtp(65_000 + i, i.to_bytes(4, "big") * 5) for i in range(ROC_RUN)]
    protected = [lib.protect(p) for p in packets]
    for i in delivery_order(ROC_RUN):
        assert ours.unprotect(protected[i]) == packets[i]
    assert ours.roc(SSRC) == 2


@pytest.mark.parametrize("profile", list(LIB_PROFILES))
def test_rtcp_both_ways(profile: str) -> None:
    ours_tx, ours_rx = SrtpContext(profile, KEY, SALT), SrtpContext(profile, KEY, SALT)
    lib_tx, lib_rx = lib_session(profile, outbound=True), lib_session(profile, outbound=False)
    reports = [rtcp_rr(n) for n in range(300)]
    from_ours = [ours_tx.protect_rtcp(r) for r in reports]
    from_lib = [lib_tx.protect_rtcp(r) for r in reports]
    assert from_ours == from_lib  # same keys, same index sequence: the very same bytes
    for i in delivery_order(len(reports)):
        assert lib_rx.unprotect_rtcp(from_ours[i]) == reports[i]
        assert ours_rx.unprotect_rtcp(from_lib[i]) == reports[i]


@pytest.mark.parametrize("profile", list(LIB_PROFILES))
def test_same_bytes_as_libsrtp(profile: str) -> None:
    ours = SrtpContext(profile, KEY, SALT)
    lib = lib_session(profile, outbound=True)
    for seq in (0, 1, 2, 1000, 40_000, 65_535, 0, 5):
        packet = rtp(seq, bytes([seq & 0xFF]) * 160)
        assert ours.protect(packet) == lib.protect(packet)


rtp_packets = st.builds(
    lambda csrcs, ext, payload, marker_pt, seq, ssrc: (
        bytes([0x80 | (0x10 if ext is not None else 0) | len(csrcs), marker_pt])
        + struct.pack("!HII", seq, 12345, ssrc)
        + b"".join(c.to_bytes(4, "big") for c in csrcs)
        + (
            b""
            if ext is None
            else struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext[: len(ext) // 4 * 4]
        )
        + payload
    ),
    st.lists(st.integers(0, 2**32 - 1), max_size=15),
    st.none() | st.binary(max_size=40),
    st.binary(max_size=300),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=200, deadline=None)
@given(packet=rtp_packets, profile=st.sampled_from(list(LIB_PROFILES)))
def test_random_packets_match_libsrtp_both_ways(packet: bytes, profile: str) -> None:
    ours = SrtpContext(profile, KEY, SALT)
    protected = ours.protect(packet)
    assert lib_session(profile, outbound=False).unprotect(protected) == packet
    assert lib_session(profile, outbound=True).protect(packet) == protected
    assert SrtpContext(profile, KEY, SALT).unprotect(protected) == packet
