"""The media worker on its own: real UDP sockets on loopback, simulated sound cards, a real
pair of media sessions (ZRTP, SRTP) each on its own worker thread, commands in and event
batches out as the loop would see them."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from pidphone.app.media import MediaConfig
from pidphone.app.media_events import MediaDtmf, MediaSecured
from pidphone.app.media_messages import (
    CloseMedia,
    MediaClosed,
    MediaCommand,
    MediaHelloHash,
    MediaOpened,
    MediaOpenFailed,
    MediaStatsReport,
    MediaUpdate,
    OpenMedia,
    QueryStats,
    SendDigit,
    SetCodec,
    SetHandset,
    SetHandsetTone,
    SetMicMuted,
    SetRemote,
    StartMedia,
    WorkerEvent,
    WorkerFailed,
)
from pidphone.app.media_worker import (
    IDLE_STOP,
    PLAYBACK_AHEAD,
    MediaWorker,
    WorkerUnavailableError,
)
from pidphone.audio.analysis import dominant_frequencies, rms
from pidphone.audio.tones import ToneGenerator
from pidphone.drivers.sim_audio import SimAudioDevices, SimCapture, SimPlayback
from pidphone.drivers.udp import UdpSocket, open_udp
from pidphone.ports import SAMPLE_RATE, Address, AudioPurpose
from pidphone.rtp import PacketKind, classify, stun
from pidphone.sdp import MediaParams
from pidphone.zrtp.cache import MemoryZidCache
from pidphone.zrtp.events import Secured


@dataclass
class Side:
    """One worker and what it posted, batch by batch, with the thread that posted it."""

    worker: MediaWorker
    audio: SimAudioDevices | None
    batches: queue.Queue[list[WorkerEvent]] = field(default_factory=queue.Queue)
    seen: list[WorkerEvent] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def wait(self, check: Callable[[WorkerEvent], bool], timeout: float = 10.0) -> WorkerEvent:
        deadline = time.monotonic() + timeout
        for event in self.seen:
            if check(event):
                return event
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen; got {self.seen}")
            try:
                batch = self.batches.get(timeout=left)
            except queue.Empty:
                continue
            self.seen += batch
            for event in batch:
                if check(event):
                    return event

    def heard(self, frames: int = 20) -> bytes:
        assert self.audio is not None
        return b"".join(list(self.audio.playbacks["call"].frames)[-frames:])


def make_side(
    audio: SimAudioDevices | None,
    open_socket: Callable[[str, int], UdpSocket] = open_udp,
    idle_stop: float = IDLE_STOP,
) -> Side:
    side: Side

    def post(batch: list[WorkerEvent]) -> None:
        side.threads.add(threading.current_thread().name)
        side.batches.put(batch)

    worker = MediaWorker(
        post, open_socket=open_socket, cache=MemoryZidCache(), audio=audio, idle_stop=idle_stop
    )
    side = Side(worker, audio)
    worker.start()
    return side


def opened(side: Side, media_id: int) -> MediaOpened:
    event = side.wait(lambda e: isinstance(e, MediaOpened) and e.media_id == media_id)
    assert isinstance(event, MediaOpened)
    return event


PCMU_PARAMS = MediaParams(("127.0.0.1", 9), 0, "PCMU", 101, "sendrecv", None, 20)
"""A negotiation's result for PCMU with telephone-event 101 (the address is not used)."""


def connect(
    a: Side, b: Side, config: MediaConfig | None = None, params: MediaParams = PCMU_PARAMS
) -> tuple[MediaOpened, MediaOpened]:
    """Open media 1 on each side and point them at each other, ZRTP hashes included."""
    for side in (a, b):
        side.worker.send(OpenMedia(1, "127.0.0.1", config or MediaConfig()))
    oa, ob = opened(a, 1), opened(b, 1)
    for side, theirs in ((a, ob), (b, oa)):
        commands: list[MediaCommand] = [
            SetCodec(1, params),
            SetRemote(1, theirs.local, theirs.hello_hash, None),
            StartMedia(1),
            SetHandset(1),
        ]
        for command in commands:
            side.worker.send(command)
    return oa, ob


def secured(side: Side) -> Secured:
    event = side.wait(lambda e: isinstance(e, MediaUpdate) and isinstance(e.event, MediaSecured))
    assert isinstance(event, MediaUpdate) and isinstance(event.event, MediaSecured)
    return event.event.secured


def strongest(pcm: bytes) -> float:
    found = dominant_frequencies(pcm, count=1)
    return found[0] if found else 0.0


def test_two_workers_secure_a_call_and_carry_audio_both_ways() -> None:
    a = make_side(SimAudioDevices(tone_frequency=1000))
    b = make_side(SimAudioDevices(tone_frequency=700))
    try:
        oa, ob = connect(a, b)
        assert oa.local[1] != ob.local[1] and oa.hello_hash.startswith("1.10 ")
        sa, sb = secured(a), secured(b)
        hashes = [e for e in a.seen if isinstance(e, MediaHelloHash)]
        assert hashes == [MediaHelloHash(1, oa.hello_hash)]  # no restart: the same hash
        assert sa.sas == sb.sas and sa.peer_zid != sb.peer_zid
        time.sleep(0.8)
        assert abs(strongest(a.heard()) - 700) < 20
        assert abs(strongest(b.heard()) - 1000) < 20

        a.worker.send(SetMicMuted(True))
        time.sleep(1.0)  # the jitter buffer may hold what the load on the machine delayed
        assert rms(b.heard(10)) < 50  # Bob hears silence from a muted Alice
        a.worker.send(SetMicMuted(False))

        b.worker.send(SendDigit(1, "7"))
        dtmf = a.wait(lambda e: isinstance(e, MediaUpdate) and isinstance(e.event, MediaDtmf))
        assert isinstance(dtmf, MediaUpdate) and dtmf.event == MediaDtmf("7")

        a.worker.send(QueryStats(1))
        report = a.wait(lambda e: isinstance(e, MediaStatsReport))
        assert isinstance(report, MediaStatsReport)
        assert report.stats.packets_received > 25 and report.stats.dropped == 0
        assert report.stats.clear_packets_sent == 0

        a.worker.send(CloseMedia(1))
        closed = a.wait(lambda e: isinstance(e, MediaClosed))
        assert isinstance(closed, MediaClosed) and closed.stats.rtcp_sent >= 1  # the BYE
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(oa.local)  # the worker closed the call's socket
        probe.close()
        # Every batch came from the worker's own thread, one post per wake-up.
        assert a.threads == {"media"}
    finally:
        a.worker.stop()
        b.worker.stop()
    assert not a.worker.alive and not b.worker.alive
    assert a.audio is not None and a.audio.playbacks["call"].closed


def test_a_wideband_call_runs_the_handset_at_16_khz_and_back_at_8_after_it() -> None:
    opus = replace(PCMU_PARAMS, payload_type=111, codec="opus", clock_rate=48000)
    a = make_side(SimAudioDevices(tone_frequency=5000))
    b = make_side(SimAudioDevices(tone_frequency=700))
    try:
        connect(a, b, params=opus)
        secured(a)
        time.sleep(0.8)
        assert a.audio is not None and b.audio is not None
        assert [e.rate for e in b.audio.earpieces] == [8000, 16000]
        heard = dominant_frequencies(b.heard(), 16000, count=1)
        assert heard and abs(heard[0] - 5000) < 40  # a tone narrowband could not carry
        a.worker.send(CloseMedia(1))
        a.wait(lambda e: isinstance(e, MediaClosed))
        time.sleep(0.1)
        assert [e.rate for e in a.audio.earpieces] == [8000, 16000, 8000]
        assert a.audio.earpieces[1].closed
    finally:
        a.worker.stop()
        b.worker.stop()


def test_zrtp_runs_at_network_speed_without_any_audio_clock() -> None:
    """No sound card at all: ZRTP is driven by the sockets and the sessions' timers."""
    a, b = make_side(None), make_side(None)
    try:
        connect(a, b)
        assert secured(a).sas == secured(b).sas
    finally:
        a.worker.stop()
        b.worker.stop()


def test_the_handset_plays_the_tone_when_no_call_has_it() -> None:
    side = make_side(SimAudioDevices())
    try:
        side.worker.send(SetHandsetTone("dial"))
        time.sleep(0.5)
        assert abs(strongest(side.heard()) - 425) < 15  # the ETSI dial tone
        side.worker.send(SetHandsetTone(None))
        time.sleep(0.3)
        assert rms(side.heard(5)) == 0
    finally:
        side.worker.stop()


def wake_ups(worker: MediaWorker) -> int:
    """How often the worker's thread has blocked and woken (its voluntary context switches,
    counted by the kernel)."""
    status = Path(f"/proc/self/task/{worker._thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def first_closed(audio: SimAudioDevices) -> Callable[[], bool]:
    return lambda: audio.earpieces[0].closed


def test_an_idle_worker_stops_its_audio_clock_and_a_tone_starts_it_on_its_first_tick() -> None:
    """With no call and no tone the devices close after `idle_stop` and the thread does not
    wake at all (the clock would wake it 50 times a second); a tone opens them again and is
    in the earpiece from the new clock's first tick: the period ahead is the tone's own."""
    audio = SimAudioDevices()
    side = make_side(audio, idle_stop=0.1)
    try:
        until(first_closed(audio))  # the clock ran at start, then stopped
        before = wake_ups(side.worker)
        time.sleep(1.0)
        assert wake_ups(side.worker) - before <= 1
        side.worker.send(SetHandsetTone("dial"))
        until(lambda: len(audio.earpieces) == 2 and len(audio.earpieces[1].frames) >= 10)
        frames = list(audio.earpieces[1].frames)
        tone = ToneGenerator("dial")
        # the first frame the card plays is the tone's (its first, unless a tick came too
        # late to be written on a busy machine), with no silence ahead
        assert frames[0] in [tone.frame() for _ in range(20)]
        assert abs(strongest(b"".join(frames)) - 425) < 15
        side.worker.send(SetHandsetTone(None))
        until(lambda: audio.earpieces[1].closed)
        before = wake_ups(side.worker)
        time.sleep(1.0)
        assert wake_ups(side.worker) - before <= 1
    finally:
        side.worker.stop()


def test_the_clock_stops_after_a_wideband_call_as_after_any_other() -> None:
    """The end of a wideband call reopens the handset at 8 kHz: that reopening must not keep
    the clock running for ever (microphone open, 50 wake-ups a second)."""
    opus = replace(PCMU_PARAMS, payload_type=111, codec="opus", clock_rate=48000)
    a = make_side(SimAudioDevices(tone_frequency=1000), idle_stop=0.1)
    b = make_side(SimAudioDevices(tone_frequency=700), idle_stop=0.1)
    try:
        connect(a, b, params=opus)
        secured(a)
        a.worker.send(SetHandset(None))
        a.worker.send(CloseMedia(1))
        a.wait(lambda e: isinstance(e, MediaClosed))
        assert a.audio is not None
        until(lambda: a.audio is not None and a.audio.earpieces[-1].closed)
        assert [e.rate for e in a.audio.earpieces][-2:] == [16000, 8000]
        before = wake_ups(a.worker)
        time.sleep(1.0)
        assert wake_ups(a.worker) - before <= 1
    finally:
        a.worker.stop()
        b.worker.stop()


def test_a_call_starts_the_stopped_clock_when_its_media_opens() -> None:
    """Two idle workers whose clocks have stopped: opening the call's media starts each one
    (long before the call's first frame), audio flows both ways at once when secure, and the
    clock stops again after the call."""
    a = make_side(SimAudioDevices(tone_frequency=1000), idle_stop=0.1)
    b = make_side(SimAudioDevices(tone_frequency=700), idle_stop=0.1)
    try:
        for audio in (a.audio, b.audio):
            assert audio is not None
            until(first_closed(audio))  # the clock stopped
        connect(a, b)
        for side in (a, b):
            assert side.audio is not None and len(side.audio.earpieces) == 2
            assert not side.audio.earpieces[1].closed
        secured(a), secured(b)
        time.sleep(0.8)
        assert abs(strongest(a.heard()) - 700) < 20
        assert abs(strongest(b.heard()) - 1000) < 20
        a.worker.send(CloseMedia(1))
        a.wait(lambda e: isinstance(e, MediaClosed))
        assert a.audio is not None
        until(lambda: a.audio.earpieces[-1].closed)  # type: ignore[union-attr]
        before = wake_ups(a.worker)
        time.sleep(1.0)
        assert wake_ups(a.worker) - before <= 1
    finally:
        a.worker.stop()
        b.worker.stop()


def test_stun_learns_the_mapped_address_on_the_call_socket() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    asked: list[Address] = []

    def answer() -> None:
        data, source = server.recvfrom(2048)
        asked.append(source)
        request = stun.parse_message(data)
        # Pretend a NAT mapped the call socket to 203.0.113.7:40404.
        server.sendto(
            stun.build_binding_response(request.transaction_id, "203.0.113.7", 40404), source
        )

    thread = threading.Thread(target=answer)
    thread.start()
    side = make_side(None)
    try:
        side.worker.send(OpenMedia(5, "127.0.0.1", MediaConfig(), server.getsockname()))
        event = opened(side, 5)
        assert event.mapped == ("203.0.113.7", 40404)
        assert asked == [event.local]  # asked from the call's own socket
    finally:
        thread.join()
        server.close()
        side.worker.stop()


def test_stun_without_answer_opens_the_call_unmapped() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    side = make_side(None)
    try:
        side.worker.send(OpenMedia(5, "127.0.0.1", MediaConfig(), silent.getsockname()))
        event = side.wait(lambda e: isinstance(e, MediaOpened), timeout=10)
        assert isinstance(event, MediaOpened) and event.mapped is None
        requests = []
        silent.settimeout(0.1)
        while True:
            try:
                requests.append(silent.recv(2048))
            except TimeoutError:
                break
        assert len(requests) == 3 and all(classify(r) is PacketKind.STUN for r in requests)
    finally:
        silent.close()
        side.worker.stop()


def test_one_pass_over_the_calls_runs_what_is_due_and_keeps_the_earliest_deadline() -> None:
    """The wait after a wake-up ends at the earliest timer of any call (here STUN retries),
    not at the last call's; a due retry goes out and moves that call's deadline on."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(2)
    worker = MediaWorker(lambda batch: None, open_socket=open_udp, cache=MemoryZidCache())
    try:
        server = silent.getsockname()
        worker._open(OpenMedia(2, "127.0.0.1", MediaConfig(), server), now=-0.3)  # retry at 0.2
        worker._open(OpenMedia(1, "127.0.0.1", MediaConfig(), server), now=0.0)  # retry at 0.5
        assert [classify(silent.recv(2048)) for _ in range(2)] == [PacketKind.STUN] * 2
        assert worker._run_timers(0.1) == pytest.approx(0.2)
        assert worker._run_timers(0.3) == pytest.approx(0.5)  # call 2 retried: next at 1.3
        assert classify(silent.recv(2048)) is PacketKind.STUN
        assert worker._run_timers(0.6) == pytest.approx(1.3)  # call 1 retried: next at 1.6
    finally:
        worker._release()
        worker.stop()
        silent.close()


def test_a_socket_that_cannot_be_bound_is_reported() -> None:
    def no_sockets(host: str, port: int) -> UdpSocket:
        raise OSError(24, "Too many open files")

    side = make_side(None, no_sockets)
    try:
        side.worker.send(OpenMedia(3, "127.0.0.1", MediaConfig()))
        event = side.wait(lambda e: isinstance(e, MediaOpenFailed))
        assert event == MediaOpenFailed(3, "[Errno 24] Too many open files")
        assert side.worker.alive
    finally:
        side.worker.stop()


class FailingCapture(SimCapture):
    """A microphone driver with a bug: its third frame raises."""

    def __init__(self, inner: SimCapture) -> None:
        self.__dict__.update(inner.__dict__)
        self.reads = 0

    def read_frame(self) -> bytes:
        self.reads += 1
        if self.reads == 3:
            raise RuntimeError("capture driver bug")
        return super().read_frame()


class FailingDevices(SimAudioDevices):
    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        return FailingCapture(super().open_capture(rate))


def test_an_exception_in_the_thread_is_reported_and_everything_is_released() -> None:
    opened_sockets: list[UdpSocket] = []

    def recording(host: str, port: int) -> UdpSocket:
        sock = open_udp(host, port)
        opened_sockets.append(sock)
        return sock

    side = make_side(FailingDevices(), recording)
    side.worker.send(OpenMedia(1, "127.0.0.1", MediaConfig()))
    failed = side.wait(lambda e: isinstance(e, WorkerFailed))
    assert failed == WorkerFailed("RuntimeError: capture driver bug")
    side.worker.stop()
    assert not side.worker.alive
    assert side.worker.failure == "RuntimeError: capture driver bug"
    assert len(opened_sockets) == 1
    for sock in opened_sockets:  # closed by the dying thread: the ports are free again
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(sock.local)
        probe.close()
    with pytest.raises(WorkerUnavailableError):
        side.worker.send(QueryStats(1))


class StuckDevices(SimAudioDevices):
    """A microphone driver that hangs in its read (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.stuck = threading.Event()

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        capture = super().open_capture(rate)
        devices = self

        class Stuck(SimCapture):
            def __init__(self) -> None:
                self.__dict__.update(capture.__dict__)

            def read_frame(self) -> bytes:
                devices.stuck.set()
                devices.release.wait()
                return super().read_frame()

        return Stuck()


def test_a_full_command_queue_is_a_fault_not_a_block() -> None:
    """A worker stuck in a driver does not take its commands; once its queue is full the
    next command raises at once instead of blocking the loop."""
    devices = StuckDevices()
    worker = MediaWorker(
        lambda batch: None,
        open_socket=open_udp,
        cache=MemoryZidCache(),
        audio=devices,
        queue_size=2,
    )
    worker.start()
    try:
        assert devices.stuck.wait(5)
        worker.send(QueryStats(1))
        worker.send(QueryStats(1))
        started = time.monotonic()
        with pytest.raises(WorkerUnavailableError, match="does not take commands"):
            worker.send(QueryStats(1))
        assert time.monotonic() - started < 1.0
    finally:
        devices.release.set()
        worker.stop()


class TimedDevices(SimAudioDevices):
    """An earpiece that takes `open_delay` to open (alsa-lib reading its configuration on a
    busy machine), a media thread held up for `stall` once after a frame (a busy machine),
    and for each frame written the earpiece's queue ahead of it (how much later than now it
    will be played)."""

    def __init__(self, open_delay: float = 0.0, stall: float = 0.0) -> None:
        super().__init__()
        self.open_delay, self.stall = open_delay, stall
        self.ahead: list[float] = []

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        capture = super().open_capture(rate)
        stall = self.stall

        class Stalling(SimCapture):
            reads = 0

            def __init__(self) -> None:
                self.__dict__.update(capture.__dict__)

            def read_frame(self) -> bytes:
                frame = super().read_frame()
                Stalling.reads += 1
                if Stalling.reads == 25:
                    time.sleep(stall)
                return frame

        return Stalling()

    def open_playback(self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE) -> SimPlayback:
        time.sleep(self.open_delay)
        playback = super().open_playback(purpose, rate)
        write, ahead = playback.write_frame, self.ahead

        def measured(pcm: bytes) -> None:
            write(pcm)
            ahead.append(playback._played_until - time.monotonic())  # type: ignore[operator]

        playback.write_frame = measured  # type: ignore[method-assign]
        return playback


def earpiece_queue(devices: TimedDevices, frames: int) -> list[float]:
    side = make_side(devices)
    side.worker.send(SetHandsetTone("dial"))  # keeps the clock running
    try:
        deadline = time.monotonic() + 5
        while len(devices.ahead) < frames:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        side.worker.stop()
    return devices.ahead


@pytest.mark.parametrize(
    ("open_delay", "stall"), [(0.06, 0.0), (0.0, 0.15)], ids=["slow-open", "stall"]
)
def test_the_earpiece_holds_one_period_ahead_of_each_frame(open_delay: float, stall: float) -> None:
    """Each frame written has PLAYBACK_AHEAD - 1 periods queued ahead of it (plus itself, and
    the lateness of the tick that started the earpiece, at most 10 ms):
    the silence ahead is written on the first tick, on the capture's clock, so a slow open
    adds nothing; after a stall the frames read in a burst are not queued in the earpiece
    (which ran dry meanwhile), so the delay does not grow by the stall."""
    ahead = earpiece_queue(TimedDevices(open_delay, stall), 60)
    steady = ahead[40:60]
    # the earpiece (re)starts on a tick at most 10 ms late: up to 10 ms more
    assert max(steady) < PLAYBACK_AHEAD * 0.02 + 0.015, [round(a * 1000) for a in steady]


class OftenStalling(SimAudioDevices):
    """A media thread held up 190 ms after every 20th frame (a busy machine)."""

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        capture = super().open_capture(rate)

        class Stalling(SimCapture):
            reads = 0

            def __init__(self) -> None:
                self.__dict__.update(capture.__dict__)

            def read_frame(self) -> bytes:
                frame = super().read_frame()
                Stalling.reads += 1
                if Stalling.reads % 20 == 0:
                    time.sleep(0.19)
                return frame

        return Stalling()


def test_a_late_media_thread_is_not_taken_for_network_jitter() -> None:
    """Bob's thread runs 190 ms late now and then. Alice's packets come on time, and the card
    plays Bob's earpiece on its own clock: the jitter buffer must not grow for his lateness
    (stamped when the thread read them, the packets look up to 190 ms late, and it grows to
    that). What it may grow to is Alice's own lateness on a busy machine (65 ms seen while
    the whole suite ran)."""
    a = make_side(SimAudioDevices(tone_frequency=1000))
    b = make_side(OftenStalling(tone_frequency=700))
    try:
        connect(a, b)
        secured(a), secured(b)
        buffer = b.worker._calls[1].session._stream._jitter
        time.sleep(3.0)
        assert abs(strongest(b.heard()) - 1000) < 20
        b.worker.send(QueryStats(1))
        report = b.wait(lambda e: isinstance(e, MediaStatsReport))
    finally:
        a.worker.stop()
        b.worker.stop()
    assert buffer.delay < 0.14, f"the buffer grew to {buffer.delay * 1000:.0f} ms"
    # each stall outlasts the earpiece's slack: its frame is not written, and counted
    assert isinstance(report, MediaStatsReport) and report.stats.earpiece_late >= 3


class StallOnce(SimAudioDevices):
    """A media thread held up 300 ms once, when the test says: longer than the simulated
    card's backlog, so its capture clock restarts (as a card does after an overrun)."""

    stall = threading.Event()

    def open_capture(self, rate: int = SAMPLE_RATE) -> SimCapture:
        capture = super().open_capture(rate)
        stall = self.stall

        class Stalling(SimCapture):
            def __init__(self) -> None:
                self.__dict__.update(capture.__dict__)

            def read_frame(self) -> bytes:
                frame = super().read_frame()
                if stall.is_set():
                    stall.clear()
                    time.sleep(0.3)
                return frame

        return Stalling()


def test_frames_a_stalled_capture_never_gave_are_skipped_in_the_rtp_time() -> None:
    """Alice's thread stalls 300 ms and her capture clock restarts: the frames of that time
    were never captured. Her RTP timestamps must still follow the time that passed (RFC 3550
    §5.1: the sampling instant), with a gap Bob plays as one, not run 300 ms behind for the
    rest of the call (to Bob, a step of the path's delay)."""
    devices = StallOnce(tone_frequency=1000)
    a = make_side(devices)
    b = make_side(SimAudioDevices(tone_frequency=700))
    try:
        connect(a, b)
        secured(a), secured(b)
        session = a.worker._calls[1].session
        sender = session._stream._sender
        time.sleep(0.5)
        start, stamp = time.monotonic(), sender.timestamp
        devices.stall.set()
        time.sleep(1.5)
        elapsed, ticks = time.monotonic() - start, (sender.timestamp - stamp) & 0xFFFFFFFF
        assert not devices.stall.is_set()
        time.sleep(1.0)
        assert abs(strongest(b.heard()) - 1000) < 20
    finally:
        a.worker.stop()
        b.worker.stop()
    assert abs(ticks / 8000 - elapsed) < 0.07, (ticks / 8000, elapsed)
    assert session.stats.capture_skipped >= 12  # the 300 ms the stall took, and counted
