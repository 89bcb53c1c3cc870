"""Two ZRTP sessions back to back, with time moved by hand and a lossy channel in between."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pidphone.zrtp import (
    MemoryZidCache,
    Secured,
    SrtpKeysReady,
    ZrtpConfig,
    ZrtpEvent,
    ZrtpFailed,
    ZrtpSession,
    parse_packet,
)

Channel = Callable[[list[bytes]], list[bytes]]


def clean(packets: list[bytes]) -> list[bytes]:
    return packets


@dataclass
class Side:
    session: ZrtpSession
    cache: MemoryZidCache
    events: list[ZrtpEvent] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)

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

    def sent_types(self) -> list[str]:
        return [parse_packet(p).message.type_name for p in self.sent]


def side(
    config: ZrtpConfig | None = None,
    cache: MemoryZidCache | None = None,
    ssrc: int = 0x1234,
    parent: ZrtpSession | None = None,
) -> Side:
    cache = cache or MemoryZidCache()
    session = ZrtpSession(
        cache=cache, ssrc=ssrc, config=config or ZrtpConfig(), multistream_from=parent
    )
    return Side(session, cache)


def run(
    a: Side,
    b: Side,
    *,
    a_to_b: Channel = clean,
    b_to_a: Channel = clean,
    now: float = 0.0,
    until: float = 60.0,
    start: bool = True,
) -> float:
    """Exchange packets, firing timers in time order, until nothing is left to do."""
    if start:
        a.session.start(now)
        b.session.start(now)
    while now <= until:
        moved = False
        for src, dst, channel in ((a, b, a_to_b), (b, a, b_to_a)):
            packets = src.session.packets_to_send()
            src.sent.extend(packets)
            src.sent_at.extend(now for _ in packets)
            for packet in channel(packets):
                dst.session.receive_packet(packet, now)
                moved = True
        if moved:
            continue
        timers = [t for t in (a.session.get_timer(), b.session.get_timer()) if t is not None]
        if not timers:
            break
        now = max(now, min(timers))
        for s in (a, b):
            timer = s.session.get_timer()
            if timer is not None and timer <= now:
                s.session.handle_timer(now)
    a.drain()
    b.drain()
    return now
