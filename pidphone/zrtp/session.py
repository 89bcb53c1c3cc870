"""One ZRTP stream: the RFC 6189 state machine, sans I/O.

Driven by three inputs, like every core protocol object (ARCHITECTURE.md): API calls
(`start`, `set_peer_hello_hash`, `srtp_authenticated`, `confirm_sas`, `close`), received
packets (`receive_packet`) and the clock (`handle_timer` at `get_timer()`). It produces packets
(`packets_to_send`) and events (`next_event`). Both sides send Hello (§4.1); a side that is
not passive sends Commit as soon as it holds the peer's Hello and a HelloACK for its own, as
bzrtp does, so both usually commit and §4.2 picks the initiator (higher hvi). DH mode is
§4.4.1, Multistream §4.4.3, keys §4.5, Confirm §4.6, timers §6, errors §5.9. Bad input is
dropped and counted in `dropped`; it never raises.

Everything that moves the state lives in this module: `_HANDLERS` maps each message type to
the method that decides, from the current `_State`, what it means.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import secrets
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.cache import CacheEntry, ZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.events import (
    CacheMismatch,
    GoClearRefused,
    PeerHelloReceived,
    Secured,
    SecurityLost,
    SrtpKeysReady,
    ZrtpEvent,
    ZrtpFailed,
)
from pidphone.zrtp.kdf import aes_cfb, digest, hash_name, implicit_mac, kdf, mac
from pidphone.zrtp.keyagreement import PV_BYTES, BadPublicValueError, KeyPair, generate
from pidphone.zrtp.messages import (
    ClearAck,
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    ZrtpParseError,
    encode_packet,
    parse_message,
    split_packet,
)
from pidphone.zrtp.sas import render_sas

VERSION = "1.10"
NEVER_EXPIRES = 0xFFFFFFFF

ERROR_REASONS = {
    0x10: "Malformed packet",
    0x20: "Critical software error",
    0x30: "Unsupported ZRTP version",
    0x40: "Hello components mismatch",
    0x51: "Hash type not supported",
    0x52: "Cipher type not supported",
    0x53: "Public key exchange not supported",
    0x54: "SRTP auth tag not supported",
    0x55: "SAS rendering scheme not supported",
    0x56: "No shared secret available, DH mode required",
    0x61: "DH error: bad pvi or pvr",
    0x62: "DH error: hvi != hashed data",
    0x63: "Received relayed SAS from untrusted MiTM",
    0x70: "Auth error: bad Confirm MAC",
    0x80: "Nonce reuse",
    0x90: "Equal ZIDs in Hello",
    0x91: "SSRC collision",
    0xA0: "Service unavailable",
    0xB0: "Protocol timeout error",
    0x100: "GoClear message received, but not allowed",
}
NO_ZRTP = "Peer does not support ZRTP"


class _State(enum.Enum):
    IDLE = "idle"
    DISCOVERY = "discovery"
    COMMIT_SENT = "initiator sent Commit"
    DHPART1_SENT = "responder sent DHPart1"
    DHPART2_SENT = "initiator sent DHPart2"
    CONFIRM1_SENT = "responder sent Confirm1"
    CONFIRM2_SENT = "initiator sent Confirm2"
    SECURE = "secure"
    FAILED = "failed"
    CLOSED = "closed"


class _DropError(Exception):
    """The packet is ignored and counted in `dropped`."""


class _FailError(Exception):
    """The exchange fails with a §5.9 Error code, sent to the peer."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(reason or ERROR_REASONS.get(code, f"Error 0x{code:x}"))
        self.code = code
        self.reason = reason or ERROR_REASONS.get(code, f"Error 0x{code:x}")


@dataclass
class _Retransmit:
    """One message being retransmitted (§6); only Hello and the initiator's messages are."""

    message: bytes
    next_at: float
    interval: float
    cap: float
    remaining: int
    is_hello: bool = False


@dataclass
class _Keys:
    """Everything derived from s0 (§4.5.2, §4.5.3); dropped once no longer needed."""

    srtp_key_i: bytes = field(repr=False)
    srtp_salt_i: bytes = field(repr=False)
    srtp_key_r: bytes = field(repr=False)
    srtp_salt_r: bytes = field(repr=False)
    mac_key_i: bytes = field(repr=False)
    mac_key_r: bytes = field(repr=False)
    zrtp_key_i: bytes = field(repr=False)
    zrtp_key_r: bytes = field(repr=False)
    sashash: bytes = field(repr=False)
    zrtp_sess: bytes = field(repr=False)
    exported_key: bytes = field(repr=False)
    new_rs1: bytes | None = field(repr=False)


def _sha256(data: bytes) -> bytes:
    return digest(data, "sha256")


M = TypeVar("M", bound=Hello | Commit | DHPart1 | DHPart2)


def _sealed(message: M, key: bytes) -> tuple[M, bytes]:
    """The message with its trailing implicit MAC (§5.1.2.2) set, and its bytes."""
    unsealed = bytes(message)
    sealed = dataclasses.replace(message, mac=implicit_mac(key, unsealed[:-8]))
    return sealed, bytes(sealed)


def _mac_ok(raw: bytes, key: bytes) -> bool:
    return hmac.compare_digest(implicit_mac(key, raw[:-8]), raw[-8:])


def _lists(hello: Hello) -> dict[str, tuple[str, ...]]:
    return {
        "hashes": hello.hashes,
        "ciphers": hello.ciphers,
        "auth_tags": hello.auth_tags,
        "key_agreements": hello.key_agreements,
        "sas_types": hello.sas_types,
    }


def _suite_of(commit: Commit) -> alg.Suite:
    return alg.Suite(commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas)


class ZrtpSession:
    """The ZRTP exchange of one media stream (a second stream passes `multistream_from`)."""

    def __init__(
        self,
        *,
        cache: ZidCache,
        ssrc: int,
        config: ZrtpConfig = ZrtpConfig(),  # noqa: B008 - frozen, shared safely
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        multistream_from: ZrtpSession | None = None,
    ) -> None:
        self._cache = cache
        self._ssrc = ssrc & 0xFFFFFFFF
        self._config = config
        self._random = random_bytes
        self._parent = multistream_from
        self._zid = cache.our_zid
        self.dropped = 0
        """Packets ignored: bad CRC, malformed, unexpected now, failed MAC or hash chain."""
        self._state = _State.IDLE
        self._out: list[bytes] = []
        self._events: deque[ZrtpEvent] = deque()
        # random (§5), but in 1..0x8000: bzrtp drops a packet whose sequence number is not
        # above the last one it accepted (starting from 0), so we must never wrap mid-call
        self._sequence = (int.from_bytes(random_bytes(2), "big") & 0x7FFF) + 1
        self._h0 = random_bytes(32)
        self._h1 = _sha256(self._h0)
        self._h2 = _sha256(self._h1)
        self._h3 = _sha256(self._h2)
        offered = {
            "hashes": tuple(alg.wire(n) for n in config.hashes),
            "ciphers": tuple(alg.wire(n) for n in config.ciphers),
            "auth_tags": tuple(alg.wire(n) for n in config.auth_tags),
            "key_agreements": tuple(alg.wire(n) for n in config.key_agreements),
            "sas_types": tuple(alg.wire(n) for n in config.sas_types),
        }
        self._offered = offered
        _, self._hello_raw = _sealed(
            Hello(
                version=VERSION,
                client_id=config.client_id.ljust(16).encode("ascii"),
                h3=self._h3,
                zid=self._zid,
                passive=config.passive,
                hashes=offered["hashes"],
                ciphers=offered["ciphers"],
                auth_tags=offered["auth_tags"],
                key_agreements=offered["key_agreements"],
                sas_types=offered["sas_types"],
            ),
            self._h2,
        )
        self._started_at = 0.0
        self._retransmit: _Retransmit | None = None
        self._deadline: float | None = None
        self._peer_known = False
        self._expected_hello_hash: bytes | None = None
        self._peer_hello: Hello | None = None
        self._peer_hello_raw = b""
        self._hello_acked = False
        self._role: Literal["initiator", "responder"] | None = None
        self._suite: alg.Suite | None = None
        self._keypair: KeyPair | None = None
        self._commit: Commit | None = None
        self._commit_raw = b""
        self._own_dhpart_raw = b""
        self._peer_dhpart: DHPart1 | DHPart2 | None = None
        self._peer_dhpart_raw = b""
        self._keys: _Keys | None = None
        self._confirm_raw = b""
        self._peer_confirm_raw = b""
        self._peer_sas_verified = False
        self._peer_cache_expiry = NEVER_EXPIRES
        self._entry_before: CacheEntry | None = None
        self._matched_secret = False
        self._cache_mismatch = False
        self._pending_rs1: bytes | None = None
        self._secured: Secured | None = None
        self._zrtp_sess: bytes | None = None
        self._used_nonces: set[bytes] = set()
        self._goclear_refused = False

    # ---- public surface ----------------------------------------------------------------

    @property
    def hello_hash(self) -> str:
        """Our `a=zrtp-hash` value (§8.1): version, space, hex SHA-256 of our Hello."""
        return f"{VERSION} {_sha256(self._hello_raw).hex()}"

    @property
    def our_zid(self) -> bytes:
        return self._zid

    @property
    def peer_zid(self) -> bytes | None:
        return self._peer_hello.zid if self._peer_hello else None

    @property
    def state(self) -> str:
        """A short description of where the exchange stands, for logs."""
        return self._state.value

    @property
    def secured(self) -> Secured | None:
        """The Secured event once emitted, else None."""
        return self._secured

    @property
    def exported_key(self) -> bytes | None:
        """ExportedKey (§4.5.2) of a secured session, for applications that need one."""
        return self._keys.exported_key if self._keys and self._secured else None

    def start(self, now: float) -> None:
        """Begin sending Hello (§4.1)."""
        if self._state is not _State.IDLE:
            raise LocalProtocolError(f"start() in state {self._state.value}")
        if self._parent is not None and self._parent._zrtp_sess is None:
            raise LocalProtocolError("multistream_from session is not secured yet")
        self._started_at = now
        self._state = _State.DISCOVERY
        self._send(self._hello_raw)
        self._retransmit = _Retransmit(
            self._hello_raw,
            now + self._config.hello_interval,
            self._config.hello_interval,
            self._config.hello_interval_cap,
            self._config.hello_retransmissions,
            is_hello=True,
        )

    def set_peer_hello_hash(self, value: str) -> None:
        """The peer's `a=zrtp-hash` from the SDP: its Hello must hash to it (§8.1).

        The value comes from the peer, so a malformed one is not an exception: no Hello can
        match it, and the exchange fails closed when the peer's Hello arrives.
        """
        _, _, hex_digest = value.strip().partition(" ")
        try:
            expected = bytes.fromhex(hex_digest.strip())
        except ValueError:
            expected = b""
        self._expected_hello_hash = expected
        self._peer_known = True
        if self._peer_hello is not None and not hmac.compare_digest(
            _sha256(self._peer_hello_raw), expected
        ):
            self._fail_quietly(0x40, "peer Hello does not match its a=zrtp-hash")

    def receive_packet(self, data: bytes, now: float) -> None:
        """Feed one ZRTP datagram; malformed or unexpected packets are dropped and counted."""
        if self._state in (_State.IDLE, _State.CLOSED):
            self.dropped += 1
            return
        try:
            _, ssrc, raw = split_packet(data)
            message = parse_message(raw)
            self._HANDLERS[type(message)](self, message, raw, ssrc, now)
        except (ZrtpParseError, _DropError):
            self.dropped += 1
        except _FailError as failure:
            self._fail(failure.code, failure.reason, now)

    def packets_to_send(self) -> list[bytes]:
        """Datagrams to send now, in order."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> ZrtpEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None."""
        deadlines = [t for t in (self._deadline,) if t is not None]
        if self._retransmit is not None:
            deadlines.append(self._retransmit.next_at)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due (§6) and enforce the timeouts."""
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            if self._state in (_State.DHPART1_SENT, _State.CONFIRM1_SENT):
                self._fail(0xB0, ERROR_REASONS[0xB0], now)
            elif self._state is _State.DISCOVERY:
                self._fail_quietly(0xB0, "Protocol timeout: the peer never sent Commit")
        retransmit = self._retransmit
        if retransmit is None or now < retransmit.next_at:
            return
        if retransmit.remaining <= 0 and not self._hello_extended(retransmit, now):
            self._retransmit = None
            self._give_up(retransmit)
            return
        self._send(retransmit.message)
        retransmit.remaining -= 1
        retransmit.interval = min(retransmit.interval * 2, retransmit.cap)
        retransmit.next_at = now + retransmit.interval

    def srtp_authenticated(self, now: float) -> None:
        """A valid SRTP packet from the peer arrived: for the initiator it stands for Conf2ACK."""
        if self._state is _State.CONFIRM2_SENT:
            self._retransmit = None
            self._secure(now)

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS (True) or found it different (False): §7.1.

        True sets V and, after a cache mismatch, makes the postponed rs1 update (§4.6.1.1).
        False clears V and erases the retained secrets kept for this peer (§7.1: a SAS that
        differs means a man in the middle who, on a later call, must also have known the
        cached secret, so neither this call's nor an older one is worth keeping); the peer's
        name stays. The next call then starts as with a stranger on this side.
        """
        if self._parent is not None:
            self._parent.confirm_sas(verified)
            return
        if self._state is not _State.SECURE or self._peer_hello is None:
            raise LocalProtocolError(f"confirm_sas() in state {self._state.value}")
        peer_zid = self._peer_hello.zid
        entry = self._cache.load(peer_zid) or CacheEntry()
        if verified:
            if self._pending_rs1 is not None:
                entry = dataclasses.replace(entry, rs1=self._pending_rs1, rs2=entry.rs1)
            entry = dataclasses.replace(entry, verified=True)
        else:
            entry = dataclasses.replace(entry, rs1=None, rs2=None, verified=False)
        self._pending_rs1 = None
        self._cache.store(peer_zid, entry)

    def close(self) -> None:
        """Stop and forget every secret."""
        self._state = _State.CLOSED
        self._retransmit = None
        self._deadline = None
        self._wipe()
        self._keys = None
        self._zrtp_sess = None
        self._pending_rs1 = None
        self._h0 = self._h1 = b""

    # ---- sending and timers ------------------------------------------------------------

    def _send(self, message: bytes) -> None:
        self._out.append(encode_packet(self._sequence, self._ssrc, message))
        self._sequence = (self._sequence + 1) & 0xFFFF

    def _send_retransmitted(self, message: bytes, now: float) -> None:
        self._send(message)
        self._retransmit = _Retransmit(
            message,
            now + self._config.retransmit_interval,
            self._config.retransmit_interval,
            self._config.retransmit_interval_cap,
            self._config.retransmissions,
        )

    def _extend_hello(self) -> None:
        self._peer_known = True

    def _hello_extended(self, retransmit: _Retransmit, now: float) -> bool:
        return (
            retransmit.is_hello
            and self._peer_known
            and now < self._started_at + self._config.hello_extension
        )

    def _give_up(self, retransmit: _Retransmit) -> None:
        if retransmit.is_hello:
            if self._peer_hello is None:
                self._fail_quietly(0xB0, NO_ZRTP)
            else:
                self._fail_quietly(0xB0, "Protocol timeout: the peer never answered Hello")
        elif self._state is not _State.FAILED:
            self._fail_quietly(0xB0, "Protocol timeout: no answer to retransmissions")

    # ---- failure -----------------------------------------------------------------------

    def _fail(self, code: int, reason: str, now: float) -> None:
        """Fail, telling the peer with Error (retransmitted until ErrorACK)."""
        if self._state in (_State.FAILED, _State.CLOSED):
            return
        self._fail_quietly(code, reason)
        self._send_retransmitted(bytes(Error(code)), now)

    def _fail_quietly(self, code: int, reason: str, *, local: bool = True) -> None:
        if self._state in (_State.FAILED, _State.CLOSED):
            return
        was_secure = self._state is _State.SECURE
        self._state = _State.FAILED
        self._retransmit = None
        self._deadline = None
        self._wipe()
        if was_secure:
            self._events.append(SecurityLost(reason))
        else:
            self._events.append(ZrtpFailed(code, reason, local))

    def _wipe(self) -> None:
        self._keypair = None
        self._pending_rs1 = None

    # ---- message handlers --------------------------------------------------------------

    def _on_hello(self, hello: Hello, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.FAILED:
            raise _DropError
        if self._peer_hello is None:
            if not hello.version.startswith("1.1"):
                raise _FailError(0x30)
            if hello.zid == self._zid:
                raise _FailError(0x90)
            expected = self._expected_hello_hash
            if expected is not None and not hmac.compare_digest(_sha256(raw), expected):
                self._fail_quietly(0x40, "peer Hello does not match its a=zrtp-hash")
                return
            parent_peer = self._parent.peer_zid if self._parent else None
            if parent_peer is not None and hello.zid != parent_peer:
                raise _FailError(0x40, "multistream Hello from another ZID than the first stream")
            self._peer_hello, self._peer_hello_raw = hello, raw
            self._extend_hello()
            self._events.append(PeerHelloReceived(hello.zid, hello.client_id, hello.version))
        elif raw != self._peer_hello_raw:
            raise _DropError
        if self._state is _State.DISCOVERY:
            self._send(bytes(HelloAck()))
            self._maybe_commit(now)

    def _on_hello_ack(self, _: HelloAck, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is not _State.DISCOVERY:
            return
        self._hello_acked = True
        if self._retransmit is not None and self._retransmit.is_hello:
            self._retransmit = None
            # the peer heard us; if its Commit (or its Hello) never comes, give up in time
            self._deadline = self._started_at + self._config.hello_extension
        self._maybe_commit(now)

    def _maybe_commit(self, now: float) -> None:
        peer = self._peer_hello
        if not self._hello_acked or peer is None or self._config.passive:
            return
        if self._parent is not None:
            parent_suite = self._parent._suite
            assert parent_suite is not None  # start() checked the parent is secured
            suite = dataclasses.replace(parent_suite, key_agreement=alg.MULTISTREAM)
            hvi, nonce = b"", self._random(16)
        else:
            suite = alg.choose_suite(self._offered, _lists(peer))
            self._suite = suite
            self._keypair = self._new_keypair(suite)
            self._own_dhpart_raw = self._dhpart(DHPart2, "Initiator")
            hvi = digest(self._own_dhpart_raw + self._peer_hello_raw, hash_name(suite.hash))[:32]
            nonce = b""
        commit = Commit(
            self._h2,
            self._zid,
            suite.hash,
            suite.cipher,
            suite.auth_tag,
            suite.key_agreement,
            suite.sas,
            hvi=hvi,
            nonce=nonce,
        )
        self._suite = suite
        self._commit, self._commit_raw = _sealed(commit, self._h1)
        self._role = "initiator"
        self._state = _State.COMMIT_SENT
        self._deadline = None
        self._send_retransmitted(self._commit_raw, now)

    def _new_keypair(self, suite: alg.Suite) -> KeyPair:
        secret_bits = 16 * alg.CIPHER_KEY_BYTES[suite.cipher]
        return generate(suite.key_agreement, secret_bits, self._random)

    def _dhpart(self, kind: type[DHPart1] | type[DHPart2], label: str) -> bytes:
        assert self._keypair is not None and self._peer_hello is not None and self._suite
        entry = self._load_entry()
        hname = hash_name(self._suite.hash)

        def secret_id(secret: bytes | None) -> bytes:
            if secret is None:
                return self._random(8)
            return mac(secret, label.encode(), hname)[:8]

        message = kind(
            h1=self._h1,
            rs1_id=secret_id(entry.rs1 if entry else None),
            rs2_id=secret_id(entry.rs2 if entry else None),
            auxsecret_id=self._random(8),
            pbxsecret_id=self._random(8),
            pv=self._keypair.public,
        )
        return _sealed(message, self._h0)[1]

    def _load_entry(self) -> CacheEntry | None:
        assert self._peer_hello is not None
        return self._cache.load(self._peer_hello.zid)

    def _on_commit(self, commit: Commit, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.DISCOVERY:
            self._become_responder(commit, raw, now)
        elif self._state is _State.COMMIT_SENT:
            if raw == self._commit_raw or not self._peer_wins(commit):
                return
            self._retransmit = None
            self._become_responder(commit, raw, now)
        elif self._state is _State.DHPART1_SENT and raw == self._commit_raw:
            self._send(self._own_dhpart_raw)
        elif self._state is _State.CONFIRM1_SENT and raw == self._commit_raw:
            self._send(self._confirm_raw)
        else:
            raise _DropError

    def _peer_wins(self, theirs: Commit) -> bool:
        """§4.2 contention: a DH Commit beats a nonce Commit; else the higher hvi or nonce."""
        ours = self._commit
        assert ours is not None
        if bool(ours.hvi) != bool(theirs.hvi):
            return bool(theirs.hvi)
        mine, other = (ours.hvi, theirs.hvi) if ours.hvi else (ours.nonce, theirs.nonce)
        return int.from_bytes(other, "big") > int.from_bytes(mine, "big")

    def _become_responder(self, commit: Commit, raw: bytes, now: float) -> None:
        peer = self._peer_hello
        if peer is None or commit.zid != peer.zid:
            raise _DropError
        if not hmac.compare_digest(_sha256(commit.h2), peer.h3):
            raise _DropError
        if not _mac_ok(self._peer_hello_raw, commit.h2):
            raise _DropError
        suite = _suite_of(commit)
        unsupported = alg.unsupported_kind(suite, self._offered)
        if unsupported is not None:
            raise _FailError(alg.UNSUPPORTED_CODE[unsupported])
        is_mult = suite.key_agreement == alg.MULTISTREAM
        if is_mult != (self._parent is not None):
            raise _FailError(0x53, "Multistream Commit without a secured first stream")
        own_suite = self._suite
        self._suite, self._commit, self._commit_raw = suite, commit, raw
        self._role = "responder"
        self._retransmit = None
        self._deadline = now + self._config.responder_timeout
        if is_mult:
            self._check_nonce(commit)
            self._derive_multistream()
            self._confirm_raw = self._confirm(Confirm1)
            self._state = _State.CONFIRM1_SENT
            self._send(self._confirm_raw)
            return
        reuse = (
            self._keypair is not None
            and own_suite is not None
            and own_suite.key_agreement == suite.key_agreement
            and own_suite.cipher == suite.cipher
        )
        if not reuse:
            self._keypair = self._new_keypair(suite)
        self._own_dhpart_raw = self._dhpart(DHPart1, "Responder")
        self._state = _State.DHPART1_SENT
        self._send(self._own_dhpart_raw)

    def _check_nonce(self, commit: Commit) -> None:
        assert self._parent is not None and self._parent._suite is not None
        if commit.hash != self._parent._suite.hash:
            raise _FailError(0x51, "Multistream hash differs from the first stream's")
        used = self._parent._used_nonces
        if commit.nonce in used:
            raise _FailError(0x80)
        used.add(commit.nonce)

    def _on_dhpart1(self, part: DHPart1, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.DHPART2_SENT and raw == self._peer_dhpart_raw:
            return
        suite, peer = self._suite, self._peer_hello
        if self._state is not _State.COMMIT_SENT or suite is None or peer is None:
            raise _DropError
        if suite.key_agreement == alg.MULTISTREAM:
            raise _DropError
        h2 = _sha256(part.h1)
        if not hmac.compare_digest(_sha256(h2), peer.h3) or not _mac_ok(self._peer_hello_raw, h2):
            raise _DropError
        self._peer_dhpart, self._peer_dhpart_raw = part, raw
        self._agree(
            part, "Responder", self._peer_hello_raw + self._commit_raw + raw + self._own_dhpart_raw
        )
        self._state = _State.DHPART2_SENT
        self._send_retransmitted(self._own_dhpart_raw, now)

    def _on_dhpart2(self, part: DHPart2, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.CONFIRM1_SENT and raw == self._peer_dhpart_raw:
            self._send(self._confirm_raw)
            return
        commit, suite = self._commit, self._suite
        if self._state is not _State.DHPART1_SENT or commit is None or suite is None:
            raise _DropError
        h1 = part.h1
        if not hmac.compare_digest(_sha256(h1), commit.h2) or not _mac_ok(self._commit_raw, h1):
            raise _DropError
        hvi = digest(raw + self._hello_raw, hash_name(suite.hash))[:32]
        if not hmac.compare_digest(hvi, commit.hvi):
            raise _FailError(0x62)
        self._peer_dhpart, self._peer_dhpart_raw = part, raw
        self._agree(
            part, "Initiator", self._hello_raw + self._commit_raw + self._own_dhpart_raw + raw
        )
        self._confirm_raw = self._confirm(Confirm1)
        self._state = _State.CONFIRM1_SENT
        self._deadline = now + self._config.responder_timeout
        self._send(self._confirm_raw)

    def _agree(self, part: DHPart1 | DHPart2, peer_label: str, transcript: bytes) -> None:
        """DHResult, retained-secret matching (§4.3), total_hash, s0 (§4.4.1.4) and keys."""
        assert self._keypair is not None and self._suite is not None and self._peer_hello
        if len(part.pv) != PV_BYTES[self._suite.key_agreement]:
            raise _FailError(0x61)
        try:
            dh_result = self._keypair.shared(part.pv)
        except BadPublicValueError:
            raise _FailError(0x61) from None
        self._keypair = None
        hname = hash_name(self._suite.hash)
        s1 = self._match_secret(part, peer_label.encode(), hname)
        total_hash = digest(transcript, hname)
        zid_i, zid_r = self._zids()
        context = zid_i + zid_r + total_hash
        s1_field = struct.pack("!I", len(s1)) + s1 if s1 else b"\x00\x00\x00\x00"
        s0 = digest(
            b"\x00\x00\x00\x01"
            + dh_result
            + b"ZRTP-HMAC-KDF"
            + context
            + s1_field
            + b"\x00\x00\x00\x00" * 2,
            hname,
        )
        self._keys = self._derive(s0, context, dh_mode=True)

    def _match_secret(self, part: DHPart1 | DHPart2, label: bytes, hname: str) -> bytes:
        """s1: which of our rs1/rs2 matches the peer's rs1/rs2 (§4.3.1), or b"" if none."""
        entry = self._load_entry()
        self._entry_before = entry
        ours = [s for s in ((entry.rs1, entry.rs2) if entry else ()) if s is not None]
        for theirs in (part.rs1_id, part.rs2_id):
            for secret in ours:
                if hmac.compare_digest(mac(secret, label, hname)[:8], theirs):
                    self._matched_secret = True
                    return secret
        self._cache_mismatch = bool(entry and entry.rs1 is not None)
        return b""

    def _zids(self) -> tuple[bytes, bytes]:
        assert self._peer_hello is not None
        if self._role == "initiator":
            return self._zid, self._peer_hello.zid
        return self._peer_hello.zid, self._zid

    def _derive_multistream(self) -> None:
        """§4.4.3: s0 from the first stream's ZRTPSess, total_hash over Hello and Commit."""
        assert self._parent is not None and self._suite is not None
        sess = self._parent._zrtp_sess
        if sess is None:
            raise _FailError(0x20, "the first stream lost its session key")
        hname = hash_name(self._suite.hash)
        responder_hello = self._hello_raw if self._role == "responder" else self._peer_hello_raw
        total_hash = digest(responder_hello + self._commit_raw, hname)
        zid_i, zid_r = self._zids()
        context = zid_i + zid_r + total_hash
        s0 = kdf(sess, b"ZRTP MSK", context, 8 * len(sess), hname)
        self._keys = self._derive(s0, context, dh_mode=False)

    def _derive(self, s0: bytes, context: bytes, *, dh_mode: bool) -> _Keys:
        assert self._suite is not None
        hname = hash_name(self._suite.hash)
        hash_bits = 8 * len(s0)
        key_bits = 8 * alg.CIPHER_KEY_BYTES[self._suite.cipher]

        def derive(label: str, bits: int) -> bytes:
            return kdf(s0, label.encode(), context, bits, hname)

        return _Keys(
            srtp_key_i=derive("Initiator SRTP master key", key_bits),
            srtp_salt_i=derive("Initiator SRTP master salt", 112),
            srtp_key_r=derive("Responder SRTP master key", key_bits),
            srtp_salt_r=derive("Responder SRTP master salt", 112),
            mac_key_i=derive("Initiator HMAC key", hash_bits),
            mac_key_r=derive("Responder HMAC key", hash_bits),
            zrtp_key_i=derive("Initiator ZRTP key", key_bits),
            zrtp_key_r=derive("Responder ZRTP key", key_bits),
            sashash=derive("SAS", 256),
            zrtp_sess=derive("ZRTP Session Key", hash_bits),
            exported_key=derive("Exported key", hash_bits),
            new_rs1=derive("retained secret", 256) if dh_mode else None,
        )

    def _confirm(self, kind: type[Confirm1] | type[Confirm2]) -> bytes:
        """Our Confirm (§5.7): H0, V and the cache expiry, AES-CFB encrypted, then MACed."""
        assert self._keys is not None and self._suite is not None
        entry = self._load_entry()
        verified = bool(entry and entry.verified and not self._cache_mismatch)
        if self._parent is not None and self._parent._secured is not None:
            verified = self._parent._secured.verified
        plain = ConfirmPlaintext(h0=self._h0, sas_verified=verified, cache_expiry=NEVER_EXPIRES)
        initiator = self._role == "initiator"
        key = self._keys.zrtp_key_i if initiator else self._keys.zrtp_key_r
        mac_key = self._keys.mac_key_i if initiator else self._keys.mac_key_r
        iv = self._random(16)
        encrypted = aes_cfb(key, iv, bytes(plain), encrypt=True)
        tag = mac(mac_key, encrypted, hash_name(self._suite.hash))[:8]
        return bytes(kind(mac=tag, iv=iv, encrypted=encrypted))

    def _open_confirm(self, confirm: Confirm1 | Confirm2) -> ConfirmPlaintext:
        """Check the peer's Confirm MAC and decrypt it."""
        assert self._keys is not None and self._suite is not None
        from_initiator = self._role == "responder"
        key = self._keys.zrtp_key_i if from_initiator else self._keys.zrtp_key_r
        mac_key = self._keys.mac_key_i if from_initiator else self._keys.mac_key_r
        expected = mac(mac_key, confirm.encrypted, hash_name(self._suite.hash))[:8]
        if not hmac.compare_digest(expected, confirm.mac):
            raise _FailError(0x70)
        try:
            plain = ConfirmPlaintext.parse(
                aes_cfb(key, confirm.iv, confirm.encrypted, encrypt=False)
            )
        except ZrtpParseError:
            raise _FailError(0x70) from None
        self._peer_sas_verified = plain.sas_verified
        self._peer_cache_expiry = plain.cache_expiry
        return plain

    def _on_confirm1(self, confirm: Confirm1, raw: bytes, ssrc: int, now: float) -> None:
        if self._state in (_State.CONFIRM2_SENT, _State.SECURE) and raw == self._peer_confirm_raw:
            return
        suite, peer = self._suite, self._peer_hello
        if suite is None or peer is None or self._role != "initiator":
            raise _DropError
        is_mult = suite.key_agreement == alg.MULTISTREAM
        if is_mult and self._state is _State.COMMIT_SENT:
            self._derive_multistream()
        elif self._state is not _State.DHPART2_SENT:
            raise _DropError
        plain = self._open_confirm(confirm)
        h1 = _sha256(plain.h0)
        if is_mult:
            h2 = _sha256(h1)
            chain_ok = hmac.compare_digest(_sha256(h2), peer.h3)
            chain_ok = chain_ok and _mac_ok(self._peer_hello_raw, h2)
        else:
            chain_ok = self._peer_dhpart_chain_ok(plain.h0, h1)
        if not chain_ok:
            raise _DropError
        self._peer_confirm_raw = raw
        self._keys_ready()
        self._state = _State.CONFIRM2_SENT
        self._send_retransmitted(self._confirm(Confirm2), now)

    def _on_confirm2(self, confirm: Confirm2, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.SECURE and raw == self._peer_confirm_raw:
            self._send(bytes(Conf2Ack()))
            return
        if self._state is not _State.CONFIRM1_SENT or self._commit is None:
            raise _DropError
        plain = self._open_confirm(confirm)
        h1 = _sha256(plain.h0)
        if self._parent is not None:
            chain_ok = hmac.compare_digest(_sha256(h1), self._commit.h2)
            chain_ok = chain_ok and _mac_ok(self._commit_raw, h1)
        else:
            chain_ok = self._peer_dhpart_chain_ok(plain.h0, h1)
        if not chain_ok:
            raise _DropError
        self._peer_confirm_raw = raw
        self._send(bytes(Conf2Ack()))
        self._keys_ready()
        self._secure(now)

    def _peer_dhpart_chain_ok(self, h0: bytes, h1: bytes) -> bool:
        """DH mode: the H0 a Confirm reveals hashes to the peer's DHPart H1 and keys its MAC."""
        assert self._peer_dhpart is not None
        return hmac.compare_digest(h1, self._peer_dhpart.h1) and _mac_ok(self._peer_dhpart_raw, h0)

    def _on_conf2ack(self, _: Conf2Ack, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is not _State.CONFIRM2_SENT:
            return
        self._retransmit = None
        self._secure(now)

    def _keys_ready(self) -> None:
        assert self._keys is not None and self._suite is not None
        keys = self._keys
        if self._role == "initiator":
            send = (keys.srtp_key_i, keys.srtp_salt_i)
            recv = (keys.srtp_key_r, keys.srtp_salt_r)
        else:
            send = (keys.srtp_key_r, keys.srtp_salt_r)
            recv = (keys.srtp_key_i, keys.srtp_salt_i)
        self._events.append(SrtpKeysReady(self._suite.srtp_profile, *send, *recv))

    def _secure(self, now: float) -> None:
        """Conf2ACK (or SRTP) for the initiator, Confirm2 for the responder: §4.6.1."""
        assert self._keys is not None and self._suite is not None and self._peer_hello
        assert self._role is not None
        self._state = _State.SECURE
        self._deadline = None
        if self._parent is not None:
            parent = self._parent._secured
            assert parent is not None
            sas, verified = parent.sas, parent.verified
            mismatch = parent.cache_mismatch
        else:
            sas = render_sas(self._keys.sashash, self._suite.sas)
            verified = self._update_cache()
            mismatch = self._cache_mismatch
            self._zrtp_sess = self._keys.zrtp_sess
        if mismatch and self._parent is None:
            self._events.append(CacheMismatch(self._peer_hello.zid))
        self._secured = Secured(
            sas=sas,
            sas_scheme=self._suite.sas.strip(),
            verified=verified,
            cipher=self._suite.cipher,
            auth_tag=self._suite.auth_tag,
            key_agreement=self._suite.key_agreement,
            hash=self._suite.hash,
            role=self._role,
            peer_zid=self._peer_hello.zid,
            cache_mismatch=mismatch,
        )
        self._events.append(self._secured)
        # §4.6.1/§4.5: what only the exchange needed goes now; the MAC keys stay for GoClear,
        # ZRTPSess for Multistream, ExportedKey for its users
        self._keys = dataclasses.replace(
            self._keys,
            srtp_key_i=b"",
            srtp_salt_i=b"",
            srtp_key_r=b"",
            srtp_salt_r=b"",
            zrtp_key_i=b"",
            zrtp_key_r=b"",
            sashash=b"",
            new_rs1=None,
        )

    def _update_cache(self) -> bool:
        """§4.6.1: rs2 <- rs1, rs1 <- new; postponed on a mismatch. Returns SAS verified."""
        assert self._keys is not None and self._peer_hello is not None
        peer_zid = self._peer_hello.zid
        before = self._entry_before
        new_rs1 = self._keys.new_rs1
        if self._cache_mismatch:
            self._pending_rs1 = new_rs1
            assert before is not None
            self._cache.store(peer_zid, dataclasses.replace(before, verified=False))
            return False
        verified = bool(before and before.verified and self._matched_secret)
        if self._peer_cache_expiry == 0 or new_rs1 is None:
            return verified and self._peer_sas_verified
        base = before or CacheEntry()
        self._cache.store(
            peer_zid,
            dataclasses.replace(base, rs1=new_rs1, rs2=base.rs1, verified=verified),
        )
        return verified and self._peer_sas_verified

    def _on_error(self, error: Error, raw: bytes, ssrc: int, now: float) -> None:
        self._send(bytes(ErrorAck()))
        reason = ERROR_REASONS.get(error.code, f"Error 0x{error.code:x}")
        self._fail_quietly(error.code, f"peer sent Error 0x{error.code:x}: {reason}", local=False)

    def _on_error_ack(self, _: ErrorAck, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.FAILED:
            self._retransmit = None

    def _on_goclear(self, goclear: GoClear, raw: bytes, ssrc: int, now: float) -> None:
        """§4.7.2: this phone never goes clear; a valid GoClear is answered with Error 0x100."""
        if self._state is not _State.SECURE or self._keys is None or self._suite is None:
            raise _DropError
        key = self._keys.mac_key_r if self._role == "initiator" else self._keys.mac_key_i
        expected = mac(key, b"GoClear ", hash_name(self._suite.hash))[:8]
        if not hmac.compare_digest(expected, goclear.clear_mac):
            raise _DropError
        self._send(bytes(Error(0x100)))
        if not self._goclear_refused:
            self._goclear_refused = True
            self._events.append(GoClearRefused())

    def _on_sasrelay(self, _: SasRelay, raw: bytes, ssrc: int, now: float) -> None:
        """§5.13: we trust no PBX, so a relayed SAS is refused and the SAS stays ours."""
        if self._state is not _State.SECURE:
            raise _DropError
        self._send(bytes(Error(0x63)))

    def _on_ping(self, ping: Ping, raw: bytes, ssrc: int, now: float) -> None:
        """§5.16: answer with PingACK; a Ping also says the peer speaks ZRTP."""
        self._extend_hello()
        ack = PingAck(VERSION, _sha256(self._zid)[:8], ping.endpoint_hash, ssrc)
        self._send(bytes(ack))

    def _on_ignored(self, _: Message, raw: bytes, ssrc: int, now: float) -> None:
        """PingACK, ClearACK, RelayACK: answers to requests this phone never sends."""
        raise _DropError

    _HANDLERS: dict[type[Any], Callable[[ZrtpSession, Any, bytes, int, float], None]] = {
        Hello: _on_hello,
        HelloAck: _on_hello_ack,
        Commit: _on_commit,
        DHPart1: _on_dhpart1,
        DHPart2: _on_dhpart2,
        Confirm1: _on_confirm1,
        Confirm2: _on_confirm2,
        Conf2Ack: _on_conf2ack,
        Error: _on_error,
        ErrorAck: _on_error_ack,
        GoClear: _on_goclear,
        SasRelay: _on_sasrelay,
        Ping: _on_ping,
        PingAck: _on_ignored,
        ClearAck: _on_ignored,
        RelayAck: _on_ignored,
    }
