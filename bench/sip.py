"""SIP signalling benchmarks (issue 4), run by hand:

    .venv/bin/python -m bench.sip               # parse + serialize, and whole calls
    .venv/bin/python -m bench.sip --cpu         # the same, fastest round in thread CPU time
    .venv/bin/python -m bench.sip --kamailio    # also REGISTER against Kamailio (root)

(a) parse + serialize throughput of a typical INVITE with an SDP offer, in messages per
second (median of several rounds); (b) whole calls between two user agents back to back in
memory (INVITE, 100, 180, 200, ACK; a hold re-INVITE, 100, 200, ACK; BYE, 200), in calls per
second: the agent's own work beside parsing; (c) with `--kamailio`, the time from starting the
agent to the 200 OK for REGISTER against a Kamailio on loopback in a private network namespace:
bench/register.py's rounds (TCP, TLS handshake, the 401 challenge, the authenticated REGISTER).

`--cpu` times each round in this thread's CPU time and keeps the fastest: on a shared, loaded
machine the wall clock also counts the time the scheduler gave to others.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from pidphone.sip import parse_message
from pidphone.sip.agent import AgentConfig, UserAgent

INVITE = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 127.0.0.1:40312;branch=z9hG4bK5f2a9c0e8b7d6a;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@127.0.0.1>;tag=9fxced76sl\r\n'
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: 3848276298220188511@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n"
    b"User-Agent: pidphone/0.1.0\r\n"
    b"Contact: <sip:alice@127.0.0.1:40312;transport=tls;ob>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"Supported: outbound\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 243\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"
    b"s=pidphone\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 17078 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)
ROUNDS = 9
MESSAGES = 2000
CALLS = 200
MESSAGES_PER_CALL = 11
REGISTER_ROUNDS = 10
OFFER = INVITE.split(b"\r\n\r\n", 1)[1]
HOLD = OFFER.replace(b"a=sendrecv", b"a=sendonly")
BOB = ("127.0.0.1", 5062)
EPHEMERAL = ("127.0.0.1", 40000)
"""Alice's end of her connection to Bob."""


def rate(work: Callable[[], object], count: int, *, cpu: bool) -> float:
    """Items per second of `count` runs of `work`: the median over ROUNDS of the wall clock,
    or with `cpu` the fastest round in thread CPU time."""
    clock = time.thread_time if cpu else time.perf_counter

    def one_round() -> float:
        start = clock()
        for _ in range(count):
            work()
        return count / (clock() - start)

    rounds = [one_round() for _ in range(ROUNDS)]
    return max(rounds) if cpu else statistics.median(rounds)


def parse_serialize_rate(*, cpu: bool = False) -> float:
    """Messages per second for parse_message + bytes() of INVITE."""
    assert bytes(parse_message(INVITE)) == INVITE
    return rate(lambda: bytes(parse_message(INVITE)), MESSAGES, cpu=cpu)


def one_call() -> int:
    """One whole call between two fresh agents; returns the messages that crossed."""
    alice = UserAgent(AgentConfig(aor="sips:alice@127.0.0.1", keepalive_interval=0))
    bob = UserAgent(AgentConfig(aor="sips:bob@127.0.0.1", keepalive_interval=0))
    now = 0.0
    crossed = 0

    def pump() -> None:
        nonlocal crossed
        moved = True
        while moved:
            moved = False
            for src, dst in ((alice, bob), (bob, alice)):
                for data, _ in src.data_to_send():
                    moved = True
                    if not data:  # alice opens the one connection
                        alice.connection_made(BOB, EPHEMERAL, now)
                        bob.connection_made(EPHEMERAL, BOB, now)
                        continue
                    crossed += 1
                    dst.receive_data(data, EPHEMERAL if src is alice else BOB, now)

    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, now)
    pump()
    bob.ringing(call_id, now)
    bob.answer(call_id, OFFER, now)
    pump()
    alice.reinvite(call_id, HOLD, now)
    pump()
    bob.accept_reinvite(call_id, OFFER, now)
    pump()
    alice.hangup(call_id, now)
    pump()
    return crossed


def call_rate(*, cpu: bool = False) -> float:
    """Whole calls per second."""
    assert one_call() == MESSAGES_PER_CALL
    return rate(one_call, CALLS, cpu=cpu)


def register_against_kamailio(count: int = REGISTER_ROUNDS) -> float:
    """Median seconds from agent start to the REGISTER 200 OK (bench/register.py's rounds)."""
    from bench.register import measure

    return statistics.median(measure(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kamailio", action="store_true", help="also time REGISTER (root)")
    parser.add_argument("--cpu", action="store_true", help="fastest round in thread CPU time")
    args = parser.parse_args()
    how = f"fastest of {ROUNDS} rounds in CPU time" if args.cpu else f"median of {ROUNDS} rounds"
    messages = parse_serialize_rate(cpu=args.cpu)
    print(f"INVITE with SDP ({len(INVITE)} bytes): parse + serialize {messages:,.0f} messages/s")
    calls = call_rate(cpu=args.cpu)
    print(f"whole calls between two agents ({MESSAGES_PER_CALL} messages): {calls:,.0f} calls/s")
    print(f"({how})")
    if args.kamailio:
        median = register_against_kamailio()
        print(
            f"REGISTER against Kamailio (TLS, digest): median {median * 1000:.1f} ms to 200 OK "
            f"over {REGISTER_ROUNDS} rounds"
        )


if __name__ == "__main__":
    main()
