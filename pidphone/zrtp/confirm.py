"""Confirm1, Confirm2, Conf2ACK and going secure (RFC 6189 §4.6, §4.6.1, §5.7, §5.8).

Each side's Confirm reveals its H0, its SAS-verified flag and its cache expiry, encrypted with
its ZRTP key (AES-CFB) and MACed with its HMAC key. Anyone can send a Confirm, so a bad MAC
drops it; a good MAC whose H0 does not hash to what the peer committed to (its DHPart in DH
mode, its Hello or Commit in Multistream) drops it too. The initiator is secure on Conf2ACK,
or on the responder's first authenticated SRTP packet, which stands for it (§4.6).
"""

from __future__ import annotations

import hmac

from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.events import CacheMismatch, Secured, SrtpKeysReady
from pidphone.zrtp.exchange import Exchange, have
from pidphone.zrtp.hello import mac_ok, sha256
from pidphone.zrtp.kdf import aes_cfb, hash_name, mac
from pidphone.zrtp.messages import (
    Conf2Ack,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    ZrtpParseError,
)
from pidphone.zrtp.multistream import multistream_keys
from pidphone.zrtp.sas import render_sas
from pidphone.zrtp.state import DropError, FailError, ZrtpInput, error_reason

NEVER_EXPIRES = 0xFFFFFFFF
"""The cache expiry our Confirm carries (§4.9: keep the secrets)."""


def seal_confirm(ex: Exchange, kind: type[Confirm1] | type[Confirm2]) -> bytes:
    """Our Confirm (§5.7): H0, V and the cache expiry, AES-CFB encrypted, then MACed."""
    keys, suite = have(ex.keys, "keys"), have(ex.suite, "suite")
    verified = ex.secrets.verified(have(ex.peer.hello, "peer Hello").zid)
    first = ex.first_stream
    if first is not None and first.secured is not None:
        verified = first.secured.verified
    plain = ConfirmPlaintext(h0=ex.ours.h0, sas_verified=verified, cache_expiry=NEVER_EXPIRES)
    initiator = ex.role == "initiator"
    key = keys.zrtp_key_i if initiator else keys.zrtp_key_r
    mac_key = keys.mac_key_i if initiator else keys.mac_key_r
    iv = ex.random(16)
    encrypted = aes_cfb(key, iv, bytes(plain), encrypt=True)
    tag = mac(mac_key, encrypted, hash_name(suite.hash))[:8]
    return bytes(kind(mac=tag, iv=iv, encrypted=encrypted))


def peer_mac_ok(ex: Exchange, tag: bytes, data: bytes) -> bool:
    """`tag` is the peer's MAC over `data` with its HMAC key (§4.6: Confirm, SASrelay)."""
    keys, suite = have(ex.keys, "keys"), have(ex.suite, "suite")
    mac_key = keys.mac_key_i if ex.role == "responder" else keys.mac_key_r
    expected = mac(mac_key, data, hash_name(suite.hash))[:8]
    return hmac.compare_digest(expected, tag)


def open_confirm(ex: Exchange, confirm: Confirm1 | Confirm2) -> ConfirmPlaintext:
    """Check the peer's Confirm MAC and decrypt it. A bad MAC drops the message (anyone can
    send one); a good MAC around a malformed plaintext is the peer's: Error 0x70."""
    keys = have(ex.keys, "keys")
    if not peer_mac_ok(ex, confirm.mac, confirm.encrypted):
        ex.suspect = error_reason(0x70)
        raise DropError("unauthenticated")
    key = keys.zrtp_key_i if ex.role == "responder" else keys.zrtp_key_r
    try:
        return ConfirmPlaintext.parse(aes_cfb(key, confirm.iv, confirm.encrypted, encrypt=False))
    except ZrtpParseError:
        raise FailError(0x70) from None


def _peer_part_chain_ok(ex: Exchange, h0: bytes) -> bool:
    """DH mode: the H0 a Confirm reveals hashes to the peer's DHPart H1 and keys its MAC."""
    part = have(ex.peer_part, "peer DHPart")
    return hmac.compare_digest(sha256(h0), part.h1) and mac_ok(ex.peer_part_raw, h0)


def on_confirm1(ex: Exchange, confirm: Confirm1, raw: bytes, ssrc: int, now: float) -> bool:
    plain = open_confirm(ex, confirm)
    if not _peer_part_chain_ok(ex, plain.h0):
        ex.suspect = "a Confirm1 whose hash chain fails"
        raise DropError("unauthenticated")
    return _take_confirm1(ex, plain, raw, ssrc, now)


def on_multistream_confirm1(
    ex: Exchange, confirm: Confirm1, raw: bytes, ssrc: int, now: float
) -> bool:
    """The Confirm1 that answers our Multistream Commit: its H0 proves the peer's Hello."""
    suite = ex.suite
    if suite is None or ex.peer.hello is None or suite.key_agreement != alg.MULTISTREAM:
        raise DropError("unexpected")
    if ex.keys is None:
        ex.keys = multistream_keys(ex)
    plain = open_confirm(ex, confirm)
    if not ex.peer.chain_ok(sha256(plain.h0)):
        ex.suspect = "a Confirm1 whose hash chain fails"
        raise DropError("unauthenticated")
    return _take_confirm1(ex, plain, raw, ssrc, now)


def _take_confirm1(
    ex: Exchange, plain: ConfirmPlaintext, raw: bytes, ssrc: int, now: float
) -> bool:
    peer = have(ex.peer.hello, "peer Hello")
    if not ex.peer.bound:
        ex.bind(peer, ex.peer.raw, ssrc)
    ex.peer_sas_verified, ex.peer_cache_expiry = plain.sas_verified, plain.cache_expiry
    ex.peer_confirm_raw = raw
    keys_ready(ex)
    ex.move(ZrtpInput.CONFIRM1)
    ex.send_retransmitted(seal_confirm(ex, Confirm2), now)
    return True


def on_confirm1_again(ex: Exchange, confirm: Confirm1, raw: bytes, ssrc: int, now: float) -> bool:
    """A copy: our Confirm2 is being retransmitted anyway."""
    if raw != ex.peer_confirm_raw:
        raise DropError("unexpected")
    return False


def on_confirm2(ex: Exchange, confirm: Confirm2, raw: bytes, ssrc: int, now: float) -> bool:
    commit = ex.commit
    if commit is None:
        raise DropError("unexpected")
    plain = open_confirm(ex, confirm)
    if ex.multistream:  # H0 -> H1, which the Commit's H2 and MAC commit to
        h1 = sha256(plain.h0)
        chain_ok = hmac.compare_digest(sha256(h1), commit.h2) and mac_ok(ex.commit_raw, h1)
    else:
        chain_ok = _peer_part_chain_ok(ex, plain.h0)
    if not chain_ok:
        ex.suspect = "a Confirm2 whose hash chain fails"
        raise DropError("unauthenticated")
    ex.retransmit = None  # the Commit we answered is proven (Multistream's first proof)
    ex.peer_sas_verified, ex.peer_cache_expiry = plain.sas_verified, plain.cache_expiry
    ex.peer_confirm_raw = raw
    ex.send(bytes(Conf2Ack()))
    keys_ready(ex)
    secure(ex, ZrtpInput.CONFIRM2)
    return True


def on_confirm2_again(ex: Exchange, confirm: Confirm2, raw: bytes, ssrc: int, now: float) -> bool:
    """After SECURE: a copy of the peer's Confirm2 means our Conf2ACK was lost (§6)."""
    if raw != ex.peer_confirm_raw or ex.role != "responder":
        raise DropError("after_secure")
    ex.send(bytes(Conf2Ack()))
    return False


def on_conf2ack(ex: Exchange, ack: Conf2Ack, raw: bytes, ssrc: int, now: float) -> bool:
    ex.retransmit = None
    secure(ex, ZrtpInput.CONF2ACK)
    return False


def keys_ready(ex: Exchange) -> None:
    """The SRTP keys each way (§4.5.3), as soon as this side may decrypt the peer's SRTP."""
    keys, suite = have(ex.keys, "keys"), have(ex.suite, "suite")
    if ex.role == "initiator":
        send = (keys.srtp_key_i, keys.srtp_salt_i)
        recv = (keys.srtp_key_r, keys.srtp_salt_r)
    else:
        send = (keys.srtp_key_r, keys.srtp_salt_r)
        recv = (keys.srtp_key_i, keys.srtp_salt_i)
    ex.events.append(SrtpKeysReady(suite.srtp_profile, *send, *recv))


def secure(ex: Exchange, event: ZrtpInput) -> None:
    """Conf2ACK (or SRTP) for the initiator, Confirm2 for the responder: §4.6.1."""
    keys, suite = have(ex.keys, "keys"), have(ex.suite, "suite")
    peer, role = have(ex.peer.hello, "peer Hello"), ex.role
    if role is None:
        raise FailError(0x20, f"{error_reason(0x20)}: no role")
    ex.move(event)
    ex.deadline = None
    first = ex.first_stream
    if first is not None:
        call = have(first.secured, "first stream's result")
        sas, verified, mismatch = call.sas, call.verified, call.cache_mismatch
        post_quantum = call.post_quantum
    else:
        sas = render_sas(keys.sashash, suite.sas)
        verified = ex.secrets.update(
            peer.zid,
            keys.new_rs1,
            peer_expiry=ex.peer_cache_expiry,
            peer_verified=ex.peer_sas_verified,
        )
        mismatch = ex.secrets.mismatch
        post_quantum = suite.key_agreement in alg.POST_QUANTUM
        ex.session_key = keys.zrtp_sess
        if mismatch:
            ex.events.append(CacheMismatch(peer.zid))
    ex.secured = Secured(
        sas=sas,
        sas_scheme=suite.sas.strip(),
        verified=verified,
        cipher=suite.cipher,
        auth_tag=suite.auth_tag.strip(),
        key_agreement=suite.key_agreement,
        hash=suite.hash,
        role=role,
        peer_zid=peer.zid,
        cache_mismatch=mismatch,
        post_quantum=post_quantum,
    )
    ex.events.append(ex.secured)
    ex.keys = keys.after_secure()
