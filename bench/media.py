"""Media path cost per 20 ms G.711 packet (issue 2's benchmark), run by hand:

    .venv/bin/python -m bench.media

(a) our SRTP protect + unprotect; (b) the whole send path (PCM -> mu-law -> RTP -> SRTP) plus
the receive path (SRTP -> RTP -> jitter buffer -> PCM); (c) the bare libsrtp (pylibsrtp)
protect + unprotect loop, the reference. Prints median microseconds per packet over many rounds
and the ratios (a)/(c) and (b)/(c); targets are (a) <= 2.5 and (b) <= 4.
"""

from __future__ import annotations

import statistics
import struct
import time
from collections.abc import Callable

import pylibsrtp

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


def median_us(run: Round) -> float:
    """Median over ROUNDS of the time per packet; packets are prepared outside the timing."""
    per_packet = []
    for r in range(ROUNDS):
        start = r * PACKETS
        t0 = time.perf_counter_ns()
        run(start)
        per_packet.append((time.perf_counter_ns() - t0) / PACKETS / 1000)
    return statistics.median(per_packet)


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


def main() -> None:
    a = median_us(ours_srtp())
    c = median_us(libsrtp())
    print(f"per 20 ms G.711 packet ({PAYLOAD_LEN}-byte payload), median of {ROUNDS} rounds")
    print(f"(a) our SRTP protect+unprotect        {a:7.2f} us")
    print("(b) whole send + receive path       waits for pidphone.audio and pidphone.rtp")
    print(f"(c) pylibsrtp protect+unprotect       {c:7.2f} us")
    print(f"(a)/(c) = {a / c:.2f}  (target <= 2.5)")


if __name__ == "__main__":
    main()
