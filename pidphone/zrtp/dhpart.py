"""DHPart1 and DHPart2: the key agreement of DH mode (RFC 6189 §4.4.1, §5.5, §5.6).

The responder answers the Commit with DHPart1; the initiator checks that its H1 proves the
responder's Hello (§9.1), makes the shared secret and sends the DHPart2 its Commit's hvi
committed to. The responder checks DHPart2 against the Commit (H1 -> H2, MAC, hvi) and answers
with Confirm1. Each DHPart names our retained secrets (retained.py); the shared secret, the
matched one and total_hash make s0 (keys.py). A KEM key agreement (issue 16) runs the same
messages with other contents (agreement.py).
"""

from __future__ import annotations

import hmac

from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.confirm import seal_confirm
from pidphone.zrtp.exchange import Exchange, have
from pidphone.zrtp.hello import mac_ok, sealed, sha256
from pidphone.zrtp.kdf import digest, hash_name
from pidphone.zrtp.keyagreement import BadPublicValueError
from pidphone.zrtp.keys import derive, kdf_context, shared_secret_s0
from pidphone.zrtp.messages import Confirm1, DHPart1, DHPart2
from pidphone.zrtp.state import DropError, FailError, ZrtpInput


def make_dhpart(ex: Exchange, kind: type[DHPart1] | type[DHPart2]) -> bytes:
    """Our DHPart: H1, our retained secrets' IDs, two random IDs, our agreement's value."""
    agreement, suite = have(ex.agreement, "key pair"), have(ex.suite, "suite")
    label = "Initiator" if kind is DHPart2 else "Responder"
    peer_zid = have(ex.peer.hello, "peer Hello").zid
    rs1_id, rs2_id = ex.secrets.ids(peer_zid, label, hash_name(suite.hash))
    message = kind(
        h1=ex.ours.h1,
        rs1_id=rs1_id,
        rs2_id=rs2_id,
        auxsecret_id=ex.random(8),
        pbxsecret_id=ex.random(8),
        pv=agreement.value,
    )
    return sealed(message, ex.ours.h0)[1]


def hvi(dhpart2_raw: bytes, responder_hello_raw: bytes, suite: alg.Suite) -> bytes:
    """§4.4.1.1: the initiator's commitment, hash(DHPart2 || responder's Hello), 256 bits."""
    return digest(dhpart2_raw + responder_hello_raw, hash_name(suite.hash))[:32]


def on_dhpart1(ex: Exchange, part: DHPart1, raw: bytes, ssrc: int, now: float) -> bool:
    suite, peer = ex.suite, ex.peer.hello
    if suite is None or peer is None or suite.key_agreement == alg.MULTISTREAM:
        raise DropError("unexpected")
    if not ex.peer.chain_ok(part.h1):
        # a forger's, or the answer of a peer whose Hello we did not commit to
        ex.suspect = "a DHPart1 whose hash chain fails"
        raise DropError("unauthenticated")
    if not ex.peer.bound:
        ex.bind(peer, ex.peer.raw, ssrc)
    ex.peer_part, ex.peer_part_raw = part, raw
    _agree(ex, part)
    ex.move(ZrtpInput.DHPART1)
    ex.send_retransmitted(ex.own_part_raw, now)
    return True


def on_dhpart1_again(ex: Exchange, part: DHPart1, raw: bytes, ssrc: int, now: float) -> bool:
    """A copy: our DHPart2 is being retransmitted anyway."""
    if raw != ex.peer_part_raw:
        raise DropError("unexpected")
    return False


def on_dhpart2(ex: Exchange, part: DHPart2, raw: bytes, ssrc: int, now: float) -> bool:
    commit, suite = ex.commit, ex.suite
    if commit is None or suite is None:
        raise DropError("unexpected")
    h1 = part.h1
    if not hmac.compare_digest(sha256(h1), commit.h2) or not mac_ok(ex.commit_raw, h1):
        ex.suspect = "a DHPart2 whose hash chain fails"
        raise DropError("unauthenticated")
    ex.retransmit = None  # the Commit we answered is proven: ours, if any, is moot
    if not hmac.compare_digest(hvi(raw, ex.ours.raw, suite), commit.hvi):
        raise FailError(0x62)
    ex.peer_part, ex.peer_part_raw = part, raw
    _agree(ex, part)
    ex.confirm_raw = seal_confirm(ex, Confirm1)
    ex.move(ZrtpInput.DHPART2)
    ex.deadline = now + ex.config.responder_timeout
    ex.send(ex.confirm_raw)
    return True


def on_dhpart2_again(ex: Exchange, part: DHPart2, raw: bytes, ssrc: int, now: float) -> bool:
    """A copy: our Confirm1 was lost, send it again (§6)."""
    if raw != ex.peer_part_raw:
        raise DropError("unexpected")
    ex.send(ex.answer_raw)
    return False


def _agree(ex: Exchange, part: DHPart1 | DHPart2) -> None:
    """The shared secret, retained-secret matching (§4.3), total_hash, s0 (§4.4.1.4), keys."""
    agreement, suite = have(ex.agreement, "key pair"), have(ex.suite, "suite")
    try:
        secret = agreement.secret(part.pv)
    except BadPublicValueError:
        raise FailError(0x61) from None
    agreement.forget()
    ex.agreement = None
    peer_label = b"Responder" if isinstance(part, DHPart1) else b"Initiator"
    peer_zid = have(ex.peer.hello, "peer Hello").zid
    s1 = ex.secrets.match(peer_zid, part, peer_label, hash_name(suite.hash))
    dhpart1, dhpart2 = (
        (ex.peer_part_raw, ex.own_part_raw)
        if ex.role == "initiator"
        else (ex.own_part_raw, ex.peer_part_raw)
    )
    zid_i, zid_r = ex.zids()
    context = kdf_context(
        zid_i, zid_r, ex.responder_hello() + ex.commit_raw + dhpart1 + dhpart2, suite
    )
    ex.keys = derive(shared_secret_s0(secret, context, s1, suite), context, suite, dh_mode=True)
