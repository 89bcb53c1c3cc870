"""Two calls back to back over real SIP agents and media sessions, no sockets, time by hand:
INVITE with SDP, ZRTP, SRTP audio, hold/resume keeping the keys, hang-up, and the policy.

Each phone's media session stands where the media worker would: the call's media commands are
applied to it (`apply_to_session`, as the worker does) and what it reports goes back to the
call (`on_media`)."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pidphone.app.call import Call, CallSettings
from pidphone.app.call_events import (
    CallConnected,
    CallDtmf,
    CallEvent,
    CallFinished,
    CallHeld,
    CallInsecure,
    CallMedia,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallVerified,
)
from pidphone.app.call_state import CallState
from pidphone.app.media import NO_ZRTP_REASON, MediaConfig, MediaSession
from pidphone.app.media_events import MediaDtmf, MediaSecurityFailed
from pidphone.app.media_messages import MediaUpdate, SetCodec, WorkerEvent, apply_to_session
from pidphone.audio.analysis import dominant_frequencies
from pidphone.ports import FRAME_SAMPLES, Address
from pidphone.rtp import PacketKind, classify
from pidphone.rtp.packet import RtpPacket
from pidphone.sdp import SessionDescription, build_answer, build_offer
from pidphone.sip import events as sip
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from tests.harness import SipNetwork

ALICE_SIP: Address = ("127.0.0.1", 50000)
BOB_SIP: Address = ("127.0.0.1", 5062)
ALICE_RTP = 40000
BOB_RTP = 40002
STEP = 0.02


def tone(freq: float) -> Callable[[int], bytes]:
    def frame(n: int) -> bytes:
        start = n * FRAME_SAMPLES
        return struct.pack(
            f"<{FRAME_SAMPLES}h",
            *(
                round(8000 * math.sin(2 * math.pi * freq * (start + i) / 8000))
                for i in range(FRAME_SAMPLES)
            ),
        )

    return frame


@dataclass
class Phone:
    name: str
    agent: UserAgent
    sip_addr: Address
    rtp_port: int
    settings: CallSettings
    cache: MemoryZidCache
    tone: Callable[[int], bytes]
    call: Call | None = None
    media: MediaSession | None = None
    """The call's media session, as the media worker would own it."""
    sip_events: list[sip.SipEvent] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)
    played: list[bytes] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    sent_to: list[tuple[bytes, Address]] = field(default_factory=list)
    auto_answer: bool = True
    zrtp: bool = True

    @property
    def rtp_addr(self) -> Address:
        return ("127.0.0.1", self.rtp_port)

    def new_media(self) -> MediaSession:
        self.media = MediaSession(self.settings.media, cache=self.cache)
        return self.media

    def place(self, target: str, now: float) -> Call:
        self.call = Call.place(
            self.agent,
            settings=self.settings,
            media_id=1,
            hello_hash=self.new_media().hello_hash,
            media_port=self.rtp_port,
            target=target,
            now=now,
        )
        return self.call

    @property
    def session(self) -> MediaSession:
        assert self.media is not None
        return self.media

    def run_media(self, now: float) -> None:
        """What the media worker does for the call: its commands, then the session's events."""
        if self.call is not None and self.media is not None:
            run_media(self.call, self.media, now)

    def of(self, kind: type[CallEvent]) -> list[CallEvent]:
        return [e for e in self.events if isinstance(e, kind)]


def run_media(call: Call, media: MediaSession, now: float) -> None:
    """Apply the call's media commands to its session and tell the call what came back."""
    while True:
        replies: list[WorkerEvent] = []
        for command in call.media_commands():
            replies += apply_to_session(media, call.media_id, command, now)
        while (event := media.next_event()) is not None:
            replies.append(MediaUpdate(call.media_id, event))
        if not replies:
            return
        for reply in replies:
            call.on_media(reply, now)


def make_phone(
    name: str, sip_addr: Address, rtp_port: int, freq: float, policy: str = "require"
) -> Phone:
    agent = UserAgent(AgentConfig(aor=f"sips:{name}@127.0.0.1", keepalive_interval=0))
    settings = CallSettings(media=MediaConfig(policy=policy))  # type: ignore[arg-type]
    return Phone(name, agent, sip_addr, rtp_port, settings, MemoryZidCache(), tone(freq))


class Network:
    """The two phones back to back: SIP bytes between the agents over the harness's
    `SipNetwork`, media datagrams between the calls' sessions."""

    def __init__(self, alice: Phone, bob: Phone) -> None:
        self.alice, self.bob = alice, bob
        self.sip = SipNetwork()
        self.sip.add(alice.sip_addr, alice.agent)
        self.sip.add(bob.sip_addr, bob.agent)
        self.now = 0.0
        self.frame = 0
        self.media_filter: Callable[[Phone, bytes], bool] = lambda phone, data: True

    def peer(self, phone: Phone) -> Phone:
        return self.bob if phone is self.alice else self.alice

    def pump_sip(self) -> None:
        """Deliver SIP until the network is quiet, and act on what the agents report, until
        neither moves."""
        for _ in range(20):
            self.sip.run(self.now)
            moved = False
            for phone in (self.alice, self.bob):
                while (event := phone.agent.next_event()) is not None:
                    moved = True
                    phone.sip_events.append(event)
                    self.on_sip_event(phone, event)
            if not moved:
                return

    def on_sip_event(self, phone: Phone, event: sip.SipEvent) -> None:
        if isinstance(event, sip.IncomingCall):
            phone.call = Call.incoming(
                phone.agent,
                settings=phone.settings,
                media_id=1,
                hello_hash=phone.new_media().hello_hash,
                media_port=phone.rtp_port,
                event=event,
                now=self.now,
            )
            if phone.auto_answer and phone.call.state == CallState.INCOMING:
                phone.call.answer(self.now)
            phone.run_media(self.now)
        elif phone.call is not None and getattr(event, "call_id", None) == phone.call.call_id:
            phone.call.on_sip_event(event, self.now)
            phone.run_media(self.now)

    def step(self, audio: bool = True) -> None:
        for phone in (self.alice, self.bob):
            for agent_timer in (phone.agent.get_timer(),):
                if agent_timer is not None and agent_timer <= self.now:
                    phone.agent.handle_timer(self.now)
            call, media = phone.call, phone.media
            phone.run_media(self.now)
            if call is None or media is None or call.state == CallState.ENDED:
                continue
            timer = media.get_timer()
            if timer is not None and timer <= self.now:
                media.handle_timer(self.now)
            if audio and call.state == CallState.CONNECTED:
                media.send_audio(phone.tone(self.frame), self.now)
                phone.played.append(media.pull_audio(self.now))
            phone.run_media(self.now)
        self.pump_sip()
        for phone in (self.alice, self.bob):
            other = self.peer(phone)
            if phone.media is None:
                continue
            for data, address in phone.media.datagrams_to_send():
                phone.sent.append(data)
                phone.sent_to.append((data, address))
                if (
                    address == other.rtp_addr
                    and other.media is not None
                    and self.media_filter(other, data)
                ):
                    other.media.receive_datagram(data, phone.rtp_addr, self.now)
        for phone in (self.alice, self.bob):
            phone.run_media(self.now)
            while phone.call is not None and (event := phone.call.next_event()) is not None:
                phone.events.append(event)
                if isinstance(event, CallInsecure):
                    phone.call.allow_clear()  # as the phone does once NOT SECURE is shown
            phone.run_media(self.now)
        self.pump_sip()
        self.now += STEP
        self.frame += 1

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()


def setup(policy: str = "require") -> tuple[Network, Phone, Phone]:
    alice = make_phone("alice", ALICE_SIP, ALICE_RTP, 1000, policy)
    bob = make_phone("bob", BOB_SIP, BOB_RTP, 700, policy)
    return Network(alice, bob), alice, bob


def test_secure_call_with_audio_both_ways_then_hang_up() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.pump_sip()
    net.run(3.0)

    assert alice.call is not None and bob.call is not None
    assert alice.call.call_id == bob.call.call_id
    assert alice.of(CallConnected) and bob.of(CallConnected)
    (sa,) = alice.of(CallSecure)
    (sb,) = bob.of(CallSecure)
    assert isinstance(sa, CallSecure) and isinstance(sb, CallSecure)
    assert sa.secured.sas == sb.secured.sas
    assert not sa.secured.verified
    assert abs(dominant_frequencies(b"".join(bob.played[-40:]))[0] - 1000) < 20
    assert abs(dominant_frequencies(b"".join(alice.played[-40:]))[0] - 700) < 20

    alice.call.hangup(net.now, "Hung up")
    net.run(0.2)
    (fb,) = bob.of(CallFinished)
    assert isinstance(fb, CallFinished) and fb.by_peer
    (fa,) = alice.of(CallFinished)
    assert isinstance(fa, CallFinished) and not fa.by_peer and fa.reason == "Hung up"


def test_hold_and_resume_keep_the_zrtp_context() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(2.0)
    assert alice.call is not None and bob.call is not None
    sent_before = alice.session.stats.packets_sent
    hashes = alice.call.hello_hash, bob.call.hello_hash
    assert hashes == (alice.session.hello_hash, bob.session.hello_hash)

    alice.call.hold(net.now)
    net.run(1.0)
    assert bob.of(CallHeld) and alice.of(CallHeld)
    held = alice.session.stats.packets_sent
    bob_held = bob.session.stats.packets_sent
    net.run(1.0)
    # No audio either way while held: Bob answered recvonly, Alice keeps her microphone in.
    assert alice.session.stats.packets_sent == held
    assert bob.session.stats.packets_sent == bob_held
    assert held >= sent_before

    alice.call.resume(net.now)
    net.run(1.5)
    assert alice.session.stats.packets_sent > held
    # Still the one ZRTP exchange: one SAS event each, and audio decodes at Bob.
    assert len(alice.of(CallSecure)) == 1 and len(bob.of(CallSecure)) == 1
    assert alice.session.hello_hash == hashes[0] and bob.session.hello_hash == hashes[1]
    assert (alice.call.hello_hash, bob.call.hello_hash) == hashes
    assert abs(dominant_frequencies(b"".join(bob.played[-20:]))[0] - 1000) < 25


def test_peer_without_zrtp_under_require_is_hung_up_with_no_rtp_sent() -> None:
    net, alice, bob = setup()
    # Bob's phone cannot speak ZRTP: ZRTP never reaches him and he sends none.
    net.media_filter = lambda phone, data: classify(data) is not PacketKind.ZRTP
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(1.0)
    # but media of his does reach Alice: clear RTP, as a phone without ZRTP sends
    assert alice.media is not None
    clear = bytes(RtpPacket(0, 1, 160, 0xB0B, b"\xff" * 160))
    alice.media.receive_datagram(clear, bob.rtp_addr, net.now)
    # Bob's SDP carried a=zrtp-hash, so Alice keeps sending Hello for 12 s (RFC 6189 §6).
    net.run(12.0)
    assert alice.call is not None
    (failed,) = alice.of(CallSecurityFailed)
    no_zrtp = MediaSecurityFailed(NO_ZRTP_REASON, 0xB0, fatal=True, peer_without_zrtp=True)
    assert failed == CallSecurityFailed(alice.call.call_id, no_zrtp)
    (finished,) = alice.of(CallFinished)
    assert isinstance(finished, CallFinished)
    assert finished.reason == NO_ZRTP_REASON
    assert not any(classify(d) in (PacketKind.RTP, PacketKind.RTCP) for d in alice.sent)
    assert bob.of(CallFinished)


def strip_zrtp_hash(data: bytes) -> bytes:
    """The SIP message without its SDP's a=zrtp-hash line (Content-Length kept right)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")
    kept = b"\r\n".join(line for line in lines if not line.startswith(b"a=zrtp-hash:"))
    if kept == body:
        return data
    length = f"Content-Length: {len(kept)}".encode()
    head = b"\r\n".join(
        length if line.lower().startswith(b"content-length:") else line
        for line in head.split(b"\r\n")
    )
    return head + sep + kept


def test_prefer_policy_marks_the_call_insecure_and_carries_clear_audio() -> None:
    """A peer that never negotiated ZRTP (no a=zrtp-hash, no Hello): NOT SECURE, then clear."""
    net, alice, bob = setup("prefer")
    net.sip.alter = strip_zrtp_hash
    net.media_filter = lambda phone, data: classify(data) is not PacketKind.ZRTP
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(14.0)
    assert alice.call is not None and alice.call.state == CallState.CONNECTED
    assert alice.of(CallInsecure)
    assert abs(dominant_frequencies(b"".join(bob.played[-40:]))[0] - 1000) < 20


def test_prefer_never_goes_clear_for_a_call_that_negotiated_zrtp() -> None:
    """Both SDPs carry a=zrtp-hash, and something on the path drops every ZRTP packet: under
    "prefer" too the call ends, with no clear RTP ever sent (no downgrade by dropping)."""
    net, alice, bob = setup("prefer")
    net.media_filter = lambda phone, data: classify(data) is not PacketKind.ZRTP
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(30.0)
    assert alice.call is not None and bob.call is not None
    assert alice.call.state == bob.call.state == CallState.ENDED
    assert alice.of(CallSecurityFailed) and not alice.of(CallInsecure)
    assert not any(classify(d) in (PacketKind.RTP, PacketKind.RTCP) for d in alice.sent + bob.sent)


def test_sas_confirmation_makes_the_next_call_verified() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(2.0)
    assert alice.call is not None and bob.call is not None
    alice.call.confirm_sas(True, net.now)
    bob.call.confirm_sas(True, net.now)
    net.step()
    assert CallVerified(alice.call.call_id, True) in alice.events
    alice.call.hangup(net.now)
    net.run(0.5)

    alice.events.clear()
    bob.events.clear()
    alice.call = bob.call = None
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(2.0)
    (sa,) = alice.of(CallSecure)
    (sb,) = bob.of(CallSecure)
    assert isinstance(sa, CallSecure) and isinstance(sb, CallSecure)
    assert sa.secured.verified and sb.secured.verified and sa.secured.sas == sb.secured.sas


def test_rejecting_the_sas_ends_the_call() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(2.0)
    assert alice.call is not None
    alice.call.confirm_sas(False, net.now)
    net.run(0.2)
    (finished,) = alice.of(CallFinished)
    assert isinstance(finished, CallFinished) and finished.reason == "SAS rejected"
    assert bob.of(CallFinished)


def test_ringing_before_answer_and_dtmf() -> None:
    net, alice, bob = setup()
    bob.auto_answer = False
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(0.2)
    assert alice.of(CallRinging)
    assert bob.call is not None and bob.call.state == CallState.INCOMING
    bob.call.answer(net.now)
    net.run(2.0)
    assert alice.call is not None
    alice.call.send_dtmf("7")
    net.run(0.5)
    assert [e for e in bob.events if isinstance(e, CallDtmf)] == [
        CallDtmf(bob.call.call_id, MediaDtmf("7"))
    ]


def state_of(call: Call) -> CallState:
    """The call's state, read fresh (no narrowing across the calls that change it)."""
    return call.state


class RecordingAgent:
    """Stands in for the SIP agent: records what the call asks of it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        self.sent.append(("invite", target, sdp))
        return "call-1"

    def ringing(self, call_id: str, now: float) -> None:
        self.sent.append(("ringing", call_id, b""))

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        self.sent.append(("answer", call_id, sdp))

    def reject(self, call_id: str, status: int, now: float) -> None:
        self.sent.append(("reject", call_id, str(status).encode()))

    def redirect(self, call_id: str, target: str, now: float) -> None:
        self.sent.append(("redirect", call_id, target.encode()))

    def hangup(self, call_id: str, now: float) -> None:
        self.sent.append(("hangup", call_id, b""))

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        self.sent.append(("reinvite", call_id, sdp))

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        self.sent.append(("accept_reinvite", call_id, sdp))

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None:
        self.sent.append(("reject_reinvite", call_id, str(status).encode()))


def test_offerless_invite_gets_our_offer_in_the_200_and_media_starts_on_the_ack() -> None:
    agent = RecordingAgent()
    settings = CallSettings()
    bob_media = MediaSession(settings.media, cache=MemoryZidCache())
    invite = sip.IncomingCall("call-1", "sips:alice@127.0.0.1", "Alice", b"")
    bob = Call.incoming(
        agent,
        settings=settings,
        media_id=1,
        hello_hash=bob_media.hello_hash,
        media_port=BOB_RTP,
        event=invite,
        now=0.0,
    )
    assert state_of(bob) == CallState.INCOMING and agent.sent[-1][0] == "ringing"
    bob.answer(1.0)
    kind, _, offer_bytes = agent.sent[-1]
    assert kind == "answer" and b"a=zrtp-hash:1.10 " in offer_bytes
    # No answer yet, so no media.
    assert state_of(bob) == CallState.ANSWERED and bob.media_commands() == []

    alice_media = MediaSession(settings.media, cache=MemoryZidCache())
    answer = build_answer(
        SessionDescription.parse(offer_bytes),
        address=("127.0.0.1", ALICE_RTP),
        zrtp_hash=alice_media.hello_hash.split()[1],
        session_id=1,
        session_version=1,
    )
    bob.on_sip_event(sip.CallEstablished("call-1", bytes(answer)), 1.1)
    assert state_of(bob) == CallState.CONNECTED
    run_media(bob, bob_media, 1.1)
    assert bob_media.remote == ("127.0.0.1", ALICE_RTP)
    assert isinstance(bob.next_event(), CallConnected)
    # ZRTP Hello goes out to Alice's address at once.
    assert [addr for _, addr in bob_media.datagrams_to_send()] == [("127.0.0.1", ALICE_RTP)]


def test_a_reinvite_that_changes_the_codec_reconfigures_the_media() -> None:
    agent = RecordingAgent()
    settings = CallSettings(codecs=("opus", "G722", "PCMU"))
    alice_hash = MediaSession(settings.media, cache=MemoryZidCache()).hello_hash.split()[1]

    def offer(codecs: tuple[str, ...], version: int) -> bytes:
        sd = build_offer(
            address=("127.0.0.1", ALICE_RTP),
            codecs=codecs,
            zrtp_hash=alice_hash,
            session_id=1,
            session_version=version,
        )
        return bytes(sd)

    bob = Call.incoming(
        agent,
        settings=settings,
        media_id=1,
        hello_hash=MediaSession(settings.media, cache=MemoryZidCache()).hello_hash,
        media_port=BOB_RTP,
        event=sip.IncomingCall("call-1", "sips:alice@127.0.0.1", "", offer(("opus",), 1)),
        now=0.0,
    )
    bob.answer(1.0)
    bob.on_sip_event(sip.CallEstablished("call-1", b""), 1.1)
    first = [c for c in bob.media_commands() if isinstance(c, SetCodec)]
    assert [(c.params.codec, c.params.clock_rate) for c in first] == [("opus", 48000)]
    events = [bob.next_event() for _ in range(2)]
    assert isinstance(events[1], CallMedia) and events[1].params.wideband

    # Alice moves the call to G.722: the answer names it, the media is told, the screen too
    bob.on_sip_event(sip.ReinviteReceived("call-1", offer(("G722", "PCMU"), 2)), 2.0)
    assert agent.sent[-1][0] == "accept_reinvite" and b"G722/8000" in agent.sent[-1][2]
    changed = [c for c in bob.media_commands() if isinstance(c, SetCodec)]
    assert [(c.params.codec, c.params.payload_type) for c in changed] == [("G722", 9)]
    assert bob.media_params is not None and bob.media_params.telephone_event_rate == 8000
    media = [e for e in iter(bob.next_event, None) if isinstance(e, CallMedia)]
    assert [e.params.codec for e in media] == ["G722"]

    # the same offer again (a session refresh): no codec change, no new event
    bob.on_sip_event(sip.ReinviteReceived("call-1", offer(("G722", "PCMU"), 3)), 3.0)
    assert not [c for c in bob.media_commands() if isinstance(c, SetCodec)]
    assert not [e for e in iter(bob.next_event, None) if isinstance(e, CallMedia)]


def test_an_offer_without_a_common_codec_is_refused_with_488() -> None:
    agent = RecordingAgent()
    settings = CallSettings()
    offer = (
        b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"
    )
    call = Call.incoming(
        agent,
        settings=settings,
        media_id=1,
        hello_hash=MediaSession(settings.media, cache=MemoryZidCache()).hello_hash,
        media_port=BOB_RTP,
        event=sip.IncomingCall("call-2", "sips:x@127.0.0.1", "", offer),
        now=0.0,
    )
    assert agent.sent == [("reject", "call-2", b"488")]
    assert call.state == CallState.ENDED
    finished = call.next_event()
    assert isinstance(finished, CallFinished) and finished.status == 488


def test_a_hello_that_does_not_match_the_signalled_hash_fails_the_call() -> None:
    """A man in the middle of the media who cannot also rewrite TLS-protected signalling
    is caught by the hash of Hello in the SDP (RFC 6189 §8.1)."""
    net, alice, bob = setup()

    def forge(data: bytes) -> bytes:
        start = data.find(b"a=zrtp-hash:1.10 ")
        if start < 0:
            return data
        digest = start + len(b"a=zrtp-hash:1.10 ")
        return data[:digest] + b"0" * 64 + data[digest + 64 :]

    net.sip.alter = forge
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(15.0)  # every Hello is dropped until Hello gives up (12 s, the peer is known)
    assert bob.call is not None and alice.call is not None
    (failed,) = bob.of(CallSecurityFailed)
    assert isinstance(failed, CallSecurityFailed) and "a=zrtp-hash" in failed.failure.reason
    assert bob.call.state == CallState.ENDED and alice.call.state == "ended"
    assert not any(classify(d) is PacketKind.RTP for d in bob.sent + alice.sent)


def test_rtcp_is_multiplexed_when_both_offer_it_and_goes_to_port_plus_one_otherwise() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(11.0)
    assert alice.call is not None and bob.call is not None
    assert bob.session.stats.rtcp_received >= 1  # a=rtcp-mux on both sides: one port

    net, alice, bob = setup()
    # A peer that does not multiplex (linphonec by default): no a=rtcp-mux (same length,
    # so Content-Length holds).
    net.sip.alter = lambda data: data.replace(b"a=rtcp-mux\r\n", b"a=x-no-mux\r\n")
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(11.0)
    rtcp_to = {addr for data, addr in alice.sent_to if classify(data) is PacketKind.RTCP}
    assert rtcp_to == {("127.0.0.1", BOB_RTP + 1)}


def test_a_reinvite_with_a_new_zrtp_hash_rekeys_by_multistream() -> None:
    net, alice, bob = setup()
    alice.place("sips:bob@127.0.0.1:5062", net.now)
    net.run(2.0)
    assert alice.call is not None and bob.call is not None
    (sa,) = alice.of(CallSecure)
    bob_hash = bob.call.hello_hash

    # Alice's phone starts a new ZRTP stream; her next re-INVITE carries its Hello hash.
    alice_hash = alice.call.hello_hash
    alice.call.restart_zrtp()
    alice.run_media(net.now)  # the media's answer: the new stream's Hello hash
    assert alice.call.hello_hash == alice.session.hello_hash != alice_hash
    alice.call.hold(net.now)
    net.run(1.0)
    assert bob.session.hello_hash != bob_hash  # Bob restarted too; his answer said so
    assert bob.call.hello_hash == bob.session.hello_hash
    assert alice.session.security == bob.session.security == "secure"
    alice.call.resume(net.now)
    net.run(1.5)

    assert alice.call.state == bob.call.state == CallState.CONNECTED
    assert alice.of(CallSecure) == [sa] and len(bob.of(CallSecure)) == 1
    assert not alice.of(CallSecurityFailed) and not bob.of(CallSecurityFailed)
    assert abs(dominant_frequencies(b"".join(bob.played[-20:]))[0] - 1000) < 25
    assert abs(dominant_frequencies(b"".join(alice.played[-20:]))[0] - 700) < 25
    assert alice.session.stats.clear_packets_sent == bob.session.stats.clear_packets_sent == 0


def offer_sdp(proto: str, payload: str, *extra: str) -> bytes:
    lines = [
        "v=0",
        "o=alice 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {ALICE_RTP} {proto} {payload}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_an_offer_the_phone_cannot_take_is_refused_with_its_status_and_reason() -> None:
    cases = [
        (b"v=0\r\nm=audio\r\n", b"400", "Unreadable SDP offer"),
        (offer_sdp("RTP/AVP", "18", "a=rtpmap:18 G729/8000"), b"488", "No common codec"),
        (
            offer_sdp("RTP/SAVP", "0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40),
            b"488",
            "Caller wants SDES-SRTP keys (never accepted: ZRTP only)",
        ),
    ]
    for sdp, status, reason in cases:
        agent = RecordingAgent()
        media = MediaSession(CallSettings().media, cache=MemoryZidCache())
        call = Call.incoming(
            agent,
            settings=CallSettings(),
            media_id=4,
            hello_hash=media.hello_hash,
            media_port=BOB_RTP,
            event=sip.IncomingCall("call-1", "sips:alice@127.0.0.1", "Alice", sdp),
            now=0.0,
        )
        assert agent.sent == [("reject", "call-1", status)], sdp
        assert state_of(call) == CallState.ENDED and call.end_reason == reason
        finished = call.next_event()
        assert isinstance(finished, CallFinished) and finished.status == int(status)
        assert [type(c).__name__ for c in call.media_commands()] == ["CloseMedia"]
