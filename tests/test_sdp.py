"""SDP parsing and writing (RFC 8866) against real descriptions from linphonec, round trips and
fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.errors import LocalProtocolError, ParseError
from pidphone.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpParseError,
    SessionDescription,
    Timing,
)

DATA = Path(__file__).parent / "data" / "sdp"
LINPHONE_OFFER = (DATA / "linphone-offer.sdp").read_bytes()
"""The offer linphonec 5.1.65 (liblinphone, ZRTP enabled) sent in an INVITE, taken from its
debug log (-d 6)."""
LINPHONE_ANSWER = (DATA / "linphone-answer.sdp").read_bytes()
"""The answer of a second linphonec to it."""

# RFC 8866 §5 example, with every optional session-level line.
RFC_EXAMPLE = (
    b"v=0\r\n"
    b"o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\n"
    b"s=Call to John Smith\r\n"
    b"i=SDP Offer #1\r\n"
    b"u=http://www.jdoe.example.com/home.html\r\n"
    b"e=Jane Doe <jane@jdoe.example.com>\r\n"
    b"p=+1 617 555-6011\r\n"
    b"c=IN IP4 198.51.100.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"m=audio 49180 RTP/AVP 0\r\n"
    b"m=video 51372 RTP/AVP 99\r\n"
    b"c=IN IP6 2001:db8::2\r\n"
    b"a=rtpmap:99 h263-1998/90000\r\n"
)


def test_linphone_offer_reads_field_by_field() -> None:
    sd = SessionDescription.parse(LINPHONE_OFFER)
    assert sd.origin == Origin("alice", 1271, 3141, "127.0.0.1")
    assert sd.session_name == "Talk"
    assert sd.connection == Connection("127.0.0.1")
    assert sd.timings == (Timing(0, 0),)
    assert sd.attributes == (
        Attribute("rtcp-xr", "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"),
    )
    (audio,) = sd.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 17078, "RTP/AVP")
    assert audio.formats == ("96", "97", "98", "0", "8", "18", "99", "100", "101")
    rtpmap = audio.rtpmap()
    assert rtpmap[0] == RtpMap("PCMU", 8000)
    assert rtpmap[8] == RtpMap("PCMA", 8000)
    assert rtpmap[96] == RtpMap("opus", 48000, 2)
    assert rtpmap[101] == RtpMap("telephone-event", 8000)
    assert 18 not in rtpmap  # G729 has a static number pidphone does not know
    assert audio.fmtp(96) == "useinbandfec=1"
    assert audio.fmtp(0) is None
    assert audio.values("rtcp-fb") == ("* trr-int 1000", "* ccm tmmbr")
    assert audio.direction is None
    assert sd.direction is None


@pytest.mark.parametrize("data", [LINPHONE_OFFER, LINPHONE_ANSWER, RFC_EXAMPLE])
def test_real_descriptions_are_written_back_byte_for_byte(data: bytes) -> None:
    assert bytes(SessionDescription.parse(data)) == data


def test_rfc_example_keeps_optional_lines_and_media_connections() -> None:
    sd = SessionDescription.parse(RFC_EXAMPLE)
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ("Jane Doe <jane@jdoe.example.com>",)
    assert sd.phones == ("+1 617 555-6011",)
    assert [m.port for m in sd.media] == [49170, 49180, 51372]
    assert sd.media[2].connections == (Connection("2001:db8::2", addrtype="IP6"),)


def test_lenient_line_ends_blank_lines_and_order() -> None:
    data = (
        b"v=0\no=- 1 2 IN IP4 10.0.0.1\n\ns=-\nt=0 0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n"
    )
    sd = SessionDescription.parse(data)
    assert sd.connection == Connection("10.0.0.1")
    assert bytes(sd) == (
        b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
    )


def test_attribute_forms_survive() -> None:
    data = (
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns= \r\nt=0 0\r\na=recvonly\r\n"
        b"m=audio 4000/2 RTP/AVP 0\r\na=x-empty:\r\na=x-colons:a:b:c\r\na=inactive\r\n"
    )
    sd = SessionDescription.parse(data)
    assert sd.session_name == " "
    assert sd.direction == "recvonly"
    media = sd.media[0]
    assert media.port_count == 2
    assert media.attributes == (
        Attribute("x-empty", ""),
        Attribute("x-colons", "a:b:c"),
        Attribute("inactive"),
    )
    assert media.direction == "inactive"
    assert bytes(sd) == data


def test_repeat_zone_key_and_bandwidth_lines() -> None:
    data = (
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nb=CT:128\r\nt=3034423619 3042462419\r\n"
        b"r=604800 3600 0 90000\r\nt=0 0\r\nz=2882844526 -1h\r\nk=prompt\r\n"
        b"m=audio 4000 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\n"
    )
    sd = SessionDescription.parse(data)
    assert sd.timings[0].repeats == ("604800 3600 0 90000",)
    assert sd.zone == "2882844526 -1h"
    assert sd.media[0].bandwidths == ("AS:64",)
    assert bytes(sd) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "SDP is empty"),
        (b"o=- 1 1 IN IP4 h\r\n", "must start with v=0"),
        (b"v=1\r\n", "must start with v=0"),
        (b"v=0\r\ns=x\r\nt=0 0\r\n", "no o= line"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", r"an empty\) s= line"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\n", "no t= line"),
        (b"v=0\r\no=- x 1 IN IP4 h\r\ns=x\r\nt=0 0\r\n", "session id is not a number"),
        (b"v=0\r\no=- 1 1 IN IP4\r\ns=x\r\nt=0 0\r\n", "o= needs 6 words"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0\r\n", "t= needs 2 words"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nx=1\r\n", "x= is not a session-level"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n", "out of"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nm=audio 1 RTP/AVP\r\n", "m= needs"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", "t= is"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\nc=IN IP4\r\n", "c= needs 3 words"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\na=:x\r\n", "attribute without"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nt=0 0\r\na=a\rb\r\n", "stray CR"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\r\nt=0 0\r\n", "not UTF-8"),
        (b"v=0\r\nhello\r\n", "not of the form"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=x\r\nr=1 2 3\r\nt=0 0\r\n", "r= before any t="),
    ],
)
def test_malformed_descriptions_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(SdpParseError, match=message) as info:
        SessionDescription.parse(data)
    assert isinstance(info.value, ParseError)
    assert info.value.error_status_hint == 400


def test_oversized_body_is_refused() -> None:
    with pytest.raises(SdpParseError, match="over"):
        SessionDescription.parse(b"v=0\r\n" + b"a=x\r\n" * 20000)


def test_values_that_would_inject_lines_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Attribute("x", "a\r\nm=video 1 RTP/AVP 0")
    with pytest.raises(LocalProtocolError):
        Origin("a b", 1, 1, "h")
    with pytest.raises(LocalProtocolError):
        MediaDescription("audio", 1, "RTP/AVP", ())
    with pytest.raises(LocalProtocolError):
        SessionDescription(Origin("-", 1, 1, "h"), session_name="x\ny")


# --------------------------------------------------------------------------- property tests

_word = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters=":", categories=["L", "N"]
    )
    | st.sampled_from("-_.+*!"),
    min_size=1,
    max_size=12,
)
_text = st.text(
    alphabet=st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]),
    min_size=0,
    max_size=30,
)
_nonempty_text = _text.filter(lambda s: s.strip() != "")
_attribute = st.builds(Attribute, _word, st.none() | _text)
_connection = st.builds(Connection, _word, _word, _word)
_small = st.integers(min_value=0, max_value=2**40)

_media = st.builds(
    MediaDescription,
    media=_word,
    port=st.integers(0, 65535),
    proto=_word,
    formats=st.lists(_word, min_size=1, max_size=5).map(tuple),
    port_count=st.none() | st.integers(1, 8),
    information=st.none() | _text,
    connections=st.lists(_connection, max_size=2).map(tuple),
    bandwidths=st.lists(_nonempty_text, max_size=2).map(tuple),
    key=st.none() | _text,
    attributes=st.lists(_attribute, max_size=6).map(tuple),
)

_session = st.builds(
    SessionDescription,
    origin=st.builds(Origin, _word, _small, _small, _word, _word, _word),
    session_name=_nonempty_text,
    information=st.none() | _text,
    uri=st.none() | _text,
    emails=st.lists(_text, max_size=2).map(tuple),
    phones=st.lists(_text, max_size=2).map(tuple),
    connection=st.none() | _connection,
    bandwidths=st.lists(_text, max_size=2).map(tuple),
    timings=st.lists(
        st.builds(Timing, _small, _small, st.lists(_nonempty_text, max_size=2).map(tuple)),
        min_size=1,
        max_size=2,
    ).map(tuple),
    zone=st.none() | _text,
    key=st.none() | _text,
    attributes=st.lists(_attribute, max_size=4).map(tuple),
    media=st.lists(_media, max_size=3).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(_session)
def test_round_trip(sd: SessionDescription) -> None:
    data = bytes(sd)
    assert SessionDescription.parse(data) == sd
    assert bytes(SessionDescription.parse(data)) == data
