"""The receive path alone under loss and jitter, on a simulated clock, run by hand:

    .venv/bin/python -m bench.jitter [--codec PCMU] [--loss 0,0.03,0.1] [--jitter 0,0.03,0.06]
                                     [--seed 1] [--phase 0.01] [--trace]

What the media worker does to a call's incoming audio, without sockets or threads, in a
fraction of the time of a real call (bench/quality.py): the speech of bench/speech.py is
encoded in 20 ms packets sent on the sender's audio clock, each packet goes through the
relay's `Impairer` (the same seeded loss and jitter as bench/relay.py), the receiver reads its
socket on its own audio tick (`--phase` after the sender's, as the media worker does once media
flows) and puts what arrived into the jitter buffer, then plays one frame per tick: decoded,
rebuilt from the next packet's FEC, or concealed (`pidphone.audio.codec`). The received speech
is scored with PESQ (narrowband for G.711, wideband otherwise) and the buffer's counters are
printed beside it: frames concealed, lost, late, dropped, and the mean time a packet waited
in the buffer (its share of the mouth-to-ear delay).

`--stall S` makes the sender stall once for S seconds half a second into the speech, its
audio clock restarting without skipping the RTP time (as a peer that does not skip it), so every
later packet comes S later for its timestamp: a step of the path's delay, as real calls through
the relay showed under load.

`--trace` prints every frame's fate at one point: what arrived on each tick, the buffer's
target and level, what was played.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

from bench.relay import Impairer, Impairment
from bench.speech import make_speech, mos
from pidphone.audio.codec import Codec, make_codec
from pidphone.rtp.jitter import JitterBuffer

FRAME = 0.02
LEAD_IN = 1.0
"""Seconds of silence before the speech, as a call has before its first words."""


@dataclass
class Outcome:
    mos: float
    concealed: int
    lost: int
    late: int
    dropped: int
    wait: float
    """Mean seconds from a packet's arrival to its play-out."""


def simulate(
    codec: Codec,
    decoder: Codec,
    speech: bytes,
    impairment: Impairment,
    seed: int,
    *,
    phase: float = 0.01,
    stall: float = 0.0,
    trace: bool = False,
) -> tuple[bytes, JitterBuffer, list[float]]:
    """The speech as the receiver played it, the buffer, and each played packet's wait.
    `stall` seconds: the sender's thread stalls once, half a second into the speech, and its
    audio clock restarts without skipping the RTP time (as a peer that does not skip it
    does): every later packet leaves that much later for its timestamp."""
    size = codec.frame_bytes
    talk = bytes(round(LEAD_IN / FRAME) * size) + speech + bytes(25 * size)
    frames = [talk[i : i + size] for i in range(0, len(talk) - size + 1, size)]
    impairer = Impairer(impairment, seed)
    arrivals: list[tuple[float, int, bytes]] = []
    stall_at = round((LEAD_IN + 0.5) / FRAME)
    for n, pcm_in in enumerate(frames):
        payload = codec.encode(pcm_in)
        for due in impairer.schedule(n * FRAME + (stall if n >= stall_at else 0.0)):
            arrivals.append((due, n, payload))
    arrivals.sort()
    ticks = len(frames) + round((0.5 + stall) / FRAME)
    buffer = JitterBuffer(clock_rate=codec.clock_rate, samples_per_frame=codec.frame_ticks)
    arrived_at: dict[int, float] = {}
    waits: list[float] = []
    out: list[bytes] = []
    cursor = 0
    first: int | None = None
    for k in range(ticks):
        now = k * FRAME + phase
        got = []
        while cursor < len(arrivals) and arrivals[cursor][0] <= now:
            due, n, payload = arrivals[cursor]
            cursor += 1
            arrived_at.setdefault(n, due)
            got.append(n)
            if first is None:
                first = n
            # stamped when it arrived, as the kernel stamps the media worker's datagrams
            buffer.put_raw(n & 0xFFFF, n * codec.frame_ticks, 1, 0, payload, arrival=due)
        frame = buffer.pop(now)
        if frame.kind == "audio":
            pcm = decoder.decode(frame.payload)
            # the buffer counts frames from the first packet's timestamp (no resync here)
            index = buffer._play - 1 + (first or 0)
            if index in arrived_at:
                waits.append(now - arrived_at[index])
        elif frame.kind == "lost":
            if not frame.next_payload and decoder.has_fec and not buffer.fec_hold:
                buffer.fec_hold = FRAME  # as the media session does
            rebuilt = decoder.decode_fec(frame.next_payload) if frame.next_payload else None
            pcm = decoder.conceal() if rebuilt is None else rebuilt
        else:
            pcm = bytes(size)
        out.append(pcm[:size].ljust(size, b"\0"))
        if trace:
            print(f"tick {k:5d} got {got!s:<16} target {buffer.target} play {frame.kind}")
    return b"".join(out), buffer, waits


def run_point(
    name: str,
    loss: float,
    jitter: float,
    seed: int,
    phase: float,
    trace: bool = False,
    stall: float = 0.0,
) -> Outcome:
    rate = 8000 if name in ("PCMU", "PCMA") else 16000
    codec = make_codec(name, {"useinbandfec": "1"}, sample_rate=rate)
    decoder = make_codec(name, {"useinbandfec": "1"}, sample_rate=rate)
    speech = make_speech(rate)
    impairment = Impairment(loss=loss, jitter=jitter, delay=jitter)
    played, buffer, waits = simulate(
        codec, decoder, speech, impairment, seed, phase=phase, stall=stall, trace=trace
    )
    score = mos(speech, _align(speech, played, rate), rate)
    return Outcome(
        score,
        buffer.concealed,
        buffer.lost,
        buffer.late,
        buffer.dropped,
        statistics.fmean(waits) if waits else float("nan"),
    )


def _align(reference: bytes, recording: bytes, rate: int) -> bytes:
    import numpy as np

    from bench.quality import align  # numpy, FFT cross-correlation

    ref = np.frombuffer(reference, dtype="<i2").astype(np.float64)
    rec = np.frombuffer(recording, dtype="<i2").astype(np.float64)
    piece = align(ref, rec)
    del rate
    return np.clip(np.round(piece), -32768, 32767).astype("<i2").tobytes()


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jitter", description=__doc__)
    parser.add_argument("--codec", default="PCMU", choices=("PCMU", "PCMA", "G722", "opus"))
    parser.add_argument("--loss", type=floats, default=[0.0, 0.03, 0.1])
    parser.add_argument("--jitter", type=floats, default=[0.0, 0.03, 0.06], help="seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase", type=float, default=0.01, help="receiver tick after sender")
    parser.add_argument("--trace", action="store_true", help="every frame, at the first point")
    parser.add_argument(
        "--stall", type=float, default=0.0, help="seconds the sender stalls once, its RTP time not"
    )
    args = parser.parse_args(argv)
    if args.trace:
        run_point(args.codec, args.loss[0], args.jitter[0], args.seed, args.phase, True, args.stall)
        return 0
    print(
        f"{args.codec}, seed {args.seed}, receiver phase {args.phase * 1000:.0f} ms,"
        f" sender stall {args.stall * 1000:.0f} ms"
    )
    print(
        f"{'loss':>5} {'jitter':>7} {'MOS':>5} {'concealed':>9} {'lost':>5} {'late':>5}"
        f" {'dropped':>7} {'wait ms':>8}"
    )
    for loss in args.loss:
        for jitter in args.jitter:
            o = run_point(args.codec, loss, jitter, args.seed, args.phase, stall=args.stall)
            print(
                f"{loss:>5.0%} {jitter * 1000:>5.0f}ms {o.mos:>5.2f} {o.concealed:>9d} "
                f"{o.lost:>5d} {o.late:>5d} {o.dropped:>7d} {o.wait * 1000:>8.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
