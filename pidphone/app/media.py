"""The media session of one call: ZRTP keys SRTP, SRTP carries G.711 audio, RTCP reports.

One UDP socket carries RTP, RTCP, ZRTP and STUN (RFC 7983: the first byte tells them apart).
The session is sans-I/O like the core it drives: datagrams and 20 ms PCM frames in; datagrams,
a timer deadline, PCM frames and typed events out; `now` is always a parameter. It takes no
lock: the media worker's thread owns it, from construction to close, and the loop reaches it
only through the worker's commands (`media_messages`).

This module sorts the datagrams and keeps the peer's address; two parts do the rest:
`media_security.MediaSecurity` (ZRTP, the SRTP contexts and the require/prefer policy: when
audio may flow, and why) and `media_stream.AudioStream` (codec, RTP, jitter buffer, loss
concealment, DTMF, RTCP reports).

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

import copy
import logging
from collections import deque
from collections.abc import Callable, Mapping

from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.ports import Address
from pidphone.rtp import PacketKind, classify, stun
from pidphone.srtp import SrtpError
from pidphone.zrtp.cache import ZidCache
from pidphone.zrtp.events import Secured
from pidphone.zrtp.session import ZrtpSession

from .call_state import Security
from .media_config import MediaConfig, Policy
from .media_events import MediaEvent, MediaPeerMoved, MediaStats
from .media_security import NO_ZRTP_REASON, MediaSecurity
from .media_stream import AudioStream

__all__ = ["NO_ZRTP_REASON", "MediaConfig", "MediaSession", "Policy"]

log = logging.getLogger("pidphone.media")

EARLY_KEPT = 8
"""ZRTP packets kept when they arrive before the media session starts."""
MAX_DATAGRAM = 4096
"""Longest datagram looked at (G.711 at 20 ms is 182 bytes; ZRTP's longest, a post-quantum
Commit, 1740): a longer one is dropped before any parsing, CRC or MAC."""


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
        self._events: deque[MediaEvent] = deque()
        self._stream = AudioStream(
            config, stats=self.stats, events=self._events, wall_clock=wall_clock
        )
        self.ssrc = self._stream.ssrc
        self._security = MediaSecurity(
            config,
            cache=cache,
            ssrc=self.ssrc,
            events=self._events,
            send_zrtp=self._send_zrtp,
            stats=self.stats,
        )
        self._remote: Address | None = None
        self._rtcp_remote: Address | None = None
        """The peer's RTCP address when it is not multiplexed with RTP."""
        self._outbox: list[tuple[bytes, Address]] = []
        self._early: list[tuple[bytes, Address]] = []
        """ZRTP packets that arrived before `start`, replayed by it."""
        self._started_at: float | None = None
        self._next_rtcp: float | None = None
        self._closed = False

    def report_stats(self) -> MediaStats:
        """A copy of the counters as they are now, the jitter buffer's included."""
        self._stream.fill_playout_stats()
        return copy.deepcopy(self.stats)

    # ------------------------------------------------------------------ set-up

    @property
    def hello_hash(self) -> str:
        """Our Hello hash for the SDP's a=zrtp-hash: "1.10 <hex>"."""
        return self._security.hello_hash

    @property
    def remote(self) -> Address | None:
        """Where media goes now: from the SDP, then latched from the peer's packets."""
        return self._remote

    @property
    def security(self) -> Security:
        return self._security.state

    @property
    def secured(self) -> Secured | None:
        """ZRTP's `Secured` once the call's first exchange finished, for reports."""
        return self._security.secured

    @property
    def zrtp(self) -> ZrtpSession:
        """The ZRTP session of the stream now: the first, or a Multistream one."""
        return self._security.zrtp

    def configure(
        self,
        codec: str,
        payload_type: int,
        telephone_event_pt: int | None,
        fmtp: Mapping[str, str] | None = None,
    ) -> None:
        """The codec and payload types the SDP negotiation settled on (and the peer's fmtp
        for the codec); also when a re-INVITE changes them."""
        self._stream.configure(codec, payload_type, telephone_event_pt, fmtp)

    @property
    def audio_rate(self) -> int:
        """Hz of the frames `send_audio` takes and `pull_audio` gives: the codec's (8000 for
        G.711, 16000 for G.722 and Opus)."""
        return self._stream.audio_rate

    def set_direction(self, direction: str) -> None:
        """Our SDP direction: audio goes out only for sendrecv and sendonly (RFC 3264 §5.1)."""
        self._stream.sending = direction in ("sendrecv", "sendonly")

    def set_remote(
        self,
        address: Address,
        peer_hello_hash: str | None = None,
        *,
        rtcp: Address | None = None,
        now: float,
    ) -> None:
        """The peer's media address from its SDP, its a=zrtp-hash ("1.10 <hex>" or hex), and
        where it takes RTCP (None: on the RTP address, multiplexed, RFC 5761).

        A hash other than the one the running stream is bound to means the peer started a new
        ZRTP stream: ours restarts (`restart_zrtp`) and binds the new one.
        """
        self._remote = address
        self._rtcp_remote = rtcp
        if peer_hello_hash:
            self._security.bind_peer_hash(peer_hello_hash, now)

    def restart_zrtp(self, now: float) -> None:
        """Start a new ZRTP stream (see `MediaSecurity.restart`)."""
        self._security.restart(now)

    def start(self, now: float) -> None:
        """Begin ZRTP: both sides send Hello as soon as the media path exists (§4.1)."""
        if self._started_at is not None:
            raise LocalProtocolError("media session already started")
        if self._remote is None:
            raise LocalProtocolError("media session started before the peer's address is known")
        self._started_at = now
        self._next_rtcp = now + self.config.rtcp_interval
        self._security.start(now)
        early, self._early = self._early, []
        for data, source in early:
            self.receive_datagram(data, source, now)

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS: set, or clear, the verified flag in the ZID cache."""
        self._security.confirm_sas(verified)

    def allow_clear(self) -> None:
        """The screen shows NOT SECURE: clear audio may flow (see `MediaSecurity.allow_clear`)."""
        self._security.allow_clear()

    def close(self, now: float) -> None:
        """Send an RTCP BYE where allowed, stop ZRTP and forget the keys."""
        if self._closed:
            return
        if self._started_at is not None and self._remote is not None and self._security.may_send:
            self._send_rtcp(now, self._rtcp_remote or self._remote, bye=True)
        self._closed = True
        self._security.close()

    # ------------------------------------------------------------------ the sans-I/O verbs

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """A datagram arrived on the call's socket. Bad ones are dropped and counted."""
        if self._closed:
            return
        self.stats.datagrams_received += 1
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

    def send_failed(self, address: Address, error: str) -> None:
        """Our socket could not send one of `datagrams_to_send` to `address` (the system said
        `error`). Counted: a call whose every datagram failed fails on our side, not the
        peer's; the first failure is logged."""
        stats = self.stats
        if not stats.send_errors:
            log.warning("media: cannot send to %s port %d: %s", address[0], address[1], error)
        stats.send_errors += 1
        stats.send_error = f"cannot send to {address[0]}"

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
        security = self._security.get_timer()
        if security is not None and (deadline is None or security < deadline):
            deadline = security
        return deadline

    def handle_timer(self, now: float) -> None:
        if self._closed or self._started_at is None:
            return
        self._security.handle_timer(now)
        if self._next_rtcp is not None and now >= self._next_rtcp:
            self._next_rtcp = now + self.config.rtcp_interval
            if self._security.may_send and self._remote is not None:
                self._send_rtcp(now, self._rtcp_remote or self._remote)

    def next_event(self) -> MediaEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def has_events(self) -> bool:
        """Whether `next_event` has something (asked on every audio tick: no event built)."""
        return bool(self._events)

    # ------------------------------------------------------------------ audio and DTMF

    def send_audio(self, pcm: bytes, now: float) -> None:
        """One captured 20 ms frame: encode and send it, when the policy lets audio out.
        `now` is when the capture completed it: a gap in those times (frames the card lost)
        is skipped in the RTP timestamps."""
        size = self._stream.codec.frame_bytes
        if len(pcm) != size:
            raise LocalProtocolError(f"audio frame of {len(pcm)} bytes, expected {size}")
        if self._closed or self._started_at is None:
            return
        remote = self._remote
        allowed = remote is not None and self._security.may_send and self._stream.sending
        packet = self._stream.packet_for(pcm, allowed, now)
        if packet is not None and remote is not None:
            self._send_rtp(packet, remote)

    def send_dtmf(self, key: str, duration: float = 0.1) -> None:
        """Send a key press as RFC 4733 events in place of the next frames' audio."""
        self._stream.send_dtmf(key, duration)

    def pull_audio(self, now: float) -> bytes:
        """The next 20 ms to play: decoded, concealed over a loss, or silence."""
        return self._stream.pull_audio(now)

    # ------------------------------------------------------------------ datagrams in and out

    def _latch(self, source: Address) -> None:
        """The peer's RTP now comes from `source`, which just authenticated: send there."""
        if source != self._remote:
            self._remote = source
            self._events.append(MediaPeerMoved(source))

    def _send_zrtp(self, packet: bytes) -> None:
        if self._remote is not None:
            self._outbox.append((packet, self._remote))
            self.stats.zrtp_sent += 1

    def _receive_zrtp(self, data: bytes, source: Address, now: float) -> None:
        self.stats.zrtp_received += 1
        security = self._security
        if security.secured_once and source != self._remote:
            self._drop("zrtp_source", source)
            return
        zrtp = security.zrtp
        if zrtp.receive_datagram(data, now):
            if security.state == Security.NEGOTIATING:
                self._latch(source)
        elif zrtp.last_drop is not None:
            self._drop(f"zrtp_{zrtp.last_drop}", source)
        security.pump()

    def _send_rtp(self, packet: bytes, remote: Address) -> None:
        """SRTP when secure; clear RTP only when the prefer policy fell back to clear. Callers
        check `may_send` first; the test here is the policy's last line of defence."""
        security = self._security
        if security.send_ctx is not None:
            self._outbox.append((security.send_ctx.protect(packet), remote))
        elif security.state == Security.CLEAR:
            self._outbox.append((packet, remote))
            self.stats.clear_packets_sent += 1
        else:
            self.stats.frames_withheld += 1
            return
        self.stats.packets_sent += 1

    def _receive_rtp(self, data: bytes, source: Address, now: float) -> None:
        security = self._security
        if security.recv_ctx is not None:
            try:
                data = security.recv_ctx.unprotect(data)
            except SrtpError as error:
                self._drop(f"srtp_{error.reason}", source)
                return
            self._latch(source)
            security.srtp_authenticated(now)
        elif security.state != Security.CLEAR:
            self._drop("rtp_unkeyed", source)
            return
        if not self._stream.receive_rtp(data, now):
            self._drop("rtp_payload_type", source)

    def _receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        security = self._security
        if security.recv_ctx is not None:
            try:
                data = security.recv_ctx.unprotect_rtcp(data)
            except SrtpError as error:
                self._drop(f"srtcp_{error.reason}", source)
                return
            security.follow_srtcp_tag()
            if self._rtcp_remote is None:
                self._latch(source)  # rtcp-mux: RTCP and RTP share the peer's one port
            else:
                self._rtcp_remote = source  # symmetric RTCP; RTP follows RTP only
        elif security.state != Security.CLEAR:
            self._drop("rtcp_unkeyed", source)
            return
        self._stream.receive_rtcp(data, now)

    def _answer_stun(self, data: bytes, source: Address) -> None:
        """Answer a plain STUN binding request (a peer's keep-alive or NAT probe, RFC 8489
        §6.3); ICE checks (with USERNAME) are not ours to answer."""
        request = stun.parse_message(data)
        if request.msg_type != stun.BINDING_REQUEST or request.attribute(stun.ATTR_USERNAME):
            self._drop("stun", source)
            return
        response = stun.build_binding_response(request.transaction_id, source[0], source[1])
        self._outbox.append((response, source))

    def _send_rtcp(self, now: float, remote: Address, *, bye: bool = False) -> None:
        compound = self._stream.rtcp_report(now, bye=bye)
        if self._security.send_ctx is not None:
            compound = self._security.send_ctx.protect_rtcp(compound)
        self._outbox.append((compound, remote))
        self.stats.rtcp_sent += 1
