"""One ZRTP stream (RFC 6189), sans I/O: the object the media session drives.

Driven by three inputs, like every core protocol object (the SIP agent too): API calls
(`start`, `set_peer_hello_hash`, `srtp_authenticated`, `confirm_sas`, `close`), received
datagrams (`receive_datagram`) and the clock (`handle_timer` at `get_timer()`). It produces
datagrams (`datagrams_to_send`) and events (`next_event`). Bad input is dropped and counted in
`drops` by reason; it never raises.

Where things are: the state tables (state.py) say what each message means in each state and
which state follows; the handlers live by RFC section: discovery (§4.1, discovery.py, with the
Hellos in hello.py), Commit contention (§4.2, commit.py), DH key agreement (§4.4.1,
dhpart.py, agreement.py), Multistream (§4.4.3, multistream.py), keys (§4.5, keys.py), Confirm
(§4.6, confirm.py), cache rules (§4.6.1, §7, retained.py), Error, GoClear and SASrelay (§4.7,
§5.9, §5.13, termination.py), packets (§5, framing.py). This module keeps the timers (§6).

Who may change what (anyone can send UDP to the media port, and the CRC is no secret):
- The peer's Hello counts only if it matches a=zrtp-hash or a hash chain proves it (hello.py);
  from then on a packet with another SSRC is dropped.
- `receive_datagram` says True only for a message that moved the exchange on and whose
  authenticity could be checked (a Hello that matches a=zrtp-hash, a Commit/DHPart/Confirm whose
  hash chain or MAC checks, a GoClear/SASrelay whose MAC does): the caller may follow that
  sender's address. A copy of an earlier message, or one nothing authenticates (HelloACK,
  Conf2ACK, Error, ErrorACK, Ping), never says True.
- After SECURE only messages keyed by the session count (state.py): an identical Confirm2
  (answered with Conf2ACK), a GoClear or an SASrelay whose MAC checks. Everything else, Error
  included, is dropped as "after_secure".
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp import commit, confirm, dhpart, discovery, termination
from pidphone.zrtp.cache import ZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.events import Secured, ZrtpEvent
from pidphone.zrtp.exchange import Exchange, Retransmit
from pidphone.zrtp.framing import is_fragment, packet_ssrc
from pidphone.zrtp.hello import MISMATCH
from pidphone.zrtp.kem import MlKemEncapsulate, mlkem_encapsulate
from pidphone.zrtp.messages import (
    MAX_PACKET_LEN,
    ZrtpCrcError,
    ZrtpParseError,
    parse_message,
)
from pidphone.zrtp.multistream import FirstStream
from pidphone.zrtp.state import (
    DISPATCH,
    DropError,
    DropReason,
    FailError,
    ZrtpInput,
    ZrtpState,
    ZrtpStep,
    error_reason,
    unplaced,
)

NO_ZRTP = "Peer does not support ZRTP"

Handler = Callable[[Exchange, Any, bytes, int, float], bool]
"""(exchange, message, its bytes, SSRC, now) -> whether it moved the exchange on and was
authenticated; raises `DropError` or `FailError`."""

HANDLERS: dict[ZrtpStep, Handler] = {
    ZrtpStep.HELLO: discovery.on_hello,
    ZrtpStep.HELLO_AFTER_COMMIT: discovery.on_hello_after_commit,
    ZrtpStep.HELLO_AGAIN: discovery.on_hello_again,
    ZrtpStep.HELLO_ACK: discovery.on_hello_ack,
    ZrtpStep.IGNORE: discovery.ignore,
    ZrtpStep.PING: discovery.on_ping,
    ZrtpStep.COMMIT: commit.on_commit,
    ZrtpStep.COMMIT_CONTENTION: commit.on_commit_contention,
    ZrtpStep.COMMIT_AGAIN: commit.on_commit_again,
    ZrtpStep.DHPART1: dhpart.on_dhpart1,
    ZrtpStep.DHPART1_AGAIN: dhpart.on_dhpart1_again,
    ZrtpStep.DHPART2: dhpart.on_dhpart2,
    ZrtpStep.DHPART2_AGAIN: dhpart.on_dhpart2_again,
    ZrtpStep.CONFIRM1: confirm.on_confirm1,
    ZrtpStep.MULTISTREAM_CONFIRM1: confirm.on_multistream_confirm1,
    ZrtpStep.CONFIRM1_AGAIN: confirm.on_confirm1_again,
    ZrtpStep.CONFIRM2: confirm.on_confirm2,
    ZrtpStep.CONFIRM2_AGAIN: confirm.on_confirm2_again,
    ZrtpStep.CONF2ACK: confirm.on_conf2ack,
    ZrtpStep.ERROR: termination.on_error,
    ZrtpStep.ERROR_ACK: termination.on_error_ack,
    ZrtpStep.GOCLEAR: termination.on_goclear,
    ZrtpStep.SASRELAY: termination.on_sasrelay,
}
"""The handler of each step of `state.DISPATCH`."""


class ZrtpSession:
    """The ZRTP exchange of one media stream (a second stream passes `multistream_from`)."""

    def __init__(
        self,
        *,
        cache: ZidCache,
        ssrc: int,
        config: ZrtpConfig = ZrtpConfig(),  # noqa: B008 - frozen, shared safely
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        multistream_from: FirstStream | None = None,
        encapsulate_mlkem: MlKemEncapsulate = mlkem_encapsulate,
    ) -> None:
        """`random_bytes` gives every random value of the exchange (H0, nonces, IVs, private
        keys, ML-KEM seeds) and `encapsulate_mlkem` the responder's ML-KEM encapsulation, whose
        randomness `cryptography` draws itself: a replay of a recorded exchange gives both."""
        self._exchange = Exchange(
            cache=cache,
            ssrc=ssrc,
            config=config,
            random_bytes=random_bytes,
            first_stream=multistream_from,
            encapsulate_mlkem=encapsulate_mlkem,
        )
        self.drops: Counter[DropReason] = Counter()
        """Packets ignored, by reason (see `DropReason`)."""
        self.last_drop: DropReason | None = None
        """Why the last packet fed was dropped, None if it was taken (for the caller's log)."""

    # ---- what the stream shows -------------------------------------------------------

    @property
    def hello_hash(self) -> str:
        """Our `a=zrtp-hash` value (§8.1): version, space, hex SHA-256 of our Hello."""
        return self._exchange.ours.hash

    @property
    def our_zid(self) -> bytes:
        return self._exchange.zid

    @property
    def peer_zid(self) -> bytes | None:
        """The bound peer's ZID (None while no Hello is proven)."""
        return self._exchange.peer.zid

    @property
    def dropped(self) -> int:
        """How many packets were dropped, whatever the reason."""
        return sum(self.drops.values())

    @property
    def state(self) -> str:
        """A short description of where the exchange stands, for logs."""
        return self._exchange.state.value

    @property
    def secured(self) -> Secured | None:
        """The Secured event once emitted, else None."""
        return self._exchange.secured

    @property
    def suite(self) -> alg.Suite | None:
        """The algorithms of the exchange, once a Commit chose them."""
        return self._exchange.suite

    @property
    def exported_key(self) -> bytes | None:
        """ExportedKey (§4.5.2) of a secured session, for applications that need one."""
        ex = self._exchange
        return ex.keys.exported_key if ex.keys and ex.secured else None

    @property
    def session_key(self) -> bytes | None:
        """ZRTPSess (§4.5.2) of a secured DH-mode stream, which keys the call's Multistream
        streams; None before, and once closed."""
        return self._exchange.session_key

    # ---- API calls --------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin sending Hello (§4.1)."""
        ex = self._exchange
        if ex.state is not ZrtpState.IDLE:
            raise LocalProtocolError(f"start() in state {ex.state.value}")
        if ex.first_stream is not None and ex.first_stream.session_key is None:
            raise LocalProtocolError("multistream_from session is not secured yet")
        ex.started_at = now
        ex.move(ZrtpInput.START)
        ex.send_hello(now)

    def set_peer_hello_hash(self, value: str, now: float) -> None:
        """The peer's `a=zrtp-hash` from the SDP: its Hello must hash to it (§8.1).

        The value comes from the peer, so a malformed one is not an exception: no Hello can
        match it, and the exchange fails closed when Hello gives up. Hellos held before the
        hash came are sorted now: the matching one is bound (and may start our Commit at
        `now`), the others dropped; if we already committed to one that does not match, or a
        secured stream's Hello does not, the stream fails (SecurityLost once secure).
        """
        discovery.expect_hello_hash(self._exchange, value, now)

    def srtp_authenticated(self, now: float) -> None:
        """A valid SRTP packet from the peer arrived: for the initiator it stands for Conf2ACK."""
        ex = self._exchange
        if ex.state is ZrtpState.CONFIRM2_SENT:
            ex.retransmit = None
            try:
                confirm.secure(ex, ZrtpInput.CONF2ACK)
            except FailError as failure:
                ex.fail(failure.code, failure.reason, now)

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS (True) or found it different (False): §7.1 (see
        `RetainedSecrets.confirm_sas`). The next call then starts as with a stranger on this
        side. A Multistream stream passes it to the call's first stream."""
        ex = self._exchange
        if ex.first_stream is not None:
            ex.first_stream.confirm_sas(verified)
            return
        if ex.state is not ZrtpState.SECURE or ex.peer.hello is None:
            raise LocalProtocolError(f"confirm_sas() in state {ex.state.value}")
        ex.secrets.confirm_sas(ex.peer.hello.zid, verified)

    def take_multistream_nonce(self, nonce: bytes) -> bool:
        """For a Multistream stream of this call: False if its Commit's nonce was used by one
        before (§4.4.3.1, Error 0x80)."""
        used = self._exchange.used_nonces
        if nonce in used:
            return False
        used.add(nonce)
        return True

    def close(self) -> None:
        """Stop and forget every secret."""
        ex = self._exchange
        ex.move(ZrtpInput.CLOSE)
        ex.retransmit = None
        ex.deadline = None
        ex.wipe()
        ex.keys = None
        ex.session_key = None
        ex.ours.forget()
        ex.framer.forget()

    # ---- datagrams and events ----------------------------------------------------------

    def receive_datagram(self, data: bytes, now: float) -> bool:
        """Feed one ZRTP datagram. True when it moved the exchange on and was authenticated as
        far as the exchange allows now (see the module docstring): the caller may follow the
        sender's address only then. A packet that fails a check (length, CRC, form, the bound
        peer's SSRC, a=zrtp-hash, hash chain, MAC) or has no place in the exchange now is
        dropped, counted in `drops` and named in `last_drop`; it never raises."""
        self.last_drop = None
        ex = self._exchange
        if len(data) > MAX_PACKET_LEN:
            return self._drop("oversize")
        if ex.state in (ZrtpState.IDLE, ZrtpState.CLOSED):
            return self._drop("closed")
        if is_fragment(data) and not ex.peer.may_send(packet_ssrc(data)):
            # only the peer's fragments are collected: nobody else can crowd them out
            return self._drop("foreign_ssrc")
        try:
            framed = ex.framer.unframe(data, now)
            if framed is None:
                return False  # a fragment taken; its message is not whole yet
            ssrc, raw = framed
            message = parse_message(raw)
        except ZrtpCrcError:
            return self._drop("crc")
        except ZrtpParseError:
            return self._drop("malformed")
        peer_ssrc = ex.peer.ssrc
        if peer_ssrc is not None and ssrc != peer_ssrc:
            return self._drop("foreign_ssrc")
        step = DISPATCH.get((ex.state, type(message)))
        if step is None:
            return self._drop(unplaced(ex.state))
        try:
            return HANDLERS[step](ex, message, raw, ssrc, now)
        except DropError as drop:
            return self._drop(drop.reason)
        except FailError as failure:
            ex.fail(failure.code, failure.reason, now)
            return False

    def _drop(self, reason: DropReason) -> bool:
        self.drops[reason] += 1
        self.last_drop = reason
        return False

    def datagrams_to_send(self) -> list[bytes]:
        """Datagrams to send now, in order."""
        ex = self._exchange
        out, ex.out = ex.out, []
        return out

    def next_event(self) -> ZrtpEvent | None:
        events = self._exchange.events
        return events.popleft() if events else None

    # ---- timers (§6) ------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None."""
        # Asked on every media wake-up (50 a second in a call): no list, no min().
        ex = self._exchange
        deadline = ex.deadline
        framer = ex.framer.get_timer()
        if framer is not None and (deadline is None or framer < deadline):
            deadline = framer
        if ex.retransmit is not None and (deadline is None or ex.retransmit.next_at < deadline):
            deadline = ex.retransmit.next_at
        return deadline

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due (§6), enforce the timeouts, expire partial messages."""
        ex = self._exchange
        ex.framer.handle_timer(now)
        if ex.deadline is not None and now >= ex.deadline:
            ex.deadline = None
            if ex.state in (ZrtpState.DHPART1_SENT, ZrtpState.CONFIRM1_SENT):
                ex.fail(0xB0, ex.timeout("the initiator went silent"), now)
            elif ex.state is ZrtpState.DISCOVERY:
                ex.fail_quietly(0xB0, ex.timeout("the peer never sent Commit"))
        retransmit = ex.retransmit
        if retransmit is None or now < retransmit.next_at:
            return
        if retransmit.remaining <= 0 and not self._hello_extended(retransmit, now):
            ex.retransmit = None
            self._give_up(retransmit)
            return
        ex.send(retransmit.message)
        retransmit.remaining -= 1
        retransmit.interval = min(retransmit.interval * 2, retransmit.cap)
        retransmit.next_at = now + retransmit.interval

    def _hello_extended(self, retransmit: Retransmit, now: float) -> bool:
        """Hello goes on past its count while the peer is known to speak ZRTP."""
        ex = self._exchange
        return (
            retransmit.is_hello
            and ex.peer.known
            and now < ex.started_at + ex.config.hello_extension
        )

    def _give_up(self, retransmit: Retransmit) -> None:
        ex = self._exchange
        peer = ex.peer
        if not retransmit.is_hello:
            if ex.state is not ZrtpState.FAILED:
                ex.fail_quietly(0xB0, ex.timeout("no answer to retransmissions"))
        elif peer.hello is None and peer.mismatches:
            ex.fail_quietly(0x40, MISMATCH)
        elif peer.hello is None and peer.refused is not None:
            code, reason = peer.refused
            ex.fail_quietly(code, reason or error_reason(code))
        elif peer.hello is None:
            ex.fail_quietly(0xB0, NO_ZRTP)
        else:
            ex.fail_quietly(0xB0, ex.timeout("the peer never answered Hello"))
