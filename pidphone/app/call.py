"""One call on the loop: its SIP dialog, the SDP offer/answer and the security policy.

The call is sans-I/O like everything it drives. It calls the SIP agent's API (`invite`,
`answer`, `hangup`, `reinvite` ... each with `now`) directly; the switchboard routes the
agent's call events here by Call-ID. Its media session lives on the media worker's thread:
the call queues commands for it through its `MediaHandle` (pidphone.app.media_handle; the
switchboard sends them: `media_commands()`) and is told what it reported (`on_media`). What
the phone's screen needs comes out of `next_event()`.

Policy (RFC 6189 §4.1, SECURITY.md): under "require" a call whose ZRTP fails, or whose
peer never answers Hello, is hung up with a reason for the screen ("Peer does not support
ZRTP", "ZRTP failed: <reason>"); the media session guarantees no clear audio left before. Under
"prefer" a call that never negotiated ZRTP goes on in clear once the screen says NOT SECURE
and the earpiece has played the not-secure tone (`allow_clear`; pidphone.app.security_tones);
one whose peer did negotiate it (a=zrtp-hash, a Hello) and failed is hung up
as under "require" (pidphone.app.media_security says when a failure is fatal). A call that
was secure and lost it (`CallSecurityLost`) carries no audio at all from then on; the phone
warns and ends it unless the user keeps the line.

Hold and resume (RFC 3264 §8.4) are re-INVITEs that change only the direction: the media
session, its ZRTP result and both SRTP contexts stay, so the SAS and the keys carry on. A
re-INVITE (offer or answer) whose a=zrtp-hash differs from the one the media is bound to means
the peer started a new ZRTP stream: the media session restarts its own in Multistream mode (new
keys, the call's SAS), and an answer we send carries our new Hello hash (so that answer waits
for the media worker's `MediaHelloHash`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.sdp import MediaParams, SessionDescription, negotiate
from pidphone.sip import events as sip_events
from pidphone.zrtp.events import Secured

from .call_events import (
    CallConnected,
    CallEvent,
    CallFinished,
    CallForwarded,
    CallHeld,
    CallMedia,
    CallRinging,
    CallTransferEnded,
    CallTransferProgress,
    CallVerified,
)
from .call_sdp import LocalDescription, offer_refusal, rtcp_address
from .call_state import CallState
from .media_config import MediaConfig
from .media_events import MediaSecured, MediaSecurityFailed, MediaStats
from .media_handle import MediaHandle, call_event_of
from .media_messages import MediaCommand, MediaHelloHash, MediaId, MediaUpdate, WorkerEvent

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
OUTGOING_UNANSWERED = (CallState.CALLING, CallState.ALERTING)


class SignallingAgent(Protocol):
    """The part of `pidphone.sip.UserAgent` a call uses."""

    def invite(self, target: str, sdp: bytes, now: float) -> str: ...

    def ringing(self, call_id: str, now: float) -> None: ...

    def answer(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def reject(self, call_id: str, status: int, now: float) -> None: ...

    def redirect(self, call_id: str, target: str, now: float) -> None: ...

    def hangup(self, call_id: str, now: float) -> None: ...

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None: ...

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None: ...


@dataclass(frozen=True)
class CallSettings:
    """What every call of the phone shares, from the config."""

    media: MediaConfig = field(default_factory=MediaConfig)
    """Policy, ZRTP preferences and timeouts (codec fields are overwritten by negotiation)."""
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    """Codecs to offer, in order of preference."""
    media_host: str = "127.0.0.1"
    """The address written in the SDP's c= line (the STUN-mapped one behind NAT)."""


# --------------------------------------------------------------------------- the call


class Call:
    """One call from INVITE to BYE. Build it with `place` or `incoming`, once the media worker
    has opened its media (`media_id`, our `hello_hash`, and the port for the SDP)."""

    def __init__(
        self,
        agent: SignallingAgent,
        settings: CallSettings,
        media_id: MediaId,
        hello_hash: str,
        media_port: int,
        *,
        outgoing: bool,
        remote_uri: str,
        remote_name: str = "",
    ) -> None:
        self._agent = agent
        self.media = MediaHandle(media_id, hello_hash)
        self.media_port = media_port
        """The port in our SDP: the call socket's, or its NAT mapping learnt by STUN."""
        self.settings = settings
        self.outgoing = outgoing
        self.remote_uri = remote_uri
        self.remote_name = remote_name
        self.call_id = ""
        self.state = CallState.CALLING if outgoing else CallState.INCOMING
        self.end_reason = ""
        self.answered_at: float | None = None
        self.secured_at: float | None = None
        self.secured: Secured | None = None
        """ZRTP's result once the media reported it, for reports."""
        self.local_hold = False
        self.remote_hold = False
        self._sdp = LocalDescription((settings.media_host, media_port), settings.codecs)
        self._local_sdp: SessionDescription | None = None
        self._offer: SessionDescription | None = None
        self.media_params: MediaParams | None = None
        """What the offer/answer settled (codec, payload types, the peer's address)."""
        self._waiting_answer: tuple[int, SessionDescription, Direction, MediaParams] | None = None
        """A re-INVITE whose answer waits for our Hello hash after the reply numbered first."""
        self._events: deque[CallEvent] = deque()

    @property
    def media_id(self) -> MediaId:
        return self.media.media_id

    @property
    def hello_hash(self) -> str:
        """Our ZRTP Hello hash ("1.10 <hex>"), as the media session last said."""
        return self.media.hello_hash

    @property
    def stats(self) -> MediaStats:
        """The media's counters as last reported (final once its media closed)."""
        return self.media.stats

    # ------------------------------------------------------------------ construction

    @classmethod
    def place(
        cls,
        agent: SignallingAgent,
        *,
        settings: CallSettings,
        media_id: MediaId,
        hello_hash: str,
        media_port: int,
        target: str,
        now: float,
        send_invite: Callable[[str, bytes, float], str] | None = None,
    ) -> Call:
        """Send the INVITE with our SDP offer (and our ZRTP Hello hash in it), through
        `send_invite` when given (a call a transfer asked for: the agent's `invite_referred`,
        or `invite` with the REFER's Replaces); it runs its own ZRTP exchange like any other."""
        call = cls(
            agent, settings, media_id, hello_hash, media_port, outgoing=True, remote_uri=target
        )
        offer = call._sdp.offer("sendrecv", call.hello_hash)
        call._local_sdp = offer
        call.call_id = (send_invite or agent.invite)(target, bytes(offer), now)
        return call

    @classmethod
    def incoming(
        cls,
        agent: SignallingAgent,
        *,
        settings: CallSettings,
        media_id: MediaId,
        hello_hash: str,
        media_port: int,
        event: sip_events.IncomingCall,
        now: float,
    ) -> Call:
        """An INVITE arrived: check its offer (400 when it cannot be read, 488 when no codec
        fits), then ring.

        An INVITE without an offer (RFC 3264 §4, RFC 3261 §13.2.1) gets our offer in the 200
        and its answer in the ACK; the media starts then."""
        call = cls(
            agent,
            settings,
            media_id,
            hello_hash,
            media_port,
            outgoing=False,
            remote_uri=str(event.remote_uri),
            remote_name=event.remote_display_name or "",
        )
        call.call_id = event.call_id
        if not event.sdp.strip():
            call._local_sdp = call._sdp.offer("sendrecv", call.hello_hash)
            agent.ringing(call.call_id, now)
            return call
        try:
            call._offer = SessionDescription.parse(event.sdp)
            answer = call._sdp.answer(call._offer, "sendrecv", call.hello_hash)
        except ProtocolError as exc:
            status, reason = offer_refusal(exc)
            agent.reject(call.call_id, status, now)
            call._finish(reason, by_peer=False, status=status)
            return call
        call._local_sdp = answer
        agent.ringing(call.call_id, now)
        return call

    # ------------------------------------------------------------------ user actions

    def answer(self, now: float) -> None:
        """Send 200 with the SDP answer and start the media: ZRTP Hello goes out now."""
        if self.outgoing or self.state != CallState.INCOMING or self._local_sdp is None:
            raise LocalProtocolError(f"cannot answer a call in state {self.state}")
        self._agent.answer(self.call_id, bytes(self._local_sdp), now)
        if self._offer is None:
            # Our offer went in the 200: the answer comes in the ACK.
            self.state = CallState.ANSWERED
            return
        self._establish(negotiate(self._local_sdp, self._offer), self._offer, now)

    def reject(self, now: float, status: int = 486, reason: str = "Rejected") -> None:
        if self.outgoing or self.state != CallState.INCOMING:
            raise LocalProtocolError(f"cannot reject a call in state {self.state}")
        # Finish first, as in `hangup`: our reason wins over the agent's own CallEnded.
        self._finish(reason, by_peer=False, status=status)
        self._agent.reject(self.call_id, status, now)

    def redirect(self, now: float, target: str) -> None:
        """Forward the incoming call to `target` (302) instead of taking it."""
        if self.outgoing or self.state != CallState.INCOMING:
            raise LocalProtocolError(f"cannot forward a call in state {self.state}")
        self._finish(f"Forwarded to {target}", by_peer=False, status=302)
        self._agent.redirect(self.call_id, target, now)

    def hangup(self, now: float, reason: str = "Hung up") -> None:
        if self.state == CallState.ENDED:
            return
        # Finish first: the agent reports its own CallEnded ("Hung up") while sending the
        # BYE, and the reason given here (e.g. "Peer does not support ZRTP") must win.
        self._finish(reason, by_peer=False)
        self._agent.hangup(self.call_id, now)

    def hold(self, now: float) -> None:
        self._change_hold(True, now)

    def resume(self, now: float) -> None:
        self._change_hold(False, now)

    def send_dtmf(self, key: str) -> None:
        if self.media_params is None or self.media_params.telephone_event_pt is None:
            raise LocalProtocolError("the peer did not negotiate telephone-event")
        self.media.send_digit(key)

    def confirm_sas(self, verified: bool, now: float) -> None:
        """The user read the SAS aloud with the peer: mark it verified, or reject it.

        Rejecting clears the verified flag and ends the call (issue 6: "ends the call").
        Nothing happens before the media reported a SAS.
        """
        if self.secured is None or self.state == CallState.ENDED:
            return
        self.media.set_sas_verified(verified)
        self._events.append(CallVerified(self.call_id, verified))
        if not verified:
            self.hangup(now, "SAS rejected")

    def restart_zrtp(self) -> None:
        """Start a new ZRTP stream (Multistream from the first exchange); our next SDP
        carries its Hello hash once the media says it (`hello_hash`)."""
        self.media.restart_zrtp()

    # ------------------------------------------------------------------ from the switchboard

    def on_sip_event(self, event: object, now: float) -> None:
        """An agent event for this Call-ID."""
        if isinstance(event, sip_events.CallProgress):
            if event.status in (180, 183) and self.state in OUTGOING_UNANSWERED:
                self.state = CallState.ALERTING
                self._events.append(CallRinging(self.call_id))
        elif isinstance(event, sip_events.CallRedirected):
            self._events.append(CallForwarded(self.call_id, event))
        elif isinstance(event, sip_events.CallAnswered):
            if self.outgoing and self.state in OUTGOING_UNANSWERED:
                self._on_answer(event.sdp, now)
        elif isinstance(event, sip_events.CallEstablished):
            if self.state == CallState.ANSWERED:  # our offer was in the 200: the ACK answers
                self._on_answer(event.sdp, now)
        elif isinstance(event, sip_events.ReinviteReceived):
            self._on_reinvite(event.sdp, now)
        elif isinstance(event, sip_events.ReinviteAnswered):
            result = self._negotiate(event.sdp, now)
            if result is not None:
                params, remote = result
                if self._use_codec(params):
                    self._events.append(CallMedia(self.call_id, params))
                self.media.set_remote(params, rtcp_address(remote, params, self._local_sdp))
                self._set_direction(params.direction)
        elif isinstance(event, sip_events.TransferProgress):
            self._events.append(CallTransferProgress(self.call_id, event))
        elif isinstance(event, sip_events.TransferEnded):
            self._events.append(CallTransferEnded(self.call_id, event))
        elif isinstance(event, sip_events.CallEnded) and self.state != CallState.ENDED:
            reason = event.reason or ("Hung up by peer" if event.by_peer else "Call ended")
            self._finish(reason, by_peer=event.by_peer, status=event.status)

    def on_media(self, event: WorkerEvent, now: float) -> None:
        """What the media worker said about this call's media."""
        if isinstance(event, MediaUpdate):
            self._on_media_event(event, now)
            return
        changed = self.media.on_reply(event)
        waiting = self._waiting_answer
        if (
            isinstance(event, MediaHelloHash)
            and waiting is not None
            and self.media.hash_replies >= waiting[0]
        ):
            self._waiting_answer = None
            self._accept_reinvite(waiting[1], waiting[2], waiting[3], changed, now)

    def allow_clear(self) -> None:
        """NOT SECURE is on the screen and its tone has played (after `CallInsecure`): clear
        audio may flow now."""
        if self.state != CallState.ENDED:
            self.media.allow_clear()

    def media_commands(self) -> list[MediaCommand]:
        """What the media worker must do for this call, in order (then cleared)."""
        return self.media.commands()

    def next_event(self) -> CallEvent | None:
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ internals

    def _establish(self, params: MediaParams, remote: SessionDescription, now: float) -> None:
        self.state = CallState.CONNECTED
        self.answered_at = now
        self._use_codec(params)
        self.media.set_remote(params, rtcp_address(remote, params, self._local_sdp))
        self.media.set_direction(params.direction)
        self._events.append(CallConnected(self.call_id))
        self._events.append(CallMedia(self.call_id, params))
        self.media.start()

    def _use_codec(self, params: MediaParams) -> bool:
        """Hand the media the negotiated codec when it is new or changed (a re-INVITE may
        settle on another codec, payload type or fmtp); True when it changed."""
        old, self.media_params = self.media_params, params
        if old is not None and _codec_of(old) == _codec_of(params):
            return False
        self.media.set_codec(params)
        return True

    def _change_hold(self, hold: bool, now: float) -> None:
        if self.state != CallState.CONNECTED:
            raise LocalProtocolError(f"cannot change hold in state {self.state}")
        if hold == self.local_hold:
            return
        self.local_hold = hold
        self._sdp.new_version()
        direction: Direction = "sendonly" if hold else "sendrecv"
        if self.remote_hold:
            direction = "inactive" if hold else "recvonly"
        offer = self._sdp.offer(direction, self.hello_hash)
        self._local_sdp = offer
        self._agent.reinvite(self.call_id, bytes(offer), now)
        self._set_direction(direction)
        self._events.append(CallHeld(self.call_id, self.local_hold, self.remote_hold))

    def _negotiate(
        self, answer: bytes, now: float
    ) -> tuple[MediaParams, SessionDescription] | None:
        """The media parameters of our offer and the peer's answer; a useless answer ends
        the call (RFC 3264 §6: the offerer cannot refuse an answer any other way)."""
        try:
            if self._local_sdp is None:
                raise LocalProtocolError("an SDP answer came before any offer of ours")
            remote = SessionDescription.parse(answer)
            return negotiate(self._local_sdp, remote), remote
        except ProtocolError as exc:
            self.hangup(now, f"Unusable SDP answer: {exc}")
            return None

    def _on_answer(self, answer: bytes, now: float) -> None:
        result = self._negotiate(answer, now)
        if result is not None:
            self._establish(result[0], result[1], now)

    def _set_direction(self, direction: str) -> None:
        # A call we hold offers sendonly (RFC 3264 §8.4) but sends no microphone audio.
        self.media.set_direction("inactive" if self.local_hold else direction)

    def _on_reinvite(self, sdp: bytes, now: float) -> None:
        try:
            offer = SessionDescription.parse(sdp)
            self._sdp.new_version()
            direction: Direction = "sendonly" if self.local_hold else "sendrecv"
            answer = self._sdp.answer(offer, direction, self.hello_hash)
            params = negotiate(answer, offer)
        except ProtocolError:
            self._agent.reject_reinvite(self.call_id, 488, now)
            return
        # Same a=zrtp-hash, same ZRTP/SRTP context: only the address and the direction change.
        # A new one restarts our stream, whose new Hello hash the answer must carry: the
        # answer waits for the media's reply.
        new_stream = self.media.is_new_stream(params.remote_zrtp_hash)
        self._local_sdp = answer
        self.media.set_remote(params, rtcp_address(offer, params, self._local_sdp))
        if new_stream:
            self._waiting_answer = (self.media.hash_requests, offer, direction, params)
            return
        self._accept_reinvite(offer, direction, params, False, now)

    def _accept_reinvite(
        self,
        offer: SessionDescription,
        direction: Direction,
        params: MediaParams,
        hash_changed: bool,
        now: float,
    ) -> None:
        if self.state == CallState.ENDED or self._local_sdp is None:
            return
        answer = self._local_sdp
        if hash_changed:
            answer = self._local_sdp = self._sdp.answer(offer, direction, self.hello_hash)
        self._agent.accept_reinvite(self.call_id, bytes(answer), now)
        if self._use_codec(params):
            self._events.append(CallMedia(self.call_id, params))
        remote_hold = params.direction in ("recvonly", "inactive")
        if remote_hold != self.remote_hold:
            self.remote_hold = remote_hold
            self._events.append(CallHeld(self.call_id, self.local_hold, self.remote_hold))
        self._set_direction(params.direction)

    def _on_media_event(self, update: MediaUpdate, now: float) -> None:
        event = update.event
        if self.state == CallState.ENDED:
            return
        if isinstance(event, MediaSecured):
            self.secured = event.secured
            self.secured_at = now
        call_event = call_event_of(self.call_id, event)
        if call_event is not None:
            self._events.append(call_event)
        if isinstance(event, MediaSecurityFailed) and event.fatal:
            self.hangup(now, event.reason)  # the policy: ZRTP failed under "require"

    def _finish(self, reason: str, *, by_peer: bool, status: int | None = None) -> None:
        if self.state == CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_reason = reason
        self.media.close()
        self._events.append(CallFinished(self.call_id, reason, by_peer, status))


def _codec_of(params: MediaParams) -> tuple[object, ...]:
    """What the media's codec depends on in a negotiation's result."""
    return (
        params.codec,
        params.payload_type,
        params.clock_rate,
        dict(params.fmtp),
        params.telephone_event_pt,
        params.telephone_event_rate,
    )
