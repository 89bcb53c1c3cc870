"""The loop's end of a real media worker (its thread, real UDP sockets on loopback): opening a
call's media, a media nobody waits for any more, the counters of a call, and what a dead
worker leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from pidphone.app.call import Call, CallSettings
from pidphone.app.media import MediaConfig
from pidphone.app.media_link import MediaLink
from pidphone.app.media_messages import (
    MediaClosed,
    MediaCommand,
    MediaOpened,
    QueryStats,
    SetHandset,
    SetRemote,
    StartMedia,
    WorkerEvent,
)
from pidphone.app.media_worker import MediaWorker, WorkerUnavailableError
from pidphone.drivers.udp import open_udp
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache


@dataclass
class Rig:
    """A worker, the link in front of it, what went to the worker and what came back."""

    worker: MediaWorker
    link: MediaLink
    sent: list[MediaCommand] = field(default_factory=list)
    seen: list[WorkerEvent] = field(default_factory=list)

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            assert loop.time() < deadline, f"never; the worker said {self.seen}"
            await asyncio.sleep(0.01)

    def closed(self, media_id: int) -> bool:
        return any(isinstance(e, MediaClosed) and e.media_id == media_id for e in self.seen)


@contextlib.asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    holder: list[Rig] = []

    def deliver(batch: list[WorkerEvent]) -> None:
        for event in batch:
            holder[0].seen.append(event)
            holder[0].link.on_event(event, loop.time())

    def post(batch: list[WorkerEvent]) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, batch)

    worker = MediaWorker(post, open_socket=open_udp, cache=MemoryZidCache())
    worker.start()

    def send(command: MediaCommand) -> None:
        holder[0].sent.append(command)
        with contextlib.suppress(WorkerUnavailableError):  # a stopped worker: as the controller
            worker.send(command)

    holder.append(Rig(worker, MediaLink(send, loop)))
    try:
        yield holder[0]
    finally:
        worker.stop()


async def new_call(link: MediaLink) -> Call:
    """A call placed on media the worker opened, its media owned by the call."""
    opened = await link.open("127.0.0.1", MediaConfig(), None)
    agent = UserAgent(AgentConfig(aor="sips:alice@127.0.0.1", keepalive_interval=0))
    call = Call.place(
        agent,
        settings=CallSettings(),
        media_id=opened.media_id,
        hello_hash=opened.hello_hash,
        media_port=opened.local[1],
        target="sips:bob@127.0.0.1",
        now=0.0,
    )
    link.adopt(call)
    return call


def test_each_open_gets_its_own_media_and_socket() -> None:
    async def main() -> None:
        async with rig() as r:
            first = await r.link.open("127.0.0.1", MediaConfig(), None)
            second = await r.link.open("127.0.0.1", MediaConfig(), None)
            assert first.media_id != second.media_id
            assert first.local[0] == "127.0.0.1" and first.local[1] != second.local[1]
            assert first.hello_hash.startswith("1.10 ") and first.hello_hash != second.hello_hash
            assert first.mapped is None  # no STUN asked

    asyncio.run(main())


def test_an_open_the_worker_cannot_do_raises_its_reason() -> None:
    async def main() -> None:
        async with rig() as r:
            with pytest.raises(OSError, match=r"\S"):
                await r.link.open("192.0.2.1", MediaConfig(), None)  # not ours: cannot bind
            assert r.worker.alive  # a refused socket is no fault of the thread

    asyncio.run(main())


def test_a_media_opened_for_an_open_given_up_is_closed_and_its_port_freed() -> None:
    async def main() -> None:
        async with rig() as r:
            opening = asyncio.create_task(r.link.open("127.0.0.1", MediaConfig(), None))
            await asyncio.sleep(0)  # OpenMedia is on its way
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            await r.until(lambda: any(isinstance(e, MediaOpened) for e in r.seen))
            (opened,) = [e for e in r.seen if isinstance(e, MediaOpened)]
            await r.until(lambda: r.closed(opened.media_id))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
                again.bind(opened.local)  # the worker let the socket go

    asyncio.run(main())


def test_the_counters_come_from_the_worker_and_stay_once_the_media_closed() -> None:
    async def main() -> None:
        async with rig() as r:
            call = await new_call(r.link)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.1", 0))
                peer.setblocking(False)
                r.link.send(SetRemote(call.media_id, peer.getsockname(), None, None))
                r.link.send(StartMedia(call.media_id))
                loop = asyncio.get_running_loop()
                hello = await asyncio.wait_for(loop.sock_recv(peer, 2048), 5)
                assert hello[:2] == b"\x10\x00"  # ZRTP (RFC 6189 §5)
                stats = await asyncio.wait_for(r.link.stats(call), 5)
            assert stats.zrtp_sent >= 1 and r.sent[-1] == QueryStats(call.media_id)

            call.hangup(1.0)  # the call ends: its CloseMedia goes, the counters come with it
            for command in call.media_commands():
                r.link.send(command)
            final = await asyncio.wait_for(r.link.stats(call), 5)
            assert r.sent[-1] != QueryStats(call.media_id)  # the MediaClosed answered
            assert call.media.closed and final is call.stats
            assert final.zrtp_sent >= stats.zrtp_sent
            asked = len(r.sent)
            assert await r.link.stats(call) is final and len(r.sent) == asked

    asyncio.run(main())


def test_a_dead_worker_fails_the_opens_and_answers_every_waiter() -> None:
    async def main() -> None:
        async with rig() as r:
            call = await new_call(r.link)
            r.link.set_handset(call.media_id)
            r.worker.stop()  # no answer will ever come
            call.hangup(1.0)
            call.media_commands()  # the CloseMedia is not sent: the worker is gone
            counters = asyncio.create_task(r.link.stats(call))
            opening = asyncio.create_task(r.link.open("127.0.0.1", MediaConfig(), None))
            await asyncio.sleep(0.1)
            assert not counters.done() and not opening.done()
            r.link.lost("Audio failed: test")
            with pytest.raises(OSError, match="Audio failed: test"):
                await asyncio.wait_for(opening, 1)
            assert await asyncio.wait_for(counters, 1) is call.stats
            assert call.media.closed and r.link.handset is None
            late = MediaClosed(call.media_id, call.stats)
            assert r.link.on_event(late, 2.0) is None  # the lost media belongs to no call

    asyncio.run(main())


def test_the_worker_hears_of_the_handset_only_when_it_changes() -> None:
    async def main() -> None:
        async with rig() as r:
            link = r.link
            link.set_handset(4)
            link.set_handset(4)
            link.set_handset(None)
            link.resend_handset()
            assert [c for c in r.sent if isinstance(c, SetHandset)] == [
                SetHandset(4),
                SetHandset(None),
                SetHandset(None),
            ]
            link.set_handset(5)
            link.lost("Audio failed: test")
            assert link.handset is None
            link.resend_handset()
            assert r.sent[-1] == SetHandset(None)

    asyncio.run(main())
