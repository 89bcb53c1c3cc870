"""Media path cost per 20 ms G.711 packet (issue 2's benchmark), run by hand:

    .venv/bin/python -m bench.media [--cpu] [--paced SECONDS]

(a) our SRTP protect + unprotect; (b) the whole send path (PCM -> mu-law -> RTP -> SRTP) plus
the receive path (SRTP -> RTP -> jitter buffer -> PCM); (c) the bare libsrtp (pylibsrtp)
protect + unprotect loop, the reference. Prints median microseconds per packet over many rounds
and the ratios (a)/(c) and (b)/(c); targets are (a) <= 2.5 and (b) <= 4.

`--cpu` times each round in this thread's CPU time and keeps the fastest round: on a shared,
loaded machine the wall clock also counts the time the scheduler gave to others, which
swamps differences of a few percent; CPU time mostly does not.

The receive side of (b) is the lean one a call should use: `rtp_fields` and
`JitterBuffer.put_raw`, no `RtpPacket` per packet. Every loop binds its methods to locals first,
as the libsrtp loop does, so only the work is timed. The steps are timed alone afterwards,
with the packet-object receive API (`RtpPacket.parse`, `JitterBuffer.put`) for comparison.

`--paced SECONDS` also runs (b) and (c) one packet every 20 ms, as a call does, and prints the
thread CPU per packet: between two packets the machine runs other work, so each packet starts
with cold caches and costs several times its back-to-back figure (this, not the figure above,
is what a call pays per period; bench/call.py measures the whole of it).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import replace

import pylibsrtp

from pidphone.audio.g711 import ulaw_decode, ulaw_encode
from pidphone.rtp import JitterBuffer, RtpPacket, RtpSender
from pidphone.rtp.packet import rtp_fields
from pidphone.srtp import SrtpContext

PROFILE = "AES_CM_128_HMAC_SHA1_80"
KEY = bytes(range(16))
SALT = bytes(range(16, 30))
SSRC = 0x5EED1234
PAYLOAD_LEN = 160
"""20 ms of G.711 at 8 kHz."""
ROUNDS = 31
PACKETS = 2000
"""Packets per round; each round protects a fresh run of sequence numbers."""

Round = Callable[[int], None]
"""Runs PACKETS packets starting at the given sequence offset."""


def rtp_packets(start: int) -> list[bytes]:
    return [
        struct.pack("!BBHII", 0x80, 0, (start + i) & 0xFFFF, (start + i) * 160, SSRC)
        + bytes([i & 0xFF]) * PAYLOAD_LEN
        for i in range(PACKETS)
    ]


def median_us(*runs: Round, cpu: bool = False) -> list[float]:
    """Median over ROUNDS of the time per packet of each run (with `cpu`: the fastest round,
    in thread CPU time).

    The runs take turns round by round, so a machine busy with something else slows them
    alike and the ratios stay fair. Garbage collection stays on, as in the phone.
    """
    clock = time.thread_time_ns if cpu else time.perf_counter_ns
    per_packet: list[list[float]] = [[] for _ in runs]
    for r in range(ROUNDS):
        start = r * PACKETS
        for run, times in zip(runs, per_packet, strict=True):
            t0 = clock()
            run(start)
            times.append((clock() - t0) / PACKETS / 1000)
    pick = min if cpu else statistics.median
    return [pick(times) for times in per_packet]


def prepared(body: Callable[[list[bytes]], None]) -> Round:
    """A round over pre-built RTP packets, so only the SRTP work is timed."""
    batches = [rtp_packets(r * PACKETS) for r in range(ROUNDS)]

    def run(start: int) -> None:
        body(batches[start // PACKETS])

    return run


def ours_srtp() -> Round:
    tx, rx = SrtpContext(PROFILE, KEY, SALT), SrtpContext(PROFILE, KEY, SALT)
    protect, unprotect = tx.protect, rx.unprotect

    def body(packets: list[bytes]) -> None:
        for p in packets:
            unprotect(protect(p))

    return prepared(body)


def libsrtp() -> Round:
    def session(kind: int) -> pylibsrtp.Session:
        return pylibsrtp.Session(
            pylibsrtp.Policy(
                key=KEY + SALT,
                ssrc_type=kind,
                srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
            )
        )

    protect = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect
    unprotect = session(pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect

    def body(packets: list[bytes]) -> None:
        for p in packets:
            unprotect(protect(p))

    return prepared(body)


def pcm_frame() -> bytes:
    """A 20 ms S16_LE frame of a busy waveform (so mu-law sees every segment)."""
    return struct.pack("<160h", *((i * 397) % 20000 - 10000 for i in range(160)))


def whole_path() -> Round:
    """PCM -> mu-law -> RTP -> SRTP, then SRTP -> RTP -> jitter buffer -> PCM.

    One pop per put, as the playback clock does in a call without jitter; the arrival time
    advances 20 ms per packet.
    """
    protect = SrtpContext(PROFILE, KEY, SALT).protect
    unprotect = SrtpContext(PROFILE, KEY, SALT).unprotect
    packet = RtpSender(0).packet
    jitter = JitterBuffer()
    put, pop = jitter.put_raw, jitter.pop
    pcm = pcm_frame()

    def run(start: int) -> None:
        for i in range(start, start + PACKETS):
            wire = protect(packet(ulaw_encode(pcm)))
            pt, marker, seq, ts, ssrc, payload = rtp_fields(unprotect(wire))
            put(seq, ts, ssrc, pt, payload, arrival=i * 0.02, marker=marker)
            ulaw_decode(pop(i * 0.02 + 0.01).payload)

    return run


def whole_path_packet() -> Callable[[int], None]:
    """(b) for one packet, number i: what each 20 ms period of a call does."""
    protect = SrtpContext(PROFILE, KEY, SALT).protect
    unprotect = SrtpContext(PROFILE, KEY, SALT).unprotect
    packet = RtpSender(0).packet
    jitter = JitterBuffer()
    pcm = pcm_frame()

    def one(i: int) -> None:
        wire = protect(packet(ulaw_encode(pcm)))
        pt, marker, seq, ts, ssrc, payload = rtp_fields(unprotect(wire))
        jitter.put_raw(seq, ts, ssrc, pt, payload, arrival=i * 0.02, marker=marker)
        ulaw_decode(jitter.pop(i * 0.02 + 0.01).payload)

    return one


def libsrtp_packet() -> Callable[[int], None]:
    """(c) for one packet, number i."""
    tx, rx = (
        pylibsrtp.Session(
            pylibsrtp.Policy(
                key=KEY + SALT,
                ssrc_type=kind,
                srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
            )
        )
        for kind in (pylibsrtp.Policy.SSRC_ANY_OUTBOUND, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    payload = bytes(PAYLOAD_LEN)

    def one(i: int) -> None:
        rtp = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160, SSRC) + payload
        rx.unprotect(tx.protect(rtp))

    return one


def paced_us(steps: list[Callable[[int], None]], seconds: float) -> list[float]:
    """Median thread CPU per packet of each step, the steps taking turns once every 20 ms
    (a sleep between periods, as the media thread waits for the next frame)."""
    times: list[list[float]] = [[] for _ in steps]
    due = time.monotonic()
    for i in range(int(seconds / 0.02)):
        due += 0.02
        time.sleep(max(0.0, due - time.monotonic()))
        for step, taken in zip(steps, times, strict=True):
            t0 = time.thread_time_ns()
            step(i)
            taken.append((time.thread_time_ns() - t0) / 1000)
    return [statistics.median(taken) for taken in times]


def stages() -> dict[str, Round]:
    """Each step of (b) alone, to show where its time goes."""
    pcm = pcm_frame()
    codes = ulaw_encode(pcm)
    sender = RtpSender(0)
    rtp = sender.packet(codes)
    parsed = RtpPacket.parse(rtp)

    def repeat(step: Callable[[bytes], object], arg: bytes) -> Round:
        def run(start: int) -> None:
            for _ in range(PACKETS):
                step(arg)

        return run

    frames = [
        [
            replace(parsed, sequence=(r * PACKETS + i) & 0xFFFF, timestamp=(r * PACKETS + i) * 160)
            for i in range(PACKETS)
        ]
        for r in range(ROUNDS)
    ]

    def jitter_round(start: int) -> None:
        put, pop = jitter.put, jitter.pop
        for i, packet in enumerate(frames[start // PACKETS], start):
            put(packet, i * 0.02)
            pop(i * 0.02 + 0.01)

    def jitter_raw_round(start: int) -> None:
        put, pop = raw_jitter.put_raw, raw_jitter.pop
        for i, packet in enumerate(frames[start // PACKETS], start):
            put(packet.sequence, packet.timestamp, SSRC, 0, codes, arrival=i * 0.02)
            pop(i * 0.02 + 0.01)

    jitter, raw_jitter = JitterBuffer(), JitterBuffer()
    return {
        "mu-law encode": repeat(ulaw_encode, pcm),
        "RtpSender.packet": repeat(sender.packet, codes),
        "rtp_fields": repeat(rtp_fields, rtp),
        "JitterBuffer put_raw+pop": jitter_raw_round,
        "mu-law decode": repeat(ulaw_decode, codes),
        "(packet API) RtpPacket.parse": repeat(RtpPacket.parse, rtp),
        "(packet API) JitterBuffer put+pop": jitter_round,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="fastest round in thread CPU time")
    parser.add_argument(
        "--paced", type=float, metavar="SECONDS", help="also one packet per 20 ms for SECONDS"
    )
    args = parser.parse_args()
    cpu = args.cpu
    a, b, c = median_us(ours_srtp(), whole_path(), libsrtp(), cpu=cpu)
    how = f"fastest of {ROUNDS} rounds in CPU time" if cpu else f"median of {ROUNDS} rounds"
    print(f"per 20 ms G.711 packet ({PAYLOAD_LEN}-byte payload), {how}")
    print(f"(a) our SRTP protect+unprotect        {a:7.2f} us")
    print(f"(b) whole send + receive path         {b:7.2f} us")
    print(f"(c) pylibsrtp protect+unprotect       {c:7.2f} us")
    print(f"(a)/(c) = {a / c:.2f}  (target <= 2.5)")
    print(f"(b)/(c) = {b / c:.2f}  (target <= 4)")
    print("the steps of (b) besides (a), each alone:")
    parts = stages()
    for name, us in zip(parts, median_us(*parts.values(), cpu=cpu), strict=True):
        print(f"    {name:42s} {us:6.2f} us")
    if args.paced:
        pb, pc = paced_us([whole_path_packet(), libsrtp_packet()], args.paced)
        print(f"one packet per 20 ms for {args.paced:g} s, median thread CPU per packet:")
        print(f"(b) whole send + receive path         {pb:7.2f} us  ({pb / b:.1f}x back to back)")
        print(f"(c) pylibsrtp protect+unprotect       {pc:7.2f} us  ({pc / c:.1f}x back to back)")


if __name__ == "__main__":
    main()
