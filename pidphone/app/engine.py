"""The controller: runs the SIP runner, the calls, the audio pump and the phone's reducer.

Everything here happens on one asyncio loop, whose clock is the `now` handed to the sans-I/O
objects, except a call's audio: each 20 ms tick of the capture thread does it (see "Threads").
The engine owns:
- the `Signalling` runner of the SIP agent over the injected `SipTransport`;
- per call, a UDP socket (opened through the injected `open_socket`, a driver the composition
  root passes in) and a `Call`, with one `call_at` timer re-armed after every input;
- the `AudioPump` (capture and playback threads; the device is the media clock), whose frames
  go to and come from the call that has the handset, or a call-progress tone;
- when a display or keypad is given, the pure phone reducer: key, hook and call facts go in,
  its commands are run here, and `render(state)` goes to the display.

Tools and tests that do not need a screen (`pidphone call`, `pidphone answer`, the demo's
observer) drive the same engine through its API (`place_call`, `answer`, `hangup`, ...) and
listen to its events.

Threads. The capture thread's tick (`_on_captured`) reads the sockets of the calls whose media
flows, feeds the datagrams to their media sessions, encodes, protects and sends the handset's
frame, and pulls the earpiece's next frame (`_next_frame`): the loop is not woken per frame. It
wakes the loop (`call_soon_threadsafe`) only when a session has events, a new timer, or a socket
the loop must hand to the clock, and then at most once until the loop has run: the calls with
work collect in `_tick_work`, so a busy loop never faces a growing queue. One lock,
`_media_lock`, guards the legs (`_legs`, `_handset`, each `Call` and its `MediaSession`, each
leg's timer fields and socket): the tick holds it for one frame's work, and every loop-side
entry that touches a call holds it too (SIP events, datagrams the loop reads, timers, answer,
hangup, hold, DTMF, SAS confirmation, `_flush`, `_drop_leg`). It is re-entrant because those
entries nest (a listener may hang up from inside an event). The loop never waits on a device,
only on one tick's work; the tick never waits on the loop. During ZRTP the loop reads the
socket, as before the call flows, so the time to the SAS does not depend on the audio clock; the
media session's policy stays the one gate for what may leave in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from pidphone.app import phone_events as pe
from pidphone.app.audio_pump import SILENCE, AudioPump
from pidphone.app.call import (
    Call,
    CallConnected,
    CallDtmf,
    CallEvent,
    CallFinished,
    CallHeld,
    CallInsecure,
    CallMismatch,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallSecurityLost,
    CallSettings,
)
from pidphone.app.media import MediaSession
from pidphone.app.screen import render
from pidphone.app.signalling import LinkFailed, Signalling, SignallingEvent
from pidphone.app.state import PhoneState, initial_state, next_deadline, reduce
from pidphone.audio.tones import ToneGenerator
from pidphone.errors import LocalProtocolError, ProtocolError
from pidphone.ports import (
    Address,
    AudioDevices,
    Display,
    InputEvent,
    Keypad,
    Screen,
    SipTransport,
)
from pidphone.sdp import SessionDescription
from pidphone.sip import events as sip
from pidphone.sip.agent import UserAgent
from pidphone.zrtp.cache import ZidCache

log = logging.getLogger(__name__)

DatagramHandler = Callable[[bytes, Address], None]

BUSY_HERE = 486
DECLINE = 603
SERVER_ERROR = 500
"""Statuses for a rejected call: busy, or declined under do-not-disturb (RFC 3261 §21)."""

NETWORK_REASONS = frozenset({"unreachable", "timeout", "reset"})
"""Link failures that say the server cannot be reached, not that TLS refused it."""
FLOWING = ("secure", "clear")
"""Media security states in which the audio clock, not the loop, reads the call's socket."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Engine, _P], _R]) -> Callable[Concatenate[Engine, _P], _R]:
    """Run an engine method holding its media lock (see the module's "Threads")."""

    def locked(self: Engine, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._media_lock:
            return method(self, *args, **kwargs)

    return locked


class MediaSocket(Protocol):
    """The `DatagramSocket` port plus what the engine needs of the UDP driver."""

    @property
    def local(self) -> Address: ...

    def sendto(self, data: bytes, addr: Address) -> None: ...

    def close(self) -> None: ...

    def hand_to_clock(self) -> None:
        """On the loop: from now on `poll` reads the socket (until the polls stop)."""

    def poll(self, handler: DatagramHandler) -> bool:
        """Any thread: deliver the datagrams waiting now; False while the loop reads them."""

    def send_now(self, data: bytes, addr: Address) -> None:
        """Any thread: send on the socket itself (the audio clock's sends)."""

    async def stun_binding(self, server: Address) -> Address | None: ...


OpenSocket = Callable[[str, int, DatagramHandler], Awaitable[MediaSocket]]
"""Binds a UDP socket on (host, port) delivering datagrams to the handler."""
LocalAddress = Callable[[str], Awaitable[str]]
"""The local IP address that routes towards a host (the UDP driver's answer)."""


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs from the config (the composition root maps it here)."""

    call: CallSettings = field(default_factory=CallSettings)
    media_bind: str = "127.0.0.1"
    """Local address the call sockets bind to ("0.0.0.0" for every interface)."""
    media_address: str | None = None
    """The address written in our SDP. None: the local address that routes towards the peer
    (the registrar, the called host, or the caller's media address), or the STUN answer."""
    stun_server: Address | None = None
    """Learn the public media address with a STUN binding before each SDP (RFC 8489)."""
    register: bool = True
    """Register at start when the agent has a registrar."""
    tone_plan: str = "etsi"
    dial_domain: str = ""
    """Host[:port] appended to a dialled number that is not a SIP URI (else the AOR's)."""
    phone: pe.PhoneSettings | None = None
    """The phone UI's settings; None runs the engine headless (no reducer)."""


# --------------------------------------------------------------------------- engine events


@dataclass(frozen=True)
class CallIncoming(CallEvent):
    """An INVITE arrived and the phone is ringing; `answer` or `hangup` it."""

    remote_uri: str
    remote_name: str


@dataclass(frozen=True)
class CallPlaced(CallEvent):
    """Our INVITE is out."""

    target: str


@dataclass(frozen=True)
class RegistrationEvent:
    """The registration changed (`state` as in `phone_events.RegistrationChanged`)."""

    state: pe.RegistrationState
    reason: str = ""


@dataclass(frozen=True)
class LinkProblem:
    """A TLS connection failed: `reason` in a word or two ("untrusted", "wrong host"...)."""

    peer: Address
    reason: str
    detail: str


EngineEvent = CallEvent | RegistrationEvent | LinkProblem
Listener = Callable[[EngineEvent], None]


class _Agent:
    """The `SignallingAgent` a `Call` expects, on top of the runner (which uses the loop's
    clock itself, so `now` is not passed on)."""

    def __init__(self, signalling: Signalling) -> None:
        self._s = signalling

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        return self._s.invite(target, sdp)

    def ringing(self, call_id: str, now: float) -> None:
        self._s.ringing(call_id)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        self._s.answer(call_id, sdp)

    def reject(self, call_id: str, status: int, now: float) -> None:
        self._s.reject(call_id, status)

    def hangup(self, call_id: str, now: float) -> None:
        self._s.hangup(call_id)

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        self._s.reinvite(call_id, sdp)

    def accept_reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        self._s.accept_reinvite(call_id, sdp)

    def reject_reinvite(self, call_id: str, status: int, now: float) -> None:
        self._s.reject_reinvite(call_id, status)


@dataclass
class _Leg:
    """A call with its socket and timer."""

    call: Call
    socket: MediaSocket
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None


class Engine:
    """Runs the phone on the current loop. `start()` first, `stop()` at the end."""

    def __init__(
        self,
        settings: EngineSettings,
        agent: UserAgent,
        transport: SipTransport,
        cache: ZidCache,
        open_socket: OpenSocket,
        *,
        local_address: LocalAddress | None = None,
        audio: AudioDevices | None = None,
        display: Display | None = None,
        keypad: Keypad | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.cache = cache
        self._transport = transport
        self._open_socket = open_socket
        self._local_address = local_address
        self._audio = audio
        self._display = display
        self._keypad = keypad
        self._wall_clock = wall_clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalling: Signalling | None = None
        self._legs: dict[str, _Leg] = {}
        self._routes: dict[int, list[str]] = {}
        """Per socket (by id), the Call-ID its datagrams belong to, once the call exists."""
        self._pending_incoming: dict[str, sip.IncomingCall] = {}
        self._listeners: list[Listener] = []
        self._pump: AudioPump | None = None
        self._handset: str | None = None
        self._tone: ToneGenerator | None = None
        self._ringer: AudioPump | None = None
        self._muted = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._state: PhoneState | None = None
        self._shown: Screen | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._media_lock = threading.RLock()
        """Guards the legs, their calls and media sessions against the capture thread."""
        self._tick_work: dict[str, None] = {}
        """Calls a tick found work for, in order, until the loop runs `_after_tick` (under
        `_media_lock`; not empty while that one wake-up is pending)."""

    # ------------------------------------------------------------------ life cycle

    @property
    def signalling(self) -> Signalling:
        if self._signalling is None:
            raise LocalProtocolError("the engine is not started")
        return self._signalling

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise LocalProtocolError("the engine is not started")
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._signalling = Signalling(self.agent, self._transport, on_event=self._on_sip)
        await self._signalling.start()
        if self._audio is not None:
            self._pump = AudioPump(
                self._loop, self._audio.open_capture(), self._audio.open_playback("call")
            )
            self._pump.set_sink(self._on_captured)
            self._pump.set_source(self._next_frame)
            self._pump.start()
        if self.settings.phone is not None:
            off_hook = self._keypad.off_hook() if self._keypad is not None else False
            self._state = initial_state(self.settings.phone, self.now(), off_hook)
            self._show()
            self._schedule_tick()
        if self._keypad is not None:
            self._keypad.start(self._input_from_thread)
        if self.agent.config.registrar is None or not self.settings.register:
            self._phone_fact(pe.RegistrationChanged("disabled"))
        else:
            self._phone_fact(pe.RegistrationChanged("registering"))
            self.signalling.register()

    async def stop(self) -> None:
        """Hang up every call, unregister, close the devices."""
        for call_id in list(self._legs):
            self.hangup(call_id)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tick is not None:
            self._tick.cancel()
        # Let the BYEs leave before the flows close.
        await asyncio.sleep(0.05)
        if self._signalling is not None:
            await self._signalling.aclose()
        with self._media_lock:
            for leg in list(self._legs.values()):
                self._drop_leg(leg)
        self.ring(False)
        if self._pump is not None:
            self._pump.close()
        if self._keypad is not None:
            self._keypad.close()

    # ------------------------------------------------------------------ call API

    def calls(self) -> list[Call]:
        return [leg.call for leg in self._legs.values()]

    def call(self, call_id: str) -> Call | None:
        leg = self._legs.get(call_id)
        return leg.call if leg else None

    async def place_call(self, target: str) -> Call:
        """Open the call's socket (and ask STUN), send the INVITE; returns the new call."""
        full_target = self._target(target)
        socket, (host, port) = await self._media_socket(self._peer_host(full_target))
        settings = self._call_settings(host)
        media = MediaSession(settings.media, cache=self.cache, wall_clock=self._wall_clock)
        try:
            call = Call.place(
                _Agent(self.signalling),
                settings=settings,
                media=media,
                media_port=port,
                target=full_target,
                now=self.now(),
            )
        except BaseException:
            self._routes.pop(id(socket), None)
            socket.close()
            raise
        with self._media_lock:
            self._adopt(call, socket)
            self._emit(CallPlaced(call.call_id, target))
            self._flush(call.call_id)
        return call

    @_locked
    def answer(self, call_id: str) -> None:
        leg = self._legs.get(call_id)
        if leg is not None and leg.call.state == "ringing":
            leg.call.answer(self.now())
            self._flush(call_id)

    @_locked
    def hangup(self, call_id: str, reason: str = "Hung up") -> None:
        leg = self._legs.get(call_id)
        if leg is not None:
            if leg.call.state == "ringing":
                leg.call.reject(self.now(), DECLINE)
            else:
                leg.call.hangup(self.now(), reason)
            self._flush(call_id)
        elif call_id in self._pending_incoming:
            del self._pending_incoming[call_id]
            self.signalling.reject(call_id, DECLINE)

    @_locked
    def reject(self, call_id: str, status: int = BUSY_HERE) -> None:
        leg = self._legs.get(call_id)
        if leg is not None and leg.call.state == "ringing":
            leg.call.reject(self.now(), status)
            self._flush(call_id)

    @_locked
    def hold(self, call_id: str, on: bool = True) -> None:
        leg = self._legs.get(call_id)
        if leg is not None and leg.call.state == "established":
            if on:
                leg.call.hold(self.now())
            else:
                leg.call.resume(self.now())
            self._flush(call_id)

    @_locked
    def send_dtmf(self, call_id: str, key: str) -> None:
        leg = self._legs.get(call_id)
        if leg is not None and leg.call.state == "established":
            try:
                leg.call.send_dtmf(key)
            except LocalProtocolError as exc:  # no telephone-event, or a key still going out
                log.info("DTMF %s not sent: %s", key, exc)

    @_locked
    def confirm_sas(self, call_id: str, verified: bool) -> None:
        leg = self._legs.get(call_id)
        if leg is None or leg.call.media.secured is None:
            return
        try:
            leg.call.confirm_sas(verified, self.now())
        except LocalProtocolError as exc:  # ZRTP closed or failed since the SAS was shown
            log.info("SAS confirmation for %s not recorded: %s", call_id, exc)
            return
        self._flush(call_id)

    def set_mute(self, muted: bool) -> None:
        self._muted = muted

    # ------------------------------------------------------------------ SIP events

    @_locked
    def _on_sip(self, event: SignallingEvent) -> None:
        if isinstance(event, sip.IncomingCall):
            self._pending_incoming[event.call_id] = event
            self._spawn(self._accept_incoming(event))
        elif isinstance(event, sip.Registered):
            self._registration("registered")
        elif isinstance(event, sip.RegistrationFailed):
            self._registration("failed", f"{event.status or ''} {event.reason}".strip())
        elif isinstance(event, LinkFailed):
            if event.peer == self.agent.config.registrar:
                offline = event.reason in NETWORK_REASONS
                self._registration("no_network" if offline else "tls_error", event.reason)
            log.info("SIP link to %s:%d failed: %s (%s)", *event.peer, event.reason, event.detail)
            self._emit(LinkProblem(event.peer, event.reason, event.detail))
        else:
            call_id = getattr(event, "call_id", None)
            if isinstance(call_id, str):
                target = self._legs.get(call_id)
                if target is not None:
                    target.call.on_sip_event(event, self.now())
                    self._flush(call_id)
                elif isinstance(event, sip.CallEnded):
                    self._pending_incoming.pop(call_id, None)

    async def _accept_incoming(self, event: sip.IncomingCall) -> None:
        """Open the call's socket and ring; a call that cannot be set up is refused (500)
        and nothing it opened stays open."""
        try:
            socket, (host, port) = await self._media_socket(self._offer_host(event.sdp))
        except OSError as exc:
            log.error("no media socket for the call from %s: %s", event.remote_uri, exc)
            if self._pending_incoming.pop(event.call_id, None) is not None:
                self.signalling.reject(event.call_id, SERVER_ERROR)
            return
        if self._pending_incoming.pop(event.call_id, None) is None:
            self._routes.pop(id(socket), None)
            socket.close()  # cancelled while the socket was opening
            return
        settings = self._call_settings(host)
        media = MediaSession(settings.media, cache=self.cache, wall_clock=self._wall_clock)
        try:
            call = Call.incoming(
                _Agent(self.signalling),
                settings=settings,
                media=media,
                media_port=port,
                event=event,
                now=self.now(),
            )
        except BaseException:
            self._routes.pop(id(socket), None)
            socket.close()
            with contextlib.suppress(LocalProtocolError):  # unless it was refused already
                self.signalling.reject(event.call_id, SERVER_ERROR)
            raise
        with self._media_lock:
            self._adopt(call, socket)
            if call.state == "ringing":
                self._emit(CallIncoming(call.call_id, call.remote_uri, call.remote_name))
            self._flush(call.call_id)

    def _registration(self, state: pe.RegistrationState, reason: str = "") -> None:
        self._emit(RegistrationEvent(state, reason))

    # ------------------------------------------------------------------ calls and media

    async def _media_socket(self, toward: str | None) -> tuple[MediaSocket, Address]:
        """A new call socket, and the address for our SDP: configured, learnt by STUN (the
        NAT's port too), or the local address that routes `toward` the peer."""
        holder: list[str] = []

        def route(data: bytes, source: Address) -> None:
            if holder:
                self._on_datagram(holder[0], data, source)

        socket = await self._open_socket(self.settings.media_bind, 0, route)
        self._routes[id(socket)] = holder
        if self.settings.stun_server is not None and self.settings.media_address is None:
            mapped = await socket.stun_binding(self.settings.stun_server)
            if mapped is not None:
                return socket, mapped
            log.warning("no answer from STUN server %s:%d", *self.settings.stun_server)
        return socket, (await self._sdp_host(socket, toward), socket.local[1])

    async def _sdp_host(self, socket: MediaSocket, toward: str | None) -> str:
        if self.settings.media_address is not None:
            return self.settings.media_address
        bound = socket.local[0]
        if bound not in ("0.0.0.0", "::") or toward is None or self._local_address is None:
            return bound if bound not in ("0.0.0.0", "::") else "127.0.0.1"
        try:
            return await self._local_address(toward)
        except OSError as exc:
            log.warning("no route towards %s (%s): media address 127.0.0.1", toward, exc)
            return "127.0.0.1"

    def _peer_host(self, target: str) -> str | None:
        """Where the INVITE goes first: the outbound proxy, or the called host."""
        try:
            return self.agent.next_hop(target)[0]
        except ProtocolError:
            return None

    def _offer_host(self, sdp: bytes) -> str | None:
        """The caller's media address from its offer: our media will go there."""
        try:
            offer = SessionDescription.parse(sdp)
        except ProtocolError:
            return None
        for media in offer.media:
            if media.connections:
                return media.connections[0].address.split("/")[0]
        return offer.connection.address.split("/")[0] if offer.connection else None

    def _call_settings(self, host: str) -> CallSettings:
        base = self.settings.call
        return base if host == base.media_host else dataclasses.replace(base, media_host=host)

    @_locked
    def _adopt(self, call: Call, socket: MediaSocket) -> None:
        self._routes[id(socket)].append(call.call_id)
        self._legs[call.call_id] = _Leg(call, socket)

    @_locked
    def _on_datagram(self, call_id: str, data: bytes, source: Address) -> None:
        leg = self._legs.get(call_id)
        if leg is None:
            return
        leg.call.receive_datagram(data, source, self.now())
        self._flush(call_id)

    @_locked
    def _flush(self, call_id: str) -> None:
        """Send what the call's media queued, report its events, re-arm its timer."""
        leg = self._legs.get(call_id)
        if leg is None:
            return
        call = leg.call
        for data, address in call.media.datagrams_to_send():
            leg.socket.sendto(data, address)
        while (event := call.next_event()) is not None:
            self._on_call_event(leg, event)
        if call.state == "ended":
            # the media said goodbye (RTCP BYE) in close(): send it, then drop the leg
            for data, address in call.media.datagrams_to_send():
                leg.socket.sendto(data, address)
            self._drop_leg(leg)
            return
        deadline = call.get_timer()
        if deadline == leg.timer_at:
            return
        if leg.timer is not None:
            leg.timer.cancel()
        leg.timer_at = deadline
        leg.timer = (
            None if deadline is None else self.loop.call_at(deadline, self._on_timer, call_id)
        )

    @_locked
    def _on_timer(self, call_id: str) -> None:
        leg = self._legs.get(call_id)
        if leg is None:
            return
        leg.timer = None
        leg.timer_at = None
        leg.call.handle_timer(self.now())
        self._flush(call_id)

    @_locked
    def _drop_leg(self, leg: _Leg) -> None:
        if leg.timer is not None:
            leg.timer.cancel()
        leg.socket.close()
        self._routes.pop(id(leg.socket), None)
        self._legs.pop(leg.call.call_id, None)
        if self._handset == leg.call.call_id:
            self._set_handset(None)
            self._take_handset()

    def _on_call_event(self, leg: _Leg, event: CallEvent) -> None:
        if isinstance(event, CallConnected):
            self._set_handset(leg.call.call_id)
        elif isinstance(event, CallHeld):
            if event.local_hold and self._handset == leg.call.call_id:
                self._set_handset(None)
                self._take_handset()
            elif not event.local_hold and self._handset is None:
                self._set_handset(leg.call.call_id)
        self._emit(event)
        self._phone_fact_for(leg.call, event)
        if isinstance(event, CallInsecure):
            leg.call.allow_clear()  # NOT SECURE is on the screen before any clear audio

    def _take_handset(self) -> None:
        """Give the handset to another established call that is not on hold, if any."""
        for leg in self._legs.values():
            if leg.call.state == "established" and not leg.call.local_hold:
                self._set_handset(leg.call.call_id)
                return

    def _set_handset(self, call_id: str | None) -> None:
        """Which call the handset carries; what was queued for the earpiece is dropped."""
        self._handset = call_id
        self._audio_changed()

    def _audio_changed(self) -> None:
        if self._pump is not None:
            self._pump.set_source(self._next_frame)

    # ------------------------------------------------------------------ audio (on the loop)

    def _on_captured(self, pcm: bytes) -> None:
        """The capture thread's tick: the media work of the calls whose media flows (see the
        module's "Threads"); the loop is woken only for what the sessions have for it."""
        loop = self._loop
        if loop is None:
            return
        wake = False
        with self._media_lock:
            if not self._legs:
                return
            now = loop.time()
            handset = self._handset
            for call_id, leg in self._legs.items():
                call = leg.call
                media = call.media
                polled = True
                if media.security in FLOWING:

                    def receive(data: bytes, source: Address) -> None:
                        media.receive_datagram(data, source, now)  # noqa: B023 (called now)

                    # False: the loop reads the socket; woken, it hands it to the clock.
                    polled = leg.socket.poll(receive)
                if call_id == handset and call.state == "established":
                    media.send_audio(SILENCE if self._muted else pcm, now)
                for data, address in media.datagrams_to_send():
                    leg.socket.send_now(data, address)
                if not polled or media.has_events or call.get_timer() != leg.timer_at:
                    wake = wake or not self._tick_work
                    self._tick_work[call_id] = None
        if wake:
            # A closed loop means the phone is shutting down: nothing is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._after_tick)

    @_locked
    def _after_tick(self) -> None:
        """On the loop, when a tick found work for it: hand flowing sockets to the audio
        clock, turn media events into call events, send, re-arm timers."""
        now = self.now()
        call_ids, self._tick_work = self._tick_work, {}
        for call_id in call_ids:
            leg = self._legs.get(call_id)
            if leg is None:
                continue
            if leg.call.media.security in FLOWING:
                leg.socket.hand_to_clock()
            leg.call.after_audio(now)
            self._flush(call_id)

    @_locked
    def _next_frame(self) -> bytes:
        call_id = self._handset
        if call_id is not None:
            leg = self._legs.get(call_id)
            if leg is not None and leg.call.state == "established":
                return leg.call.media.pull_audio(self.now())
        if self._tone is not None:
            return self._tone.frame()
        return SILENCE

    def play_tone(self, kind: str | None) -> None:
        self._tone = None if kind is None else ToneGenerator(kind, plan=self.settings.tone_plan)
        self._audio_changed()

    def ring(self, on: bool) -> None:
        """Start or stop the ringer: its own playback ("ring": the loudspeaker when the
        config names one), opened only while it rings."""
        if on and self._ringer is None and self._audio is not None and self._loop is not None:
            tone = ToneGenerator("ring", plan=self.settings.tone_plan)
            self._ringer = AudioPump(self._loop, None, self._audio.open_playback("ring"))
            self._ringer.set_source(tone.frame)
            self._ringer.start()
        elif not on and self._ringer is not None:
            self._ringer.close()
            self._ringer = None

    # ------------------------------------------------------------------ the phone UI

    def _input_from_thread(self, event: InputEvent) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            self.loop.call_soon_threadsafe(self.press, event)

    def press(self, event: InputEvent) -> None:
        """A key or hook event from the loop's own thread (scripted keys, tests)."""
        self._phone_fact(event)

    def _phone_fact_for(self, call: Call, event: CallEvent) -> None:
        cid = call.call_id
        fact: pe.PhoneEvent | None = None
        if isinstance(event, CallIncoming):
            fact = pe.IncomingCall(cid, call.remote_name, call.remote_uri)
        elif isinstance(event, CallRinging):
            fact = pe.CallRinging(cid)
        elif isinstance(event, CallConnected):
            fact = pe.CallAnswered(cid)
        elif isinstance(event, CallSecure):
            fact = pe.CallSecure(
                cid,
                event.sas,
                event.sas_scheme,
                event.verified,
                event.cipher,
                event.key_agreement,
            )
        elif isinstance(event, CallInsecure):
            fact = pe.CallNotSecure(cid, event.reason)
        elif isinstance(event, CallMismatch):
            fact = pe.CacheMismatch(cid)
        elif isinstance(event, CallSecurityLost):
            fact = pe.SecurityLost(cid, event.reason)
        elif isinstance(event, CallSecurityFailed):
            fact = pe.SecurityFailed(cid, event.reason)
        elif isinstance(event, CallHeld):
            held = event.local_hold or event.remote_hold
            fact = (pe.CallHeld if held else pe.CallResumed)(cid, by_peer=not event.local_hold)
        elif isinstance(event, CallDtmf):
            fact = pe.DtmfReceived(cid, event.key)
        elif isinstance(event, CallFinished):
            fact = pe.CallEnded(cid, event.reason, event.status or 0)
        if fact is not None:
            self._phone_fact(fact)

    def _phone_fact(self, fact: pe.PhoneEvent) -> None:
        if self._state is None:
            return
        self._state, commands = reduce(self._state, fact, self.now())
        for command in commands:
            self._run(command)
        self._show()
        self._schedule_tick()

    def _run(self, command: pe.Command) -> None:
        if isinstance(command, pe.PlaceCall):
            self._spawn(self._place_for_phone(command.number))
        elif isinstance(command, pe.Answer):
            self.answer(command.call_id)
        elif isinstance(command, pe.Reject):
            dnd = self._state is not None and self._state.dnd
            self.reject(command.call_id, DECLINE if dnd else BUSY_HERE)
        elif isinstance(command, pe.Hangup):
            self.hangup(command.call_id)
        elif isinstance(command, pe.Hold):
            self.hold(command.call_id, True)
        elif isinstance(command, pe.Resume):
            self.hold(command.call_id, False)
        elif isinstance(command, pe.SendDtmf):
            self.send_dtmf(command.call_id, command.key)
        elif isinstance(command, pe.ConfirmSas):
            self.confirm_sas(command.call_id, command.verified)
        elif isinstance(command, pe.SetMute):
            self.set_mute(command.muted)
        elif isinstance(command, pe.SetVolume):
            if self._audio is not None:
                self._audio.set_volume(command.percent)
        elif isinstance(command, pe.PlayTone):
            self.play_tone(command.kind)
        elif isinstance(command, pe.Ring):
            self.ring(command.on)

    async def _place_for_phone(self, number: str) -> None:
        try:
            call = await self.place_call(number)
        except Exception as exc:
            log.warning("cannot call %s: %s", number, exc)
            self._phone_fact(pe.CallEnded("", f"Cannot call: {exc}"))
            return
        self._phone_fact(pe.OutgoingCall(call.call_id, number))

    def _show(self) -> None:
        if self._state is None or self._display is None:
            return
        screen = render(self._state, self.now())
        if screen != self._shown:
            self._shown = screen
            try:
                self._display.show(screen)
            except Exception:
                log.exception("display failed")

    def screen(self) -> Screen | None:
        """What the display shows now (None without the phone UI)."""
        return None if self._state is None else render(self._state, self.now())

    def _schedule_tick(self) -> None:
        if self._state is None:
            return
        if self._tick is not None:
            self._tick.cancel()
        deadline = next_deadline(self._state)
        at = self.now() + 1.0
        if deadline is not None:
            at = min(at, deadline)
        self._tick = self.loop.call_at(at, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        if self._state is None:
            return
        clock = time.strftime("%H:%M", time.localtime(self._wall_clock()))
        self._phone_fact(pe.Tick(self.now(), clock))

    # ------------------------------------------------------------------ helpers

    def _emit(self, event: EngineEvent) -> None:
        if isinstance(event, CallEvent):
            self._log_call(event)
        if isinstance(event, RegistrationEvent):
            self._phone_fact(pe.RegistrationChanged(event.state, event.reason))
        elif isinstance(event, CallIncoming):
            leg = self._legs.get(event.call_id)
            if leg is not None:
                self._phone_fact_for(leg.call, event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("engine listener failed on %s", event)

    def _log_call(self, event: CallEvent) -> None:
        """The call's milestones, with the journal fields that find one call (issue 7):
        `journalctl CALL_ID=...`. Never the keys; the SAS stays on the screen."""
        leg = self._legs.get(event.call_id)
        fields = {"CALL_ID": event.call_id, "PEER": leg.call.remote_uri if leg else ""}
        if isinstance(event, CallPlaced):
            log.info("calling %s", event.target, extra=fields)
        elif isinstance(event, CallIncoming):
            log.info("incoming call from %s", event.remote_uri, extra=fields)
        elif isinstance(event, CallConnected):
            log.info("call answered", extra=fields)
        elif isinstance(event, CallSecure):
            fields["SAS_VERIFIED"] = "yes" if event.verified else "no"
            log.info(
                "call secured: %s, %s, SAS %s",
                event.key_agreement,
                event.cipher,
                "verified" if event.verified else "not verified",
                extra=fields,
            )
        elif isinstance(event, CallInsecure):
            log.warning("call NOT SECURE: %s", event.reason, extra=fields)
        elif isinstance(event, CallSecurityLost):
            log.warning("call security LOST, audio stopped: %s", event.reason, extra=fields)
        elif isinstance(event, CallFinished):
            log.info("call ended: %s", event.reason, extra=fields)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine task failed")

        task = self.loop.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _target(self, number: str) -> str:
        text = number.strip()
        if text.lower().startswith(("sip:", "sips:")) or "@" in text:
            return text
        if self.settings.dial_domain:
            return f"{text}@{self.settings.dial_domain}"
        return text
