"""Post-quantum calls through two media sessions: the fragmented Commit and DHPart1 share the
media port with RTP (RFC 7983, first byte 0x11), and SRTP runs on AES-GCM under "GCM "."""

from __future__ import annotations

import pytest

from pidphone.app.media_events import MediaSecured
from pidphone.audio.analysis import dominant_frequencies
from pidphone.rtp import PacketKind, classify
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.fragment import FRAGMENT_FIRST_BYTE
from tests.harness import MediaEnd, Wire, media_pair, talk


def secured(end: MediaEnd) -> MediaSecured:
    (event,) = end.of(MediaSecured)
    assert isinstance(event, MediaSecured)
    return event


@pytest.mark.parametrize(("ka", "auth"), [("X3M3", "GCM"), ("MLK3", "HS80"), ("MLK2", "GCM")])
def test_post_quantum_call_carries_srtp_audio_both_ways(ka: str, auth: str) -> None:
    zrtp = ZrtpConfig(key_agreements=(ka, "X255"), auth_tags=(auth,))
    a, b = media_pair(zrtp=zrtp)
    a.session.start(0.0)
    b.session.start(0.0)
    talk(a, b, 6.0)  # past the first RTCP report (5 s)

    sa, sb = secured(a).secured, secured(b).secured
    assert sa.sas == sb.sas and sa.key_agreement == ka and sa.post_quantum and sb.post_quantum
    assert (sa.cipher, sa.hash, sa.auth_tag) == ("AES3", "S512", auth)
    assert a.session.security == b.session.security == "secure"
    fragments = [d for _, d, _ in a.sent + b.sent if d[0] == FRAGMENT_FIRST_BYTE]
    assert bool(fragments) == (ka != "MLK2")  # an MLK2 Commit (1300 bytes) fits whole
    assert all(classify(d) is PacketKind.ZRTP for d in fragments)
    assert max(len(d) for _, d, _ in a.sent + b.sent) <= zrtp.mtu
    assert abs(dominant_frequencies(b"".join(b.played[-50:]))[0] - 1000) < 20
    assert abs(dominant_frequencies(b"".join(a.played[-50:]))[0] - 700) < 20
    assert a.session.stats.rtcp_received >= 1 and b.session.stats.rtcp_received >= 1
    assert a.session.stats.clear_packets_sent == b.session.stats.clear_packets_sent == 0
    # a GCM packet carries a 16-byte tag: RTP of 12 + 160 payload bytes + the tag
    rtp = [d for _, d, _ in a.sent if classify(d) is PacketKind.RTP]
    assert {len(d) for d in rtp[-10:]} == {12 + 160 + (16 if auth == "GCM" else 10)}


def test_fragments_lost_and_reordered_on_the_media_port_still_secure() -> None:
    zrtp = ZrtpConfig(key_agreements=("X3M3",), auth_tags=("GCM",))
    a, b = media_pair(zrtp=zrtp)
    a.session.start(0.0)
    b.session.start(0.0)
    lossy = {"loss": [False, True, False, False], "hold": [True, False, False]}
    talk(a, b, 8.0, a_to_b=Wire(**lossy), b_to_a=Wire(**lossy))  # type: ignore[arg-type]
    assert secured(a).secured.sas == secured(b).secured.sas
    assert abs(dominant_frequencies(b"".join(b.played[-50:]))[0] - 1000) < 20
