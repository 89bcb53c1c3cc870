"""How an exchange ends other than secure, and the requests this phone refuses
(RFC 6189 §4.7.2, §5.9-§5.13).

Error ends an exchange in progress (§5.9). Nothing authenticates it, so it counts only from the
peer's SSRC, and never after SECURE (state.py): a forged Error cannot end a secured call.
GoClear and SASrelay are keyed by the session's HMAC keys: one whose MAC fails is dropped
unanswered, one whose MAC checks is the peer's. This phone never goes clear (GoClear is refused
with Error 0x100) and trusts no PBX (a relayed SAS is never shown).
"""

from __future__ import annotations

import hmac

from pidphone.zrtp.confirm import peer_mac_ok
from pidphone.zrtp.events import GoClearRefused
from pidphone.zrtp.exchange import Exchange, have
from pidphone.zrtp.kdf import hash_name, mac
from pidphone.zrtp.messages import Error, ErrorAck, GoClear, RelayAck, SasRelay
from pidphone.zrtp.state import DropError, error_reason


def on_error(ex: Exchange, error: Error, raw: bytes, ssrc: int, now: float) -> bool:
    """§5.9: acknowledged, and the exchange fails. It counts only from the peer's SSRC: the
    bound one, or that of a Hello held while none is bound (then a forger of that Hello can
    also forge this)."""
    peer = ex.peer
    if not peer.bound and all(s != ssrc for _, s in peer.candidates.values()):
        raise DropError("foreign_ssrc")
    ex.send(bytes(ErrorAck()))
    reason = f"peer sent Error 0x{error.code:x}: {error_reason(error.code)}"
    ex.fail_quietly(error.code, reason, local=False)
    return False


def on_error_ack(ex: Exchange, ack: ErrorAck, raw: bytes, ssrc: int, now: float) -> bool:
    """The peer got our Error: its retransmission stops."""
    if not ex.peer.bound:
        raise DropError("unexpected")
    ex.retransmit = None
    return False


def on_goclear(ex: Exchange, goclear: GoClear, raw: bytes, ssrc: int, now: float) -> bool:
    """§4.7.2: this phone never goes clear. A GoClear whose clear_mac checks is the peer's
    and is answered with Error 0x100 (§5.9), and reported once: the peer means to stop SRTP.
    Any other is dropped unanswered."""
    keys, suite = ex.keys, ex.suite
    if keys is None or suite is None:
        raise DropError("after_secure")
    key = keys.mac_key_r if ex.role == "initiator" else keys.mac_key_i
    expected = mac(key, b"GoClear ", hash_name(suite.hash))[:8]
    if not hmac.compare_digest(expected, goclear.clear_mac):
        raise DropError("unauthenticated")
    ex.send(bytes(Error(0x100)))
    if not ex.goclear_refused:
        ex.goclear_refused = True
        ex.events.append(GoClearRefused())
    return True


def on_sasrelay(ex: Exchange, relay: SasRelay, raw: bytes, ssrc: int, now: float) -> bool:
    """§5.13: the MAC is checked first (keyed like the Confirm MAC); one that fails is
    dropped unanswered. A peer that declared itself a MiTM (M flag) gets Error 0x63, any
    other a RelayACK (§5.13: "A RelayACK is still sent, but no Error message")."""
    if ex.keys is None or ex.suite is None:
        raise DropError("after_secure")
    if not peer_mac_ok(ex, relay.mac, relay.encrypted):
        raise DropError("unauthenticated")
    peer = have(ex.peer.hello, "peer Hello")
    ex.send(bytes(Error(0x63)) if peer.mitm else bytes(RelayAck()))
    return True
