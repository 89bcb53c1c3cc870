"""The security side of a call's media: its ZRTP streams, its two SRTP contexts, and the
policy that says when audio may flow.

Policy, the reason this module exists:
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

Whose fault: an exchange that timed out is blamed on the peer ("Peer does not support ZRTP",
or the peer that stopped answering) only when the media path worked. When our socket could not
send a single datagram the reason is "Our media failed", and when not one datagram ever came
from the peer it is "No audio from peer: check network" (a firewall, a route, an address of the
wrong family: the peer's ZRTP was never tested). Only the reason changes: the policy's outcome
(fatal or not, clear audio or not) is the same whatever the fault.

A new ZRTP stream mid-call (RFC 6189 §4.4.3): when a re-INVITE carries a peer a=zrtp-hash other
than the one the stream was bound to, the peer restarted its stream; ours restarts too, keyed by
Multistream from the call's first exchange (a full exchange if that one never secured). Both SRTP
contexts are dropped at once and rebuilt from the new keys, and the policy above withholds audio
until the new `Secured` exactly as at call start. Multistream has no SAS: the call's stays.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from pidphone.errors import LocalProtocolError
from pidphone.srtp import SrtpContext, SrtpGcmContext, new_context
from pidphone.zrtp.cache import ZidCache
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
from .media_config import MediaConfig
from .media_events import (
    Fault,
    MediaEvent,
    MediaSecretMismatch,
    MediaSecured,
    MediaSecurityFailed,
    MediaSecurityLost,
    MediaStats,
)

log = logging.getLogger("pidphone.media")

NO_ZRTP_REASON = "Peer does not support ZRTP"
NO_MEDIA_REASON = "No audio from peer: check network"
"""Not one datagram came from the peer: the path, not the peer's ZRTP, is at fault."""
OUR_MEDIA_REASON = "Our media failed"
"""Our socket could not send one datagram (the error follows the colon)."""
PROTOCOL_TIMEOUT = 0xB0
"""RFC 6189 §5.9 Error code of an exchange that timed out (a silent peer included)."""


class MediaSecurity:
    """ZRTP and SRTP for one call's media stream, under the call's policy.

    The media session owns it and shares three things with it: the event queue, where the
    security events go, `send_zrtp`, which puts a ZRTP packet on the wire to the peer's
    current address, and the counters, which tell whose side a timeout lies on. The session
    reads `recv_ctx`/`send_ctx` to unprotect and protect, and `state` to know whether audio
    may flow.
    """

    def __init__(
        self,
        config: MediaConfig,
        *,
        cache: ZidCache,
        ssrc: int,
        events: deque[MediaEvent],
        send_zrtp: Callable[[bytes], None],
        stats: MediaStats,
    ) -> None:
        self.config = config
        self._stats = stats
        self._cache = cache
        self._ssrc = ssrc
        self._events = events
        self._send_zrtp = send_zrtp
        self.zrtp = ZrtpSession(cache=cache, ssrc=ssrc, config=config.zrtp)
        """The ZRTP session of the stream now: the first, or a Multistream one after a restart."""
        self._first_zrtp = self.zrtp
        """The call's first exchange: it keys Multistream streams and holds the SAS."""
        self._bound_hash: str | None = None
        """The peer's a=zrtp-hash digest (lower-case hex) the current stream is bound to."""
        self._started_at: float | None = None
        self._negotiating_since: float | None = None
        self._closed = False
        self.send_ctx: SrtpContext | SrtpGcmContext | None = None
        """SRTP and SRTCP out: one context, so one SRTCP index whatever the tag length."""
        self.recv_ctx: SrtpContext | SrtpGcmContext | None = None
        """SRTP and SRTCP in: one context, so one replay window whatever the tag length."""
        self._pending_send: tuple[str, bytes, bytes] | None = None
        self.state: Security = Security.NEGOTIATING
        self._peer_hello_seen = False
        self._zrtp_signalled = False
        """The peer's SDP carried a=zrtp-hash at some point: this call negotiates ZRTP."""
        self.secured_once = False
        """The latch: the call has been secure, so it never carries clear audio again."""
        self._restored = False
        """A restarted stream is under way after the security was lost."""
        self.secured: Secured | None = None
        """ZRTP's `Secured` once the call's first exchange finished, for reports."""

    @property
    def hello_hash(self) -> str:
        """Our Hello hash for the SDP's a=zrtp-hash: "1.10 <hex>"."""
        return self.zrtp.hello_hash

    @property
    def may_send(self) -> bool:
        """Whether audio and RTCP may go out now: secure, or clear by the user's consent."""
        return self.state in (Security.SECURE, Security.CLEAR)

    # ------------------------------------------------------------------ life cycle

    def bind_peer_hash(self, peer_hello_hash: str, now: float) -> None:
        """The peer's a=zrtp-hash ("1.10 <hex>" or hex) from its SDP. A hash other than the
        one the running stream is bound to means the peer started a new ZRTP stream: ours
        restarts (`restart`) and binds the new one."""
        self._zrtp_signalled = True
        version, _, digest = peer_hello_hash.strip().rpartition(" ")
        digest = digest.lower()
        if digest == self._bound_hash:
            return
        if self._bound_hash is not None and self._started_at is not None:
            if self.state == Security.FAILED or self._closed:
                return
            self.restart(now)
        self._bound_hash = digest
        self.zrtp.set_peer_hello_hash(f"{version or '1.10'} {digest}", now)
        self.pump()

    def start(self, now: float) -> None:
        """Begin ZRTP: both sides send Hello as soon as the media path exists (§4.1)."""
        self._started_at = self._negotiating_since = now
        self.zrtp.start(now)
        self.pump()

    def restart(self, now: float) -> None:
        """Start a new ZRTP stream: Multistream from the call's first exchange (§4.4.3), or a
        full exchange if that one never secured. `hello_hash` changes: the peer must learn it
        from our next SDP. Until the new stream is `Secured` no audio goes out ("require"), and
        the old keys are forgotten now, so packets under them are dropped."""
        if self._closed or self._started_at is None or self.state == Security.FAILED:
            raise LocalProtocolError(f"cannot restart ZRTP in state {self.state}")
        self._restored = self.state == Security.LOST
        first = self._first_zrtp
        parent = first if first.secured is not None else None
        if self.zrtp is not first:
            self.zrtp.close()
        if parent is None:
            first.close()
        self.zrtp = ZrtpSession(
            cache=self._cache, ssrc=self._ssrc, config=self.config.zrtp, multistream_from=parent
        )
        if parent is None:
            self._first_zrtp = self.zrtp
        self._bound_hash = None
        self._forget_keys()
        self.state = Security.NEGOTIATING
        self._negotiating_since = now
        self.zrtp.start(now)
        self.pump()

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS: set, or clear, the verified flag in the ZID cache."""
        self._first_zrtp.confirm_sas(verified)

    def allow_clear(self) -> None:
        """The screen shows NOT SECURE: a call that fell back under "prefer" may now carry
        clear audio. Nothing happens in any other state (a secure call, or one that has
        been, never goes clear)."""
        if self.state == Security.INSECURE and not self.secured_once:
            self.state = Security.CLEAR

    def close(self) -> None:
        """Stop ZRTP and forget the keys."""
        self._closed = True
        self.zrtp.close()
        self._first_zrtp.close()
        self._forget_keys()

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """ZRTP's retransmission or timeout, or the backstop while negotiating."""
        deadline = self.zrtp.get_timer()
        if self.state == Security.NEGOTIATING and self._negotiating_since is not None:
            backstop = self._negotiating_since + self.config.secure_timeout
            if deadline is None or backstop < deadline:
                deadline = backstop
        return deadline

    def handle_timer(self, now: float) -> None:
        zrtp_timer = self.zrtp.get_timer()
        if zrtp_timer is not None and zrtp_timer <= now:
            self.zrtp.handle_timer(now)
            self.pump()
        since = self._negotiating_since
        if (
            self.state == Security.NEGOTIATING
            and since is not None
            and now >= since + self.config.secure_timeout
        ):
            if self._path_failed():
                return
            if self._peer_hello_seen:
                self._fail(
                    "ZRTP failed: no agreement in time", PROTOCOL_TIMEOUT, peer_without_zrtp=False
                )
            else:
                self._fail(NO_ZRTP_REASON, None, peer_without_zrtp=True)

    # ------------------------------------------------------------------ what the session tells

    def srtp_authenticated(self, now: float) -> None:
        """A received SRTP packet passed its tag check: before our send keys exist, this
        stands for Conf2ACK (§4.6)."""
        if self.send_ctx is None:
            self.zrtp.srtp_authenticated(now)
            self.pump()

    def follow_srtcp_tag(self) -> None:
        """Send SRTCP with the tag length the peer's SRTCP authenticated with (4 bytes under
        a 32-bit profile for Linphone), in the same send context: the index goes on."""
        send, recv = self.send_ctx, self.recv_ctx
        if send is not None and recv is not None and send.srtcp_tag_len != recv.srtcp_tag_len:
            send.use_srtcp_tag_len(recv.srtcp_tag_len)

    def pump(self) -> None:
        """Send what ZRTP has to send and act on what it reports."""
        for packet in self.zrtp.datagrams_to_send():
            self._send_zrtp(packet)
        while (event := self.zrtp.next_event()) is not None:
            self._on_zrtp_event(event)

    # ------------------------------------------------------------------ policy

    def _forget_keys(self) -> None:
        self.send_ctx = self.recv_ctx = None
        self._pending_send = None

    def _path_failed(self) -> bool:
        """Fail for the media path, if it is to blame for a timeout: our socket sent nothing
        (every datagram tried was refused), or not one datagram came from the peer."""
        stats = self._stats
        tried = stats.zrtp_sent + stats.packets_sent + stats.rtcp_sent
        if stats.send_errors and stats.send_errors >= tried:
            self._fail(f"{OUR_MEDIA_REASON}: {stats.send_error}", None, fault="ours")
        elif not stats.datagrams_received:
            self._fail(NO_MEDIA_REASON, None, fault="network")
        else:
            return False
        return True

    def _fail(
        self,
        reason: str,
        code: int | None,
        *,
        peer_without_zrtp: bool = False,
        fault: Fault = "peer",
    ) -> None:
        """The exchange ended without Secured: lost (the latch), insecure (under "prefer",
        for a call that never negotiated ZRTP), or failed. The fault changes only the words."""
        if self.secured_once:
            self._lose(reason)
            return
        negotiated = self._zrtp_signalled or self._peer_hello_seen
        fatal = self.config.policy == "require" or negotiated
        self._forget_keys()
        self.state = Security.FAILED if fatal else Security.INSECURE
        self._events.append(MediaSecurityFailed(reason, code, fatal, peer_without_zrtp, fault))

    def _lose(self, reason: str) -> None:
        """Security lost after having been secure: no keys, no audio either way, ever clear."""
        if self.state == Security.LOST:
            return
        self._forget_keys()
        self.state = Security.LOST
        self._restored = False
        log.warning("media security lost: %s", reason)
        self._events.append(MediaSecurityLost(reason))

    def _on_zrtp_event(self, event: ZrtpEvent) -> None:
        if isinstance(event, PeerHelloReceived):
            self._peer_hello_seen = True
        elif isinstance(event, SrtpKeysReady):
            if self.state != Security.NEGOTIATING:
                return
            self.recv_ctx = new_context(
                event.profile,
                event.recv_key,
                event.recv_salt,
                srtcp_tag_len=self.config.srtcp_tag_len,
            )
            self._pending_send = (event.profile, event.send_key, event.send_salt)
        elif isinstance(event, Secured):
            if self._pending_send is None or self.state != Security.NEGOTIATING:
                return
            profile, key, salt = self._pending_send
            self._pending_send = None
            self.send_ctx = new_context(profile, key, salt, srtcp_tag_len=self.config.srtcp_tag_len)
            self.follow_srtcp_tag()
            self.state = Security.SECURE
            self.secured_once = True
            if self.zrtp is not self._first_zrtp:
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
            if self.state in (Security.NEGOTIATING, Security.SECURE):
                timeout = event.code == PROTOCOL_TIMEOUT
                if timeout and self.state == Security.NEGOTIATING and self._path_failed():
                    return
                # Silence, not a refused Hello: a Hello that failed its a=zrtp-hash is an attack.
                no_zrtp = not self._peer_hello_seen and timeout
                reason = NO_ZRTP_REASON if no_zrtp else f"ZRTP failed: {event.reason}"
                self._fail(reason, event.code, peer_without_zrtp=no_zrtp)
        elif isinstance(event, ZrtpSecurityLost):
            self._lose(f"ZRTP failed: {event.reason}")
        elif isinstance(event, GoClearRefused):
            self._lose("the peer asked to stop encryption (GoClear)")
