"""Offer/answer with Opus, G.722 and G.711: what is offered, what an answer picks, what the
media session is told (codec, payload type, clock rate, fmtp, telephone-event and its rate),
G.722's 8000 Hz clock, and a codec change on re-INVITE."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.sdp import (
    CODECS,
    DEFAULT_CODECS,
    MediaParams,
    NoCommonCodec,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate,
    opus_fmtp,
    parse_fmtp,
)
from tests.test_sdp import LINPHONE_OFFER

HEAD = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"


def offer(codecs: tuple[str, ...] = DEFAULT_CODECS, **kwargs: object) -> SessionDescription:
    args: dict[str, object] = {
        "address": ("192.0.2.1", 4000),
        "codecs": codecs,
        "zrtp_hash": None,
        "session_id": 7,
        "session_version": 1,
    }
    args.update(kwargs)
    return build_offer(**args)  # type: ignore[arg-type]


def answer(
    to: SessionDescription, codecs: tuple[str, ...] = DEFAULT_CODECS, **kwargs: object
) -> SessionDescription:
    args: dict[str, object] = {
        "address": ("192.0.2.2", 5000),
        "codecs": codecs,
        "zrtp_hash": None,
        "session_id": 9,
        "session_version": 1,
    }
    args.update(kwargs)
    return build_answer(to, **args)  # type: ignore[arg-type]


def test_default_offer_lists_wideband_first_with_events_at_each_clock_rate() -> None:
    media = offer().media[0]
    assert media.formats == ("111", "9", "0", "8", "110", "101")
    assert media.values("rtpmap") == (
        "111 opus/48000/2",
        "9 G722/8000",
        "0 PCMU/8000",
        "8 PCMA/8000",
        "110 telephone-event/48000",
        "101 telephone-event/8000",
    )
    assert media.fmtp(111) == (
        "maxplaybackrate=16000; sprop-maxcapturerate=16000; stereo=0; sprop-stereo=0; "
        "useinbandfec=1; usedtx=0"
    )
    assert media.fmtp(110) == media.fmtp(101) == "0-16"


@pytest.mark.parametrize(
    ("codecs", "formats"),
    [
        (("PCMU", "PCMA"), ("0", "8", "101")),
        (("opus",), ("111", "110")),
        (("G722", "opus"), ("9", "111", "110", "101")),
        (("PCMA", "G722"), ("8", "9", "101")),
    ],
)
def test_offer_follows_the_configured_order(
    codecs: tuple[str, ...], formats: tuple[str, ...]
) -> None:
    assert offer(codecs).media[0].formats == formats


def test_opus_fmtp_for_a_fullband_earpiece_and_dtx() -> None:
    media = offer(("opus",), opus_max_rate=48000, opus_dtx=True).media[0]
    params = parse_fmtp(media.fmtp(111))
    assert params["maxplaybackrate"] == params["sprop-maxcapturerate"] == "48000"
    assert params["usedtx"] == "1"
    assert opus_fmtp() == str(media.fmtp(111)).replace("48000", "16000").replace("dtx=1", "dtx=0")


def sdp(body: str) -> SessionDescription:
    return SessionDescription.parse(HEAD + body.replace("\n", "\r\n").encode())


OPUS_EV48 = (
    "m=audio 7000 RTP/AVP 96 9 0 101 102\n"
    "a=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1; maxplaybackrate=16000\n"
    "a=rtpmap:101 telephone-event/8000\na=rtpmap:102 telephone-event/48000\n"
)

# (the peer's offer, the codecs we enable) -> (codec, pt, clock, te pt, te rate)
ANSWER_TABLE = [
    (OPUS_EV48, DEFAULT_CODECS, ("opus", 96, 48000, 102, 48000)),
    (OPUS_EV48, ("G722", "PCMU"), ("G722", 9, 8000, 101, 8000)),
    (OPUS_EV48, ("PCMU", "G722"), ("G722", 9, 8000, 101, 8000)),  # the offer's order rules
    (OPUS_EV48, ("PCMA",), None),
    (
        "m=audio 7000 RTP/AVP 96 101\na=rtpmap:96 OPUS/48000/2\n"
        "a=rtpmap:101 telephone-event/8000\n",
        DEFAULT_CODECS,
        ("opus", 96, 48000, 101, 8000),  # only /8000 offered: use it rather than none
    ),
    ("m=audio 7000 RTP/AVP 96\na=rtpmap:96 opus/48000/2\n", DEFAULT_CODECS, ("opus", 96, 48000)),
    ("m=audio 7000 RTP/AVP 0 9 8\n", DEFAULT_CODECS, ("PCMU", 0, 8000)),
    ("m=audio 7000 RTP/AVP 9 0\n", DEFAULT_CODECS, ("G722", 9, 8000)),  # static 9, no rtpmap
    ("m=audio 7000 RTP/AVP 9 0\n", ("PCMU",), ("PCMU", 0, 8000)),
    (
        "m=audio 7000 RTP/AVP 97 0\na=rtpmap:97 G722/16000\n",  # the classic mistake
        DEFAULT_CODECS,
        ("PCMU", 0, 8000),
    ),
    (
        "m=audio 7000 RTP/AVP 97 0\na=rtpmap:97 g722/8000\n",
        DEFAULT_CODECS,
        ("G722", 97, 8000),
    ),
    (
        "m=audio 7000 RTP/AVP 100 101 8\na=rtpmap:100 telephone-event/48000\n"
        "a=rtpmap:101 telephone-event/8000\n",
        DEFAULT_CODECS,
        ("PCMA", 8, 8000, 101, 8000),
    ),
]


@pytest.mark.parametrize(("body", "enabled", "expected"), ANSWER_TABLE)
def test_answer_table(
    body: str, enabled: tuple[str, ...], expected: tuple[object, ...] | None
) -> None:
    remote = sdp(body)
    if expected is None:
        with pytest.raises(NoCommonCodec):
            answer(remote, enabled)
        return
    sd = answer(remote, enabled)
    name, pt, clock, *event = expected
    formats = (str(pt), *(str(e) for e in event[:1]))
    assert sd.media[0].formats == formats
    for params in (negotiate(sd, remote), negotiate(remote, sd)):
        assert (params.codec, params.payload_type, params.clock_rate) == (name, pt, clock)
        if event:
            assert (params.telephone_event_pt, params.telephone_event_rate) == tuple(event)
        else:
            assert params.telephone_event_pt is None


def test_answer_to_linphone_offer_is_opus_with_its_fec_wish() -> None:
    remote = SessionDescription.parse(LINPHONE_OFFER)
    sd = answer(remote)
    media = sd.media[0]
    assert media.formats == ("96", "99")
    assert media.values("rtpmap") == ("96 opus/48000/2", "99 telephone-event/48000")
    assert parse_fmtp(media.fmtp(96))["useinbandfec"] == "1"
    params = negotiate(sd, remote)
    assert (params.codec, params.payload_type, params.clock_rate) == ("opus", 96, 48000)
    assert dict(params.fmtp) == {"useinbandfec": "1"}
    assert (params.telephone_event_pt, params.telephone_event_rate) == (99, 48000)
    assert params.wideband
    # at linphone's end of the same exchange: our fmtp is what it must honour
    theirs = negotiate(remote, sd)
    assert theirs.fmtp["usedtx"] == "0" and theirs.fmtp["maxplaybackrate"] == "16000"


def test_g722_answer_names_the_8000_hz_clock() -> None:
    sd = answer(offer(("G722", "PCMU")), ("G722",))
    assert sd.media[0].values("rtpmap") == ("9 G722/8000", "101 telephone-event/8000")
    assert b"G722/16000" not in bytes(sd)
    params = negotiate(offer(("G722", "PCMU")), sd)
    assert (params.codec, params.clock_rate, params.telephone_event_rate) == ("G722", 8000, 8000)
    assert params.wideband


def test_two_pidphones_with_defaults_talk_opus() -> None:
    o = offer()
    a = answer(o)
    at_offerer, at_answerer = negotiate(o, a), negotiate(a, o)
    for params in (at_offerer, at_answerer):
        assert (params.codec, params.payload_type, params.clock_rate) == ("opus", 111, 48000)
        assert (params.telephone_event_pt, params.telephone_event_rate) == (110, 48000)
        assert params.fmtp["useinbandfec"] == "1"


@pytest.mark.parametrize(
    ("codec", "fmtp", "wideband"),
    [
        ("opus", {}, True),
        ("opus", {"maxplaybackrate": "8000"}, False),
        ("opus", {"maxplaybackrate": "16000"}, True),
        ("G722", {}, True),
        ("PCMU", {}, False),
    ],
)
def test_wideband_flag(codec: str, fmtp: dict[str, str], wideband: bool) -> None:
    params = MediaParams(
        remote_address=("h", 1),
        payload_type=0,
        codec=codec,
        telephone_event_pt=None,
        direction="sendrecv",
        remote_zrtp_hash=None,
        ptime=20,
        fmtp=fmtp,
    )
    assert params.wideband is wideband


def test_codec_change_on_reinvite() -> None:
    """A call on Opus; the peer re-offers G.722 and G.711 only: the new answer and the new
    negotiation name G.722 with its 8000 Hz clock and the 8000 Hz telephone-event."""
    first = offer()
    first_answer = answer(first)
    assert negotiate(first_answer, first).codec == "opus"
    reoffer = offer(("G722", "PCMA"), session_version=2)
    reanswer = answer(reoffer, session_version=2)
    params = negotiate(reanswer, reoffer)
    assert (params.codec, params.payload_type, params.clock_rate) == ("G722", 9, 8000)
    assert (params.telephone_event_pt, params.telephone_event_rate) == (101, 8000)
    # and our own re-offer with another preference, answered by a pidphone enabling all
    ours = offer(("PCMA", "opus"), session_version=3)
    back = answer(ours)
    assert negotiate(ours, back).codec == "PCMA"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("useinbandfec=1; usedtx=0", {"useinbandfec": "1", "usedtx": "0"}),
        ("UseInbandFEC = 1;;junk;=3; x=", {"useinbandfec": "1", "x": ""}),
        ("a=1; a=2", {"a": "1"}),
        ("", {}),
        (None, {}),
        ("; ".join(f"k{i}=v" for i in range(40)), {f"k{i}": "v" for i in range(16)}),
    ],
)
def test_parse_fmtp(text: str | None, expected: dict[str, str]) -> None:
    assert dict(parse_fmtp(text)) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(DEFAULT_CODECS), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from(DEFAULT_CODECS), min_size=1, max_size=4, unique=True),
)
def test_any_pair_of_pidphones_agrees_on_codec_clock_and_events(
    offered: list[str], enabled: list[str]
) -> None:
    o = offer(tuple(offered))
    common = [name for name in offered if name in enabled]
    if not common:
        with pytest.raises(NoCommonCodec):
            answer(o, tuple(enabled))
        return
    a = answer(o, tuple(enabled))
    x, y = negotiate(o, a), negotiate(a, o)
    assert x.codec == y.codec == common[0]
    assert x.payload_type == y.payload_type == CODECS[common[0]].payload_type
    assert x.clock_rate == y.clock_rate == CODECS[common[0]].clock_rate
    assert x.telephone_event_rate == y.telephone_event_rate == x.clock_rate
    assert x.telephone_event_pt == y.telephone_event_pt is not None
