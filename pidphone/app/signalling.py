"""The asyncio runner of the pure SIP user agent (the aioquic asyncio/protocol.py shape).

`Signalling` owns a `pidphone.sip.agent.UserAgent` and a `SipTransport` given to it (the app
never imports a driver). After every input (bytes, a connection coming or going, an API call,
the timer) it drains the agent: bytes go to the transport (an empty payload asks it to open
the flow), flows the agent condemns are closed, events are handed on, and the one
`loop.call_at` timer is re-armed at the agent's next deadline.

Reconnecting the registrar flow needs no loop of its own: when the flow is lost the agent
reports `RegistrationFailed` with a `retry_at` chosen with exponential backoff and jitter, its
timer fires, it asks for the flow again, and the transport reconnects. Keep-alive pings (CRLF,
RFC 5626 §3.5.1) come out of the agent on its timer too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pidphone.ports import Address, LinkError, SipTransport
from pidphone.sip import events as ev
from pidphone.sip.agent import UserAgent
from pidphone.sip.callers import PeerCertificate
from pidphone.sip.transaction_layer import NoResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkFailed(ev.SipEvent):
    """A connection to `peer` failed or dropped with an error the person may need to see
    (an untrusted or expired certificate, a pin mismatch, the server unreachable)."""

    peer: Address
    reason: str
    detail: str


LINK_WORDS = {
    "refused": "Connection refused",
    "unreachable": "Unreachable",
    "timeout": "Connection timed out",
    "reset": "Connection reset",
    "untrusted": "Certificate untrusted",
    "expired": "Certificate expired",
    "not yet valid": "Certificate not yet valid",
    "wrong host": "Certificate for another host",
    "pin mismatch": "Certificate pin mismatch",
    "handshake failed": "TLS handshake failed",
}
"""What a call that could not reach its next hop ends with, by the link's reason: the
agent's own words ("Connection failed") do not tell a refused connection (the server is up,
nothing listens) from no route or no answer, nor from a certificate the phone will not trust."""


def link_words(error: LinkError) -> str:
    return LINK_WORDS.get(error.reason, f"Connection failed: {error.reason}")


SignallingEvent = ev.SipEvent
"""What `Signalling` delivers: the agent's events plus `LinkFailed`."""

EventSink = Callable[[SignallingEvent], None]


class Signalling:
    """Drives a `UserAgent` on the running event loop over `transport`.

    Events go to `on_event` when given, otherwise into a queue read with `next_event()`.
    Every API method takes no `now`: the loop's clock is used."""

    def __init__(
        self,
        agent: UserAgent,
        transport: SipTransport,
        *,
        on_event: EventSink | None = None,
    ) -> None:
        self.agent = agent
        self._transport = transport
        self._on_event = on_event
        self._queue: asyncio.Queue[SignallingEvent] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._failed_link: LinkError | None = None
        self._again = False
        self._closed = False

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Connect the transport to this runner (and open its listener, if any)."""
        await self._transport.start(self)

    async def aclose(self, *, unregister_timeout: float = 2.0) -> None:
        """Unregister if registered (waiting at most `unregister_timeout` s), then close."""
        if self._closed:
            return
        if self.agent.config.registrar is not None:
            waiter = asyncio.Event()
            sink = self._on_event

            def watch(event: SignallingEvent) -> None:
                if isinstance(event, ev.Unregistered):
                    waiter.set()
                if sink is not None:
                    sink(event)
                else:
                    self._queue.put_nowait(event)

            self._on_event = watch
            self.agent.unregister(self._now())
            self._pump()
            try:
                async with asyncio.timeout(unregister_timeout):
                    await waiter.wait()
            except TimeoutError:
                log.info("no answer to the unregistration; closing anyway")
            self._on_event = sink
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._transport.aclose()

    async def next_event(self) -> SignallingEvent:
        """The next event (when no `on_event` callback was given)."""
        return await self._queue.get()

    # ------------------------------------------------------------------ SipTransportHandler

    def connection_made(
        self, peer: Address, local: Address, certificate: PeerCertificate | None = None
    ) -> None:
        self.agent.connection_made(peer, local, self._now(), certificate)
        self._pump()

    def data_received(self, data: bytes, peer: Address) -> None:
        self.agent.receive_data(data, peer, self._now())
        self._pump()

    def connection_lost(self, peer: Address, error: LinkError | None) -> None:
        if error is not None:
            self._deliver(LinkFailed(peer, error.reason, error.detail))
        self.agent.connection_lost(peer, self._now())
        self._failed_link = error  # the calls that waited for this flow end saying why
        try:
            self._pump()
        finally:
            self._failed_link = None

    # ------------------------------------------------------------------ agent API

    def register(self) -> None:
        self.agent.register(self._now())
        self._pump()

    def unregister(self) -> None:
        self.agent.unregister(self._now())
        self._pump()

    def watch_voicemail(self, uri: str | None = None) -> None:
        self.agent.watch_voicemail(self._now(), uri)
        self._pump()

    def invite(self, target: str, sdp: bytes) -> str:
        call_id = self.agent.invite(target, sdp, self._now())
        self._pump()
        return call_id

    def ringing(self, call_id: str) -> None:
        self.agent.ringing(call_id, self._now())
        self._pump()

    def answer(self, call_id: str, sdp: bytes) -> None:
        self.agent.answer(call_id, sdp, self._now())
        self._pump()

    def reject(self, call_id: str, status: int) -> None:
        self.agent.reject(call_id, status, self._now())
        self._pump()

    def redirect(self, call_id: str, target: str) -> None:
        self.agent.redirect(call_id, target, self._now())
        self._pump()

    def hangup(self, call_id: str) -> None:
        self.agent.hangup(call_id, self._now())
        self._pump()

    def reinvite(self, call_id: str, sdp: bytes) -> None:
        self.agent.reinvite(call_id, sdp, self._now())
        self._pump()

    def accept_reinvite(self, call_id: str, sdp: bytes) -> None:
        self.agent.accept_reinvite(call_id, sdp, self._now())
        self._pump()

    def reject_reinvite(self, call_id: str, status: int) -> None:
        self.agent.reject_reinvite(call_id, status, self._now())
        self._pump()

    def accept_refer(self, call_id: str) -> None:
        self.agent.accept_refer(call_id, self._now())
        self._pump()

    def reject_refer(self, call_id: str, status: int) -> None:
        self.agent.reject_refer(call_id, status, self._now())
        self._pump()

    def refer_progress(self, call_id: str, status: int, reason: str) -> None:
        self.agent.refer_progress(call_id, status, reason, self._now())
        self._pump()

    def flush(self) -> None:
        """Drain the agent after the caller used its API directly (a call's `invite`,
        `answer`, `hangup` ... with the loop's time)."""
        self._pump()

    # ------------------------------------------------------------------ internals

    def _now(self) -> float:
        return self._loop.time()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.agent.handle_timer(self._now())
        self._pump()

    def _pump(self) -> None:
        """Drain the agent. Re-entrant calls (an event sink calling the API) just ask the
        running drain to go round once more."""
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._drain()
        finally:
            self._pumping = False
        self._arm_timer()

    def _drain(self) -> None:
        if self._closed:
            return
        for data, peer in self.agent.data_to_send():
            if data:
                self._transport.send(data, peer)
            else:
                self._transport.connect(peer)
        for peer in self.agent.flows_to_close():
            self._transport.close(peer)
        while (event := self.agent.next_event()) is not None:
            failed = self._failed_link
            if (
                failed is not None
                and isinstance(event, ev.CallEnded)
                and event.reason == NoResponse.CONNECTION_FAILED.reason
            ):
                event = dataclasses.replace(event, reason=link_words(failed))
            self._deliver(event)

    def _deliver(self, event: SignallingEvent) -> None:
        log.debug("sip event %s", event)
        if self._on_event is not None:
            self._on_event(event)
        else:
            self._queue.put_nowait(event)

    def _arm_timer(self) -> None:
        if self._closed:
            return
        deadline = self.agent.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)
