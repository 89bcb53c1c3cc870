"""The SIP parser and serializer: RFC 3261 examples, RFC 4475 torture messages, messages in the
shape Kamailio and linphone send, round trips and fuzzing."""

# ruff: noqa: E501  (wire vectors are kept on one line, as sent)
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    Uri,
    Via,
    parse_message,
)
from pidphone.sip.message import salvage_error_response


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


DATA = Path(__file__).parent / "data" / "sip"
RFC3261_INVITE = (DATA / "rfc3261-invite.sip").read_bytes()
"""RFC 3261 §4's INVITE, with a body of the length it announces."""
WSINV = (DATA / "rfc4475-wsinv.sip").read_bytes()
"""RFC 4475 §3.1.1.1 "wsinv": a short tortuous INVITE."""
LINPHONE_REGISTER = (DATA / "linphone-register.sip").read_bytes()
"""A REGISTER as linphone 5.1 sends it over TLS (shape taken from its debug log)."""
KAMAILIO_200 = (DATA / "kamailio-register-200.sip").read_bytes()
"""A 200 to REGISTER in the shape Kamailio 5.6's registrar sends (two bindings)."""


def test_rfc3261_invite_parses_and_round_trips() -> None:
    msg = parse_message(RFC3261_INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.com"
    assert msg.from_.display_name == "Alice"
    assert msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert msg.cseq.seq == 314159
    assert msg.vias[0].branch == "z9hG4bK776asdhds"
    assert len(msg.body) == 142
    assert bytes(msg) == RFC3261_INVITE
    assert parse_message(bytes(msg)) == msg


def test_wsinv_torture_message() -> None:
    msg = parse_message(WSINV)
    assert isinstance(msg, Request)
    assert msg.uri.param("unknownparam") == ""
    assert msg.to.tag == "1918181833n"
    assert msg.to.uri.user == "vivekg"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.int_header("Max-Forwards") == 68
    assert msg.cseq.seq == 9
    assert msg.header("Subject") == ""
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue"
    assert contact.param("secondparam") == ""
    assert contact.param("q") == "0.33"
    assert len(msg.body) == 150
    again = parse_message(bytes(msg))
    assert again == msg


def test_linphone_register_and_kamailio_reply() -> None:
    reg = parse_message(LINPHONE_REGISTER)
    assert isinstance(reg, Request)
    assert reg.header_values("Supported") == ["replaces", "outbound", "gruu", "path"]
    assert reg.header_values("Accept")[2] == "application/vnd.gsma.rcs-ft-http+xml"
    (contact,) = reg.contacts
    assert contact.uri.param("transport") == "tls"
    assert contact.param("+sip.instance") == '"<urn:uuid:3f6ad3b3-6ad6-0061-ba6c-bc35be6e31f7>"'
    assert reg.vias[0].param("rport") == ""
    ok = parse_message(KAMAILIO_200)
    assert isinstance(ok, Response)
    assert ok.status == 200
    assert ok.reason == "OK"
    assert [c.param("expires") for c in ok.contacts] == ["600", "12"]
    assert ok.vias[0].param("received") == "127.0.0.1"
    assert ok.vias[0].param("rport") == "43127"
    assert parse_message(bytes(ok)) == ok


def test_compact_forms_are_canonical() -> None:
    data = crlf(
        """OPTIONS sip:bob@example.com SIP/2.0
v: SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx
f: <sip:alice@example.com>;tag=1
t: sip:bob@example.com
i: abc@[2001:db8::9]
CSeq: 1 OPTIONS
k: outbound
m: <sips:alice@[2001:db8::9]:5061;ob>
l: 0

"""
    )
    msg = parse_message(data)
    assert msg.call_id == "abc@[2001:db8::9]"
    assert msg.vias[0].host == "[2001:db8::9]"
    assert msg.vias[0].port == 5061
    assert msg.contacts[0].uri.host == "[2001:db8::9]"
    assert msg.contacts[0].uri.param("ob") == ""
    assert msg.header("Supported") == "outbound"
    text = bytes(msg).decode()
    assert "Call-ID: abc@[2001:db8::9]\r\n" in text
    assert "Via: SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx\r\n" in text


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:alice:secretword@atlanta.com;transport=tcp",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4:5061",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:user;par=u%40example.net@example.com",
        "sips:bob@[2001:db8::1]:5062;transport=tls;lr",
        "sip:null-%00-null@example.com",
        "tel:+358-555-1234567;postd=pp22",
        "soap.beep://192.0.2.103:3002",
    ],
)
def test_uri_round_trip(text: str) -> None:
    assert str(Uri.parse(text)) == text


def test_uri_security_and_default_port() -> None:
    assert Uri.parse("sips:bob@127.0.0.1").default_port() == 5061
    assert Uri.parse("sip:bob@127.0.0.1;transport=TLS").secure
    assert Uri.parse("sip:bob@127.0.0.1").default_port() == 5060
    assert Uri.parse("sips:bob@127.0.0.1:5062").default_port() == 5062


def test_password_not_in_repr() -> None:
    assert "secretword" not in repr(Uri.parse("sip:alice:secretword@atlanta.com"))


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:alice@",
        "sip:alice@host:99999",
        "sip:alice@[2001:db8::1",
        "sip:alice%zz@host",
        "sip:al ice@host",
        "<sip:user@example.com>",
        "sip:alice@ex_ample.com",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        Uri.parse(text)


def test_name_addr_forms() -> None:
    na = NameAddr.parse('"Mr. Watson \\"T\\"" <sip:watson@bell.com>;tag=a;x="b;c"')
    assert na.display_name == 'Mr. Watson "T"'
    assert na.param("x") == '"b;c"'
    assert NameAddr.parse(str(na)) == na
    assert NameAddr.parse("caller<sip:caller@example.com>;tag=323").display_name == "caller"
    bare = NameAddr.parse("sip:bob@biloxi.com;tag=99")
    assert bare.tag == "99"
    assert bare.uri.params == ()
    assert NameAddr.parse("*").wildcard


def test_via_rport_received() -> None:
    via = Via.parse("SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKa;rport")
    answered = via.with_received("192.0.2.7", 40000)
    assert (
        str(answered) == "SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKa;rport=40000;received=192.0.2.7"
    )


BASE = """{start}
Via: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKbad
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>
Call-ID: bad@example.com
CSeq: 1 {method}
Max-Forwards: 70
{extra}Content-Length: 0

"""


def request(
    start: str = "OPTIONS sip:b@example.com SIP/2.0", extra: str = "", method: str = "OPTIONS"
) -> bytes:
    return crlf(BASE.format(start=start, extra=extra, method=method))


def test_template_request_is_valid() -> None:
    assert isinstance(parse_message(request()), Request)


@pytest.mark.parametrize(
    ("start", "extra", "method", "hint"),
    [
        # RFC 4475 §3.1.2: invalid messages
        (
            "OPTIONS sip:b@example.com SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n",
            "OPTIONS",
            400,
        ),
        ("OPTIONS sip:b@example.com SIP/2.0", "", "INVITE", 400),  # mismatch01
        ("OPTIONS sip:b@example.com SIP/7.0", "", "OPTIONS", 505),  # badvers
        ("INVITE <sip:user@example.com> SIP/2.0", "", "INVITE", 400),  # ltgtruri
        ("INVITE sip:user@example.com; lr SIP/2.0", "", "INVITE", 400),  # lwsruri
        ("INVITE  sip:user@example.com  SIP/2.0", "", "INVITE", 400),  # lwsstart
        ("OPTIONS sip:b@example.com SIP/2.0  ", "", "OPTIONS", 400),  # trws
        ("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0", "", "INVITE", 400),
        (
            "OPTIONS sip:b@example.com SIP/2.0",
            "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n",
            "OPTIONS",
            400,
        ),
        (
            "OPTIONS sip:b@example.com SIP/2.0",
            'Contact: "Watson, Thomas" < sip:t.watson@example.org >\n',
            "OPTIONS",
            400,
        ),
        (
            "OPTIONS sip:b@example.com SIP/2.0",
            "Contact: Bell, Alexander <sip:a.g.bell@example.com>\n",
            "OPTIONS",
            400,
        ),
        (
            "OPTIONS sip:b@example.com SIP/2.0",
            'Contact: "Mr Unterminated <sip:a@example.com>\n',
            "OPTIONS",
            400,
        ),
        ("OPTIONS sip:b@example.com SIP/2.0", "Max-Forwards: 300\n", "OPTIONS", 400),  # scalar02
        ("OPTIONS sip:b@example.com SIP/2.0", "Expires: 10000000000000000000000\n", "OPTIONS", 400),
        ("INVITE unknownscheme:foo SIP/2.0", "", "INVITE", 416),  # unksm2
    ],
)
def test_rfc4475_invalid_requests(start: str, extra: str, method: str, hint: int) -> None:
    data = request(start, extra, method)
    if "Max-Forwards: 300" in extra:
        data = data.replace(b"Max-Forwards: 70\r\n", b"")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.error_status_hint == hint


@pytest.mark.parametrize(
    "data",
    [
        b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n",  # bigcode
        request().replace(b"CSeq: 1", b"CSeq: 36893488147419103232"),
        request().replace(b"Content-Length: 0", b"Content-Length: -999"),
        request().replace(b"Content-Length: 0", b"Content-Length: 9999"),
        request().replace(b"Call-ID: bad@example.com\r\n", b""),
        b"no blank line",
        b"\xff\xfe\r\n\r\n",
    ],
)
def test_more_invalid_messages(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_valid_torture_requests() -> None:
    # intmeth: an unusual but legal method, Request-URI and Call-ID (RFC 4475 §3.1.1.3)
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    uri = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    data = crlf(BASE.format(start=f"{method} {uri} SIP/2.0", extra="", method=method)).replace(
        b"Call-ID: bad@example.com", b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    )
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.method == method
    assert msg.uri.host == "example.com"
    assert bytes(msg) == data
    # unreason: a UTF-8 reason phrase; noreason: an empty one
    resp = crlf(
        BASE.format(
            start="SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое",
            extra="",
            method="OPTIONS",
        )
    )
    parsed = parse_message(resp)
    assert isinstance(parsed, Response)
    assert parsed.reason.endswith("простое")
    empty = parse_message(crlf(BASE.format(start="SIP/2.0 100 ", extra="", method="OPTIONS")))
    assert isinstance(empty, Response)
    assert empty.reason == ""


def test_salvage_answers_a_broken_request() -> None:
    data = request(extra="Contact: <sip:broken\n")
    with pytest.raises(SipParseError):
        parse_message(data)
    answer = salvage_error_response(data, 400, "tag9")
    assert answer is not None
    text = bytes(answer).decode()
    assert text.startswith("SIP/2.0 400 Bad Request\r\n")
    assert "To: <sip:b@example.com>;tag=tag9\r\n" in text
    assert "CSeq: 1 OPTIONS\r\n" in text
    ack = request("ACK sip:b@example.com SIP/2.0", "Contact: <sip:broken\n", "ACK")
    assert salvage_error_response(ack, 400, "t") is None


# ------------------------------------------------------------------ round trips and fuzzing

token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12
).filter(lambda s: "%" not in s)
hostname = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
host = st.one_of(hostname, st.ip_addresses(v=4).map(str), ipv6)
params = st.lists(st.tuples(token, st.one_of(st.none(), token)), max_size=3).map(tuple)
uris = st.builds(
    Uri,
    scheme=st.sampled_from(["sip", "sips"]),
    host=host,
    user=st.one_of(st.none(), token),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    params=params,
)
display = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(
    lambda s: " ".join(s.split())
)
name_addrs = st.builds(NameAddr, uri=uris, display_name=display, params=params)


@settings(max_examples=200, deadline=None)
@given(name_addrs)
def test_name_addr_round_trip(na: NameAddr) -> None:
    assert NameAddr.parse(str(na)) == na


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["INVITE", "BYE", "OPTIONS", "X-CUSTOM"]),
    uri=uris,
    frm=name_addrs,
    to=name_addrs,
    call_id=token,
    seq=st.integers(0, 2**31 - 1),
    body=st.binary(max_size=200),
)
def test_request_round_trip(
    method: str, uri: Uri, frm: NameAddr, to: NameAddr, call_id: str, seq: int, body: bytes
) -> None:
    req = Request(
        method=method,
        uri=uri.with_params(()),
        headers=(
            ("Via", "SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1;rport"),
            ("From", str(frm)),
            ("To", str(to)),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} {method}"),
            ("Max-Forwards", "70"),
        ),
        body=body,
    )
    again = parse_message(bytes(req))
    assert again == req
    assert again.from_ == frm


# RFC 4475 §3.1.1.x, valid messages (shapes kept, long runs shortened)
ESC02 = crlf(
    """RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209793
Contact: <sip:alias1@host1.example.com>
Contact: <sip:%61lias2@host2.example.com>
Contact: <sip:alias%333@host4.example.com>
L: 0
Max-Forwards: 70
CSeq: 29344 RE%47IST%45R

"""
)

TRANSPORTS = crlf(
    """OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

"""
)

SEMIURI = crlf(
    """OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

"""
)

NOREASON = crlf(
    """SIP/2.0 100 {SP}
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

""".replace(" {SP}", " ")
)


def test_rfc4475_more_valid_messages() -> None:
    esc = parse_message(ESC02)
    assert isinstance(esc, Request)
    assert esc.method == "RE%47IST%45R"
    assert [c.uri.user for c in esc.contacts] == ["alias1", "%61lias2", "alias%333"]
    assert esc.from_.display_name == "%Z%45"
    transports = parse_message(TRANSPORTS)
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert transports.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    semi = parse_message(SEMIURI)
    assert isinstance(semi, Request)
    assert (semi.uri.user, semi.uri.host, semi.uri.params) == (
        "user;par=u%40example.net",
        "example.com",
        (),
    )
    assert len(semi.header_values("Accept")) == 6
    noreason = parse_message(NOREASON)
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")
    for message in (esc, transports, semi, noreason):
        assert parse_message(bytes(message)) == message


vias = st.builds(
    Via,
    transport=st.sampled_from(["TLS", "TCP", "UDP", "WS"]),
    host=host,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    params=params,
)


@settings(max_examples=200, deadline=None)
@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


@settings(max_examples=200, deadline=None)
@given(uris, st.lists(st.tuples(token, token), max_size=2).map(tuple))
def test_uri_round_trip_with_headers(uri: Uri, headers: tuple[tuple[str, str], ...]) -> None:
    full = Uri(
        scheme=uri.scheme, host=uri.host, user=uri.user, port=uri.port, params=uri.params,
        headers=headers,
    )  # fmt: skip
    assert Uri.parse(str(full)) == full


@pytest.mark.parametrize("control", [b"\x00", b"\x08", b"\x1b", b"\x7f", b"\x0b"])
@pytest.mark.parametrize(
    "where", [b"<sip:alice@atlanta.com>", b"Alice <sip:alice@atlanta.com>"], ids=["uri", "name"]
)
def test_a_control_character_in_a_header_is_a_parse_error(control: bytes, where: bytes) -> None:
    """RFC 3261 §25.1 allows no CTL but HTAB in a header; a caller's NUL or escape sequence
    would reach the screen, the journal and STATUS=. HTAB stays whitespace."""
    sent = where.replace(b"alice", b"al" + control + b"ice")
    with pytest.raises(SipParseError, match="control character"):
        parse_message(RFC3261_INVITE.replace(b"Alice <sip:alice@atlanta.com>", sent))
    tabbed = RFC3261_INVITE.replace(b"From: Alice", b"From:\tAlice")
    assert parse_message(tabbed).from_.display_name == "Alice"
