"""The agent's flows (RFC 5626 §3, over RFC 3261 §18.3 stream framing): one TLS connection per
peer (host, port), what is waiting for it to come up, and its CRLF keep-alives.

A request that needs a flow that is down is queued here and `(b"", peer)` goes out: the driver
opens the connection and calls `connection_made`, and the queued sends run with that `now` (so
their transactions' timers start when they really leave). Keep-alive pings go out every
`keepalive_interval` on flows we opened; a flow whose peer has answered a ping before and then
stays silent for `PONG_TIMEOUT` has failed. A stream that cannot be framed fails the flow too:
`FlowFailed` is reported and the peer listed for the driver to close.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pidphone.errors import LocalProtocolError
from pidphone.sip import events as ev
from pidphone.sip.callers import PeerCertificate
from pidphone.sip.errors import SipParseError
from pidphone.sip.framing import (
    PING,
    PONG,
    Frame,
    KeepAlivePing,
    KeepAlivePong,
    StreamFramer,
)
from pidphone.sip.transaction_layer import NoResponse

Address = tuple[str, int]

PONG_TIMEOUT = 10.0
"""RFC 5626 §4.4.1: a flow whose ping gets no pong within 10 s has failed."""


@dataclass
class WaitingSend:
    """A request waiting for its flow: `send(now)` once it is up, `fail(why, now)` if not."""

    send: Callable[[float], None]
    fail: Callable[[NoResponse, float], None]


@dataclass
class FlowState:
    framer: StreamFramer = field(default_factory=StreamFramer)
    local: Address | None = None
    waiting: list[WaitingSend] = field(default_factory=list)
    next_ping: float | None = None
    pong_due: float | None = None
    answers_pings: bool = False
    """The peer has answered a ping before, so a missing pong means a dead flow."""
    accepted: bool = False
    """The peer opened this connection to our listener (we did not ask for it)."""
    certificate: PeerCertificate | None = None
    """What TLS verified about the peer of an accepted connection."""


class Flows:
    """Every flow of the agent, the bytes for them and the ones to close."""

    def __init__(self, events: deque[ev.SipEvent], keepalive_interval: float) -> None:
        self._events = events
        self._keepalive = keepalive_interval
        self._flows: dict[Address, FlowState] = {}
        self._last_local: dict[Address, Address] = {}
        self._out: list[tuple[bytes, Address]] = []
        self._close: list[Address] = []

    # ------------------------------------------------------------------ the driver's side

    def made(
        self, peer: Address, local: Address, now: float, certificate: PeerCertificate | None
    ) -> None:
        """A connection is up: one we asked for (pinged from now on) or one a peer opened to
        our listener, with the client `certificate` TLS verified. What waited for it goes."""
        asked_for = peer in self._flows
        flow = self._flows.setdefault(peer, FlowState())
        if not asked_for:
            flow.accepted = True
            flow.certificate = certificate
        flow.local = local
        self._last_local[peer] = local
        if asked_for and self._keepalive > 0:
            flow.next_ping = now + self._keepalive
        waiting, flow.waiting = flow.waiting, []
        for item in waiting:
            item.send(now)

    def lost(self, peer: Address, now: float) -> None:
        """The connection closed or never opened: what waited for it fails (§8.1.3.1)."""
        flow = self._flows.pop(peer, None)
        if flow is not None:
            for item in flow.waiting:
                item.fail(NoResponse.CONNECTION_FAILED, now)

    def frames(self, peer: Address, data: bytes) -> Iterator[bytes]:
        """The whole messages in `data` (and what came before it) from `peer`; pings are
        answered and pongs noted on the way. An unframeable stream fails the flow."""
        flow = self._flows.setdefault(peer, FlowState())
        flow.framer.feed(data)
        while True:
            try:
                item = flow.framer.next_item()
            except SipParseError as exc:
                self.fail(peer, str(exc))
                return
            if item is None:
                return
            if isinstance(item, KeepAlivePing):
                self._out.append((PONG, peer))
            elif isinstance(item, KeepAlivePong):
                flow.answers_pings = True
                flow.pong_due = None
            elif isinstance(item, Frame):
                yield item.data

    def data_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def to_close(self) -> list[Address]:
        out, self._close = self._close, []
        return out

    # ------------------------------------------------------------------ the agent's side

    def send(self, flow: Address, data: bytes) -> None:
        """Bytes for `flow`; if it is down, the driver reconnects for us."""
        self._flows.setdefault(flow, FlowState())
        self._out.append((data, flow))

    def when_connected(self, flow: Address, item: WaitingSend, now: float) -> None:
        """Run `item` now if `flow` is up, else once it is (asking the driver for it)."""
        state = self._flows.get(flow)
        if state is not None and state.local is not None:
            item.send(now)
            return
        if state is None:
            state = self._flows[flow] = FlowState()
        if not state.waiting:
            self._out.append((b"", flow))
        state.waiting.append(item)

    def fail(self, peer: Address, reason: str) -> None:
        self._close.append(peer)
        self._events.append(ev.FlowFailed(peer, reason))
        flow = self._flows.get(peer)
        if flow is not None:
            flow.framer = StreamFramer()

    def local(self, flow: Address) -> Address:
        """The local address of `flow`; if it is down, the one it had (the driver reconnects
        to send, and rport brings answers back over the new connection)."""
        state = self._flows.get(flow)
        local = state.local if state is not None and state.local else self._last_local.get(flow)
        if local is None:
            raise LocalProtocolError(f"flow {flow} was never connected")
        return local

    def is_open(self, flow: Address) -> bool:
        """Whether the agent knows `flow` (connected, or asked for)."""
        return flow in self._flows

    def accepted(self, peer: Address) -> FlowState | None:
        """The flow if a peer opened it to our listener, else None."""
        flow = self._flows.get(peer)
        return flow if flow is not None and flow.accepted else None

    # ------------------------------------------------------------------ keep-alives

    def deadlines(self) -> Iterator[float]:
        for flow in self._flows.values():
            if flow.next_ping is not None and flow.local:
                yield flow.next_ping
            if flow.pong_due is not None:
                yield flow.pong_due

    def handle_timer(self, now: float) -> None:
        """Pings that are due (RFC 5626 §4.4.1), and flows whose pong did not come."""
        for peer, flow in self._flows.items():
            if flow.local and flow.next_ping is not None and flow.next_ping <= now:
                self._out.append((PING, peer))
                flow.framer.ping_sent()
                flow.next_ping = now + self._keepalive
                if flow.answers_pings:
                    flow.pong_due = now + PONG_TIMEOUT
            if flow.pong_due is not None and flow.pong_due <= now:
                flow.pong_due = None
                self.fail(peer, "no answer to the keep-alive")
