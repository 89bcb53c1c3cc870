"""The loop's side of calls: signalling, each call's SIP/SDP side, and which call has the handset.

The switchboard owns the `Signalling` runner of the SIP agent and the `Call`s. It routes the
agent's events to the calls by Call-ID, sends each call's media commands to the media worker
and gives the worker's events back to the call they name, and decides which established call
carries the handset. What happens to the calls goes out as events to one sink: the
controller, which feeds the phone UI and the listeners. So do the account's registration and
voicemail facts (pidphone.app.account_events).

It never touches a media session or a socket: those live on the media worker's thread, and
only messages cross (`media_messages`), through a `MediaLink` (pidphone.app.media_link) that
keeps the bookkeeping of talking to the worker (media ids, replies awaited, what a dead
worker leaves behind). Everything here runs on the loop.

Transfers join two calls, so they are the switchboard's too: `transfer`, `transfer_to_call`,
a REFER from a call's peer and an INVITE that replaces a call go to its `Transfers`
(pidphone.app.call_transfers), which sees every call event first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pidphone.errors import ProtocolError
from pidphone.ports import Address, LocalAddress, SipTransport
from pidphone.sip import events as sip
from pidphone.sip.agent import UserAgent

from .account_events import ACCOUNT_EVENTS, account_facts
from .call import Call, CallSettings
from .call_addresses import dial_target, offer_host, sdp_address, settings_for_host
from .call_events import (
    CallConnected,
    CallEvent,
    CallHeld,
    CallIncoming,
    CallPlaced,
)
from .call_journal import log_milestone
from .call_state import CallState
from .call_transfers import Transfers
from .media_events import MediaStats
from .media_link import MediaLink, MediaSender
from .media_messages import MediaOpened, WorkerEvent
from .phone_events import RegistrationChanged, VoicemailChanged
from .signalling import LinkFailed, Signalling, SignallingEvent

log = logging.getLogger(__name__)

BUSY_HERE = 486
DECLINE = 603
SERVER_ERROR = 500
"""Statuses for a rejected call: busy, or declined under do-not-disturb (RFC 3261 §21)."""
MAX_CALLS = 2
"""Calls the phone holds at once (the handset's and one waiting or on hold): a REFER that
would need a third is declined."""


@dataclass(frozen=True)
class SwitchboardSettings:
    """What the calls need from the config (the composition root maps it here)."""

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
    dial_domain: str = ""
    """Host[:port] appended to a dialled number that is not a SIP URI (else the AOR's)."""
    voicemail_indicator: bool = False
    """Subscribe to the voicemail box's message summary (RFC 3842) when registering."""
    voicemail_uri: str = ""
    """The box subscribed to; empty: the account's AOR."""


SwitchboardEvent = CallEvent | RegistrationChanged | VoicemailChanged | LinkFailed
EventSink = Callable[[SwitchboardEvent], None]


class Switchboard:
    """The calls of one phone on the running loop. `start()` first, `stop()` at the end."""

    def __init__(
        self,
        settings: SwitchboardSettings,
        agent: UserAgent,
        transport: SipTransport,
        send_media: MediaSender,
        on_event: EventSink,
        *,
        local_address: LocalAddress | None = None,
        on_handset: Callable[[], None] | None = None,
    ) -> None:
        """`on_handset` is called whenever another call (or none) takes the handset."""
        self.settings = settings
        self.agent = agent
        self._transport = transport
        self._on_event = on_event
        self._local_address = local_address
        self._on_handset = on_handset or (lambda: None)
        self._loop = asyncio.get_running_loop()
        self._media = MediaLink(send_media, self._loop)
        self._signalling: Signalling | None = None
        self._calls: dict[str, Call] = {}
        self._pending_incoming: dict[str, sip.IncomingCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._transfers = Transfers(self, agent, self._flush_signalling)

    # ------------------------------------------------------------------ life cycle

    @property
    def signalling(self) -> Signalling:
        if self._signalling is None:
            raise RuntimeError("the switchboard is not started")
        return self._signalling

    def now(self) -> float:
        return self._loop.time()

    async def start(self) -> RegistrationChanged:
        """Start signalling and register; the registration state to begin with ("disabled"
        or "registering": its outcome comes as an event)."""
        self._signalling = Signalling(self.agent, self._transport, on_event=self._on_sip)
        await self._signalling.start()
        if self.agent.config.registrar is None or not self.settings.register:
            return RegistrationChanged("disabled")
        self.signalling.register()
        if self.settings.voicemail_indicator:
            self.signalling.watch_voicemail(self.settings.voicemail_uri or None)
        return RegistrationChanged("registering")

    async def stop(self) -> None:
        """Hang up every call and unregister."""
        for call_id in list(self._calls):
            self.hangup(call_id)
        for task in list(self._tasks):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                log.debug("call task ended while stopping", exc_info=True)
        # Let the BYEs leave before the flows close.
        await asyncio.sleep(0.05)
        if self._signalling is not None:
            await self._signalling.aclose()

    # ------------------------------------------------------------------ call API

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    async def place_call(
        self, target: str, *, referred: bool = False, replaces: str | None = None
    ) -> Call:
        """Open the call's media (and ask STUN), send the INVITE; returns the new call. A
        call a REFER asked for is `referred` (with the REFER's `replaces`, if any)."""
        full_target = dial_target(target, self.settings.dial_domain)
        opened, (host, port) = await self._open_media(self._peer_host(full_target))
        try:
            call = Call.place(
                self.agent,
                settings=settings_for_host(self.settings.call, host),
                media_id=opened.media_id,
                hello_hash=opened.hello_hash,
                media_port=port,
                target=full_target,
                now=self.now(),
                send_invite=self._transfers.referred_invite(replaces) if referred else None,
            )
        except BaseException:
            self._media.close(opened.media_id)
            raise
        self._adopt(call)
        self._on_call_event(call, CallPlaced(call.call_id, target))
        self._flush(call)
        return call

    def answer(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.state == CallState.INCOMING:
            call.answer(self.now())
            self._flush(call)

    def hangup(self, call_id: str, reason: str = "Hung up") -> None:
        call = self._calls.get(call_id)
        if call is not None:
            if call.state == CallState.INCOMING:
                call.reject(self.now(), DECLINE)
            else:
                call.hangup(self.now(), reason)
            self._flush(call)
        elif call_id in self._pending_incoming:
            del self._pending_incoming[call_id]
            self.signalling.reject(call_id, DECLINE)

    def reject(self, call_id: str, status: int = BUSY_HERE) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.state == CallState.INCOMING:
            call.reject(self.now(), status)
            self._flush(call)

    def redirect(self, call_id: str, target: str) -> None:
        """Forward an incoming call to `target` (a number or SIP address) with a 302."""
        call = self._calls.get(call_id)
        full = dial_target(target, self.settings.dial_domain)
        if call is not None and call.state == CallState.INCOMING:
            call.redirect(self.now(), full)
            self._flush(call)
        elif call_id in self._pending_incoming:
            del self._pending_incoming[call_id]
            self.signalling.redirect(call_id, full)

    def hold(self, call_id: str, on: bool = True) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.state == CallState.CONNECTED:
            if on:
                call.hold(self.now())
            else:
                call.resume(self.now())
            self._flush(call)

    def transfer(self, call_id: str, target: str) -> None:
        """Blind transfer: ask the peer of `call_id` to call `target` (a number or URI)."""
        self._transfers.transfer(call_id, dial_target(target, self.settings.dial_domain))

    def transfer_to_call(self, call_id: str, consultation_id: str) -> None:
        """Attended transfer: the peer of `call_id` takes our place in `consultation_id`."""
        self._transfers.transfer_to_call(call_id, consultation_id)

    def send_dtmf(self, call_id: str, key: str) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.state == CallState.CONNECTED:
            try:
                call.send_dtmf(key)
            except ProtocolError as exc:  # no telephone-event negotiated
                log.info("DTMF %s not sent: %s", key, exc)
            self._flush(call)

    def confirm_sas(self, call_id: str, verified: bool) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.confirm_sas(verified, self.now())
            self._flush(call)

    def allow_clear(self, call_id: str) -> None:
        """NOT SECURE is on the screen and its tone has played: the call may carry clear
        audio now."""
        call = self._calls.get(call_id)
        if call is not None:
            call.allow_clear()
            self._flush(call)

    async def media_stats(self, call: Call) -> MediaStats:
        """The call's media counters now (the last ones once its media closed)."""
        return await self._media.stats(call)

    def has_handset(self, call_id: str) -> bool:
        """Whether the call is the one the handset carries."""
        call = self._calls.get(call_id)
        return call is not None and self._media.handset == call.media_id

    # ------------------------------------------------------------------ the media worker

    def on_worker_event(self, event: WorkerEvent) -> None:
        """One event of the media worker's batch (not `WorkerFailed`: see `media_lost`)."""
        call = self._media.on_event(event, self.now())
        if call is not None:
            self._flush(call)

    def media_lost(self, reason: str) -> None:
        """The media worker died: every call's media is gone. End each call with `reason`
        and forget what was waiting for the old worker."""
        self._media.lost(reason)
        for call in list(self._calls.values()):
            if call.state == CallState.INCOMING:
                call.reject(self.now(), SERVER_ERROR, reason)
            else:
                call.hangup(self.now(), reason)
            call.media_commands()  # nothing to close: the media is gone with the worker
            self._flush(call)

    def resend_handset(self) -> None:
        """Tell a new media worker which call has the handset (none, after a fault)."""
        self._media.resend_handset()

    async def _open_media(self, toward: str | None) -> tuple[MediaOpened, Address]:
        """A new call's media, and the address our SDP gives for it (found `toward` the
        peer); nothing stays open when either fails."""
        settings = self.settings
        stun = settings.stun_server if settings.media_address is None else None
        opened = await self._media.open(settings.media_bind, settings.call.media, stun)
        try:
            address = await sdp_address(
                opened,
                toward,
                configured=settings.media_address,
                local_address=self._local_address,
            )
        except BaseException:
            self._media.close(opened.media_id)
            raise
        return opened, address

    # ------------------------------------------------------------------ SIP events

    def _on_sip(self, event: SignallingEvent) -> None:
        if isinstance(event, sip.ReferReceived):
            self._transfers.on_refer(event)
        elif isinstance(event, sip.IncomingCall):
            self._pending_incoming[event.call_id] = event
            self._spawn(self._accept_incoming(event))
        elif isinstance(event, ACCOUNT_EVENTS):
            for fact in account_facts(event, self.agent.config.registrar):
                self._on_event(fact)
        else:
            call_id = getattr(event, "call_id", None)
            if isinstance(call_id, str):
                call = self._calls.get(call_id)
                if call is not None:
                    call.on_sip_event(event, self.now())
                    self._flush(call)
                elif isinstance(event, sip.CallEnded):
                    self._pending_incoming.pop(call_id, None)

    async def _accept_incoming(self, event: sip.IncomingCall) -> None:
        """Open the call's media and ring; a call that cannot be set up is refused (500)
        and nothing it opened stays open."""
        try:
            opened, (host, port) = await self._open_media(offer_host(event.sdp))
        except OSError as exc:
            log.error("no media for the call from %s: %s", event.remote_uri, exc)
            if self._pending_incoming.pop(event.call_id, None) is not None:
                self.signalling.reject(event.call_id, SERVER_ERROR)
            return
        if self._pending_incoming.pop(event.call_id, None) is None:
            self._media.close(opened.media_id)  # cancelled while the media opened
            return
        try:
            call = Call.incoming(
                self.agent,
                settings=settings_for_host(self.settings.call, host),
                media_id=opened.media_id,
                hello_hash=opened.hello_hash,
                media_port=port,
                event=event,
                now=self.now(),
            )
        except BaseException:
            self._media.close(opened.media_id)
            try:
                self.signalling.reject(event.call_id, SERVER_ERROR)
            except ProtocolError:
                log.debug("the call was refused already")
            raise
        self._adopt(call)
        replaced = self._calls.get(event.replaces or "")
        if event.replaces is not None and call.state == CallState.INCOMING:
            if replaced is None or replaced.state != CallState.CONNECTED:
                call.reject(self.now(), 481)  # the call it names has ended meanwhile
            else:
                self._transfers.replace(replaced, call)
                return
        if call.state == CallState.INCOMING:
            self._on_call_event(call, CallIncoming(call.call_id, call.remote_uri, call.remote_name))
        self._flush(call)

    # ------------------------------------------------------------------ calls

    def _adopt(self, call: Call) -> None:
        self._calls[call.call_id] = call
        self._media.adopt(call)

    def _flush(self, call: Call) -> None:
        """Send the call's media commands, report its events (whose handlers may act on the
        call again), drop it once ended."""
        while True:
            for command in call.media_commands():
                self._media.send(command)
            event = call.next_event()
            if event is None:
                break
            self._on_call_event(call, event)
        if call.state == CallState.ENDED and self._calls.get(call.call_id) is call:
            del self._calls[call.call_id]
            if self._media.handset == call.media_id:
                self._set_handset(None)
                self._take_handset()
        self.signalling.flush()

    def _on_call_event(self, call: Call, event: CallEvent) -> None:
        self._transfers.on_call_event(call, event)
        if isinstance(event, CallConnected):
            self._set_handset(call.media_id)
        elif isinstance(event, CallHeld):
            if event.local_hold and self._media.handset == call.media_id:
                self._set_handset(None)
                self._take_handset()
            elif not event.local_hold and self._media.handset is None:
                self._set_handset(call.media_id)
        log_milestone(log, call, event)
        self._on_event(event)

    def _take_handset(self) -> None:
        """Give the handset to another established call that is not on hold, if any."""
        for call in self._calls.values():
            if call.state == CallState.CONNECTED and not call.local_hold:
                self._set_handset(call.media_id)
                return

    def _set_handset(self, media_id: int | None) -> None:
        if media_id != self._media.handset:
            self._media.set_handset(media_id)
            self._on_handset()

    # ------------------------------------------------------------------ addresses

    def _peer_host(self, target: str) -> str | None:
        """Where the INVITE goes first: the outbound proxy, or the called host."""
        try:
            return self.agent.next_hop(target)[0]
        except ProtocolError:
            return None

    # ------------------------------------------------------------------ for the transfers

    def has_room(self) -> bool:
        """Whether one more call fits (`MAX_CALLS`)."""
        return len(self._calls) + len(self._pending_incoming) < MAX_CALLS

    def flush_call(self, call: Call) -> None:
        self._flush(call)

    def report(self, call: Call | None, event: CallEvent) -> None:
        """A call event that did not come out of `call` itself (or of no call)."""
        if call is not None:
            self._on_call_event(call, event)
        else:
            self._on_event(event)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._spawn(coroutine)

    def _flush_signalling(self) -> None:
        self.signalling.flush()

    # ------------------------------------------------------------------ helpers

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call task failed")

        task = self._loop.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
