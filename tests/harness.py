"""Sans-I/O endpoints back to back, time moved by hand: the test rig of ZRTP, media and SIP.

In the spirit of aioquic's `client_and_server()` and aiortc's `dummy_connection_pair(loss=…)`:
no sockets, no threads, no clock but the `now` the runner moves, so loss, retransmission and
timeouts are exact.

- `Wire`: one direction of the simulated network. Each batch of datagrams goes through an
  optional `alter` (any change: drop, corrupt, inject), then `keep` (per datagram, with the
  time), then the patterns `loss`, `duplicate` and `hold`, which cycle over the datagrams that
  cross it (`loss=[False, True]` loses every second one; `hold` keeps one back until after the
  next batch, which reorders).
- ZRTP: `zrtp_end` makes a `ZrtpEnd` (a session, its cache, what it sent and reported);
  `exchange(a, b)` runs two of them until nothing is left to do, firing timers in time order.
- Media: `media_end` / `media_pair` make `MediaEnd`s; `talk(a, b, seconds)` steps both a
  frame (20 ms) at a time: timers, one captured frame sent, one frame played, the datagrams.
- SIP: `SipNetwork` carries bytes between user agents (`make_agent`) and the in-memory
  registrar and proxy of `tests.peers.sip_registrar`; `two_phones`, `registered_alice` and
  `proxied_phones` set them up, `advance(net, agents, until)` fires their timers in order.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pidphone.app.media import MediaConfig, MediaSession, Policy
from pidphone.app.media_events import MediaEvent
from pidphone.ports import FRAME_SAMPLES, Address
from pidphone.sip import events as ev
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp import (
    MemoryZidCache,
    Message,
    Secured,
    SrtpKeysReady,
    ZidCache,
    ZrtpConfig,
    ZrtpEvent,
    ZrtpFailed,
    ZrtpPacket,
    ZrtpSession,
    parse_message,
    parse_packet,
)
from pidphone.zrtp.fragment import FRAGMENT_FIRST_BYTE, Reassembler
from tests.peers.sip_registrar import Proxy, Registrar

Channel = Callable[[list[bytes]], list[bytes]]
"""Any change to one batch of datagrams."""
Keep = Callable[[bytes, float], bool]
"""Whether one datagram, sent at the given time, arrives."""


@dataclass
class Wire:
    """One direction of the simulated network (see the module docstring)."""

    alter: Channel | None = None
    keep: Keep | None = None
    loss: Sequence[bool] = ()
    duplicate: Sequence[bool] = ()
    hold: Sequence[bool] = ()
    crossed: int = 0
    """Datagrams that reached the patterns (their position in each cycle)."""
    _held: list[bytes] = field(default_factory=list)

    def carry(self, batch: list[bytes], now: float) -> list[bytes]:
        """What arrives, in order, of a batch sent at `now` (and of what was held back)."""
        if self.alter is not None:
            batch = self.alter(batch)
        if self.keep is not None:
            batch = [data for data in batch if self.keep(data, now)]
        arrived, self._held = self._held, []
        for data in batch:
            n = self.crossed
            self.crossed += 1
            if _at(self.loss, n):
                continue
            copies = 2 if _at(self.duplicate, n) else 1
            (self._held if _at(self.hold, n) else arrived).extend([data] * copies)
        return arrived


def _at(pattern: Sequence[bool], n: int) -> bool:
    return bool(pattern) and pattern[n % len(pattern)]


def random_wire(rng: random.Random, loss: float, duplicate: float, reorder: bool) -> Wire:
    """A wire that loses, duplicates and (with `reorder`) holds back and shuffles datagrams at
    random, from `rng` (a seeded one makes the run repeatable)."""
    held: list[bytes] = []

    def channel(packets: list[bytes]) -> list[bytes]:
        out = []
        for packet in packets:
            if rng.random() < loss:
                continue
            out.append(packet)
            if rng.random() < duplicate:
                out.append(packet)
        if reorder:
            out = held + out
            held.clear()
            if out and rng.random() < 0.3:
                held.append(out.pop(rng.randrange(len(out))))
            rng.shuffle(out)
        return out

    return Wire(alter=channel)


# ---- ZRTP ------------------------------------------------------------------------------


@dataclass
class ZrtpEnd:
    """One ZRTP session with what it sent (and when) and every event it reported."""

    session: ZrtpSession
    cache: ZidCache
    events: list[ZrtpEvent] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    forged: int = 0

    def drain(self) -> None:
        while (event := self.session.next_event()) is not None:
            self.events.append(event)

    def of(self, kind: type[ZrtpEvent]) -> list[ZrtpEvent]:
        self.drain()
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def secured(self) -> Secured | None:
        found = self.of(Secured)
        assert len(found) <= 1
        return found[0] if found and isinstance(found[0], Secured) else None

    @property
    def keys(self) -> SrtpKeysReady:
        found = self.of(SrtpKeysReady)
        assert len(found) == 1 and isinstance(found[0], SrtpKeysReady)
        return found[0]

    @property
    def failed(self) -> ZrtpFailed | None:
        found = self.of(ZrtpFailed)
        return found[0] if found and isinstance(found[0], ZrtpFailed) else None

    def sent_messages(self) -> list[Message]:
        """What it sent, message by message (fragments reassembled, copies included)."""
        reassembler = Reassembler()
        found: list[Message] = []
        for at, packet in zip(self.sent_at, self.sent, strict=True):
            if packet[0] == FRAGMENT_FIRST_BYTE:
                whole = reassembler.receive(packet, at)
                if whole is not None:
                    found.append(parse_message(whole.message))
            else:
                found.append(parse_packet(packet).message)
        return found

    def sent_types(self) -> list[str]:
        return [message.type_name for message in self.sent_messages()]

    def forge(self, message: Message, *, ssrc: int | None = None) -> bytes:
        """`message` as this end would send it next (its SSRC, a sequence number above its
        last), with a valid CRC: what an on-path attacker who read its packets can make."""
        self.forged += 1
        last = parse_packet(self.sent[-1]).sequence if self.sent else 0
        own = parse_packet(self.sent[-1]).ssrc if self.sent else 0x1234
        return bytes(
            ZrtpPacket((last + self.forged) & 0xFFFF, own if ssrc is None else ssrc, message)
        )


def zrtp_end(
    config: ZrtpConfig | None = None,
    cache: ZidCache | None = None,
    ssrc: int = 0x1234,
    parent: ZrtpSession | None = None,
) -> ZrtpEnd:
    cache = cache or MemoryZidCache()
    session = ZrtpSession(
        cache=cache, ssrc=ssrc, config=config or ZrtpConfig(), multistream_from=parent
    )
    return ZrtpEnd(session, cache)


def exchange(
    a: ZrtpEnd,
    b: ZrtpEnd,
    *,
    a_to_b: Wire | None = None,
    b_to_a: Wire | None = None,
    now: float = 0.0,
    until: float = 60.0,
    start: bool = True,
) -> float:
    """Exchange datagrams, firing timers in time order, until nothing is left to do; returns
    the time reached."""
    wires = (a_to_b or Wire(), b_to_a or Wire())
    if start:
        a.session.start(now)
        b.session.start(now)
    while now <= until:
        moved = False
        for src, dst, wire in ((a, b, wires[0]), (b, a, wires[1])):
            packets = src.session.datagrams_to_send()
            src.sent.extend(packets)
            src.sent_at.extend(now for _ in packets)
            for packet in wire.carry(packets, now):
                dst.session.receive_datagram(packet, now)
                moved = True
        if moved:
            continue
        timers = [t for t in (a.session.get_timer(), b.session.get_timer()) if t is not None]
        if not timers:
            break
        now = max(now, min(timers))
        for end in (a, b):
            timer = end.session.get_timer()
            if timer is not None and timer <= now:
                end.session.handle_timer(now)
    a.drain()
    b.drain()
    return now


# ---- media -----------------------------------------------------------------------------

A_ADDR: Address = ("127.0.0.1", 40000)
B_ADDR: Address = ("127.0.0.1", 40002)
STEP = 0.02
"""One frame: the media runner's tick."""


class Tone(Protocol):
    """Frame n (20 ms) of a continuous sine at `rate` Hz."""

    def __call__(self, n: int, rate: int = 8000) -> bytes: ...


def tone_frames(freq: float, amplitude: int = 8000) -> Tone:
    """Frame n of a continuous sine, at 8 kHz unless asked for another rate."""

    def frame(n: int, rate: int = 8000) -> bytes:
        samples = FRAME_SAMPLES * rate // 8000
        start = n * samples
        return struct.pack(
            f"<{samples}h",
            *(
                round(amplitude * math.sin(2 * math.pi * freq * (start + i) / rate))
                for i in range(samples)
            ),
        )

    return frame


@dataclass
class MediaEnd:
    """One media session, its address and tone, what it sent, played and reported."""

    session: MediaSession
    address: Address
    tone: Tone
    events: list[MediaEvent] = field(default_factory=list)
    sent: list[tuple[float, bytes, Address]] = field(default_factory=list)
    played: list[bytes] = field(default_factory=list)

    def drain(self) -> None:
        while (event := self.session.next_event()) is not None:
            self.events.append(event)

    def of(self, kind: type[MediaEvent]) -> list[MediaEvent]:
        return [e for e in self.events if isinstance(e, kind)]


def media_end(
    address: Address,
    freq: float,
    policy: Policy = "require",
    codec: tuple[str, int] = ("PCMU", 0),
    cache: MemoryZidCache | None = None,
    zrtp: ZrtpConfig | None = None,
) -> MediaEnd:
    config = MediaConfig(policy=policy, zrtp=zrtp or ZrtpConfig())
    session = MediaSession(config, cache=cache or MemoryZidCache())
    session.configure(codec[0], codec[1], 101)
    return MediaEnd(session, address, tone_frames(freq))


def media_pair(
    policy: Policy = "require", codec: tuple[str, int] = ("PCMU", 0), zrtp: ZrtpConfig | None = None
) -> tuple[MediaEnd, MediaEnd]:
    """Two ends (a plays 1 kHz, b 700 Hz) that know each other's address and a=zrtp-hash."""
    a = media_end(A_ADDR, 1000, policy, codec, zrtp=zrtp)
    b = media_end(B_ADDR, 700, policy, codec, zrtp=zrtp)
    a.session.set_remote(B_ADDR, b.session.hello_hash, now=0.0)
    b.session.set_remote(A_ADDR, a.session.hello_hash, now=0.0)
    return a, b


def talk(
    a: MediaEnd,
    b: MediaEnd,
    seconds: float,
    *,
    start: float = 0.0,
    a_to_b: Wire | None = None,
    b_to_a: Wire | None = None,
    b_source: Address | None = None,
    audio: bool = True,
) -> float:
    """Step both ends a frame at a time: timers, a captured frame each, a played frame each,
    then the datagrams (those sent to the other end's address cross its wire; `b_source` is
    where b's seem to come from, as behind a NAT). Returns the time reached."""
    wires = (a_to_b or Wire(), b_to_a or Wire())
    now = start
    n = 0
    while now < start + seconds:
        for end in (a, b):
            timer = end.session.get_timer()
            if timer is not None and timer <= now:
                end.session.handle_timer(now)
            if audio:
                end.session.send_audio(end.tone(n, end.session.audio_rate), now)
                end.played.append(end.session.pull_audio(now))
        for src, dst, wire in ((a, b, wires[0]), (b, a, wires[1])):
            to_dst = []
            for data, addr in src.session.datagrams_to_send():
                src.sent.append((now, data, addr))
                if addr == dst.address:
                    to_dst.append(data)
            origin = b_source if (src is b and b_source) else src.address
            for data in wire.carry(to_dst, now):
                dst.session.receive_datagram(data, origin, now)
        a.drain()
        b.drain()
        now += STEP
        n += 1
    return now


# ---- SIP -------------------------------------------------------------------------------
# User agents, a registrar and a proxy back to back over an in-memory network, time moved by
# hand. Every node listens on one address. When a node emits bytes for an address it has no
# connection to, the network "connects" (both ends get connection_made, the caller with a
# fresh ephemeral port) and then delivers. Nothing is delivered until `run` is called, so tests
# can drop (`drop`), change (`alter`) or cut traffic.


class SipNode(Protocol):
    """What the SIP network carries bytes between: an agent, a registrar, a proxy."""

    def connection_made(self, peer: Address, local: Address, now: float) -> None: ...
    def connection_lost(self, peer: Address, now: float) -> None: ...
    def receive_data(self, data: bytes, peer: Address, now: float) -> None: ...
    def data_to_send(self) -> list[tuple[bytes, Address]]: ...


class SipNetwork:
    """Carries SIP bytes between nodes (see the SIP section above)."""

    def __init__(self) -> None:
        self.nodes: dict[Address, SipNode] = {}
        self.links: dict[tuple[int, Address], tuple[SipNode, Address]] = {}
        self.next_port = 40000
        self.wire: list[tuple[Address, Address, bytes]] = []
        """Everything delivered: (from, to, bytes)."""
        self.drop: Callable[[bytes], bool] = lambda data: False
        self.alter: Callable[[bytes], bytes] = lambda data: data
        """Any change to the bytes of what is delivered (after `drop`)."""

    def add(self, address: Address, node: SipNode) -> None:
        self.nodes[address] = node

    def address_of(self, node: SipNode) -> Address:
        return next(a for a, n in self.nodes.items() if n is node)

    def pending(self, now: float) -> list[tuple[SipNode, Address, bytes]]:
        out: list[tuple[SipNode, Address, bytes]] = []
        for node in list(self.nodes.values()):
            for data, peer in node.data_to_send():
                out.append((node, peer, data))
        return out

    def deliver(self, node: SipNode, peer: Address, data: bytes, now: float) -> None:
        link = self.links.get((id(node), peer))
        if link is None:
            target = self.nodes.get(peer)
            if target is None:
                node.connection_lost(peer, now)
                return
            local = (self.address_of(node)[0], self.next_port)
            self.next_port += 1
            self.links[(id(node), peer)] = (target, local)
            self.links[(id(target), local)] = (node, peer)
            node.connection_made(peer, local, now)
            target.connection_made(local, peer, now)
            link = self.links[(id(node), peer)]
        target, source = link
        if not data or self.drop(data):
            return
        data = self.alter(data)
        self.wire.append((source, peer, data))
        target.receive_data(data, source, now)

    def run(self, now: float, rounds: int = 50) -> None:
        for _ in range(rounds):
            batch = self.pending(now)
            if not batch:
                return
            for node, peer, data in batch:
                self.deliver(node, peer, data, now)
        raise AssertionError("the network never went quiet")

    def cut(self, a: SipNode, peer: Address, now: float) -> None:
        """Close the connection from `a` to `peer`, telling both ends."""
        target, local = self.links.pop((id(a), peer))
        self.links.pop((id(target), local), None)
        a.connection_lost(peer, now)
        target.connection_lost(local, now)


def seeded(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return rng.randbytes


def make_agent(aor: str, seed: int, **kwargs: object) -> UserAgent:
    config = AgentConfig(aor=aor, **kwargs)  # type: ignore[arg-type]
    return UserAgent(config, random_bytes=seeded(seed))


def agent_events(agent: UserAgent) -> list[object]:
    out: list[object] = []
    while (event := agent.next_event()) is not None:
        out.append(event)
    return out


ALICE_ADDR: Address = ("127.0.0.1", 5061)
BOB_ADDR: Address = ("127.0.0.1", 5062)
REGISTRAR: Address = ("127.0.0.1", 5070)
OFFER = (
    b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 17078 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"alice", b"bob").replace(b"17078", b"17178")
HOLD = OFFER + b"a=sendonly\r\n"
HELD = ANSWER + b"a=recvonly\r\n"


def advance(net: SipNetwork, agents: list[UserAgent], until: float) -> float:
    """Fire every timer up to `until`, moving traffic after each; returns `until`."""
    while True:
        timers = [t for a in agents if (t := a.get_timer()) is not None and t <= until]
        if not timers:
            return until
        now = min(timers)
        for agent in agents:
            timer = agent.get_timer()
            if timer is not None and timer <= now:
                agent.handle_timer(now)
        net.run(now)


def registered_alice(**kwargs: object) -> tuple[SipNetwork, UserAgent, Registrar]:
    net = SipNetwork()
    registrar = Registrar(**kwargs)  # type: ignore[arg-type]
    alice = make_agent("sip:alice@127.0.0.1", 1, password="alicepw", registrar=REGISTRAR)
    net.add(ALICE_ADDR, alice)
    net.add(REGISTRAR, registrar)
    return net, alice, registrar


def two_phones() -> tuple[SipNetwork, UserAgent, UserAgent]:
    net = SipNetwork()
    alice = make_agent("sips:alice@127.0.0.1", 1, display_name="Alice A")
    bob = make_agent("sips:bob@127.0.0.1", 2)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, bob)
    return net, alice, bob


def proxied_phones() -> tuple[SipNetwork, UserAgent, UserAgent, Proxy]:
    net = SipNetwork()
    proxy = Proxy(password="pw")
    alice = make_agent("sip:alice@127.0.0.1", 1, password="pw", registrar=REGISTRAR)
    bob = make_agent("sip:bob@127.0.0.1", 2, password="pw", registrar=REGISTRAR)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, bob)
    net.add(REGISTRAR, proxy)
    alice.register(0.0)
    bob.register(0.0)
    net.run(0.0)
    assert isinstance(agent_events(alice)[0], ev.Registered)
    assert isinstance(agent_events(bob)[0], ev.Registered)
    return net, alice, bob, proxy
