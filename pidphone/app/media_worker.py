"""The media worker: one thread ("media"), clocked by the handset's capture device, that owns
every call's media (the loop keeps signalling and the screen; only messages pass between).

It owns each call's UDP socket (it binds them itself, on command, so no socket changes hands;
STUN binding requests go out and are answered here too), each call's `MediaSession` (ZRTP,
SRTP, jitter buffer, codec), the handset's capture and playback devices, the handset tone and
the mute flag. Nothing else touches them, so nothing here takes a lock.

Each wake-up, after one `select` wait whose timeout is the earlier of the capture's next
frame and the sessions' own timers (so ZRTP answers at network speed, whatever the audio
clock): read what the sockets have (at most `READ_BATCH` per socket); run the commands the
loop queued; when a frame is due, capture it, send it on the call that has the handset and
write one frame to the earpiece (that call's audio, the tone, or silence: one device clock, the
earpiece kept `PLAYBACK_AHEAD` periods ahead); run due timers; send what the sessions queued;
and post the wake-up's events to the loop in one batch (one `call_soon_threadsafe`). A steady
call posts nothing at all.

The audio clock runs only while something needs it: a call's media (from open to close, so
it runs long before a call's first frame) or a handset tone. `IDLE_STOP` seconds after the
last of them the devices close, and an idle phone's thread sleeps in its `select` until a
command comes (no wake-up at all, where the clock would cost 50 a second); the next call or
tone opens them again.

Once a call's media flows (secure, or clear under "prefer") and there is an audio clock, its
socket leaves the selector and is read on each audio tick instead: its RTP arrives once a
period anyway, so the thread wakes once per period rather than twice (`bench/call_cpu.py`
shows the difference). A call whose media stops flowing (its security lost, a new ZRTP
stream) is watched again, so ZRTP runs at network speed whenever keys are being agreed.

Commands come through a bounded queue plus a byte on a socket pair that wakes the `select`. A
full queue means the worker is stuck: `send` raises `WorkerUnavailableError`, a fault for the loop,
never a block. An exception in the thread ends it with `WorkerFailed`, after closing what it
owned: the loop ends the calls with a reason and starts a new worker.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pidphone.audio.tones import ToneGenerator
from pidphone.errors import LocalProtocolError
from pidphone.ports import (
    FRAME_TIME,
    SAMPLE_RATE,
    Address,
    AudioCapture,
    AudioDevices,
    AudioPlayback,
    DatagramSocket,
    OpenDatagramSocket,
    frame_bytes,
)
from pidphone.rtp import stun
from pidphone.zrtp.cache import ZidCache

from .call_state import Security
from .media import MediaSession
from .media_messages import (
    SESSION_COMMANDS,
    CloseMedia,
    MediaCommand,
    MediaId,
    MediaOpened,
    MediaOpenFailed,
    MediaUpdate,
    OpenMedia,
    SetHandset,
    SetHandsetTone,
    SetMicMuted,
    WorkerEvent,
    WorkerFailed,
    apply_to_session,
)

log = logging.getLogger(__name__)

READ_BATCH = 32
"""Most datagrams read from one socket per wake-up; the rest wait for the next (a flood cannot
hold the thread, and 32 per wake-up is far above one call's media)."""
COMMAND_QUEUE = 256
"""Commands waiting at most: a call sends a handful, so a full queue means a stuck worker."""
PLAYBACK_AHEAD = 2
"""Periods in the earpiece after each tick's write: the frame written on a tick has one
period queued ahead of it, 20 ms of the mouth-to-ear delay and 20 ms of slack for a late tick
before the earpiece runs dry (capture and playback share the card's clock). The silence ahead
is written on the first tick after the devices open, not at open: opening the playback takes
its own time, which would otherwise be queued on top. `bench.latency --alsa` measures delay
and slack through alsa-lib; a third period would add 20 ms to every call."""
EARPIECE_SLACK = (PLAYBACK_AHEAD - 1) * FRAME_TIME
"""Seconds a tick may come late before the earpiece has played all it was given. The earpiece
is started (again) only by a tick less than half of this late: the card plays from then."""
STUN_RETRIES = (0.5, 1.0, 2.0)
"""Seconds to wait after each binding request (RFC 8489 §6.2.1, shortened for call set-up)."""
STOP_TIMEOUT = 2.0
IDLE_STOP = 2.0
"""Seconds the audio clock runs on once nothing needs it (no call's media, no tone), then the
devices close and the thread sleeps until a command comes: an idle phone does not wake 50
times a second. It also runs that long at start, so a device that fails shows then, not at
the first call; and a dial tone followed by a call within it does not reopen the devices."""
READ_ON_TICK = (Security.SECURE, Security.CLEAR)
"""Media security states in which a call's socket is read on the audio tick."""

EventPost = Callable[[list[WorkerEvent]], None]
"""Hands one wake-up's events to the loop; called on the worker thread (thread-safe)."""


class WorkerUnavailableError(Exception):
    """The media worker cannot take a command: it has stopped, died, or its queue is full."""


@dataclass
class _StunQuery:
    server: Address
    transaction: bytes
    waits: list[float]
    """The waits left after each retransmission."""
    next_at: float


@dataclass
class _CallMedia:
    session: MediaSession
    socket: DatagramSocket
    stun: _StunQuery | None = None
    watched: bool = True
    """In the selector (every datagram wakes the thread), or read on each audio tick."""


@dataclass(frozen=True)
class _Stop(MediaCommand):
    """End the thread (after the commands queued before it)."""


@dataclass
class _Audio:
    capture: AudioCapture
    playback: AudioPlayback
    silence: bytes = field(init=False)
    pre_roll: int = PLAYBACK_AHEAD - 1
    """Periods of silence still to write ahead of the first tick's frame."""
    next_at: float = field(init=False)
    """When the next frame is due, as far as the wait needs to know: the card's time of the
    last frame plus a period. A wake-up at or after it asks the card (`next_frame_at`), once
    a period: for ALSA that is a system call (`avail`)."""

    def __post_init__(self) -> None:
        self.silence = bytes(frame_bytes(self.capture.rate))
        self.next_at = self.capture.next_frame_at()


class MediaWorker:
    """The media thread. `start()`, then `send` commands; `stop()` joins it."""

    def __init__(
        self,
        post: EventPost,
        *,
        open_socket: OpenDatagramSocket,
        cache: ZidCache,
        audio: AudioDevices | None = None,
        tone_plan: str = "etsi",
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        queue_size: int = COMMAND_QUEUE,
        idle_stop: float = IDLE_STOP,
    ) -> None:
        self._post = post
        self._open_socket = open_socket
        self._cache = cache
        self._devices = audio
        self._tone_plan = tone_plan
        self._wall_clock = wall_clock
        self._clock = clock
        self._socket_clock = clock is time.monotonic
        """The sockets stamp arrivals on this clock."""
        self._commands: queue.Queue[MediaCommand] = queue.Queue(queue_size)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # select(2) for its microsecond timeout: epoll and poll round it up to the millisecond,
        # which would make every frame up to 1 ms late; a phone waits on a handful of sockets.
        # Called directly, on a dict of the descriptors watched (selectors.SelectSelector
        # would rebuild sets and keys on each of the 50 waits a second).
        self._watched: dict[int, MediaId | None] = {self._wake_r.fileno(): None}
        """Descriptor -> the call whose socket it is (None: the wake socket)."""
        self._calls: dict[MediaId, _CallMedia] = {}
        self._audio: _Audio | None = None
        self._idle_stop = idle_stop
        self._idle_since: float | None = None
        """Since when the open devices have had nothing to play (None: needed, or closed)."""
        self._handset: MediaId | None = None
        self._tone: ToneGenerator | None = None
        self._tone_over_call = False
        """The tone plays in place of the handset call's audio (a security indication)."""
        self._muted = False
        self._batch: list[WorkerEvent] = []
        self._timer: float | None = None
        """The calls' earliest timer (ZRTP, RTCP, STUN), as the last wake-up left it."""
        self._thread = threading.Thread(target=self._run, name="media", daemon=True)
        self._stopping = False
        self.failure: str | None = None
        """Why the thread died, once it has."""

    # ------------------------------------------------------------------ the loop's side

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def send(self, command: MediaCommand) -> None:
        """Queue a command and wake the thread; never blocks."""
        if self._stopping or self.failure is not None or not self._thread.is_alive():
            raise WorkerUnavailableError(self.failure or "the media worker is not running")
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            raise WorkerUnavailableError("the media worker does not take commands") from None
        with contextlib.suppress(BlockingIOError):  # full: wake-ups are pending anyway
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the thread (after the commands already queued) and release what it owns."""
        if self._thread.is_alive() and not self._stopping:
            with contextlib.suppress(WorkerUnavailableError):
                self.send(_Stop())
            self._stopping = True
            self._thread.join(timeout)
        self._stopping = True
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._open_audio()
            if self._audio is not None:
                self._idle_since = self._clock()
            while not self._stopping:
                self._wake_up()
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.exception("the media worker failed")
            self._batch.append(WorkerFailed(self.failure))
            self._deliver()
        finally:
            self._release()

    def _open_audio(self, rate: int = SAMPLE_RATE) -> None:
        if self._devices is None:
            return
        capture = self._devices.open_capture(rate)
        try:
            playback = self._devices.open_playback("call", rate)
        except BaseException:
            capture.close()
            raise
        self._audio = _Audio(capture, playback)

    def _follow_audio(self, now: float) -> None:
        """Run the audio clock while something needs it (a call's media, from open to close,
        or a tone) and stop it `idle_stop` after; a call's media starts it, so the devices
        run long before the call's first frame. Run the handset's devices at the rate of
        its call's codec (16 kHz for a wideband call), narrowband otherwise: reopened when
        that changes (a call taking the handset, a re-INVITE changing the codec, the call
        ending)."""
        if self._devices is None:
            return
        needed = bool(self._calls) or self._tone is not None
        call = self._calls.get(self._handset) if self._handset is not None else None
        rate = call.session.audio_rate if call is not None else SAMPLE_RATE
        audio = self._audio
        if audio is None:
            if needed:
                log.debug("audio clock started")
                self._open_audio(rate)
                self._tone_at(rate)
            return
        if needed:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        if rate == audio.capture.rate:
            return
        log.info("audio devices reopened at %d Hz", rate)
        self._close_audio()
        self._open_audio(rate)
        if not needed:  # the last (wideband) call ended: the clock still stops in time
            self._idle_since = now
        self._tone_at(rate)

    def _tone_at(self, rate: int) -> None:
        """The tone goes on at the devices' new rate."""
        if self._tone is not None and self._tone.rate != rate:
            self._tone = self._tone.at_rate(rate)

    def _close_audio(self) -> None:
        audio, self._audio = self._audio, None
        self._idle_since = None
        if audio is not None:
            for device in (audio.capture, audio.playback):
                device.close()

    def _wake_up(self) -> None:
        ready = select.select(self._watched, (), (), self._timeout())[0]
        now = self._clock()
        woken = False
        for fd in ready:
            media_id = self._watched.get(fd)
            if media_id is None:
                woken = True
                self._drain_wake()
            else:
                self._read(media_id, now)
        # Every queued command sent its byte after it was queued: a wake-up without the byte
        # has no command to run (and one queued after the drain leaves its byte for the next).
        if woken and self._run_commands(now):
            self._follow_audio(now)
        audio = self._audio
        if audio is not None:
            idle = self._idle_since
            if idle is not None and now - idle >= self._idle_stop:
                log.debug("audio clock stopped: nothing to play")
                self._close_audio()
            elif now >= audio.next_at:
                due = audio.capture.next_frame_at()
                if due <= now:
                    self._tick(audio, now, due)
                    due += FRAME_TIME
                audio.next_at = due
        self._timer = self._run_timers(now)
        self._flush()
        self._deliver()

    def _timeout(self) -> float | None:
        """Until the next frame or timer: nothing changes the timers between the end of one
        wake-up (`_run_timers`) and the wait of the next; a command wakes the wait itself."""
        deadline = self._timer
        audio = self._audio
        if audio is not None:
            frame = audio.next_at
            if deadline is None or frame < deadline:
                deadline = frame
        return None if deadline is None else max(0.0, deadline - self._clock())

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _read(self, media_id: MediaId, now: float) -> None:
        call = self._calls.get(media_id)
        if call is not None:
            self._read_call(media_id, call, now)

    def _read_call(self, media_id: MediaId, call: _CallMedia, now: float) -> None:
        receive = call.session.receive_datagram
        for data, source, arrived in call.socket.receive(READ_BATCH):
            if call.stun is not None and self._stun_answer(media_id, call, data):
                continue
            # when it arrived, not when this thread got to it (the worker's clock is the
            # socket's, monotonic, unless a test gave it another)
            receive(data, source, arrived if self._socket_clock else now)

    def _run_commands(self, now: float) -> bool:
        """Run the queued commands; whether there were any."""
        ran = False
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return ran
            if isinstance(command, _Stop):
                self._stopping = True
                return ran
            ran = True
            self._execute(command, now)

    def _execute(self, command: MediaCommand, now: float) -> None:
        if isinstance(command, OpenMedia):
            self._open(command, now)
        elif isinstance(command, SetHandset):
            self._handset = command.media_id
        elif isinstance(command, SetHandsetTone):
            kind, audio = command.kind, self._audio
            rate = SAMPLE_RATE if audio is None else audio.capture.rate
            plan = self._tone_plan
            self._tone = None if kind is None else ToneGenerator(kind, plan=plan, rate=rate)
            self._tone_over_call = command.over_call
        elif isinstance(command, SetMicMuted):
            self._muted = command.muted
        elif isinstance(command, SESSION_COMMANDS):
            media_id: MediaId = command.media_id
            call = self._calls.get(media_id)
            if call is None:
                log.debug("media %d is closed: %s ignored", media_id, type(command).__name__)
                return
            try:
                self._batch += apply_to_session(call.session, media_id, command, now)
            except LocalProtocolError as exc:
                log.info("media %d: %s not done: %s", media_id, type(command).__name__, exc)
            if isinstance(command, CloseMedia):
                self._send(call)  # the RTCP BYE
                self._forget(media_id)
        else:
            raise TypeError(f"unknown media command {command!r}")

    def _open(self, command: OpenMedia, now: float) -> None:
        media_id = command.media_id
        try:
            sock = self._open_socket(command.bind, 0)
        except OSError as exc:
            log.error("no media socket on %s: %s", command.bind, exc)
            self._batch.append(MediaOpenFailed(media_id, str(exc)))
            return
        try:
            session = MediaSession(command.config, cache=self._cache, wall_clock=self._wall_clock)
            self._watched[sock.fileno()] = media_id
        except BaseException:
            sock.close()
            raise
        call = self._calls[media_id] = _CallMedia(session, sock)
        server = command.stun_server
        if server is None:
            self._batch.append(MediaOpened(media_id, sock.local, None, session.hello_hash))
            return
        transaction = secrets.token_bytes(12)
        call.stun = _StunQuery(server, transaction, list(STUN_RETRIES[1:]), now + STUN_RETRIES[0])
        sock.sendto(stun.build_binding_request(transaction), server)

    def _stun_answer(self, media_id: MediaId, call: _CallMedia, data: bytes) -> bool:
        """Whether `data` answers our binding request (taken, the call is opened)."""
        query = call.stun
        # STUN's first byte is 0-3 and its cookie sits at offset 4 (RFC 7983 §7).
        if query is None or len(data) < stun.HEADER_LEN or data[0] >= 4:
            return False
        if data[8:20] != query.transaction:
            return False
        try:
            mapped = stun.parse_binding_response(data, query.transaction)
        except stun.StunParseError as exc:
            log.debug("bad STUN response: %s", exc)
            return True
        call.stun = None
        self._batch.append(
            MediaOpened(media_id, call.socket.local, mapped, call.session.hello_hash)
        )
        return True

    def _tick(self, audio: _Audio, now: float, due: float) -> None:
        """One period, captured by the card at `due`. A frame written later than the
        earpiece's slack after that finds it run dry: it is not written (after a stall the
        card would queue the frames read in a burst, and play every later frame that much
        later for the rest of the call); the first tick on time (within half the slack: at
        most 10 ms more delay) starts it again with its silence ahead (or the tone's next
        frame, so a tone starts with the clock)."""
        for media_id, media in self._calls.items():
            if not media.watched:
                self._read_call(media_id, media, now)
        pcm = audio.capture.read_frame()
        call = self._calls.get(self._handset) if self._handset is not None else None
        tone = self._tone if call is None or self._tone_over_call else None
        if call is not None:
            session = call.session
            # captured at `due`: a jump of it (the capture clock restarted) skips RTP time
            session.send_audio(audio.silence if self._muted else pcm, due)
            out = session.pull_audio(due)  # the card's time for this frame, however late
            if tone is not None:
                out = tone.frame()
        elif tone is not None:
            out = tone.frame()
        else:
            out = audio.silence
        late = self._clock() - due
        if late > (EARPIECE_SLACK / 2 if audio.pre_roll else EARPIECE_SLACK):
            audio.pre_roll = PLAYBACK_AHEAD - 1
            if call is not None:
                call.session.stats.earpiece_late += 1
            return
        while audio.pre_roll:  # the first tick, or the first after a stall
            audio.pre_roll -= 1
            if tone is None:
                audio.playback.write_frame(audio.silence)
            else:  # the tone itself ahead: on a clock just started it plays from this tick
                audio.playback.write_frame(out)
                out = tone.frame()
        audio.playback.write_frame(out)

    def _run_timers(self, now: float) -> float | None:
        """Run the due timers; the earliest one left (each session asked once when none is due)."""
        deadline: float | None = None
        for media_id, call in self._calls.items():
            query = call.stun
            if query is not None:
                if query.next_at <= now:
                    self._retry_stun(media_id, call, query, now)
                query = call.stun
                if query is not None and (deadline is None or query.next_at < deadline):
                    deadline = query.next_at
            session = call.session
            timer = session.get_timer()
            if timer is not None and timer <= now:
                session.handle_timer(now)
                timer = session.get_timer()
            if timer is not None and (deadline is None or timer < deadline):
                deadline = timer
        return deadline

    def _retry_stun(
        self, media_id: MediaId, call: _CallMedia, query: _StunQuery, now: float
    ) -> None:
        if query.waits:
            query.next_at = now + query.waits.pop(0)
            call.socket.sendto(stun.build_binding_request(query.transaction), query.server)
            return
        log.warning("no answer from STUN server %s:%d", *query.server)
        call.stun = None
        self._batch.append(MediaOpened(media_id, call.socket.local, None, call.session.hello_hash))

    def _flush(self) -> None:
        for media_id, call in self._calls.items():
            self._send(call)
            session = call.session
            if session.has_events:
                while (event := session.next_event()) is not None:
                    self._batch.append(MediaUpdate(media_id, event))
            watch = self._audio is None or session.security not in READ_ON_TICK
            if watch != call.watched:
                call.watched = watch
                if watch:
                    self._watched[call.socket.fileno()] = media_id
                else:
                    del self._watched[call.socket.fileno()]

    @staticmethod
    def _send(call: _CallMedia) -> None:
        sendto = call.socket.sendto
        for data, address in call.session.datagrams_to_send():
            if (error := sendto(data, address)) is not None:
                call.session.send_failed(address, error)

    def _deliver(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._post(batch)

    def _forget(self, media_id: MediaId) -> None:
        call = self._calls.pop(media_id)
        if call.watched:
            del self._watched[call.socket.fileno()]
        call.socket.close()

    def _release(self) -> None:
        """Close every socket and the devices: nothing the thread owned outlives it."""
        for media_id in list(self._calls):
            with contextlib.suppress(Exception):
                self._forget(media_id)
        audio, self._audio = self._audio, None
        if audio is not None:
            for device in (audio.capture, audio.playback):
                with contextlib.suppress(Exception):
                    device.close()
        self._watched.clear()
