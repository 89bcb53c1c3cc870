"""SIP signalling benchmarks (issue 4), run by hand:

    .venv/bin/python -m bench.sip               # parse + serialize only
    .venv/bin/python -m bench.sip --kamailio    # also REGISTER against Kamailio (root)

(a) parse + serialize throughput of a typical INVITE with an SDP offer, in messages per
second (median of several rounds); (b) with `--kamailio`, the time from starting the agent to
the 200 OK for REGISTER against a Kamailio on loopback in a private network namespace:
bench/register.py's rounds (TCP, TLS handshake, the 401 challenge, the authenticated REGISTER).
"""

from __future__ import annotations

import argparse
import statistics
import time

from pidphone.sip import parse_message

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
REGISTER_ROUNDS = 10


def parse_serialize_rate() -> float:
    """Median messages per second for parse_message + bytes() of INVITE."""

    def one_round() -> float:
        start = time.perf_counter()
        for _ in range(MESSAGES):
            bytes(parse_message(INVITE))
        return MESSAGES / (time.perf_counter() - start)

    assert bytes(parse_message(INVITE)) == INVITE
    return statistics.median(one_round() for _ in range(ROUNDS))


def register_against_kamailio(count: int = REGISTER_ROUNDS) -> float:
    """Median seconds from agent start to the REGISTER 200 OK (bench/register.py's rounds)."""
    from bench.register import measure

    return statistics.median(measure(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kamailio", action="store_true", help="also time REGISTER (root)")
    args = parser.parse_args()
    rate = parse_serialize_rate()
    print(f"INVITE with SDP ({len(INVITE)} bytes): parse + serialize {rate:,.0f} messages/s")
    if args.kamailio:
        median = register_against_kamailio()
        print(
            f"REGISTER against Kamailio (TLS, digest): median {median * 1000:.1f} ms to 200 OK "
            f"over {REGISTER_ROUNDS} rounds"
        )


if __name__ == "__main__":
    main()
