"""Discovery (RFC 6189 §4.1, §5.2-§5.3, §5.15-§5.16, §8.1): Hello, HelloACK, Ping, a=zrtp-hash.

Both sides send Hello. A side that is not passive commits as soon as it holds the peer's Hello
and a HelloACK for its own, as bzrtp does (so both usually commit: commit.py). Which Hello is
the peer's is hello.py's business: one that matches the a=zrtp-hash, or, without one, the
candidate a later message proves by its hash chain.
"""

from __future__ import annotations

from pidphone.zrtp.commit import send_commit
from pidphone.zrtp.exchange import Exchange
from pidphone.zrtp.hello import MISMATCH, VERSION, matches, sha256
from pidphone.zrtp.messages import Hello, HelloAck, Message, Ping, PingAck
from pidphone.zrtp.state import DropError, FailError, ZrtpState


def expect_hello_hash(ex: Exchange, value: str, now: float) -> None:
    """The peer's a=zrtp-hash from the SDP (see `ZrtpSession.set_peer_hello_hash`)."""
    _, _, hex_digest = value.strip().partition(" ")
    try:
        expected = bytes.fromhex(hex_digest.strip())
    except ValueError:
        expected = b""  # no Hello can match: the exchange fails closed when Hello gives up
    peer = ex.peer
    peer.expected = expected
    peer.known = True
    if ex.state in (ZrtpState.IDLE, ZrtpState.FAILED, ZrtpState.CLOSED):
        return
    if peer.bound or ex.state is not ZrtpState.DISCOVERY:
        if peer.hello is not None and not matches(peer.raw, expected):
            ex.fail_quietly(0x40, MISMATCH)
        elif not peer.bound and peer.hello is not None:
            ex.bind(peer.hello, peer.raw, peer.candidate_ssrc())
        return
    found = peer.sort(expected)
    if found is not None:
        ex.bind(*found)
        maybe_commit(ex, now)


def maybe_commit(ex: Exchange, now: float) -> None:
    """Discovery is over once the peer's Hello is held and our own acknowledged by its sender:
    Hello stops, and unless passive we commit (§4.1)."""
    peer = ex.peer.hello
    if not ex.peer.acked or peer is None:
        return
    if ex.retransmit is not None and ex.retransmit.is_hello:
        ex.retransmit = None
        # the peer heard us; if its Commit (or its Hello) never comes, give up in time
        ex.deadline = ex.started_at + ex.config.hello_extension
    if not ex.config.passive:
        send_commit(ex, peer, now)


def on_hello(ex: Exchange, hello: Hello, raw: bytes, ssrc: int, now: float) -> bool:
    taken = _take(ex, hello, raw, ssrc)
    ex.send(bytes(HelloAck()))
    maybe_commit(ex, now)
    return taken


def on_hello_after_commit(ex: Exchange, hello: Hello, raw: bytes, ssrc: int, now: float) -> bool:
    return _take(ex, hello, raw, ssrc)


def on_hello_again(ex: Exchange, hello: Hello, raw: bytes, ssrc: int, now: float) -> bool:
    """Past the Commit the peer's Hello is bound: a copy changes nothing, any other is a
    forger's."""
    if raw != ex.peer.raw:
        raise DropError("unauthenticated")
    return False


def _take(ex: Exchange, hello: Hello, raw: bytes, ssrc: int) -> bool:
    """A Hello in discovery: True if it is the peer's, proven by the a=zrtp-hash."""
    peer = ex.peer
    if peer.bound:
        if raw != peer.raw:
            raise DropError("unauthenticated")  # not the Hello we are bound to
        return False
    if raw in peer.candidates:
        return False
    expected = peer.expected
    if expected is not None and not matches(raw, expected):
        peer.mismatches += 1
        raise DropError("unauthenticated")
    first = ex.first_stream
    refusal = peer.refusal(hello, ex.zid, first.peer_zid if first else None)
    if refusal is not None:
        if expected is not None:
            ex.bind(hello, raw, ssrc)  # the peer's: its Error and ErrorACK count
            raise FailError(*refusal)
        # unproven: anyone could have sent it; remembered for the reason if Hello gives up
        peer.refused = refusal
        raise DropError("unexpected")
    peer.known = True
    if expected is not None:
        ex.bind(hello, raw, ssrc)
        return True
    peer.hold(hello, raw, ssrc)
    return False


def on_hello_ack(ex: Exchange, ack: HelloAck, raw: bytes, ssrc: int, now: float) -> bool:
    ex.peer.ack(ssrc)
    maybe_commit(ex, now)
    return False


def on_ping(ex: Exchange, ping: Ping, raw: bytes, ssrc: int, now: float) -> bool:
    """§5.16: answer with PingACK; a Ping also says the peer speaks ZRTP."""
    ex.peer.known = True
    ex.send(bytes(PingAck(VERSION, sha256(ex.zid)[:8], ping.endpoint_hash, ssrc)))
    return False


def ignore(ex: Exchange, message: Message, raw: bytes, ssrc: int, now: float) -> bool:
    """A late copy that changes nothing (a HelloACK after a Commit): taken, not dropped."""
    return False
