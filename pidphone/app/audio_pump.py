"""Capture and playback threads: the audio device is the media clock (ARCHITECTURE.md).

The capture thread blocks in `read_frame` for one 20 ms period, hands the frame to the sink
on its own thread (the engine encodes, protects and sends it there, under its media lock) and,
on the same tick, tops up the small bounded queue the playback thread writes from (one frame
per period, paced by the device's blocking write). So a call's audio never wakes the loop;
the sink wakes it only when the media has something for it. Without a capture device the
playback thread asks the loop for frames. When the queue runs dry the thread plays silence
rather than wait.

The queue is a bounded `deque`: one thread appends, the other pops, each step atomic, so
neither a lock nor a condition is taken 50 times a second on either side. `sink` and
`source` must be safe to call from the capture thread (and `source` from the loop too:
`set_source` and an underrun refill there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable

from pidphone.ports import FRAME_BYTES, AudioCapture, AudioPlayback

log = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)

FrameSink = Callable[[bytes], None]
"""Called on the capture thread with each captured frame."""
FrameSource = Callable[[], bytes]
"""Called on the capture thread, or on the loop, for the next frame to play."""

PLAYBACK_AHEAD = 2
"""Frames queued ahead of the playback device: 40 ms of slack for a busy loop."""


def _silence() -> bytes:
    return SILENCE


class AudioPump:
    """Runs one capture and one playback device against a frame sink and a frame source.

    `sink` and `source` are swapped on the loop as the phone moves between idle (tones only),
    ringing and a call (the media session). Stop with `close()`, which joins both threads.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        capture: AudioCapture | None,
        playback: AudioPlayback | None,
    ) -> None:
        self._loop = loop
        self._capture = capture
        self._playback = playback
        self._sink: FrameSink | None = None
        self._source: FrameSource = _silence
        self._queue: deque[bytes] = deque(maxlen=PLAYBACK_AHEAD)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ loop side

    def set_sink(self, sink: FrameSink | None) -> None:
        """Where captured frames go (None: captured audio is discarded)."""
        self._sink = sink

    def set_source(self, source: FrameSource | None) -> None:
        """Where frames to play come from (None: silence). Drops what was queued."""
        self._source = source or _silence
        self._queue.clear()
        self._refill()

    def start(self) -> None:
        if self._threads:
            return
        if self._capture is not None:
            self._threads.append(
                threading.Thread(
                    target=self._capture_loop,
                    args=(self._capture,),
                    name="audio-capture",
                    daemon=True,
                )
            )
        if self._playback is not None:
            self._refill()
            self._threads.append(
                threading.Thread(
                    target=self._playback_loop,
                    args=(self._playback, self._capture is not None),
                    name="audio-playback",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop both threads and close the devices. Safe to call twice."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._threads = []
        for device in (self._capture, self._playback):
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()
        self._capture = self._playback = None

    def _refill(self) -> None:
        queue = self._queue
        while len(queue) < PLAYBACK_AHEAD:
            queue.append(self._source())

    def _to_loop(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the phone is shutting down
            return False
        return True

    # ------------------------------------------------------------------ device threads

    def _capture_loop(self, capture: AudioCapture) -> None:
        while not self._stop.is_set():
            try:
                pcm = capture.read_frame()
            except Exception:
                log.exception("audio capture failed; capture stopped")
                return
            sink = self._sink
            try:
                if sink is not None:
                    sink(pcm)
                # Capture and playback run on one device clock: top the earpiece up on this
                # tick instead of a wake-up from the playback thread.
                self._refill()
            except Exception:
                log.exception("audio tick failed; capture stopped")
                return

    def _playback_loop(self, playback: AudioPlayback, paced_by_capture: bool) -> None:
        queue = self._queue
        while not self._stop.is_set():
            try:
                pcm = queue.popleft()
            except IndexError:
                pcm = SILENCE
            try:
                playback.write_frame(pcm)
            except Exception:
                log.exception("audio playback failed; playback stopped")
                return
            if (not paced_by_capture or not queue) and not self._to_loop(self._refill):
                return
