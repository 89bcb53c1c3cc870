"""The media worker's own cost, in one process, run by hand:

    .venv/bin/python -m bench.worker [--seconds 10] [--idle] [--start N] [--profile FILE]

Two real `MediaWorker` threads on loopback UDP with simulated sound cards (a 1 kHz tone one
way, 700 Hz the other), a ZRTP-secured PCMU call between them, like tests/test_media_worker.py.
Once both are secure, for `--seconds`: each worker thread's CPU (utime + stime of its
/proc task) per call-minute, its wake-ups (voluntary context switches: one per `select`
that blocked) per second, and the periods it played. `--idle`: one worker and no call, after
its audio clock has had time to stop: CPU per minute and wake-ups per second.

`--start N`: how soon audio starts on a clock that stopped, beside one that never stops (as
before the clock stopped when idle), N times each: (a) from a tone command to when the card
plays the tone's first frame; (b) two workers, from the call's media opening (the clock
starts) and from the moment both are secure, to each side's first RTP packet on the wire.

`--profile FILE` runs the first worker's thread under cProfile (the `pstats` dump goes to
FILE): where a period's time goes, function by function, at the cost of profiling overhead.

`--lockstep PERIODS`: the same call with no thread and no waiting, for an instruction count
that is repeatable where the seconds are not (a shared, loaded machine; and under callgrind
the threads cannot keep up with real time). One clock for both workers advances 20 ms per
period, and each worker runs one wake-up per period on this thread (its `select` finds the
frame due and the peer's packet already on the loopback socket): the worker's whole
per-period path, system calls included, minus the wait. Run it twice under callgrind and
take the difference, which leaves out start-up and key agreement (the instructions of
1,000 periods of both workers):

    valgrind --tool=callgrind --callgrind-out-file=/tmp/l500 .venv/bin/python \
        -m bench.worker --lockstep 500
    valgrind --tool=callgrind --callgrind-out-file=/tmp/l1500 .venv/bin/python \
        -m bench.worker --lockstep 1500

`--part NAME --count K`: one piece of a worker-period alone, K times (PARTS names them), for
the same difference under callgrind (K = 0 and K = 20000): what each piece costs in
instructions, beside the whole period's.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import queue
import random
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pidphone.app.media import MediaConfig
from pidphone.app.media_events import MediaSecured
from pidphone.app.media_messages import (
    MediaCommand,
    MediaOpened,
    MediaUpdate,
    OpenMedia,
    SetCodec,
    SetHandset,
    SetHandsetTone,
    SetRemote,
    StartMedia,
    WorkerEvent,
)
from pidphone.app.media_worker import IDLE_STOP, MediaWorker
from pidphone.drivers.sim_audio import SimAudioDevices, SimPlayback
from pidphone.drivers.udp import UdpSocket, open_udp
from pidphone.ports import FRAME_TIME, SAMPLE_RATE, Address, AudioPurpose
from pidphone.rtp import PacketKind, classify
from pidphone.sdp import MediaParams
from pidphone.zrtp.cache import MemoryZidCache

PCMU = MediaParams(("127.0.0.1", 9), 0, "PCMU", 101, "sendrecv", None, 20)
IDLE_SETTLE = 3.0
"""Seconds an idle worker is left before it is measured (its clock stops when idle)."""


NEVER = 1e9
"""An idle_stop that keeps the clock running, as it always did before it could stop."""


class TimedDevices(SimAudioDevices):
    """Simulated cards that note when the earpiece will play each frame written."""

    def __init__(self, tone: float) -> None:
        super().__init__(tone_frequency=tone)
        self.played: list[tuple[float, bytes]] = []
        """(when the card starts playing it, frame) for each frame written."""

    def open_playback(self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE) -> SimPlayback:
        playback = super().open_playback(purpose, rate)
        write, played = playback.write_frame, self.played

        def timed(pcm: bytes) -> None:
            write(pcm)
            until = playback._played_until
            assert until is not None
            played.append((until - FRAME_TIME, pcm))

        playback.write_frame = timed  # type: ignore[method-assign]
        return playback


class TimedSocket:
    """A call's UDP socket that notes when its first RTP packet went out."""

    def __init__(self, inner: UdpSocket, first_rtp: list[float]) -> None:
        self._inner = inner
        self._first_rtp = first_rtp
        self.local = inner.local

    def fileno(self) -> int:
        return self._inner.fileno()

    def sendto(self, data: bytes, addr: Address) -> str | None:
        if not self._first_rtp and classify(data) is PacketKind.RTP:
            self._first_rtp.append(time.monotonic())
        return self._inner.sendto(data, addr)

    def receive(self, limit: int) -> list[tuple[bytes, Address, float]]:
        return self._inner.receive(limit)

    def close(self) -> None:
        self._inner.close()


class Side:
    def __init__(
        self, tone: float, profile: Path | None = None, idle_stop: float = IDLE_STOP
    ) -> None:
        self.events: queue.Queue[WorkerEvent] = queue.Queue()
        self.audio = TimedDevices(tone)
        self.first_rtp: list[float] = []
        self.worker = MediaWorker(
            self._post,
            open_socket=lambda host, port: TimedSocket(open_udp(host, port), self.first_rtp),
            cache=MemoryZidCache(),
            audio=self.audio,
            idle_stop=idle_stop,
        )
        if profile is not None:
            run = self.worker._run

            def profiled() -> None:
                profiler = cProfile.Profile()
                profiler.runcall(run)
                profiler.dump_stats(str(profile))

            self.worker._run = profiled  # type: ignore[method-assign]
            self.worker._thread._target = profiled  # type: ignore[attr-defined]
        self.worker.start()

    def _post(self, batch: list[WorkerEvent]) -> None:
        for event in batch:
            self.events.put(event)

    def wait(self, kind: type, timeout: float = 30.0) -> WorkerEvent:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(event, kind) or (
                isinstance(event, MediaUpdate) and isinstance(event.event, kind)
            ):
                return event

    def task(self) -> Path:
        native = self.worker._thread.native_id
        return Path(f"/proc/{os.getpid()}/task/{native}")

    def sample(self) -> tuple[float, int]:
        """CPU seconds and voluntary context switches of the worker thread so far."""
        task = self.task()
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                return cpu, int(line.split()[1])
        return cpu, 0

    def frames(self) -> int:
        return sum(len(e.frames) for e in self.audio.earpieces)


def connect(a: Side, b: Side) -> None:
    """Open media 1 on both, point them at each other, wait until both are secure."""
    for side in (a, b):
        side.worker.send(OpenMedia(1, "127.0.0.1", MediaConfig()))
    opened = [side.wait(MediaOpened) for side in (a, b)]
    for side, theirs in ((a, opened[1]), (b, opened[0])):
        assert isinstance(theirs, MediaOpened)
        commands: list[MediaCommand] = [
            SetCodec(1, PCMU),
            SetRemote(1, theirs.local, theirs.hello_hash, None),
            StartMedia(1),
            SetHandset(1),
        ]
        for command in commands:
            side.worker.send(command)
    for side in (a, b):
        side.wait(MediaSecured)


def call(seconds: float, profile: Path | None) -> None:
    a, b = Side(1000.0, profile), Side(700.0)
    try:
        connect(a, b)
        before = [(side.sample(), side.frames()) for side in (a, b)]
        start = time.monotonic()
        time.sleep(seconds)
        window = time.monotonic() - start
        after = [(side.sample(), side.frames()) for side in (a, b)]
    finally:
        for side in (a, b):
            side.worker.stop()
    print(f"two media workers, a secure PCMU call, {window:.1f} s measured")
    for name, ((cpu0, wake0), f0), ((cpu1, wake1), f1) in zip("ab", before, after, strict=True):
        print(
            f"worker {name}: {(cpu1 - cpu0) / window * 60:5.3f} CPU-s per call-minute, "
            f"{(wake1 - wake0) / window:5.1f} wake-ups/s, {(f1 - f0) / window:5.1f} periods/s"
        )


def idle(seconds: float) -> None:
    side = Side(1000.0)
    try:
        time.sleep(IDLE_SETTLE)
        (cpu0, wake0), start = side.sample(), time.monotonic()
        time.sleep(seconds)
        (cpu1, wake1), window = side.sample(), time.monotonic() - start
    finally:
        side.worker.stop()
    print(
        f"one idle media worker (no call, no tone), {window:.1f} s measured after "
        f"{IDLE_SETTLE:g} s: {(cpu1 - cpu0) / window * 60:5.3f} CPU-s per minute, "
        f"{(wake1 - wake0) / window:5.1f} wake-ups/s"
    )


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):5.1f} ms, max {ms[-1]:5.1f} ms"


def tone_start(idle_stop: float) -> float:
    """From a tone command to the card playing the tone's first frame, on a clock that has
    stopped (idle_stop short) or runs (NEVER)."""
    side = Side(1000.0, idle_stop=idle_stop)
    try:
        time.sleep(0.3 if idle_stop < NEVER else 0.05 + random.random() * FRAME_TIME)
        sent = time.monotonic()
        side.worker.send(SetHandsetTone("dial"))
        deadline = sent + 5
        while True:
            tone = [when for when, pcm in side.audio.played if when >= sent and any(pcm)]
            if tone:
                return tone[0] - sent
            assert time.monotonic() < deadline, "no tone"
            time.sleep(0.01)
    finally:
        side.worker.stop()


def call_start(idle_stop: float) -> tuple[list[float], list[float]]:
    """Per side: from the media's opening, and from both secure, to its first RTP packet."""
    a, b = Side(1000.0, idle_stop=idle_stop), Side(700.0, idle_stop=idle_stop)
    try:
        time.sleep(0.3 if idle_stop < NEVER else 0.05 + random.random() * FRAME_TIME)
        opened = time.monotonic()
        connect(a, b)
        secure = time.monotonic()
        deadline = secure + 5
        while not (a.first_rtp and b.first_rtp):
            assert time.monotonic() < deadline, "no RTP"
            time.sleep(0.005)
        firsts = [a.first_rtp[0], b.first_rtp[0]]
        return [f - opened for f in firsts], [f - secure for f in firsts]
    finally:
        a.worker.stop()
        b.worker.stop()


def start(count: int) -> None:
    print(f"audio start, {count} runs each (clock stopped: idle_stop 0.1 s, then 0.3 s idle)")
    for label, idle_stop in (("clock stopped", 0.1), ("clock running", NEVER)):
        tones = [tone_start(idle_stop) for _ in range(count)]
        from_open: list[float] = []
        from_secure: list[float] = []
        for _ in range(count):
            o, s = call_start(idle_stop)
            from_open += o
            from_secure += s
        print(f"{label}: tone command -> tone played     {summary(tones)}")
        print(f"{label}: media open -> first RTP sent    {summary(from_open)}")
        print(f"{label}: both secure -> first RTP sent   {summary(from_secure)}")


class Lockstep:
    """Fake time for the workers and their simulated cards: it moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Nothing to wait for: the periods are stepped by hand."""


def lockstep(periods: int, profile: Path | None) -> None:
    time_ = Lockstep()
    events: list[list[WorkerEvent]] = [[], []]
    workers = []
    for tone, posted in ((1000.0, events[0]), (700.0, events[1])):
        audio = SimAudioDevices(tone_frequency=tone, clock=time_.clock, sleep=time_.sleep)
        workers.append(
            MediaWorker(
                posted.extend,
                open_socket=open_udp,
                cache=MemoryZidCache(),
                audio=audio,
                clock=time_.clock,
            )
        )

    def command(worker: MediaWorker, command: MediaCommand) -> None:
        worker._commands.put_nowait(command)  # no thread to check: this one runs it
        worker._wake_w.send(b"\0")

    def step() -> None:
        time_.now += FRAME_TIME
        for worker in workers:
            worker._wake_up()

    def seen(side: int, kind: type) -> WorkerEvent | None:
        for event in events[side]:
            if isinstance(event, kind) or (
                isinstance(event, MediaUpdate) and isinstance(event.event, kind)
            ):
                return event
        return None

    for worker in workers:
        command(worker, OpenMedia(1, "127.0.0.1", MediaConfig()))
    step()
    opened = [seen(0, MediaOpened), seen(1, MediaOpened)]
    for worker, theirs in zip(workers, reversed(opened), strict=True):
        assert isinstance(theirs, MediaOpened)
        for each in (
            SetCodec(1, PCMU),
            SetRemote(1, theirs.local, theirs.hello_hash, None),
            StartMedia(1),
            SetHandset(1),
        ):
            command(worker, each)
    for _ in range(500):
        step()
        if seen(0, MediaSecured) and seen(1, MediaSecured):
            break
    else:
        raise RuntimeError("not secure after 500 periods")
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    started = time.thread_time_ns()
    for _ in range(periods):
        step()
    per_period = (time.thread_time_ns() - started) / periods / 2000
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    stats = [w._calls[1].session.stats for w in workers]
    for worker in workers:
        worker._release()
    print(
        f"lockstep: {periods} periods of two workers after secure; packets received "
        f"{stats[0].packets_received} / {stats[1].packets_received}, lost "
        f"{stats[0].packets_lost} / {stats[1].packets_lost}; {per_period:.1f} us CPU per "
        "worker-period (back to back, warm caches)"
    )


def _parts() -> dict[str, Callable[[], Callable[[int], object]]]:
    """Each piece of a worker-period (PCMU, AES_CM_128_HMAC_SHA1_80), ready to run as
    `piece(i)` for the i-th period."""
    from pidphone.audio.codec import make_codec
    from pidphone.rtp import JitterBuffer, RtpSender
    from pidphone.rtp.packet import rtp_fields
    from pidphone.rtp.stats import ReceiverStats
    from pidphone.srtp import SrtpContext

    key, salt, profile = bytes(range(16)), bytes(range(16, 30)), "AES_CM_128_HMAC_SHA1_80"
    pcm = SimAudioDevices().open_capture().read_frame()
    payload = make_codec("PCMU").encode(pcm)

    def rtp(i: int) -> bytes:
        return struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160, 0x5EED) + payload

    def protect() -> Callable[[int], object]:
        tx = SrtpContext(profile, key, salt)
        return lambda i: tx.protect(rtp(i))

    def unprotect() -> Callable[[int], object]:
        tx, rx = SrtpContext(profile, key, salt), SrtpContext(profile, key, salt)
        wire = [tx.protect(rtp(i)) for i in range(20000)]
        return lambda i: rx.unprotect(wire[i % 20000])

    def encode() -> Callable[[int], object]:
        codec = make_codec("PCMU")
        return lambda i: codec.encode(pcm)

    def decode() -> Callable[[int], object]:
        codec = make_codec("PCMU")
        return lambda i: codec.decode(payload)

    def jitter() -> Callable[[int], object]:
        buffer = JitterBuffer()

        def run(i: int) -> object:
            buffer.put_raw(i & 0xFFFF, i * 160, 0x5EED, 0, payload, arrival=i * 0.02)
            return buffer.pop(i * 0.02 + 0.01)

        return run

    def packet() -> Callable[[int], object]:
        sender = RtpSender(0)
        return lambda i: sender.packet(payload)

    def fields() -> Callable[[int], object]:
        stats = ReceiverStats()

        def run(i: int) -> object:
            fields = rtp_fields(rtp(i))
            return stats.update(fields[2], fields[3], i * 0.02)

        return run

    def rtp_only() -> Callable[[int], object]:
        return rtp

    def udp() -> Callable[[int], object]:
        a, b = open_udp("127.0.0.1", 0), open_udp("127.0.0.1", 0)
        wire = protect()(0)
        assert isinstance(wire, bytes)
        return lambda i: (a.sendto(wire, b.local), b.receive(32))

    def wait() -> Callable[[int], object]:
        import select

        a = open_udp("127.0.0.1", 0)
        return lambda i: select.select({a.fileno(): 1}, (), (), 0.0)

    return {
        "protect": protect,
        "unprotect": unprotect,
        "encode": encode,
        "decode": decode,
        "jitter": jitter,
        "packet": packet,
        "fields": fields,
        "rtp": rtp_only,
        "udp": udp,
        "select": wait,
    }


def part(name: str, count: int) -> None:
    run = _parts()[name]()
    started = time.thread_time_ns()
    for i in range(count):
        run(i)
    if count:
        print(f"{name}: {(time.thread_time_ns() - started) / count / 1000:.2f} us each (warm)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", action="store_true", help="one worker with no call")
    parser.add_argument("--start", type=int, metavar="N", help="how soon audio starts, N runs")
    parser.add_argument(
        "--lockstep", type=int, metavar="PERIODS", help="a call stepped by hand, PERIODS long"
    )
    parser.add_argument("--profile", type=Path, help="cProfile the first worker to FILE")
    parser.add_argument("--part", help="one piece of a period: " + ", ".join(_parts()))
    parser.add_argument("--count", type=int, default=20000, help="times --part runs")
    args = parser.parse_args()
    if args.part:
        part(args.part, args.count)
    elif args.lockstep:
        lockstep(args.lockstep, args.profile)
    elif args.start:
        start(args.start)
    elif args.idle:
        idle(args.seconds)
    else:
        call(args.seconds, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
