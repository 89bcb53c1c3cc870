"""The media session of one call: ZRTP keys SRTP, SRTP carries G.711 audio, RTCP reports.

One UDP socket carries RTP, RTCP, ZRTP and STUN (RFC 7983: the first byte tells them apart).
The session is sans-I/O like the core it drives: datagrams and 20 ms PCM frames in; datagrams,
a timer deadline, PCM frames and typed events out; `now` is always a parameter. It takes no
lock: the media worker's thread owns it, from construction to close, and the loop reaches it
only through the worker's commands (`media_messages`).

Security policy, the reason this module exists:
- "require": no RTP or RTCP ever leaves in clear. Audio goes out only after ZRTP is `Secured`
  (RFC 6189 §4.6: the SRTP send context is installed then, not at key derivation). A ZRTP
  failure, or a peer that never answers Hello, is a `MediaSecurityFailed` with `fatal=True`; the
  call above hangs up.
- "prefer": the same, except for a call that never negotiated ZRTP (no a=zrtp-hash in the
  peer's SDP, no peer Hello proven): when its exchange has an outcome that is not Secured,
  `MediaSecurityFailed(fatal=False)` is reported and audio stays off until `allow_clear()` says the
  screen shows NOT SECURE; only then does clear audio flow. A call that negotiated ZRTP and
  failed is fatal under both policies: an attacker who can break an exchange must not be able
  to turn it into a clear call.
- Latch: a call that has been secure never carries clear audio again. If its security is lost
  for an authenticated reason (the peer's GoClear with a good MAC, a new a=zrtp-hash whose
  exchange fails, a Hello that does not match a later a=zrtp-hash), both SRTP contexts are
  dropped: audio stops both ways, `MediaSecurityLost` is reported, and the call above decides.
Received clear RTP is played only when we are ourselves in clear ("prefer" after a failure).

A new ZRTP stream mid-call (RFC 6189 §4.4.3): when a re-INVITE carries a peer a=zrtp-hash other
than the one the stream was bound to, the peer restarted its stream; ours restarts too, keyed by
Multistream from the call's first exchange (a full exchange if that one never secured). Both SRTP
contexts are dropped at once and rebuilt from the new keys, and the policy above withholds audio
until the new `Secured` exactly as at call start. Multistream has no SAS: the call's stays.

Symmetric RTP (RFC 4961): we send from the port we receive on, and the peer's address follows
the source of what authenticated: SRTP that passes the tag check and, before keys exist, ZRTP
packets the ZRTP session took (CRC, form, the peer's SSRC and sequence, the hash chain as far
as it is revealed). Authenticated SRTCP moves only the RTCP destination, unless RTCP is
multiplexed with RTP (a peer that declines rtcp-mux may send RTCP from its RTCP port to our
RTP port). Once the call has been secure, ZRTP packets from any other address are dropped.

Every dropped datagram is counted in `MediaStats.drops` under its reason (`DROP_REASONS`, in
pidphone.app.media_events with the events) and logged at debug; none is ever raised.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pidphone.audio import g711
from pidphone.audio.plc import Concealer
from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.ports import FRAME_BYTES, FRAME_SAMPLES, Address
from pidphone.rtp import PacketKind, RtpSender, classify, rtp_fields, stun
from pidphone.rtp.jitter import JitterBuffer
from pidphone.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from pidphone.rtp.stats import ReceiverStats
from pidphone.rtp.telephone_event import TelephoneEventDecoder, TelephoneEventEncoder
from pidphone.srtp import SrtpContext, SrtpError
from pidphone.zrtp.cache import ZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.events import (
    CacheMismatch,
    GoClearRefused,
    PeerHelloReceived,
    Secured,
    SrtpKeysReady,
    ZrtpEvent,
    ZrtpFailed,
)
from pidphone.zrtp.events import SecurityLost as ZrtpSecurityLost
from pidphone.zrtp.session import ZrtpSession

from .call_state import Security
from .media_events import (
    MediaDtmf,
    MediaEvent,
    MediaPeerMoved,
    MediaSecretMismatch,
    MediaSecured,
    MediaSecurityFailed,
    MediaSecurityLost,
    MediaStats,
)

log = logging.getLogger("pidphone.media")

Policy = Literal["require", "prefer"]

SILENCE = bytes(FRAME_BYTES)
NO_ZRTP_REASON = "Peer does not support ZRTP"
SDES_CNAME = 1
PROTOCOL_TIMEOUT = 0xB0
"""RFC 6189 §5.9 Error code of an exchange that timed out (a silent peer included)."""
EARLY_KEPT = 8
"""ZRTP packets kept when they arrive before the media session starts."""
MAX_DATAGRAM = 4096
"""Longest datagram looked at (G.711 at 20 ms is 182 bytes; ZRTP's longest, a post-quantum
Commit, 1740): a longer one is dropped before any parsing, CRC or MAC."""


@dataclass(frozen=True)
class G711:
    """G.711 mu-law (PCMU) or A-law (PCMA), 8 kHz: 20 ms PCM frames in, payloads out, and
    back. The session uses nothing else of its codec."""

    name: str
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]
    rate: int = 8000
    """Samples per second of the PCM it takes and gives (also its RTP clock rate)."""


CODECS: dict[str, G711] = {
    "PCMU": G711("PCMU", g711.ulaw_encode, g711.ulaw_decode),
    "PCMA": G711("PCMA", g711.alaw_encode, g711.alaw_decode),
}
"""The codecs a call can negotiate, by their SDP encoding name."""


@dataclass(frozen=True)
class MediaConfig:
    """What a call's media needs besides the negotiated codec (see `MediaSession.configure`)."""

    policy: Policy = "require"
    """"require": never clear audio; "prefer": clear audio when ZRTP fails (NOT SECURE)."""
    zrtp: ZrtpConfig = field(default_factory=ZrtpConfig)
    """Algorithm preferences and timers handed to the ZRTP session."""
    secure_timeout: float = 20.0
    """Seconds from start to Secured before the exchange is declared failed, a backstop to
    ZRTP's own timers (Hello gives up after 3.75 s, or 12 s when the peer's a=zrtp-hash
    says it speaks ZRTP; the other messages after 9.45 s)."""
    rtcp_interval: float = 5.0
    """Seconds between RTCP reports (RFC 3550 §6.2: fixed for a two-party call)."""
    max_jitter_delay: float = 0.2
    """Upper bound of the jitter buffer's adaptive delay, in seconds."""
    cname: str = "pidphone"
    """RTCP SDES CNAME."""
    srtcp_tag_len: int | None = None
    """SRTCP tag bytes: 10 (RFC 3711), 4 (the 32-bit SRTP tag reused, as Linphone does under
    HS32), or None: 10, but under a 32-bit profile switch to 4 once the peer's SRTCP
    authenticates only that way."""


# --------------------------------------------------------------------------- session


class MediaSession:
    """One call's media: ZRTP, two SRTP contexts, RTP/RTCP, jitter buffer, PLC, G.711, DTMF.

    Order of use: build it (its `hello_hash` goes into the SDP), `configure` with the
    negotiated codec, `set_remote`, `start`. Then feed `receive_datagram`, `send_audio`,
    `handle_timer`, and drain `datagrams_to_send` and `next_event` after each.
    """

    def __init__(
        self,
        config: MediaConfig,
        *,
        cache: ZidCache,
        wall_clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.config = config
        self.stats = MediaStats()
        self._wall_clock = wall_clock
        self._sender = RtpSender(0)
        self.ssrc = self._sender.ssrc
        self._cache = cache
        self._zrtp = ZrtpSession(cache=cache, ssrc=self.ssrc, config=config.zrtp)
        """The ZRTP session of the stream now: the first, or a Multistream one after a restart."""
        self._first_zrtp = self._zrtp
        """The call's first exchange: it keys Multistream streams and holds the SAS."""
        self._bound_hash: str | None = None
        """The peer's a=zrtp-hash digest (lower-case hex) the current stream is bound to."""
        self._negotiating_since: float | None = None
        self._receiver: ReceiverStats | None = None
        self._peer_ssrc: int | None = None
        self._jitter = JitterBuffer(max_delay=config.max_jitter_delay)
        self._plc = Concealer()
        self.codec: G711 = CODECS["PCMU"]
        self._payload_type = 0
        self._event_pt: int | None = None
        self._dtmf_out = TelephoneEventEncoder()
        self._dtmf_in = TelephoneEventDecoder()
        self._sending = True
        self._send_ctx: SrtpContext | None = None
        """SRTP and SRTCP out: one context, so one SRTCP index whatever the tag length."""
        self._recv_ctx: SrtpContext | None = None
        """SRTP and SRTCP in: one context, so one replay window whatever the tag length."""
        self._pending_send: tuple[str, bytes, bytes] | None = None
        self._security: Security = Security.NEGOTIATING
        self._peer_hello_seen = False
        self._zrtp_signalled = False
        """The peer's SDP carried a=zrtp-hash at some point: this call negotiates ZRTP."""
        self._secured_once = False
        """The latch: the call has been secure, so it never carries clear audio again."""
        self._restored = False
        """A restarted stream is under way after the security was lost."""
        self._remote: Address | None = None
        self._rtcp_remote: Address | None = None
        """The peer's RTCP address when it is not multiplexed with RTP."""
        self._outbox: list[tuple[bytes, Address]] = []
        self._early: list[tuple[bytes, Address]] = []
        """ZRTP packets that arrived before `start`, replayed by it."""
        self._events: deque[MediaEvent] = deque()
        self._started_at: float | None = None
        self._next_rtcp: float | None = None
        self._last_sr: tuple[int, float] | None = None
        """The middle 32 bits of the peer's last SR timestamp and when it arrived (LSR/DLSR)."""
        self._closed = False
        self.secured: Secured | None = None
        """ZRTP's `Secured` once the call's first exchange finished, for reports."""

    # ------------------------------------------------------------------ set-up

    @property
    def hello_hash(self) -> str:
        """Our Hello hash for the SDP's a=zrtp-hash: "1.10 <hex>"."""
        return self._zrtp.hello_hash

    @property
    def remote(self) -> Address | None:
        """Where media goes now: from the SDP, then latched from the peer's packets."""
        return self._remote

    @property
    def security(self) -> Security:
        return self._security

    def configure(self, codec: str, payload_type: int, telephone_event_pt: int | None) -> None:
        """The codec and payload types the SDP negotiation settled on."""
        found = CODECS.get(codec)
        if found is None:
            raise LocalProtocolError(f"unsupported codec {codec!r}: {' or '.join(CODECS)}")
        self.codec = found
        self._payload_type = payload_type
        self._sender.payload_type = payload_type
        self._event_pt = telephone_event_pt

    def set_direction(self, direction: str) -> None:
        """Our SDP direction: audio goes out only for sendrecv and sendonly (RFC 3264 §5.1)."""
        self._sending = direction in ("sendrecv", "sendonly")

    def set_remote(
        self,
        address: Address,
        peer_hello_hash: str | None = None,
        *,
        rtcp: Address | None = None,
        now: float | None = None,
    ) -> None:
        """The peer's media address from its SDP, its a=zrtp-hash ("1.10 <hex>" or hex), and
        where it takes RTCP (None: on the RTP address, multiplexed, RFC 5761).

        A hash other than the one the running stream is bound to means the peer started a new
        ZRTP stream: ours restarts (`restart_zrtp`, which needs `now`) and binds the new one.
        """
        self._remote = address
        self._rtcp_remote = rtcp
        if not peer_hello_hash:
            return
        self._zrtp_signalled = True
        version, _, digest = peer_hello_hash.strip().rpartition(" ")
        digest = digest.lower()
        if digest == self._bound_hash:
            return
        if self._bound_hash is not None and self._started_at is not None:
            if self._security == Security.FAILED or self._closed:
                return
            if now is None:
                raise LocalProtocolError("a new peer a=zrtp-hash mid-call needs `now`")
            self.restart_zrtp(now)
        self._bound_hash = digest
        at = now if now is not None else (self._started_at or 0.0)
        self._zrtp.set_peer_hello_hash(f"{version or '1.10'} {digest}", at)
        self._pump_zrtp(self._started_at or 0.0)

    def restart_zrtp(self, now: float) -> None:
        """Start a new ZRTP stream: Multistream from the call's first exchange (§4.4.3), or a
        full exchange if that one never secured. `hello_hash` changes: the peer must learn it
        from our next SDP. Until the new stream is `Secured` no audio goes out ("require"), and
        the old keys are forgotten now, so packets under them are dropped."""
        if self._closed or self._started_at is None or self._security == Security.FAILED:
            raise LocalProtocolError(f"cannot restart ZRTP in state {self._security}")
        self._restored = self._security == Security.LOST
        first = self._first_zrtp
        parent = first if first.secured is not None else None
        if self._zrtp is not first:
            self._zrtp.close()
        if parent is None:
            first.close()
        self._zrtp = ZrtpSession(
            cache=self._cache, ssrc=self.ssrc, config=self.config.zrtp, multistream_from=parent
        )
        if parent is None:
            self._first_zrtp = self._zrtp
        self._bound_hash = None
        self._forget_keys()
        self._security = Security.NEGOTIATING
        self._negotiating_since = now
        self._zrtp.start(now)
        self._pump_zrtp(now)

    def start(self, now: float) -> None:
        """Begin ZRTP: both sides send Hello as soon as the media path exists (§4.1)."""
        if self._started_at is not None:
            raise LocalProtocolError("media session already started")
        if self._remote is None:
            raise LocalProtocolError("media session started before the peer's address is known")
        self._started_at = self._negotiating_since = now
        self._next_rtcp = now + self.config.rtcp_interval
        self._zrtp.start(now)
        self._pump_zrtp(now)
        early, self._early = self._early, []
        for data, source in early:
            self.receive_datagram(data, source, now)

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS: set, or clear, the verified flag in the ZID cache."""
        self._first_zrtp.confirm_sas(verified)

    def allow_clear(self) -> None:
        """The screen shows NOT SECURE: a call that fell back under "prefer" may now carry
        clear audio. Nothing happens in any other state (a secure call, or one that has
        been, never goes clear)."""
        if self._security == Security.INSECURE and not self._secured_once:
            self._security = Security.CLEAR

    def close(self, now: float) -> None:
        """Send an RTCP BYE where allowed, stop ZRTP and forget the keys."""
        if self._closed:
            return
        if self._started_at is not None and self._remote is not None and self._may_send():
            self._send_rtcp(now, self._rtcp_remote or self._remote, bye=True)
        self._closed = True
        self._zrtp.close()
        self._first_zrtp.close()
        self._forget_keys()

    # ------------------------------------------------------------------ the sans-I/O verbs

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """A datagram arrived on the call's socket. Bad ones are dropped and counted."""
        if self._closed:
            return
        if len(data) > MAX_DATAGRAM:
            self._drop("oversize", source)
            return
        if self._started_at is None:
            # The callee starts ZRTP as it sends its 200; its Hello may beat the 200 here.
            if len(self._early) < EARLY_KEPT and classify(data) is PacketKind.ZRTP:
                self._early.append((data, source))
            return
        kind = classify(data)
        try:
            if kind is PacketKind.RTP:
                self._receive_rtp(data, source, now)
            elif kind is PacketKind.ZRTP:
                self._receive_zrtp(data, source, now)
            elif kind is PacketKind.RTCP:
                self._receive_rtcp(data, source, now)
            elif kind is PacketKind.STUN:
                self._answer_stun(data, source)
            else:
                self._drop("garbage", source)
        except ProtocolError:
            self._drop("garbage" if kind is PacketKind.STUN else "rtp_malformed", source)

    def _drop(self, reason: str, source: Address) -> None:
        stats = self.stats
        stats.dropped += 1
        stats.drops[reason] += 1
        log.debug("media datagram from %s:%d dropped: %s", source[0], source[1], reason)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything queued for the wire, with its destination."""
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """The next deadline: ZRTP retransmission or timeout, the security backstop, RTCP."""
        if self._closed or self._started_at is None:
            return None
        # Asked after every packet and every frame: no list, no min() of one.
        deadline = self._next_rtcp
        zrtp = self._zrtp.get_timer()
        if zrtp is not None and (deadline is None or zrtp < deadline):
            deadline = zrtp
        if self._security == Security.NEGOTIATING and self._negotiating_since is not None:
            backstop = self._negotiating_since + self.config.secure_timeout
            if deadline is None or backstop < deadline:
                deadline = backstop
        return deadline

    def handle_timer(self, now: float) -> None:
        if self._closed or self._started_at is None:
            return
        zrtp_timer = self._zrtp.get_timer()
        if zrtp_timer is not None and zrtp_timer <= now:
            self._zrtp.handle_timer(now)
            self._pump_zrtp(now)
        since = self._negotiating_since
        if (
            self._security == Security.NEGOTIATING
            and since is not None
            and now >= since + self.config.secure_timeout
        ):
            if self._peer_hello_seen:
                self._fail(
                    "ZRTP failed: no agreement in time", PROTOCOL_TIMEOUT, peer_without_zrtp=False
                )
            else:
                self._fail(NO_ZRTP_REASON, None, peer_without_zrtp=True)
        if self._next_rtcp is not None and now >= self._next_rtcp:
            self._next_rtcp = now + self.config.rtcp_interval
            if self._may_send() and self._remote is not None:
                self._send_rtcp(now, self._rtcp_remote or self._remote)

    def next_event(self) -> MediaEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def has_events(self) -> bool:
        """Whether `next_event` has something (asked on every audio tick: no event built)."""
        return bool(self._events)

    # ------------------------------------------------------------------ audio and DTMF

    def send_audio(self, pcm: bytes, now: float) -> None:
        """One captured 20 ms frame: encode and send it, when the policy lets audio out."""
        if len(pcm) != FRAME_BYTES:
            raise LocalProtocolError(f"audio frame of {len(pcm)} bytes, expected {FRAME_BYTES}")
        if self._closed or self._started_at is None:
            return
        remote = self._remote if self._may_send() and self._sending else None
        if self._event_pt is not None and self._dtmf_out.busy:
            # An RFC 4733 event replaces the audio of the frames it lasts (§2.5).
            event = self._dtmf_out.frame()
            if event is not None and remote is not None:
                packet = self._sender.event_packet(
                    self._event_pt, event.payload, timestamp=event.timestamp, marker=event.marker
                )
                self._send_rtp(packet, remote)
            self._sender.skip(FRAME_SAMPLES)
            return
        if remote is None:
            self.stats.frames_withheld += 1
            self._sender.skip(FRAME_SAMPLES)
            return
        self._send_rtp(self._sender.packet(self.codec.encode(pcm)), remote)

    def send_dtmf(self, key: str, duration: float = 0.1) -> None:
        """Send a key press as RFC 4733 events in place of the next frames' audio."""
        if self._event_pt is None:
            raise LocalProtocolError("the peer did not negotiate telephone-event")
        self._dtmf_out.start(key, self._sender.timestamp, duration=round(duration * 8000))

    def pull_audio(self, now: float) -> bytes:
        """The next 20 ms to play: decoded, concealed over a loss, or silence."""
        frame = self._jitter.pop()
        if frame.kind == "silence":
            # Through the concealer, so that a loss right before a new talk-spurt conceals
            # from this silence rather than replaying the end of the last one.
            return self._plc.good(SILENCE)
        if frame.kind == "lost":
            return self._plc.conceal()
        pcm = self.codec.decode(frame.payload)
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        # G.711 Appendix I plays received audio 3.75 ms late, to cross-fade out of a loss.
        return self._plc.good(pcm)

    # ------------------------------------------------------------------ policy

    def _may_send(self) -> bool:
        return self._security in (Security.SECURE, Security.CLEAR)

    def _forget_keys(self) -> None:
        self._send_ctx = self._recv_ctx = None
        self._pending_send = None

    def _fail(self, reason: str, code: int | None, *, peer_without_zrtp: bool) -> None:
        """The exchange ended without Secured: lost (the latch), insecure (under "prefer",
        for a call that never negotiated ZRTP), or failed."""
        if self._secured_once:
            self._lose(reason)
            return
        negotiated = self._zrtp_signalled or self._peer_hello_seen
        fatal = self.config.policy == "require" or negotiated
        self._forget_keys()
        self._security = Security.FAILED if fatal else Security.INSECURE
        self._events.append(MediaSecurityFailed(reason, code, fatal, peer_without_zrtp))

    def _lose(self, reason: str) -> None:
        """Security lost after having been secure: no keys, no audio either way, ever clear."""
        if self._security == Security.LOST:
            return
        self._forget_keys()
        self._security = Security.LOST
        self._restored = False
        log.warning("media security lost: %s", reason)
        self._events.append(MediaSecurityLost(reason))

    # ------------------------------------------------------------------ ZRTP

    def _receive_zrtp(self, data: bytes, source: Address, now: float) -> None:
        self.stats.zrtp_received += 1
        if self._secured_once and source != self._remote:
            self._drop("zrtp_source", source)
            return
        zrtp = self._zrtp
        if zrtp.receive_datagram(data, now):
            if self._security == Security.NEGOTIATING:
                self._latch(source)
        elif zrtp.last_drop is not None:
            self._drop(f"zrtp_{zrtp.last_drop}", source)
        self._pump_zrtp(now)

    def _pump_zrtp(self, now: float) -> None:
        for packet in self._zrtp.datagrams_to_send():
            if self._remote is not None:
                self._outbox.append((packet, self._remote))
                self.stats.zrtp_sent += 1
        while (event := self._zrtp.next_event()) is not None:
            self._on_zrtp_event(event)

    def _on_zrtp_event(self, event: ZrtpEvent) -> None:
        if isinstance(event, PeerHelloReceived):
            self._peer_hello_seen = True
        elif isinstance(event, SrtpKeysReady):
            if self._security != Security.NEGOTIATING:
                return
            self._recv_ctx = SrtpContext(
                event.profile,
                event.recv_key,
                event.recv_salt,
                srtcp_tag_len=self.config.srtcp_tag_len,
            )
            self._pending_send = (event.profile, event.send_key, event.send_salt)
        elif isinstance(event, Secured):
            if self._pending_send is None or self._security != Security.NEGOTIATING:
                return
            profile, key, salt = self._pending_send
            self._pending_send = None
            self._send_ctx = SrtpContext(
                profile, key, salt, srtcp_tag_len=self.config.srtcp_tag_len
            )
            self._follow_srtcp_tag()
            self._security = Security.SECURE
            self._secured_once = True
            if self._zrtp is not self._first_zrtp:
                # a Multistream stream: new keys, the call's SAS stands; its event is told
                # again only when it restores a security that was lost
                if self._restored and self.secured is not None:
                    self._restored = False
                    self._events.append(MediaSecured(self.secured))
                return
            self.secured = event
            self._events.append(MediaSecured(event))
        elif isinstance(event, CacheMismatch):
            self._events.append(MediaSecretMismatch())
        elif isinstance(event, ZrtpFailed):
            if self._security in (Security.NEGOTIATING, Security.SECURE):
                # Silence, not a refused Hello: a Hello that failed its a=zrtp-hash is an attack.
                no_zrtp = not self._peer_hello_seen and event.code == PROTOCOL_TIMEOUT
                reason = NO_ZRTP_REASON if no_zrtp else f"ZRTP failed: {event.reason}"
                self._fail(reason, event.code, peer_without_zrtp=no_zrtp)
        elif isinstance(event, ZrtpSecurityLost):
            self._lose(f"ZRTP failed: {event.reason}")
        elif isinstance(event, GoClearRefused):
            self._lose("the peer asked to stop encryption (GoClear)")

    # ------------------------------------------------------------------ RTP and RTCP

    def _latch(self, source: Address) -> None:
        """The peer's RTP now comes from `source`, which just authenticated: send there."""
        if source != self._remote:
            self._remote = source
            self._events.append(MediaPeerMoved(source))

    def _send_rtp(self, packet: bytes, remote: Address) -> None:
        """SRTP when secure; clear RTP only when the prefer policy fell back to clear. Callers
        check `_may_send()` first; the test here is the policy's last line of defence."""
        if self._send_ctx is not None:
            self._outbox.append((self._send_ctx.protect(packet), remote))
        elif self._security == Security.CLEAR:
            self._outbox.append((packet, remote))
            self.stats.clear_packets_sent += 1
        else:
            self.stats.frames_withheld += 1
            return
        self.stats.packets_sent += 1

    def _receive_rtp(self, data: bytes, source: Address, now: float) -> None:
        if self._recv_ctx is not None:
            try:
                data = self._recv_ctx.unprotect(data)
            except SrtpError as error:
                self._drop(f"srtp_{error.reason}", source)
                return
            self._latch(source)
            if self._send_ctx is None:
                # §4.6: a valid SRTP packet from the responder stands for Conf2ACK.
                self._zrtp.srtp_authenticated(now)
                self._pump_zrtp(now)
        elif self._security != Security.CLEAR:
            self._drop("rtp_unkeyed", source)
            return
        # The header's fields, without building a packet object: this runs 50 times a second.
        # A malformed packet (bad padding included) raises RtpParseError: dropped and counted.
        payload_type, marker, sequence, timestamp, ssrc, payload = rtp_fields(data)
        receiver = self._receiver
        if receiver is None or ssrc != self._peer_ssrc:
            self._peer_ssrc = ssrc
            receiver = self._receiver = ReceiverStats()
        receiver.update(sequence, timestamp, now)
        stats = self.stats
        stats.packets_received += 1
        stats.packets_lost = max(0, receiver.cumulative_lost)
        stats.jitter = receiver.jitter / 8000
        if payload_type == self._payload_type:
            self._jitter.put_raw(
                sequence,
                timestamp,
                ssrc,
                payload_type,
                payload,
                arrival=now,
                marker=marker,
            )
        elif payload_type == self._event_pt:
            press = self._dtmf_in.receive(payload, timestamp)
            if press is not None:
                self._events.append(MediaDtmf(press.key))
        else:
            self._drop("rtp_payload_type", source)

    def _receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        if self._recv_ctx is not None:
            try:
                data = self._recv_ctx.unprotect_rtcp(data)
            except SrtpError as error:
                self._drop(f"srtcp_{error.reason}", source)
                return
            self._follow_srtcp_tag()
            if self._rtcp_remote is None:
                self._latch(source)  # rtcp-mux: RTCP and RTP share the peer's one port
            else:
                self._rtcp_remote = source  # symmetric RTCP; RTP follows RTP only
        elif self._security != Security.CLEAR:
            self._drop("rtcp_unkeyed", source)
            return
        for packet in parse_rtcp(data):
            if isinstance(packet, SenderReport) and packet.ssrc == self._peer_ssrc:
                self._last_sr = (ntp_middle32(packet.ntp_timestamp), now)
        self.stats.rtcp_received += 1

    def _answer_stun(self, data: bytes, source: Address) -> None:
        """Answer a plain STUN binding request (a peer's keep-alive or NAT probe, RFC 8489
        §6.3); ICE checks (with USERNAME) are not ours to answer."""
        request = stun.parse_message(data)
        if request.msg_type != stun.BINDING_REQUEST or request.attribute(stun.ATTR_USERNAME):
            self._drop("stun", source)
            return
        response = stun.build_binding_response(request.transaction_id, source[0], source[1])
        self._outbox.append((response, source))

    def _follow_srtcp_tag(self) -> None:
        """Send SRTCP with the tag length the peer's SRTCP authenticated with (4 bytes under
        a 32-bit profile for Linphone), in the same send context: the index goes on."""
        send, recv = self._send_ctx, self._recv_ctx
        if send is not None and recv is not None and send.srtcp_tag_len != recv.srtcp_tag_len:
            send.use_srtcp_tag_len(recv.srtcp_tag_len)

    def _send_rtcp(self, now: float, remote: Address, *, bye: bool = False) -> None:
        """An SR (or RR when we have sent nothing), SDES CNAME, and BYE at the end (§6.1)."""
        blocks: tuple[ReportBlock, ...] = ()
        if self._receiver is not None and self._peer_ssrc is not None:
            lsr, since = (0, 0.0)
            if self._last_sr is not None:
                lsr, since = self._last_sr[0], now - self._last_sr[1]
            blocks = (self._receiver.report_block(self._peer_ssrc, lsr, since),)
        report: SenderReport | ReceiverReport
        if self._sender.packets_sent:
            report = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_timestamp(self._wall_clock()),
                rtp_timestamp=self._sender.timestamp,
                packet_count=self._sender.packets_sent,
                octet_count=self._sender.octets_sent,
                reports=blocks,
            )
        else:
            report = ReceiverReport(ssrc=self.ssrc, reports=blocks)
        cname = SdesItem(SDES_CNAME, self.config.cname.encode())
        packets: list[RtcpPacket] = [report, SourceDescription((SdesChunk(self.ssrc, (cname,)),))]
        if bye:
            packets.append(Bye((self.ssrc,)))
        compound = serialize_rtcp(packets)
        if self._send_ctx is not None:
            compound = self._send_ctx.protect_rtcp(compound)
        self._outbox.append((compound, remote))
        self.stats.rtcp_sent += 1
