"""Commit: who initiates, with which algorithms (RFC 6189 §4.2, §4.4.1.1, §4.4.3.1, §5.4).

A KEM Commit (bzrtp 5.5's post-quantum key agreements, agreement.py) also carries the
initiator's public key: the responder encapsulates to it when it answers, so a side whose own
KEM Commit lost the contention encapsulates afresh to the winner's key.

A side that is not passive commits as soon as discovery allows (discovery.py), so both sides
usually commit and §4.2 picks the initiator: a DH Commit beats a Multistream one, then the
higher hvi (or nonce) wins. A Commit counts only once its H2 proves a Hello (§9.1), and our
own Commit stays retransmitted until the answer to the one that won proves that one's H1: a
forged Commit can neither win nor silence ours.
"""

from __future__ import annotations

import dataclasses

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.agreement import initiate, respond
from pidphone.zrtp.confirm import seal_confirm
from pidphone.zrtp.dhpart import hvi, make_dhpart
from pidphone.zrtp.exchange import Exchange, have
from pidphone.zrtp.hello import algorithm_lists, sealed
from pidphone.zrtp.keyagreement import BadPublicValueError
from pidphone.zrtp.messages import Commit, Confirm1, DHPart1, DHPart2, Hello
from pidphone.zrtp.multistream import multistream_keys
from pidphone.zrtp.state import DropError, FailError, ZrtpInput


def send_commit(ex: Exchange, peer: Hello, now: float) -> None:
    """Commit to the peer's Hello: DH mode with the suite both Hellos allow (our DHPart2 is
    made now, since hvi commits to it), or Multistream with the first stream's suite."""
    first = ex.first_stream
    if first is not None:
        first_suite = first.suite
        if first_suite is None:
            raise LocalProtocolError("multistream_from session lost its suite")
        suite = dataclasses.replace(first_suite, key_agreement=alg.MULTISTREAM)
        commitment, nonce, public_key = b"", ex.random(16), b""
    else:
        suite = alg.choose_suite(ex.ours.offered, algorithm_lists(peer))
        ex.suite = suite
        ex.agreement = initiate(suite, ex.random)
        ex.own_part_raw = make_dhpart(ex, DHPart2)
        commitment, nonce = hvi(ex.own_part_raw, ex.peer.raw, suite), b""
        public_key = ex.agreement.commit_value
    commit = Commit(
        ex.ours.h2,
        ex.zid,
        suite.hash,
        suite.cipher,
        suite.auth_tag,
        suite.key_agreement,
        suite.sas,
        hvi=commitment,
        nonce=nonce,
        public_key=public_key,
    )
    ex.suite = suite
    ex.commit, ex.commit_raw = sealed(commit, ex.ours.h1)
    ex.role = "initiator"
    ex.move(ZrtpInput.COMMIT)
    ex.deadline = None
    ex.send_retransmitted(ex.commit_raw, now)


def _proven_hello(ex: Exchange, commit: Commit, ssrc: int) -> tuple[Hello, bytes]:
    """The Hello the Commit's H2 proves (§9.1), or the Commit is dropped."""
    proven = ex.peer.prove(commit.h2, commit.zid, ssrc)
    if proven is None:
        ex.suspect = "a message whose hash chain fails"
        raise DropError("unauthenticated")
    return proven


def on_commit(ex: Exchange, commit: Commit, raw: bytes, ssrc: int, now: float) -> bool:
    """The peer's Commit before we sent ours: we are the responder."""
    hello, hello_raw = _proven_hello(ex, commit, ssrc)
    ex.bind(hello, hello_raw, ssrc)
    _answer(ex, commit, raw, now)
    return True


def on_commit_contention(ex: Exchange, commit: Commit, raw: bytes, ssrc: int, now: float) -> bool:
    """The peer's Commit while ours is out (§4.2)."""
    if raw == ex.commit_raw:
        raise DropError("unexpected")  # our own, reflected
    hello, hello_raw = _proven_hello(ex, commit, ssrc)
    if hello_raw == ex.peer.raw and not _peer_wins(have(ex.commit, "own Commit"), commit):
        if not ex.peer.bound:
            ex.bind(hello, hello_raw, ssrc)
        return True  # ours wins; the peer becomes responder
    # ours lost, or was made for a Hello that was not the peer's
    ex.bind(hello, hello_raw, ssrc)
    _answer(ex, commit, raw, now)
    return True


def on_commit_again(ex: Exchange, commit: Commit, raw: bytes, ssrc: int, now: float) -> bool:
    """A copy of the Commit we answered: our answer was lost, send it again (§6)."""
    if raw != ex.commit_raw:
        raise DropError("unexpected")
    ex.send(ex.answer_raw)
    return False


def _peer_wins(ours: Commit, theirs: Commit) -> bool:
    """§4.2 contention: a DH Commit beats a nonce Commit; else the higher hvi or nonce."""
    if bool(ours.hvi) != bool(theirs.hvi):
        return bool(theirs.hvi)
    mine, other = (ours.hvi, theirs.hvi) if ours.hvi else (ours.nonce, theirs.nonce)
    return int.from_bytes(other, "big") > int.from_bytes(mine, "big")


def _answer(ex: Exchange, commit: Commit, raw: bytes, now: float) -> None:
    """Answer a Commit whose H2 is proven: DHPart1, or Confirm1 in Multistream. Our own
    Commit, if any, keeps being retransmitted until the DHPart2 (or Confirm2) that follows
    proves this one's H1 (§4.2, §9.1)."""
    suite = alg.Suite(commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas)
    unsupported = alg.unsupported_kind(suite, ex.ours.offered)
    if unsupported is not None:
        raise FailError(alg.UNSUPPORTED_CODE[unsupported])
    multistream = suite.key_agreement == alg.MULTISTREAM
    if multistream != ex.multistream:
        raise FailError(0x53, "Multistream Commit without a secured first stream")
    ex.suite, ex.commit, ex.commit_raw = suite, commit, raw
    ex.role = "responder"
    ex.stop_hello()  # Table 9: a Commit stops Hello
    ex.deadline = now + ex.config.responder_timeout
    if multistream:
        _take_nonce(ex, commit)
        ex.keys = multistream_keys(ex)
        ex.confirm_raw = seal_confirm(ex, Confirm1)
        ex.move(ZrtpInput.MULTISTREAM_COMMIT)
        ex.send(ex.confirm_raw)
        return
    try:
        ex.agreement = respond(
            suite, ex.random, ex.agreement, commit.public_key, ex.encapsulate_mlkem
        )
    except BadPublicValueError:
        ex.agreement = None
        raise FailError(0x61) from None
    ex.own_part_raw = make_dhpart(ex, DHPart1)
    ex.move(ZrtpInput.DH_COMMIT)
    ex.send(ex.own_part_raw)


def _take_nonce(ex: Exchange, commit: Commit) -> None:
    """§4.4.3.1: the first stream's hash, and a nonce no stream of the call used before."""
    first = have(ex.first_stream, "first stream")
    if commit.hash != have(first.suite, "first stream suite").hash:
        raise FailError(0x51, "Multistream hash differs from the first stream's")
    if not first.take_multistream_nonce(commit.nonce):
        raise FailError(0x80)
