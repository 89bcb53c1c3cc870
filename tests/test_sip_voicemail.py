"""The voicemail indicator in the SIP core: the message-summary body (RFC 3842 §5), and the
subscription the agent keeps (RFC 6665), driven by hand as the registrar would, with the
NOTIFYs an attacker could try."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pidphone.sip import Request, Response, parse_message
from pidphone.sip import events as ev
from pidphone.sip.agent import AgentConfig, Transport, UserAgent
from pidphone.sip.errors import SipParseError
from pidphone.sip.message_summary import MAX_BODY, MessageCounts, MessageSummary
from pidphone.sip.subscription import SubState

Address = tuple[str, int]
REGISTRAR: Address = ("127.0.0.1", 5061)
LOCAL: Address = ("127.0.0.1", 40000)
STRANGER: Address = ("127.0.0.1", 6666)

# --------------------------------------------------------------------------- the body


def test_the_rfc_example_is_read() -> None:
    body = (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@vmail.example.com\r\n"
        b"Voice-Message: 2/8 (0/2)\r\n"
        b"\r\n"
        b"To: <alice@atlanta.example.com>\r\n"
        b"From: <bob@biloxi.example.com>\r\n"
    )
    summary = MessageSummary.parse(body)
    assert summary == MessageSummary(
        waiting=True, voice=MessageCounts(2, 8, 0, 2), account="sip:alice@vmail.example.com"
    )
    assert summary.new_voice == 2


def test_a_bare_status_and_other_classes() -> None:
    assert MessageSummary.parse(b"Messages-Waiting: no").new_voice == 0
    assert MessageSummary.parse(b"messages-waiting:YES\n").new_voice == 1  # no counts: one
    summary = MessageSummary.parse(
        b"Messages-Waiting: yes\nFax-Message: 1/0\nX-Box-Id: 7\nVoice-Message: 0/3"
    )
    assert summary.voice == MessageCounts(0, 3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "does not start with Messages-Waiting"),
        (b"Voice-Message: 1/2\r\nMessages-Waiting: yes", "does not start with Messages-Waiting"),
        (b"Messages-Waiting: maybe", "neither yes nor no"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 1234567/0", "not a number"),
        (b"Messages-Waiting: yes\r\nVoice-Message: -1/0", "not a number"),
        (b"Messages-Waiting: yes\r\nVoice-Message: \xd9\xa3/0", "not ASCII"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 3", "not new/old"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 3/1 (1/0", "closing parenthesis"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nVoice-Message: 9/9", "twice"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 1/0\x1b[2J", "control character"),
        (b"Messages-Waiting: yes\r\nno colon here", "without a name"),
        (b"Messages-Waiting: yes\r\nFax-Message: x/0", "not a number"),
        (b"Messages-Waiting: yes\r\n" + b"Fax-Message: 1/0\r\n" * 70, "lines"),
        (b"Messages-Waiting: yes\r\n" + b" " * MAX_BODY, "bytes"),
    ],
)
def test_a_bad_body_is_one_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(SipParseError, match=message):
        MessageSummary.parse(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_a_summary_or_the_parse_error(data: bytes) -> None:
    try:
        summary = MessageSummary.parse(b"Messages-Waiting: yes\r\n" + data)
    except SipParseError:
        return
    assert 0 <= summary.new_voice < 1_000_000


# ---------------------------------------------------------------- a hand-driven registrar

_tags = itertools.count(1)


class Registrar:
    """Alice's agent, connected to the registrar whose part the test plays."""

    def __init__(self, password: str | None = None) -> None:
        self.now = 100.0
        config = AgentConfig(
            aor="sip:alice@127.0.0.1",
            registrar=REGISTRAR,
            transport=Transport.TLS,
            password=password,
            keepalive_interval=0,
        )
        self.agent = UserAgent(config)
        self.agent.connection_made(REGISTRAR, LOCAL, self.now)
        self.notifier_tag = f"n{next(_tags)}"
        self.cseq = itertools.count(1)
        self.subscribe: Request | None = None

    def sent(self, to: Address = REGISTRAR) -> list[Request | Response]:
        return [parse_message(data) for data, peer in self.agent.data_to_send() if peer == to]

    def sent_requests(self, method: str) -> list[Request]:
        return [m for m in self.sent() if isinstance(m, Request) and m.method == method]

    def events(self) -> list[ev.SipEvent]:
        out: list[ev.SipEvent] = []
        while (event := self.agent.next_event()) is not None:
            out.append(event)
        return out

    def watch(self) -> Request:
        self.agent.watch_voicemail(self.now)
        (self.subscribe,) = self.sent_requests("SUBSCRIBE")
        return self.subscribe

    def answer(self, request: Request, status: int = 200, extra: str = "") -> None:
        head = [f"SIP/2.0 {status} Whatever"]
        for name, value in request.headers:
            if name in ("Via", "From", "Call-ID", "CSeq"):
                head.append(f"{name}: {value}")
            elif name == "To":
                tag = "" if request.to.tag else f";tag={self.notifier_tag}"
                head.append(f"To: {value}{tag}")
        if request.method == "REGISTER":
            head.append(f"Contact: {request.header('Contact')};expires=600")
        else:
            head.append("Contact: <sip:127.0.0.1:5061;transport=tls>")
        if status < 300:
            head.append(f"Expires: {request.header('Expires')}")
        if extra:
            head.append(extra)
        head.append("Content-Length: 0")
        self.feed(("\r\n".join(head) + "\r\n\r\n").encode())

    def feed(self, data: bytes, peer: Address = REGISTRAR) -> None:
        self.agent.receive_data(data, peer, self.now)

    def notify(
        self,
        body: bytes = b"Messages-Waiting: yes\r\nVoice-Message: 3/5 (1/0)\r\n",
        *,
        state: str = "active;expires=600",
        event: str = "message-summary",
        peer: Address = REGISTRAR,
        to_tag: str | None = None,
        from_tag: str | None = None,
        call_id: str | None = None,
        cseq: int | None = None,
        content_type: str = "application/simple-message-summary",
        extra: str = "",
    ) -> Response:
        """Send a NOTIFY in the subscription's dialog (or as told) and return the answer."""
        sub = self.subscribe
        assert sub is not None
        lines = [
            "NOTIFY sip:alice@127.0.0.1:40000;transport=tls SIP/2.0",
            f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKn{next(_tags)}",
            "Max-Forwards: 70",
            f"From: <sip:alice@127.0.0.1>;tag={from_tag or self.notifier_tag}",
            f"To: <sip:alice@127.0.0.1>;tag={to_tag or sub.from_.tag}",
            f"Call-ID: {call_id or sub.call_id}",
            f"CSeq: {cseq if cseq is not None else next(self.cseq)} NOTIFY",
            "Contact: <sip:127.0.0.1:5061;transport=tls>",
        ]
        if event:
            lines.append(f"Event: {event}")
        if state:
            lines.append(f"Subscription-State: {state}")
        if extra:
            lines.append(extra)
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        self.feed(("\r\n".join(lines) + "\r\n\r\n").encode() + body, peer)
        (answer,) = [m for m in self.sent(peer) if isinstance(m, Response)]
        return answer

    def subscribed(self) -> Request:
        request = self.watch()
        self.answer(request)
        assert self.notify().status == 200
        return request

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.agent.handle_timer(self.now)


def test_the_subscribe_asks_the_registrar_for_message_summary() -> None:
    phone = Registrar()
    request = phone.watch()
    assert str(request.uri) == "sip:alice@127.0.0.1"
    assert request.header("Event") == "message-summary"
    assert request.header("Accept") == "application/simple-message-summary"
    assert request.header("Expires") == "3600"
    assert request.to.tag is None and request.from_.tag
    assert request.header("Route") == "<sip:127.0.0.1:5061;transport=tls;lr>"
    assert "127.0.0.1:40000" in (request.header("Contact") or "")


def test_a_notify_gives_the_counts_and_is_answered() -> None:
    phone = Registrar()
    phone.answer(phone.watch())
    answer = phone.notify()
    assert answer.status == 200
    assert phone.events() == [ev.VoicemailStatus(True, 3, 5, 1, 0)]
    assert phone.notify(b"Messages-Waiting: no\r\nVoice-Message: 0/8\r\n").status == 200
    assert phone.events() == [ev.VoicemailStatus(False, 0, 8)]
    assert phone.notify(b"").status == 200  # no body: nothing to tell
    assert phone.events() == []


def test_a_notify_that_overtakes_the_2xx_sets_up_the_dialog() -> None:
    phone = Registrar()
    request = phone.watch()
    assert phone.notify().status == 200
    assert phone.events() == [ev.VoicemailStatus(True, 3, 5, 1, 0)]
    phone.answer(request)
    phone.advance(1800)  # refreshed halfway through the 3600 s
    (refresh,) = phone.sent_requests("SUBSCRIBE")
    assert refresh.to.tag == phone.notifier_tag
    assert refresh.cseq.seq == request.cseq.seq + 1


def test_the_subscription_is_refreshed_in_its_dialog() -> None:
    phone = Registrar()
    request = phone.subscribed()
    phone.events()
    phone.advance(299)
    assert phone.sent_requests("SUBSCRIBE") == []
    phone.advance(2)  # the NOTIFY said expires=600: refreshed halfway
    (refresh,) = phone.sent_requests("SUBSCRIBE")
    assert refresh.call_id == request.call_id
    assert refresh.to.tag == phone.notifier_tag
    assert str(refresh.uri) == "sip:127.0.0.1:5061;transport=tls"
    phone.answer(refresh)
    assert phone.agent._voicemail.state is SubState.ACTIVE
    assert phone.notify().status == 200


def test_a_refresh_answered_481_starts_a_new_subscription() -> None:
    phone = Registrar()
    first = phone.subscribed()
    phone.advance(301)
    (refresh,) = phone.sent_requests("SUBSCRIBE")
    phone.answer(refresh, 481)
    (unavailable,) = [e for e in phone.events() if isinstance(e, ev.VoicemailUnavailable)]
    assert unavailable.status == 481 and unavailable.retry_at is not None
    phone.advance(unavailable.retry_at - phone.now)
    (again,) = phone.sent_requests("SUBSCRIBE")
    assert again.call_id != first.call_id and again.to.tag is None


# --------------------------------------------------------------------------- attackers


def test_a_notify_from_another_flow_is_refused_and_changes_nothing() -> None:
    phone = Registrar()
    phone.subscribed()
    phone.events()
    phone.agent.connection_made(STRANGER, ("127.0.0.1", 40001), phone.now)
    answer = phone.notify(b"Messages-Waiting: yes\r\nVoice-Message: 99/0\r\n", peer=STRANGER)
    assert answer.status == 481
    assert not [e for e in phone.events() if isinstance(e, ev.VoicemailStatus)]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"to_tag": "guessed"}, 481),
        ({"from_tag": "otherfork"}, 481),
        ({"call_id": "not-ours"}, 481),
        ({"event": "presence"}, 489),
        ({"event": "message-summary;id=7"}, 489),
        ({"cseq": 1}, 500),  # a replay of the first NOTIFY
        ({"state": ""}, 400),
        ({"state": "frobbed"}, 400),
        ({"content_type": "text/plain"}, 415),
        ({"extra": "Require: foo"}, 420),
    ],
)
def test_a_notify_outside_the_subscription_is_refused(
    change: dict[str, object], status: int
) -> None:
    phone = Registrar()
    phone.subscribed()
    phone.events()
    answer = phone.notify(b"Messages-Waiting: yes\r\nVoice-Message: 99/0\r\n", **change)  # type: ignore[arg-type]
    assert answer.status == status
    assert not [e for e in phone.events() if isinstance(e, ev.VoicemailStatus)]
    assert phone.notify(b"Messages-Waiting: yes\r\nVoice-Message: 4/0\r\n").status == 200
    assert phone.events() == [ev.VoicemailStatus(True, 4, 0)]


@pytest.mark.parametrize(
    "body",
    [
        b"Messages-Waiting: yes\r\nVoice-Message: 99999999999999999999/0\r\n",
        b"\x00\xff" * 100,
        b"Messages-Waiting: yes\r\n" + b"A" * 5_000,
        b"Messages-Waiting: yes\r\nVoice-Message: \xef\xbc\x93/0\r\n",
    ],
)
def test_a_malformed_body_is_answered_400_and_the_subscription_goes_on(body: bytes) -> None:
    phone = Registrar()
    phone.subscribed()
    phone.events()
    assert phone.notify(body).status == 400
    assert not [e for e in phone.events() if isinstance(e, ev.VoicemailStatus)]
    assert phone.notify(b"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n").status == 200
    assert phone.events() == [ev.VoicemailStatus(True, 1, 0)]


def test_an_unsolicited_notify_is_refused() -> None:
    phone = Registrar()
    phone.agent.connection_made(STRANGER, ("127.0.0.1", 40001), phone.now)
    notify = (
        "NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:6666;branch=z9hG4bKx\r\n"
        "From: <sip:vm@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: c\r\n"
        "CSeq: 1 NOTIFY\r\nEvent: message-summary\r\nSubscription-State: active\r\n"
        "Content-Type: application/simple-message-summary\r\nContent-Length: 23\r\n\r\n"
        "Messages-Waiting: yes\r\n"
    )
    phone.feed(notify.encode(), STRANGER)
    (answer,) = phone.sent(STRANGER)
    assert isinstance(answer, Response) and answer.status == 481
    assert not [e for e in phone.events() if isinstance(e, ev.VoicemailStatus)]


# --------------------------------------------------------------------------- staying subscribed


def test_the_subscription_comes_back_after_the_flow_and_the_registration() -> None:
    phone = Registrar()
    first = phone.subscribed()
    phone.agent.register(phone.now)
    (register,) = phone.sent_requests("REGISTER")
    phone.events()
    phone.agent.connection_lost(REGISTRAR, phone.now)
    events = phone.events()
    assert any(isinstance(e, ev.VoicemailUnavailable) and e.status is None for e in events)
    # the NOTIFY of the dead subscription is not believed any more
    phone.agent.connection_made(REGISTRAR, ("127.0.0.1", 40002), phone.now)
    assert phone.notify().status == 481
    phone.advance(10)  # the registration retries; the subscription waits for it
    (register,) = phone.sent_requests("REGISTER")
    assert phone.sent_requests("SUBSCRIBE") == []
    phone.answer(register)
    (again,) = phone.sent_requests("SUBSCRIBE")
    assert again.call_id != first.call_id
    assert "127.0.0.1:40002" in (again.header("Contact") or "")


def test_deactivated_resubscribes_at_once_and_rejected_gives_up() -> None:
    phone = Registrar()
    first = phone.subscribed()
    assert phone.notify(b"", state="terminated;reason=deactivated").status == 200
    phone.advance(0)
    (again,) = phone.sent_requests("SUBSCRIBE")
    assert again.call_id != first.call_id
    phone.subscribe = again
    phone.answer(again)
    assert phone.notify(b"", state="terminated;reason=rejected").status == 200
    (gone,) = [e for e in phone.events() if isinstance(e, ev.VoicemailUnavailable)][-1:]
    assert gone.retry_at is None
    phone.advance(3600)
    assert phone.sent_requests("SUBSCRIBE") == []


def test_a_server_without_message_summary_is_not_asked_again() -> None:
    phone = Registrar()
    phone.answer(phone.watch(), 489)
    (gone,) = [e for e in phone.events() if isinstance(e, ev.VoicemailUnavailable)]
    assert gone.status == 489 and gone.retry_at is None
    phone.advance(3600)
    assert phone.sent_requests("SUBSCRIBE") == []


def test_a_busy_server_is_asked_again_after_its_retry_after() -> None:
    phone = Registrar()
    phone.answer(phone.watch(), 503, "Retry-After: 42")
    (gone,) = [e for e in phone.events() if isinstance(e, ev.VoicemailUnavailable)]
    assert gone.retry_at == phone.now + 42
    phone.advance(41)
    assert phone.sent_requests("SUBSCRIBE") == []
    phone.advance(1)
    assert len(phone.sent_requests("SUBSCRIBE")) == 1


def test_a_challenge_from_the_registrar_is_answered() -> None:
    phone = Registrar(password="alicepw")
    request = phone.watch()
    phone.answer(
        request,
        407,
        'Proxy-Authenticate: Digest realm="127.0.0.1", nonce="abc", algorithm=MD5, qop="auth"',
    )
    (again,) = phone.sent_requests("SUBSCRIBE")
    assert again.call_id == request.call_id and again.cseq.seq == request.cseq.seq + 1
    assert 'username="alice"' in (again.header("Proxy-Authorization") or "")


def test_unregistering_ends_the_subscription() -> None:
    phone = Registrar()
    phone.subscribed()
    phone.agent.unregister(phone.now)
    (bye,) = phone.sent_requests("SUBSCRIBE")
    assert bye.header("Expires") == "0" and bye.to.tag == phone.notifier_tag
