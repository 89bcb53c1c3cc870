"""Offer/answer (RFC 3264) for pidphone's audio stream: offers, answers, negotiation, hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError
from pidphone.sdp import (
    CODECS,
    DEFAULT_CODECS,
    DIRECTIONS,
    MediaParams,
    NoCommonCodec,
    SdpParseError,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate,
    with_direction,
)
from tests.test_sdp import LINPHONE_ANSWER, LINPHONE_OFFER

HASH_A = "ab" * 32
HASH_B = "cd" * 32


G711 = ("PCMU", "PCMA")


def offer(**kwargs: object) -> SessionDescription:
    args: dict[str, object] = {
        "codecs": G711,
        "address": ("192.0.2.1", 4000),
        "zrtp_hash": HASH_A,
        "session_id": 7,
        "session_version": 1,
    }
    args.update(kwargs)
    return build_offer(**args)  # type: ignore[arg-type]


def answer(to: SessionDescription, **kwargs: object) -> SessionDescription:
    args: dict[str, object] = {
        "codecs": G711,
        "address": ("192.0.2.2", 5000),
        "zrtp_hash": HASH_B,
        "session_id": 9,
        "session_version": 1,
    }
    args.update(kwargs)
    return build_answer(to, **args)  # type: ignore[arg-type]


def test_offer_bytes() -> None:
    assert bytes(offer()) == (
        b"v=0\r\n"
        b"o=pidphone 7 1 IN IP4 192.0.2.1\r\n"
        b"s=pidphone\r\n"
        b"c=IN IP4 192.0.2.1\r\n"
        b"t=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 8 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=zrtp-hash:1.10 " + HASH_A.encode() + b"\r\n"
        b"a=sendrecv\r\n"
    )


def test_offer_options() -> None:
    sd = offer(
        address=("2001:db8::1", 6000),
        codecs=("PCMA",),
        zrtp_hash=None,
        direction="sendonly",
        username="alice",
    )
    assert str(sd.origin) == "alice 7 1 IN IP6 2001:db8::1"
    assert sd.media[0].formats == ("8", "101")
    assert sd.media[0].values("zrtp-hash") == ()
    assert sd.media[0].direction == "sendonly"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ("G729",)}, "unsupported codec"),
        ({"codecs": ()}, "at least one codec"),
        ({"direction": "both"}, "direction must be"),
    ],
)
def test_offer_misuse(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        offer(**kwargs)


def test_answer_to_linphone_offer() -> None:
    remote = SessionDescription.parse(LINPHONE_OFFER)
    sd = answer(remote)
    (audio,) = sd.media
    assert audio.formats == ("0", "101")
    assert audio.values("rtpmap") == ("0 PCMU/8000", "101 telephone-event/8000")
    assert audio.fmtp(101) == "0-16"
    assert audio.values("zrtp-hash") == ("1.10 " + HASH_B,)
    assert audio.direction == "sendrecv"
    assert SessionDescription.parse(bytes(sd)) == sd

    ours = negotiate(sd, remote)
    assert ours == MediaParams(
        remote_address=("127.0.0.1", 17078),
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=101,
        direction="sendrecv",
        remote_zrtp_hash="41c6d683c6e43ce9514e936d6f4e29db9ebccbf71809469d31d754b97e15e788",
        ptime=20,
    )


def test_negotiate_with_linphone_answer_picks_first_common_codec() -> None:
    local = offer(codecs=("PCMA", "PCMU"))
    params = negotiate(local, SessionDescription.parse(LINPHONE_ANSWER))
    # linphone lists opus, speex, PCMU, PCMA...: its first codec we also offered is PCMU
    assert (params.codec, params.payload_type) == ("PCMU", 0)
    assert params.remote_address == ("127.0.0.1", 17178)
    assert (
        params.remote_zrtp_hash
        == "1cc061e782acb7821e2eba471355b78cb2a47c71bfea940023e4fa62f178c9f4"
    )


def test_answer_follows_the_offer_order_and_payload_numbers() -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nt=0 0\r\n"
        b"m=audio 7000 RTP/AVP 96 0 97\r\nc=IN IP4 10.0.0.9\r\n"
        b"a=rtpmap:96 pcma/8000\r\na=rtpmap:97 telephone-event/8000\r\na=ptime:30\r\n"
    )
    sd = answer(remote, codecs=("PCMU", "PCMA"))
    assert sd.media[0].formats == ("96", "97")
    assert sd.media[0].values("rtpmap") == ("96 PCMA/8000", "97 telephone-event/8000")
    mine, theirs = negotiate(sd, remote), negotiate(remote, sd)
    assert (mine.codec, mine.payload_type, mine.telephone_event_pt) == ("PCMA", 96, 97)
    assert (theirs.codec, theirs.payload_type, theirs.telephone_event_pt) == ("PCMA", 96, 97)
    assert mine.remote_address == ("10.0.0.9", 7000)
    assert mine.ptime == 30
    assert mine.remote_zrtp_hash is None


def test_offerer_and_answerer_agree() -> None:
    o = offer(codecs=("PCMA", "PCMU"))
    a = answer(o, codecs=("PCMU", "PCMA"))
    at_offerer, at_answerer = negotiate(o, a), negotiate(a, o)
    assert at_offerer.codec == at_answerer.codec == "PCMA"
    assert at_offerer.payload_type == at_answerer.payload_type == 8
    assert at_offerer.remote_address == ("192.0.2.2", 5000)
    assert at_answerer.remote_address == ("192.0.2.1", 4000)
    assert at_offerer.remote_zrtp_hash == HASH_B
    assert at_answerer.remote_zrtp_hash == HASH_A
    assert at_offerer.telephone_event_pt == at_answerer.telephone_event_pt == 101


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "recvonly", "inactive"),
        ("sendrecv", "inactive", "inactive"),
    ],
)
def test_answer_direction_rfc3264_6_1(offered: str, wanted: str, answered: str) -> None:
    o = offer(direction=offered)
    a = answer(o, direction=wanted)
    assert a.media[0].direction == answered
    assert negotiate(a, o).direction == answered
    mirrored = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(answered, answered)
    assert negotiate(o, a).direction == mirrored


def test_session_level_direction_applies_when_media_has_none() -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 7000 RTP/AVP 0\r\n"
    )
    assert answer(remote).media[0].direction == "recvonly"


def test_other_streams_are_refused_with_port_zero() -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=video 9000 RTP/AVP 99\r\na=rtpmap:99 VP8/90000\r\n"
        b"m=audio 0 RTP/AVP 0\r\n"
        b"m=audio 7000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
        b"m=audio 7002 RTP/AVP 8\r\n"
        b"m=audio 7004 RTP/AVP 0\r\n"
    )
    sd = answer(remote)
    assert [(m.media, m.port, m.proto, m.formats) for m in sd.media] == [
        ("video", 0, "RTP/AVP", ("99",)),
        ("audio", 0, "RTP/AVP", ("0",)),
        ("audio", 0, "RTP/SAVP", ("0",)),
        ("audio", 5000, "RTP/AVP", ("8",)),
        ("audio", 0, "RTP/AVP", ("0",)),
    ]
    assert all(not m.attributes for m in sd.media if m.port == 0)
    params = negotiate(sd, remote)
    assert (params.codec, params.remote_address) == ("PCMA", ("10.0.0.1", 7002))
    assert params.telephone_event_pt is None


@pytest.mark.parametrize(
    "body",
    [
        b"m=audio 7000 RTP/AVP 96\r\na=rtpmap:96 speex/16000\r\n",
        b"m=audio 7000 RTP/AVP 96\r\na=rtpmap:96 G722/16000\r\n",
        b"m=audio 7000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/6\r\n",
        b"m=audio 7000 RTP/SAVP 0 8\r\n",
        b"m=audio 7000 RTP/AVP 96\r\na=rtpmap:96 PCMU/16000\r\n",
        b"m=video 7000 RTP/AVP 0\r\n",
        b"m=audio 0 RTP/AVP 0\r\n",
        b"",
    ],
)
def test_no_common_codec_is_488(body: bytes) -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" + body
    )
    with pytest.raises(NoCommonCodec) as info:
        answer(remote, codecs=DEFAULT_CODECS)
    assert info.value.error_status_hint == 488
    with pytest.raises(NoCommonCodec):
        negotiate(offer(codecs=DEFAULT_CODECS), remote)


def test_answer_refusing_our_stream_fails_negotiation() -> None:
    o = offer()
    refused = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    )
    with pytest.raises(NoCommonCodec):
        negotiate(o, refused)


def test_missing_connection_address_fails_negotiation() -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"
    )
    with pytest.raises(NoCommonCodec, match="connection"):
        negotiate(offer(), remote)


def test_zrtp_hash_other_versions_and_garbage_are_ignored() -> None:
    remote = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"a=zrtp-hash:1.10 " + ("EF" * 32).encode() + b"\r\n"
        b"m=audio 7000 RTP/AVP 0\r\na=zrtp-hash:1.00 " + HASH_B.encode() + b"\r\n"
        b"a=zrtp-hash:1.10 xyz\r\na=ptime:abc\r\n"
    )
    params = negotiate(offer(), remote)
    assert params.remote_zrtp_hash is None
    assert params.ptime == 20
    session_level = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"a=zrtp-hash:1.10 " + ("EF" * 32).encode() + b"\r\nm=audio 7000 RTP/AVP 0\r\n"
    )
    assert negotiate(offer(), session_level).remote_zrtp_hash == "ef" * 32


def test_hold_and_resume_reoffers() -> None:
    o = offer()
    held = with_direction(o, "sendonly", 2)
    assert held.origin.session_version == 2
    assert held.origin.session_id == o.origin.session_id
    assert held.media[0].direction == "sendonly"
    names = [a.name for a in o.media[0].attributes]
    assert [a.name for a in held.media[0].attributes] == [*names[:-1], "sendonly"]
    a = answer(held)
    assert a.media[0].direction == "recvonly"
    assert negotiate(held, a).direction == "sendonly"
    resumed = with_direction(held, "sendrecv", 3)
    assert bytes(resumed) == bytes(o).replace(b"pidphone 7 1", b"pidphone 7 3")


def test_with_direction_replaces_session_level_and_skips_refused_streams() -> None:
    sd = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=recvonly\r\n"
        b"m=video 0 RTP/AVP 99\r\nm=audio 7000 RTP/AVP 0\r\na=ptime:20\r\n"
    )
    held = with_direction(sd, "inactive", 5)
    assert held.attributes == ()
    assert held.media[0] == sd.media[0]
    assert held.media[1].direction == "inactive"
    with pytest.raises(LocalProtocolError):
        with_direction(sd, "hold", 6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["PCMU", "PCMA"]), min_size=1, max_size=2, unique=True),
    st.lists(st.sampled_from(["PCMU", "PCMA"]), min_size=1, max_size=2, unique=True),
    st.sampled_from(DIRECTIONS),
    st.sampled_from(DIRECTIONS),
)
def test_any_pair_of_pidphones_agrees(
    offered: list[str], accepted: list[str], d1: str, d2: str
) -> None:
    o = offer(codecs=offered, direction=d1)
    if not set(offered) & set(accepted):
        with pytest.raises(NoCommonCodec):
            answer(o, codecs=accepted, direction=d2)
        return
    a = answer(o, codecs=accepted, direction=d2)
    assert set(a.media[0].formats) <= set(o.media[0].formats)
    x, y = negotiate(o, a), negotiate(a, o)
    assert x.codec == y.codec
    assert x.payload_type == y.payload_type
    mirrored = {"sendonly": "recvonly", "recvonly": "sendonly"}
    assert mirrored.get(x.direction, x.direction) == y.direction


# linphonec 5.1.65's answer to a pidphone offer (0 8 101), and its hold re-offer, both taken
# from its debug log in the interop tests.
LINPHONE_ANSWER_TO_PIDPHONE = (
    b"v=0\r\n"
    b"o=linphone 1101 443 IN IP4 127.0.0.1\r\n"
    b"s=Talk\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 17078 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=zrtp-hash:1.10 bf804348907db01dadfd33a281e2dda3f3c6cde31e7e996176f6a6c78de43834\r\n"
)
LINPHONE_HOLD = LINPHONE_OFFER.replace(b"o=alice 1271 3141", b"o=linphone 1101 444").replace(
    b"a=rtcp-fb:* trr-int 1000\r\n", b"a=sendonly\r\na=rtcp-fb:* trr-int 1000\r\n"
)


def test_linphone_answer_to_our_offer() -> None:
    params = negotiate(offer(), SessionDescription.parse(LINPHONE_ANSWER_TO_PIDPHONE))
    assert params == MediaParams(
        remote_address=("127.0.0.1", 17078),
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=101,
        direction="sendrecv",
        remote_zrtp_hash="bf804348907db01dadfd33a281e2dda3f3c6cde31e7e996176f6a6c78de43834",
        ptime=20,
    )


def test_answer_to_linphone_hold() -> None:
    hold = SessionDescription.parse(LINPHONE_HOLD)
    assert hold.media[0].direction == "sendonly"
    sd = answer(hold)
    assert sd.media[0].direction == "recvonly"
    assert sd.media[0].formats == ("0", "101")
    assert negotiate(sd, hold).direction == "recvonly"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_strange_offers_give_an_answer_or_488(data: st.DataObject) -> None:
    """Whatever parses is answered or refused with NoCommonCodec; nothing else escapes."""
    raw = bytearray(LINPHONE_OFFER)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.sampled_from(b"\r\n =:/0189a \x00mvtc"))
    try:
        remote = SessionDescription.parse(bytes(raw))
    except SdpParseError:
        return
    try:
        sd = answer(remote, codecs=DEFAULT_CODECS)
    except NoCommonCodec:
        return
    offered = {f for m in remote.media for f in m.formats}
    assert set(sd.media[0].formats) <= offered or sd.media[0].port == 0
    try:
        params = negotiate(sd, remote)
    except NoCommonCodec:
        return
    assert params.codec in DEFAULT_CODECS
    assert params.clock_rate == CODECS[params.codec].clock_rate
