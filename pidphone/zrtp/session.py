"""One ZRTP stream: the RFC 6189 state machine, sans I/O.

Driven by three inputs, like every core protocol object (ARCHITECTURE.md): API calls
(`start`, `set_peer_hello_hash`, `srtp_authenticated`, `confirm_sas`, `close`), received
packets (`receive_datagram`) and the clock (`handle_timer` at `get_timer()`). It produces packets
(`datagrams_to_send`) and events (`next_event`). Both sides send Hello (§4.1); a side that is
not passive sends Commit as soon as it holds the peer's Hello and a HelloACK for its own, as
bzrtp does, so both usually commit and §4.2 picks the initiator (higher hvi). DH mode is
§4.4.1, Multistream §4.4.3, keys §4.5, Confirm §4.6, timers §6, errors §5.9. Bad input is
dropped and counted in `drops` by reason; it never raises.

Who may change what (anyone can send UDP to the media port, and the CRC is no secret):
- The peer's Hello is taken only if it hashes to the peer's a=zrtp-hash (§8.1). Without one, up
  to `MAX_CANDIDATES` different Hellos are held, none trusted, until a Commit or DHPart1 reveals
  an H2 that hashes to one's H3 and keys its MAC (§9.1 hash chain): that one is the peer's.
- From then on the peer is bound to that Hello's SSRC: a packet with another SSRC is dropped.
  An off-path sender does not know it. (The sequence number is not checked: the packet header
  is not authenticated, so an on-path sender could poison it at no cost.)
- `receive_datagram` says True only for a message that moved the exchange on and whose
  authenticity could be checked (a Hello that matches a=zrtp-hash, a Commit/DHPart/Confirm whose
  hash chain or MAC checks, a GoClear/SASrelay whose MAC does): the caller may follow that
  sender's address. A copy of an earlier message, or one nothing authenticates (HelloACK,
  Conf2ACK, Error, ErrorACK, Ping), never says True.
- Our Commit is retransmitted until the peer's answer proves its hash chain: a Commit that wins
  the §4.2 contention makes us responder, but our retransmission stops only once the DHPart2
  (or, in Multistream, the Confirm2) that follows proves that Commit's H1.
- After SECURE only messages keyed by the session count: an identical Confirm2 (answered with
  Conf2ACK), a GoClear or an SASrelay whose MAC checks. Everything else, Error included (§5.9:
  Error ends an exchange in progress), is dropped as "after_secure".

Everything that moves the state lives in this module: `_HANDLERS` maps each message type to
the method that decides, from the current `_State`, what it means.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import secrets
import struct
from collections import Counter, deque
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
    MAX_PACKET_LEN,
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
    ZrtpCrcError,
    ZrtpParseError,
    encode_packet,
    parse_message,
    split_packet,
)
from pidphone.zrtp.sas import render_sas

VERSION = "1.10"
NEVER_EXPIRES = 0xFFFFFFFF
MAX_CANDIDATES = 4
"""Different Hellos held while no a=zrtp-hash says which is the peer's: a forger's Hello cannot
push the peer's out, and memory stays bounded."""
MAX_ACKED_SSRCS = 8
"""SSRCs whose HelloACK is remembered before the peer's Hello is known."""

DropReason = Literal[
    "oversize",
    "closed",
    "crc",
    "malformed",
    "foreign_ssrc",
    "unauthenticated",
    "unexpected",
    "after_secure",
]
"""Why a packet was dropped, the key of `ZrtpSession.drops`:
oversize: longer than MAX_PACKET_LEN (checked before the CRC); closed: session not running;
crc / malformed: fails the CRC or the message format; foreign_ssrc: not the bound peer's SSRC;
unauthenticated: a=zrtp-hash, hash chain or MAC fails; unexpected: no place for it in the
exchange now; after_secure: not keyed by the session, after SECURE."""

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
    """The packet is ignored and counted in `drops` under `reason`."""

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason)
        self.reason: DropReason = reason


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


def _matches(hello_raw: bytes, expected: bytes) -> bool:
    """The Hello message hashes to the a=zrtp-hash digest (§8.1)."""
    return hmac.compare_digest(_sha256(hello_raw), expected)


T = TypeVar("T")


def _have(value: T | None, what: str) -> T:
    """`value`, which the state guarantees here; without it the fault is ours (§5.9 0x20)."""
    if value is None:
        raise _FailError(0x20, f"{ERROR_REASONS[0x20]}: no {what}")
    return value


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
        self.drops: Counter[DropReason] = Counter()
        """Packets ignored, by reason (see `DropReason`)."""
        self.last_drop: DropReason | None = None
        """Why the last packet fed was dropped, None if it was taken (for the caller's log)."""
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
        """The peer's Hello once bound (hash or chain), else the first candidate."""
        self._peer_hello_raw = b""
        self._peer_ssrc: int | None = None
        """The SSRC of the peer's bound Hello: every later packet must carry it."""
        self._progressed = False
        """The packet being read moved the exchange on and was authenticated."""
        self._candidates: dict[bytes, tuple[Hello, int]] = {}
        """Unproven Hellos (no a=zrtp-hash), raw message -> (Hello, SSRC), first one first."""
        self._acked_ssrcs: set[int] = set()
        self._hello_mismatches = 0
        self._refused_hello: tuple[int, str | None] | None = None
        """The §5.9 code (and reason) an unproven Hello would have failed the exchange with."""
        self._suspect: str | None = None
        """The last authentication failure of a peer message, for a timeout's reason."""
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
        """The bound peer's ZID (None while no Hello is proven)."""
        return self._peer_hello.zid if self._peer_hello and self._peer_ssrc is not None else None

    @property
    def dropped(self) -> int:
        """How many packets were dropped, whatever the reason."""
        return sum(self.drops.values())

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

    def set_peer_hello_hash(self, value: str, now: float) -> None:
        """The peer's `a=zrtp-hash` from the SDP: its Hello must hash to it (§8.1).

        The value comes from the peer, so a malformed one is not an exception: no Hello can
        match it, and the exchange fails closed when Hello gives up. Hellos held before the
        hash came are sorted now: the matching one is bound, the others dropped; if we already
        committed to one that does not match, or a secured stream's Hello does not, the
        stream fails (SecurityLost once secure). `now` lets a bound Hello start our Commit.
        """
        _, _, hex_digest = value.strip().partition(" ")
        try:
            expected = bytes.fromhex(hex_digest.strip())
        except ValueError:
            expected = b""
        self._expected_hello_hash = expected
        self._peer_known = True
        if self._state in (_State.IDLE, _State.FAILED, _State.CLOSED):
            return
        mismatch = "peer Hello does not match its a=zrtp-hash"
        if self._peer_ssrc is not None or self._state is not _State.DISCOVERY:
            if self._peer_hello is not None and not _matches(self._peer_hello_raw, expected):
                self._fail_quietly(0x40, mismatch)
            elif self._peer_ssrc is None and self._peer_hello is not None:
                self._bind(self._peer_hello, self._peer_hello_raw, self._candidate_ssrc())
            return
        matching = [
            (raw, hello, ssrc)
            for raw, (hello, ssrc) in self._candidates.items()
            if _matches(raw, expected)
        ]
        self._hello_mismatches += len(self._candidates) - len(matching)
        self._candidates.clear()
        self._peer_hello, self._peer_hello_raw = None, b""
        if matching:
            raw, hello, ssrc = matching[0]
            self._bind(hello, raw, ssrc)
            self._maybe_commit(now)

    def receive_datagram(self, data: bytes, now: float) -> bool:
        """Feed one ZRTP datagram. True when it moved the exchange on and was authenticated as
        far as the exchange allows now (see the module docstring): the caller may follow the
        sender's address only then. A packet that fails a check (length, CRC, form, the bound
        peer's SSRC, a=zrtp-hash, hash chain, MAC) or has no place in the exchange now is
        dropped, counted in `drops` and named in `last_drop`; it never raises."""
        self.last_drop = None
        self._progressed = False
        if len(data) > MAX_PACKET_LEN:
            return self._drop("oversize")
        if self._state in (_State.IDLE, _State.CLOSED):
            return self._drop("closed")
        try:
            _, ssrc, raw = split_packet(data)
            message = parse_message(raw)
        except ZrtpCrcError:
            return self._drop("crc")
        except ZrtpParseError:
            return self._drop("malformed")
        if self._peer_ssrc is not None and ssrc != self._peer_ssrc:
            return self._drop("foreign_ssrc")
        kind = type(message)
        if self._state is _State.SECURE and kind not in _AFTER_SECURE:
            return self._drop("after_secure")
        if self._state is _State.FAILED and kind not in _AFTER_FAILURE:
            return self._drop("unexpected")
        try:
            self._HANDLERS[kind](self, message, raw, ssrc, now)
        except _DropError as drop:
            return self._drop(drop.reason)
        except _FailError as failure:
            self._fail(failure.code, failure.reason, now)
            return False
        return self._progressed

    def _drop(self, reason: DropReason) -> bool:
        self.drops[reason] += 1
        self.last_drop = reason
        return False

    def datagrams_to_send(self) -> list[bytes]:
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
                self._fail(0xB0, self._timeout("the initiator went silent"), now)
            elif self._state is _State.DISCOVERY:
                self._fail_quietly(0xB0, self._timeout("the peer never sent Commit"))
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
            try:
                self._secure(now)
            except _FailError as failure:
                self._fail(failure.code, failure.reason, now)

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
            refused = self._refused_hello
            if self._peer_hello is None and self._hello_mismatches:
                self._fail_quietly(0x40, "peer Hello does not match its a=zrtp-hash")
            elif self._peer_hello is None and refused is not None:
                self._fail_quietly(refused[0], refused[1] or ERROR_REASONS[refused[0]])
            elif self._peer_hello is None:
                self._fail_quietly(0xB0, NO_ZRTP)
            else:
                self._fail_quietly(0xB0, self._timeout("the peer never answered Hello"))
        elif self._state is not _State.FAILED:
            self._fail_quietly(0xB0, self._timeout("no answer to retransmissions"))

    def _timeout(self, what: str) -> str:
        """A timeout's reason, naming the last peer message that failed its check, if any."""
        suspect = f" (dropped {self._suspect})" if self._suspect else ""
        return f"Protocol timeout: {what}{suspect}"

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
        if self._peer_ssrc is not None:
            if raw != self._peer_hello_raw:
                raise _DropError("unauthenticated")  # not the Hello we are bound to
        elif raw not in self._candidates:
            self._take_hello(hello, raw, ssrc)
        if self._state is _State.DISCOVERY:
            self._send(bytes(HelloAck()))
            self._maybe_commit(now)

    def _take_hello(self, hello: Hello, raw: bytes, ssrc: int) -> None:
        """A Hello not seen before: bound if it matches the a=zrtp-hash, else a candidate."""
        expected = self._expected_hello_hash
        if expected is not None and not _matches(raw, expected):
            self._hello_mismatches += 1
            raise _DropError("unauthenticated")
        if self._state not in (_State.DISCOVERY, _State.COMMIT_SENT):
            raise _DropError("unexpected")  # answered a Commit already: too late for a Hello
        proven = expected is not None
        refusal: tuple[int, str | None] | None = None
        parent_peer = self._parent.peer_zid if self._parent else None
        if not hello.version.startswith("1.1"):
            refusal = (0x30, None)
        elif hello.zid == self._zid:
            refusal = (0x90, None)
        elif parent_peer is not None and hello.zid != parent_peer:
            refusal = (0x40, "multistream Hello from another ZID than the first stream")
        if refusal is not None:
            if proven:
                self._bind(hello, raw, ssrc)  # the peer's: its Error and ErrorACK count
                raise _FailError(*refusal)
            # unproven: anyone could have sent it; remembered for the reason if Hello gives up
            self._refused_hello = refusal
            raise _DropError("unexpected")
        self._extend_hello()
        if proven:
            self._bind(hello, raw, ssrc)
            self._progressed = True
            return
        if len(self._candidates) >= MAX_CANDIDATES:
            raise _DropError("unexpected")
        self._candidates[raw] = (hello, ssrc)
        if self._peer_hello is None:
            self._peer_hello, self._peer_hello_raw = hello, raw

    def _bind(self, hello: Hello, raw: bytes, ssrc: int) -> None:
        """This Hello is the peer's: keep it, its SSRC, and forget the other candidates."""
        self._peer_hello, self._peer_hello_raw = hello, raw
        self._peer_ssrc = ssrc
        self._candidates.clear()
        self._events.append(PeerHelloReceived(hello.zid, hello.client_id, hello.version))

    def _candidate_ssrc(self) -> int:
        hello = self._candidates.get(self._peer_hello_raw)
        if hello is None:
            raise LocalProtocolError("no candidate Hello to bind")
        return hello[1]

    def _prove_hello(self, h2: bytes, zid: bytes, ssrc: int) -> tuple[Hello, bytes]:
        """The Hello (bound, or one candidate) whose H3 is the hash of `h2` and whose MAC `h2`
        keys (§9.1): a message revealing `h2` comes from that Hello's sender."""
        h3 = _sha256(h2)
        if self._peer_ssrc is not None and self._peer_hello is not None:
            options = [(self._peer_hello, self._peer_hello_raw, self._peer_ssrc)]
        else:
            options = [(hello, raw, s) for raw, (hello, s) in self._candidates.items()]
        for hello, raw, hello_ssrc in options:
            if (
                hello_ssrc == ssrc
                and hello.zid == zid
                and hmac.compare_digest(h3, hello.h3)
                and _mac_ok(raw, h2)
            ):
                return hello, raw
        self._suspect = "a message whose hash chain fails"
        raise _DropError("unauthenticated")

    @property
    def _hello_acked(self) -> bool:
        """Our Hello is acknowledged by the sender of the Hello we would commit to."""
        if self._peer_ssrc is not None:
            return self._peer_ssrc in self._acked_ssrcs
        if len(self._candidates) != 1:
            return False  # none yet, or several and no way to tell which is the peer's
        ((_, ssrc),) = self._candidates.values()
        return ssrc in self._acked_ssrcs

    def _on_hello_ack(self, _: HelloAck, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is not _State.DISCOVERY:
            return  # late, after a Commit: harmless
        if ssrc not in self._acked_ssrcs:
            if len(self._acked_ssrcs) >= MAX_ACKED_SSRCS:
                raise _DropError("unexpected")
            self._acked_ssrcs.add(ssrc)
        self._maybe_commit(now)

    def _maybe_commit(self, now: float) -> None:
        if self._state is not _State.DISCOVERY or not self._hello_acked:
            return
        peer = self._peer_hello
        if peer is None:
            return
        if self._retransmit is not None and self._retransmit.is_hello:
            self._retransmit = None
            # the peer heard us; if its Commit (or its Hello) never comes, give up in time
            self._deadline = self._started_at + self._config.hello_extension
        if self._config.passive:
            return
        if self._parent is not None:
            parent_suite = self._parent._suite
            if parent_suite is None:
                raise LocalProtocolError("multistream_from session lost its suite")
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
        keypair, suite = _have(self._keypair, "key pair"), _have(self._suite, "suite")
        entry = self._load_entry()
        hname = hash_name(suite.hash)

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
            pv=keypair.public,
        )
        return _sealed(message, self._h0)[1]

    def _load_entry(self) -> CacheEntry | None:
        return self._cache.load(_have(self._peer_hello, "peer Hello").zid)

    def _on_commit(self, commit: Commit, raw: bytes, ssrc: int, now: float) -> None:
        state = self._state
        if state in (_State.DISCOVERY, _State.COMMIT_SENT):
            if raw == self._commit_raw:
                raise _DropError("unexpected")  # our own, reflected
            hello, hello_raw = self._prove_hello(commit.h2, commit.zid, ssrc)
            self._progressed = True
            if (
                state is _State.COMMIT_SENT
                and hello_raw == self._peer_hello_raw
                and not self._peer_wins(commit)
            ):
                if self._peer_ssrc is None:
                    self._bind(hello, hello_raw, ssrc)
                return  # §4.2: ours wins; the peer becomes responder
            # ours lost, or was made for a Hello that was not the peer's
            self._bind(hello, hello_raw, ssrc)
            self._become_responder(commit, raw, now)
        elif state is _State.DHPART1_SENT and raw == self._commit_raw:
            self._send(self._own_dhpart_raw)
        elif state is _State.CONFIRM1_SENT and raw == self._commit_raw:
            self._send(self._confirm_raw)
        else:
            raise _DropError("unexpected")

    def _peer_wins(self, theirs: Commit) -> bool:
        """§4.2 contention: a DH Commit beats a nonce Commit; else the higher hvi or nonce."""
        ours = _have(self._commit, "own Commit")
        if bool(ours.hvi) != bool(theirs.hvi):
            return bool(theirs.hvi)
        mine, other = (ours.hvi, theirs.hvi) if ours.hvi else (ours.nonce, theirs.nonce)
        return int.from_bytes(other, "big") > int.from_bytes(mine, "big")

    def _become_responder(self, commit: Commit, raw: bytes, now: float) -> None:
        """Answer a Commit whose H2 is proven. Our own Commit, if any, keeps being retransmitted
        until the DHPart2 (or Confirm2) that follows proves this one's H1 (§4.2, §9.1)."""
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
        if self._retransmit is not None and self._retransmit.is_hello:
            self._retransmit = None  # Table 9: a Commit stops Hello
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
        parent = _have(self._parent, "first stream")
        if commit.hash != _have(parent._suite, "first stream suite").hash:
            raise _FailError(0x51, "Multistream hash differs from the first stream's")
        used = parent._used_nonces
        if commit.nonce in used:
            raise _FailError(0x80)
        used.add(commit.nonce)

    def _on_dhpart1(self, part: DHPart1, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.DHPART2_SENT and raw == self._peer_dhpart_raw:
            return
        suite, peer = self._suite, self._peer_hello
        if self._state is not _State.COMMIT_SENT or suite is None or peer is None:
            raise _DropError("unexpected")
        if suite.key_agreement == alg.MULTISTREAM:
            raise _DropError("unexpected")
        h2 = _sha256(part.h1)
        if not hmac.compare_digest(_sha256(h2), peer.h3) or not _mac_ok(self._peer_hello_raw, h2):
            # a forger's, or the answer of a peer whose Hello we did not commit to
            self._suspect = "a DHPart1 whose hash chain fails"
            raise _DropError("unauthenticated")
        if self._peer_ssrc is None:
            self._bind(peer, self._peer_hello_raw, ssrc)
        self._progressed = True
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
            raise _DropError("unexpected")
        h1 = part.h1
        if not hmac.compare_digest(_sha256(h1), commit.h2) or not _mac_ok(self._commit_raw, h1):
            self._suspect = "a DHPart2 whose hash chain fails"
            raise _DropError("unauthenticated")
        self._retransmit = None  # the Commit we answered is proven: ours, if any, is moot
        self._progressed = True
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
        keypair, suite = _have(self._keypair, "key pair"), _have(self._suite, "suite")
        if len(part.pv) != PV_BYTES[suite.key_agreement]:
            raise _FailError(0x61)
        try:
            dh_result = keypair.shared(part.pv)
        except BadPublicValueError:
            raise _FailError(0x61) from None
        self._keypair = None
        hname = hash_name(suite.hash)
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
        peer = _have(self._peer_hello, "peer Hello")
        if self._role == "initiator":
            return self._zid, peer.zid
        return peer.zid, self._zid

    def _derive_multistream(self) -> None:
        """§4.4.3: s0 from the first stream's ZRTPSess, total_hash over Hello and Commit."""
        parent, suite = _have(self._parent, "first stream"), _have(self._suite, "suite")
        sess = parent._zrtp_sess
        if sess is None:
            raise _FailError(0x20, "the first stream lost its session key")
        hname = hash_name(suite.hash)
        responder_hello = self._hello_raw if self._role == "responder" else self._peer_hello_raw
        total_hash = digest(responder_hello + self._commit_raw, hname)
        zid_i, zid_r = self._zids()
        context = zid_i + zid_r + total_hash
        s0 = kdf(sess, b"ZRTP MSK", context, 8 * len(sess), hname)
        self._keys = self._derive(s0, context, dh_mode=False)

    def _derive(self, s0: bytes, context: bytes, *, dh_mode: bool) -> _Keys:
        suite = _have(self._suite, "suite")
        hname = hash_name(suite.hash)
        hash_bits = 8 * len(s0)
        key_bits = 8 * alg.CIPHER_KEY_BYTES[suite.cipher]

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
        keys, suite = _have(self._keys, "keys"), _have(self._suite, "suite")
        entry = self._load_entry()
        verified = bool(entry and entry.verified and not self._cache_mismatch)
        if self._parent is not None and self._parent._secured is not None:
            verified = self._parent._secured.verified
        plain = ConfirmPlaintext(h0=self._h0, sas_verified=verified, cache_expiry=NEVER_EXPIRES)
        initiator = self._role == "initiator"
        key = keys.zrtp_key_i if initiator else keys.zrtp_key_r
        mac_key = keys.mac_key_i if initiator else keys.mac_key_r
        iv = self._random(16)
        encrypted = aes_cfb(key, iv, bytes(plain), encrypt=True)
        tag = mac(mac_key, encrypted, hash_name(suite.hash))[:8]
        return bytes(kind(mac=tag, iv=iv, encrypted=encrypted))

    def _peer_mac_ok(self, tag: bytes, data: bytes) -> bool:
        """`tag` is the peer's MAC over `data` with its HMAC key (§4.6: Confirm, SASrelay)."""
        keys, suite = _have(self._keys, "keys"), _have(self._suite, "suite")
        mac_key = keys.mac_key_i if self._role == "responder" else keys.mac_key_r
        expected = mac(mac_key, data, hash_name(suite.hash))[:8]
        return hmac.compare_digest(expected, tag)

    def _open_confirm(self, confirm: Confirm1 | Confirm2) -> ConfirmPlaintext:
        """Check the peer's Confirm MAC and decrypt it. A bad MAC drops the message (anyone
        can send one); a good MAC around a malformed plaintext is the peer's: Error 0x70."""
        keys = _have(self._keys, "keys")
        if not self._peer_mac_ok(confirm.mac, confirm.encrypted):
            self._suspect = ERROR_REASONS[0x70]
            raise _DropError("unauthenticated")
        key = keys.zrtp_key_i if self._role == "responder" else keys.zrtp_key_r
        try:
            plain = ConfirmPlaintext.parse(
                aes_cfb(key, confirm.iv, confirm.encrypted, encrypt=False)
            )
        except ZrtpParseError:
            raise _FailError(0x70) from None
        return plain

    def _on_confirm1(self, confirm: Confirm1, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.CONFIRM2_SENT and raw == self._peer_confirm_raw:
            return  # a copy: our Confirm2 is being retransmitted anyway
        suite, peer = self._suite, self._peer_hello
        if suite is None or peer is None or self._role != "initiator":
            raise _DropError("unexpected")
        is_mult = suite.key_agreement == alg.MULTISTREAM
        if is_mult and self._state is _State.COMMIT_SENT:
            if self._keys is None:
                self._derive_multistream()
        elif self._state is not _State.DHPART2_SENT:
            raise _DropError("unexpected")
        plain = self._open_confirm(confirm)
        h1 = _sha256(plain.h0)
        if is_mult:
            h2 = _sha256(h1)
            chain_ok = hmac.compare_digest(_sha256(h2), peer.h3)
            chain_ok = chain_ok and _mac_ok(self._peer_hello_raw, h2)
        else:
            chain_ok = self._peer_dhpart_chain_ok(plain.h0, h1)
        if not chain_ok:
            self._suspect = "a Confirm1 whose hash chain fails"
            raise _DropError("unauthenticated")
        if self._peer_ssrc is None:
            self._bind(peer, self._peer_hello_raw, ssrc)
        self._progressed = True
        self._take_confirm_flags(plain)
        self._peer_confirm_raw = raw
        self._keys_ready()
        self._state = _State.CONFIRM2_SENT
        self._send_retransmitted(self._confirm(Confirm2), now)

    def _on_confirm2(self, confirm: Confirm2, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is _State.SECURE:
            if raw != self._peer_confirm_raw or self._role != "responder":
                raise _DropError("after_secure")
            self._send(bytes(Conf2Ack()))  # our Conf2ACK was lost: §6
            return
        commit = self._commit
        if self._state is not _State.CONFIRM1_SENT or commit is None:
            raise _DropError("unexpected")
        plain = self._open_confirm(confirm)
        h1 = _sha256(plain.h0)
        if self._parent is not None:
            chain_ok = hmac.compare_digest(_sha256(h1), commit.h2)
            chain_ok = chain_ok and _mac_ok(self._commit_raw, h1)
        else:
            chain_ok = self._peer_dhpart_chain_ok(plain.h0, h1)
        if not chain_ok:
            self._suspect = "a Confirm2 whose hash chain fails"
            raise _DropError("unauthenticated")
        self._retransmit = None  # the Commit we answered is proven (Multistream's first proof)
        self._progressed = True
        self._take_confirm_flags(plain)
        self._peer_confirm_raw = raw
        self._send(bytes(Conf2Ack()))
        self._keys_ready()
        self._secure(now)

    def _take_confirm_flags(self, plain: ConfirmPlaintext) -> None:
        self._peer_sas_verified = plain.sas_verified
        self._peer_cache_expiry = plain.cache_expiry

    def _peer_dhpart_chain_ok(self, h0: bytes, h1: bytes) -> bool:
        """DH mode: the H0 a Confirm reveals hashes to the peer's DHPart H1 and keys its MAC."""
        part = _have(self._peer_dhpart, "peer DHPart")
        return hmac.compare_digest(h1, part.h1) and _mac_ok(self._peer_dhpart_raw, h0)

    def _on_conf2ack(self, _: Conf2Ack, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is not _State.CONFIRM2_SENT:
            raise _DropError("unexpected")
        self._retransmit = None
        self._secure(now)

    def _keys_ready(self) -> None:
        keys, suite = _have(self._keys, "keys"), _have(self._suite, "suite")
        if self._role == "initiator":
            send = (keys.srtp_key_i, keys.srtp_salt_i)
            recv = (keys.srtp_key_r, keys.srtp_salt_r)
        else:
            send = (keys.srtp_key_r, keys.srtp_salt_r)
            recv = (keys.srtp_key_i, keys.srtp_salt_i)
        self._events.append(SrtpKeysReady(suite.srtp_profile, *send, *recv))

    def _secure(self, now: float) -> None:
        """Conf2ACK (or SRTP) for the initiator, Confirm2 for the responder: §4.6.1."""
        keys, suite = _have(self._keys, "keys"), _have(self._suite, "suite")
        peer, role = _have(self._peer_hello, "peer Hello"), self._role
        if role is None:
            raise _FailError(0x20, f"{ERROR_REASONS[0x20]}: no role")
        self._state = _State.SECURE
        self._deadline = None
        if self._parent is not None:
            parent = _have(self._parent._secured, "first stream's result")
            sas, verified = parent.sas, parent.verified
            mismatch = parent.cache_mismatch
        else:
            sas = render_sas(keys.sashash, suite.sas)
            verified = self._update_cache()
            mismatch = self._cache_mismatch
            self._zrtp_sess = keys.zrtp_sess
        if mismatch and self._parent is None:
            self._events.append(CacheMismatch(peer.zid))
        self._secured = Secured(
            sas=sas,
            sas_scheme=suite.sas.strip(),
            verified=verified,
            cipher=suite.cipher,
            auth_tag=suite.auth_tag,
            key_agreement=suite.key_agreement,
            hash=suite.hash,
            role=role,
            peer_zid=peer.zid,
            cache_mismatch=mismatch,
        )
        self._events.append(self._secured)
        # §4.6.1/§4.5: what only the exchange needed goes now; the MAC keys stay for GoClear
        # and SASrelay, ZRTPSess for Multistream, ExportedKey for its users
        self._keys = dataclasses.replace(
            keys,
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
        keys, peer = _have(self._keys, "keys"), _have(self._peer_hello, "peer Hello")
        peer_zid = peer.zid
        before = self._entry_before
        new_rs1 = keys.new_rs1
        if self._cache_mismatch:
            self._pending_rs1 = new_rs1
            self._cache.store(peer_zid, dataclasses.replace(before or CacheEntry(), verified=False))
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
        """§5.9: an Error ends the exchange in progress. Nothing authenticates it, so it counts
        only from the peer's SSRC: the bound one, or that of a Hello held while none is bound
        (then a forger of that Hello can also forge this). Never after SECURE."""
        if self._peer_ssrc is None and all(s != ssrc for _, s in self._candidates.values()):
            raise _DropError("foreign_ssrc")
        self._send(bytes(ErrorAck()))
        reason = ERROR_REASONS.get(error.code, f"Error 0x{error.code:x}")
        self._fail_quietly(error.code, f"peer sent Error 0x{error.code:x}: {reason}", local=False)

    def _on_error_ack(self, _: ErrorAck, raw: bytes, ssrc: int, now: float) -> None:
        if self._state is not _State.FAILED or self._peer_ssrc is None:
            raise _DropError("unexpected")
        self._retransmit = None

    def _on_goclear(self, goclear: GoClear, raw: bytes, ssrc: int, now: float) -> None:
        """§4.7.2: this phone never goes clear. A GoClear whose clear_mac checks is the peer's
        and is answered with Error 0x100 (§5.9), and reported: the peer means to stop SRTP.
        Any other is dropped unanswered."""
        keys, suite = self._keys, self._suite
        if keys is None or suite is None:
            raise _DropError("after_secure")
        key = keys.mac_key_r if self._role == "initiator" else keys.mac_key_i
        expected = mac(key, b"GoClear ", hash_name(suite.hash))[:8]
        if not hmac.compare_digest(expected, goclear.clear_mac):
            raise _DropError("unauthenticated")
        self._progressed = True
        self._send(bytes(Error(0x100)))
        if not self._goclear_refused:
            self._goclear_refused = True
            self._events.append(GoClearRefused())

    def _on_sasrelay(self, relay: SasRelay, raw: bytes, ssrc: int, now: float) -> None:
        """§5.13: the MAC is checked first (keyed like the Confirm MAC); one that fails is
        dropped unanswered. This phone trusts no PBX, so a relayed SAS is never shown: a peer
        that declared itself a MiTM (M flag) gets Error 0x63, any other a RelayACK (§5.13:
        "A RelayACK is still sent, but no Error message")."""
        if self._keys is None or self._suite is None:
            raise _DropError("after_secure")
        if not self._peer_mac_ok(relay.mac, relay.encrypted):
            raise _DropError("unauthenticated")
        self._progressed = True
        peer = _have(self._peer_hello, "peer Hello")
        self._send(bytes(Error(0x63)) if peer.mitm else bytes(RelayAck()))

    def _on_ping(self, ping: Ping, raw: bytes, ssrc: int, now: float) -> None:
        """§5.16: answer with PingACK; a Ping also says the peer speaks ZRTP."""
        self._extend_hello()
        ack = PingAck(VERSION, _sha256(self._zid)[:8], ping.endpoint_hash, ssrc)
        self._send(bytes(ack))

    def _on_ignored(self, _: Message, raw: bytes, ssrc: int, now: float) -> None:
        """PingACK, ClearACK, RelayACK: answers to requests this phone never sends."""
        raise _DropError("unexpected")

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


_AFTER_SECURE: frozenset[type[Message]] = frozenset({Confirm2, GoClear, SasRelay})
"""What a secured session still reads: a copy of the peer's Confirm2 (Conf2ACK lost), and the
two messages a MAC keyed by the session protects."""
_AFTER_FAILURE: frozenset[type[Message]] = frozenset({Error, ErrorAck})
"""What a failed session still reads: the peer's Error (acknowledged) and the ErrorACK to ours."""
