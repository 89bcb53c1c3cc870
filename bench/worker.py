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

The instruction count is repeatable where the seconds are not (a shared, loaded machine):
run the call twice under callgrind with different lengths and take the difference, which
leaves out start-up and key agreement (n periods = the seconds' difference x 50 x 2 workers):

    valgrind --tool=callgrind --callgrind-out-file=/tmp/w5 .venv/bin/python -m bench.worker \
        --seconds 5
    valgrind --tool=callgrind --callgrind-out-file=/tmp/w15 .venv/bin/python -m bench.worker \
        --seconds 15
"""

from __future__ import annotations

import argparse
import cProfile
import os
import queue
import random
import statistics
import sys
import time
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", action="store_true", help="one worker with no call")
    parser.add_argument("--start", type=int, metavar="N", help="how soon audio starts, N runs")
    parser.add_argument("--profile", type=Path, help="cProfile the first worker to FILE")
    args = parser.parse_args()
    if args.start:
        start(args.start)
    elif args.idle:
        idle(args.seconds)
    else:
        call(args.seconds, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
