"""The loop's end of the media worker: which call a worker event is for, and what awaits a reply.

The worker runs on its own thread and only messages cross, so the loop keeps a little
bookkeeping to talk to it: the media ids it hands out, the `OpenMedia` replies and counters
that coroutines await, the call each media id belongs to until its media closed, and which
call the worker was last told has the handset. It is kept here, apart from the switchboard,
which decides what happens to the calls. When the worker dies (`lost`), everything that
waited on it is failed or answered at once: no coroutine waits for a thread that is gone.
Everything here runs on the loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from pidphone.ports import Address

from .call import Call
from .call_state import CallState
from .media_config import MediaConfig
from .media_events import MediaStats
from .media_messages import (
    CloseMedia,
    MediaClosed,
    MediaCommand,
    MediaId,
    MediaOpened,
    MediaOpenFailed,
    MediaStatsReport,
    OpenMedia,
    QueryStats,
    SetHandset,
    WorkerEvent,
)

MediaSender = Callable[[MediaCommand], None]


class MediaLink:
    """Commands to the media worker through `send`; its events back through `on_event`."""

    def __init__(self, send: MediaSender, loop: asyncio.AbstractEventLoop) -> None:
        self.send = send
        self._loop = loop
        self._ids = itertools.count(1)
        self._opening: dict[MediaId, asyncio.Future[WorkerEvent]] = {}
        self._calls: dict[MediaId, Call] = {}
        """Every call whose media is not closed yet (ended calls included)."""
        self._stats_waiters: dict[MediaId, list[asyncio.Future[MediaStats]]] = {}
        self._handset: MediaId | None = None

    async def open(self, bind: str, config: MediaConfig, stun: Address | None) -> MediaOpened:
        """A new call's media, opened by the worker (socket, STUN, session). Raises `OSError`
        when the worker cannot; a media opened for an open given up meanwhile is closed."""
        media_id = next(self._ids)
        waiter: asyncio.Future[WorkerEvent] = self._loop.create_future()
        self._opening[media_id] = waiter
        self.send(OpenMedia(media_id, bind, config, stun))
        try:
            result = await waiter
        except asyncio.CancelledError:
            self._opening.pop(media_id, None)  # the worker's answer closes it when it comes
            raise
        if not isinstance(result, MediaOpened):
            raise OSError(getattr(result, "reason", "the media could not be opened"))
        return result

    def close(self, media_id: MediaId) -> None:
        """Close a media that no call took."""
        self.send(CloseMedia(media_id))

    def adopt(self, call: Call) -> None:
        """`call` owns its media from now on: the worker's events for it go to it."""
        self._calls[call.media_id] = call

    def on_event(self, event: WorkerEvent, now: float) -> Call | None:
        """One event of the worker's batch (not `WorkerFailed`: see `lost`), given to the
        call it names; that call (to be flushed), or None."""
        if isinstance(event, MediaOpened | MediaOpenFailed):
            waiter = self._opening.pop(event.media_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
            elif isinstance(event, MediaOpened):
                self.close(event.media_id)  # its call was given up meanwhile
            return None
        media_id: MediaId = getattr(event, "media_id", -1)
        call = self._calls.get(media_id)
        if call is None:
            return None
        call.on_media(event, now)
        if isinstance(event, MediaStatsReport | MediaClosed):
            self._answer_stats(media_id, call.stats)
        if isinstance(event, MediaClosed):
            del self._calls[media_id]
        return call

    async def stats(self, call: Call) -> MediaStats:
        """The call's media counters now (the last ones once its media closed)."""
        if call.media.closed or call.media_id not in self._calls:
            return call.stats
        waiter: asyncio.Future[MediaStats] = self._loop.create_future()
        self._stats_waiters.setdefault(call.media_id, []).append(waiter)
        if call.state != CallState.ENDED:  # else its `MediaClosed` is on the way
            self.send(QueryStats(call.media_id))
        return await waiter

    @property
    def handset(self) -> MediaId | None:
        """The call the worker was last told has the handset."""
        return self._handset

    def set_handset(self, media_id: MediaId | None) -> None:
        if media_id != self._handset:
            self._handset = media_id
            self.send(SetHandset(media_id))

    def resend_handset(self) -> None:
        """Tell a new worker which call has the handset (none, after `lost`)."""
        self.send(SetHandset(self._handset))

    def lost(self, reason: str) -> None:
        """The worker died and every media with it: opens fail with `reason`, counters are
        the last ones reported, and no call has the handset."""
        for waiter in self._opening.values():
            if not waiter.done():
                waiter.set_exception(OSError(reason))
        self._opening.clear()
        self._handset = None
        lost = list(self._calls.items())
        self._calls.clear()
        for media_id, call in lost:
            call.media.closed = True
            self._answer_stats(media_id, call.stats)

    def _answer_stats(self, media_id: MediaId, stats: MediaStats) -> None:
        for waiter in self._stats_waiters.pop(media_id, []):
            if not waiter.done():
                waiter.set_result(stats)
