"""The SIP and SDP parsers work in time linear in their input, on adversarial input too.

A peer controls up to 64 KiB of every message. `re.sub(r"\\s*:\\s*", ...)` on a Via sent-by
of 64 KiB of spaces took seconds (each start position scanned the rest of the run), and
folded header lines were joined by growing one string. Now no module of sip/ or sdp/ uses a
regular expression (checked below), and each parser entry point is fed 64 KiB of every
repeated pattern an attacker would try, in each place it could go.

The work is measured as CPU time of this thread (`time.thread_time`, not the wall clock, so
other processes on the machine do not count): within a budget that linear code meets many
times over and quadratic code misses by orders of magnitude, and growing about linearly
from 16 to 64 KiB.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pidphone.sdp import SessionDescription, negotiate
from pidphone.sdp.message import MAX_SDP_BYTES
from pidphone.sip import CSeq, NameAddr, StreamFramer, Uri, Via, parse_message
from pidphone.sip.auth import Challenge, parse_authorization
from pidphone.sip.grammar import parse_params, split_outside, unquote
from pidphone.sip.headers import split_list

SIZE = 64 * 1024
BUDGET = 0.25
"""CPU seconds one 64 KiB input may take: linear code here needs 1 to 50 ms (the worst are
64 KiB of escapes or separators, each handled in Python), quadratic code seconds."""
GROWTH = 8.0
"""How much longer 64 KiB may take than 16 KiB (4 when linear, 16 when quadratic), for inputs
slow enough (10 ms) to time them well on a busy machine."""

FILLERS = [
    " ", "\t", ":", " :", ": ", " : ", ";", ",", '"', '\\"', "\\", "<", "<>", ">", "%", "%4",
    "%41", ".", "a.", "-", "a-", "-a", "@", "[", "]", "[:", "=", ";a=", "a", "0", "9", "/",
    " /", "\r\n ", "\r\n", "\r\na=x", "?", "&", "*", "'", ",a", '"a",', "\u00b2", "\u00e9",
    "a=b,", "sip:", "<sip:a@b>,", ";tag=", "\r\n\t", "\r\n a", " 0", " 96",
    "\r\na=rtpmap:96 PCMU/8000", "\r\na=fmtp:96 0-16", "\r\nm=audio 0 RTP/AVP 0",
]  # fmt: skip
"""Patterns repeated to fill an input: separators, quotes, escapes, brackets, digits."""

HEAD = (
    "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKx\r\n"
    "From: <sip:alice@127.0.0.1>;tag=1\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "Call-ID: x\r\n"
    "CSeq: 1 INVITE\r\n"
    "Max-Forwards: 70\r\n"
)
SDP = (
    "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 96\r\na=rtpmap:96 PCMA/8000\r\n"
)
OURS = SessionDescription.parse(SDP.encode())


def message(text: str) -> object:
    return parse_message(text.encode("utf-8", "surrogatepass"))


def framed(text: str) -> object:
    """The whole message through the stream framer, in 64-byte pieces as TLS may give them."""
    data = text.encode("utf-8", "surrogatepass")
    framer = StreamFramer(max_message=2 * SIZE)
    items = []
    for i in range(0, len(data), 64):
        framer.feed(data[i : i + 64])
        while (item := framer.next_item()) is not None:
            items.append(item)
    return items


def sdp(text: str) -> object:
    """Parse and negotiate, cut to the largest description the parser takes at all."""
    data = text.encode("utf-8", "surrogatepass")[:MAX_SDP_BYTES]
    return negotiate(OURS, SessionDescription.parse(data))


ENTRIES: dict[str, Callable[[str], object]] = {
    "request line": lambda f: message(HEAD.replace("sip:bob@", f"sip:{f}@", 1) + "\r\n"),
    "header name": lambda f: message(HEAD + f"X{f}: 1\r\n\r\n"),
    "header value": lambda f: message(HEAD + f"Subject: {f}\r\n\r\n"),
    "folded header": lambda f: message(HEAD + f"Subject: a\r\n {f}\r\n\r\n"),
    "Contact": lambda f: message(HEAD + f"Contact: {f}\r\n\r\n"),
    "Record-Route": lambda f: message(HEAD + f"Record-Route: <sip:p;lr>,{f}\r\n\r\n"),
    "Content-Length": lambda f: message(HEAD + f"Content-Length: {f}\r\n\r\n"),
    "framer": lambda f: framed(HEAD + f"Subject: {f}\r\nContent-Length: 0\r\n\r\n"),
    "framer head": lambda f: framed(HEAD.replace("\r\n", f"\r\n{f}", 1)),
    "Via": lambda f: Via.parse(f"SIP/2.0/TLS h{f};branch=x"),
    "Via sent-by": lambda f: Via.parse(f"SIP/2.0/TLS {f}"),
    "Via protocol": lambda f: Via.parse(f"SIP{f}/2.0/TLS h"),
    "Via transport": lambda f: Via.parse(f"SIP/2.0/{f} h"),
    "Via params": lambda f: Via.parse(f"SIP/2.0/TLS h;{f}"),
    "CSeq": lambda f: CSeq.parse(f"1{f} INVITE"),
    "display name": lambda f: NameAddr.parse(f'"{f}" <sip:a@b>'),
    "name-addr": lambda f: NameAddr.parse(f"{f}<sip:a@b>;tag={f}"),
    "addr-spec": lambda f: NameAddr.parse(f"sip:a@b;x={f}"),
    "URI user": lambda f: Uri.parse(f"sip:{f}@h"),
    "URI host": lambda f: Uri.parse(f"sip:a@{f}"),
    "URI port": lambda f: Uri.parse(f"sip:a@h:{f}"),
    "URI params": lambda f: Uri.parse(f"sip:a@h;{f}"),
    "URI headers": lambda f: Uri.parse(f"sip:a@h?{f}"),
    "list": split_list,
    "split": lambda f: split_outside(f, ";"),
    "params": lambda f: parse_params(split_outside(f, ";"), "test"),
    "quoted string": lambda f: unquote(f'"{f}"'),
    "challenge": lambda f: Challenge.parse(f'Digest realm="{f}", nonce={f}'),
    "challenge params": lambda f: Challenge.parse(f"Digest {f}"),
    "authorization": lambda f: parse_authorization(f"Digest {f}"),
    "SDP attribute": lambda f: sdp(SDP + f"a={f}\r\n"),
    "SDP lines": lambda f: sdp(SDP + f),
    "SDP formats": lambda f: sdp(SDP.replace("RTP/AVP 0 96", f"RTP/AVP 0 {f}")),
    "SDP rtpmap": lambda f: sdp(SDP + f"a=rtpmap:0 {f}\r\n"),
    "SDP origin": lambda f: sdp(SDP.replace("o=a 1", f"o={f} 1")),
    "SDP repeat": lambda f: sdp(SDP.replace("t=0 0\r\n", f"t=0 0\r\nr={f}\r\n")),
}


def cpu_time(entry: Callable[[str], object], text: str, enough: float = 0.0) -> float:
    """The least CPU time of up to three runs (fewer once one takes under `enough`), without
    the garbage collector: its passes depend on everything else alive in the process, not on
    the parser (and the phone freezes it after start)."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(3):
            start = time.thread_time()
            with contextlib.suppress(Exception):  # only the time matters here
                entry(text)
            best = min(best, time.thread_time() - start)
            if best < enough:
                break
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_parser_is_linear_on_adversarial_input(name: str) -> None:
    entry = ENTRIES[name]
    slow: list[str] = []
    for filler in FILLERS:
        big = cpu_time(entry, filler * (SIZE // len(filler)), enough=0.01)
        if big < 0.01:
            continue
        small = cpu_time(entry, filler * (SIZE // 4 // len(filler)))
        if big > BUDGET or big > GROWTH * small + 0.005:
            slow.append(f"{filler!r}: 16 KiB {small * 1000:.1f} ms, 64 KiB {big * 1000:.1f} ms")
    assert not slow, f"{name}: " + "; ".join(slow)


def test_no_regular_expression_in_the_sip_and_sdp_cores() -> None:
    """Linear by construction: the parsers scan with str methods, never with `re`."""
    root = Path(__file__).parent.parent / "pidphone"
    for package in ("sip", "sdp"):
        for path in sorted((root / package).glob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                assert "re" not in names, f"{path.name} imports re"


def test_via_with_64_kib_of_spaces_around_its_colon() -> None:
    """The case of the issue, exactly: it used to take seconds; it parses or fails at once."""
    for text in (
        "SIP/2.0/TLS host" + " " * SIZE + ": 5060",
        "SIP/2.0/TLS host" + " " * SIZE + "x",
    ):
        assert cpu_time(Via.parse, text) < 0.02
    assert Via.parse("SIP/2.0/TLS host" + " " * SIZE + ":  5060").port == 5060
