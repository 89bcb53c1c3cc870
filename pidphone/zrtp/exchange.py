"""What one ZRTP stream knows and sends, shared by the handlers of each RFC 6189 section.

`ZrtpSession` (session.py) is the public object; it owns one `Exchange` and hands each
received message to the handler its state table names (state.py). The handlers live with the
section they implement: discovery.py (§4.1), commit.py (§4.2), agreement.py (§4.4.1),
multistream.py (§4.4.3), confirm.py (§4.6), termination.py (§4.7, §5.9, §5.13). They read and
write the fields below; the state itself changes only through `move`, along
`state.TRANSITIONS`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.agreement import KeyAgreement
from pidphone.zrtp.cache import ZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.events import PeerHelloReceived, Secured, SecurityLost, ZrtpEvent, ZrtpFailed
from pidphone.zrtp.framing import Framer
from pidphone.zrtp.hello import OurHello, PeerHello
from pidphone.zrtp.kem import MlKemEncapsulate, mlkem_encapsulate
from pidphone.zrtp.keys import ExchangeKeys
from pidphone.zrtp.messages import Commit, DHPart1, DHPart2, Error, Hello
from pidphone.zrtp.multistream import FirstStream
from pidphone.zrtp.retained import RetainedSecrets
from pidphone.zrtp.state import FailError, ZrtpInput, ZrtpState, error_reason, next_state

Role = Literal["initiator", "responder"]
T = TypeVar("T")


def have(value: T | None, what: str) -> T:
    """`value`, which the state guarantees here; without it the fault is ours (§5.9 0x20)."""
    if value is None:
        raise FailError(0x20, f"{error_reason(0x20)}: no {what}")
    return value


@dataclass
class Retransmit:
    """One message being retransmitted (§6); only Hello and the initiator's messages are."""

    message: bytes
    next_at: float
    interval: float
    cap: float
    remaining: int
    is_hello: bool = False


class Exchange:
    """One stream's exchange: its state, what each side sent, the keys, and the outputs."""

    def __init__(
        self,
        *,
        cache: ZidCache,
        ssrc: int,
        config: ZrtpConfig,
        random_bytes: Callable[[int], bytes],
        first_stream: FirstStream | None,
        encapsulate_mlkem: MlKemEncapsulate = mlkem_encapsulate,
    ) -> None:
        self.cache = cache
        self.config = config
        self.random = random_bytes
        self.encapsulate_mlkem = encapsulate_mlkem
        """ML-KEM encapsulation (`cryptography` draws its randomness inside; a replay gives the
        recorded result instead)."""
        self.first_stream = first_stream
        """The call's first stream, for a Multistream stream (§4.4.3); else None."""
        self.zid = cache.our_zid
        # random (§5), but in 1..0x8000: see framing.py
        self.framer = Framer(
            ssrc, (int.from_bytes(random_bytes(2), "big") & 0x7FFF) + 1, config.mtu
        )
        self.ours = OurHello(config, self.zid, random_bytes)
        self.peer = PeerHello()
        self.state = ZrtpState.IDLE
        self.out: list[bytes] = []
        self.events: deque[ZrtpEvent] = deque()
        self.started_at = 0.0
        self.retransmit: Retransmit | None = None
        self.deadline: float | None = None
        """When a silent peer fails the exchange (§6: the responder's timeout, Hello's end)."""
        self.suspect: str | None = None
        """The last authentication failure of a peer message, for a timeout's reason."""
        # the key agreement (§4.2-§4.6)
        self.role: Role | None = None
        self.suite: alg.Suite | None = None
        self.agreement: KeyAgreement | None = None
        self.commit: Commit | None = None
        """The Commit in force: ours while we initiate, else the peer's we answered."""
        self.commit_raw = b""
        self.own_part_raw = b""
        """Our DHPart (DHPart2 made with our Commit, or the DHPart1 we answer with)."""
        self.peer_part: DHPart1 | DHPart2 | None = None
        self.peer_part_raw = b""
        self.keys: ExchangeKeys | None = None
        self.confirm_raw = b""
        self.peer_confirm_raw = b""
        self.peer_sas_verified = False
        self.peer_cache_expiry = 0xFFFFFFFF
        self.secrets = RetainedSecrets(cache, random_bytes)
        self.secured: Secured | None = None
        self.session_key: bytes | None = None
        """ZRTPSess of a secured DH-mode stream, for the call's Multistream streams."""
        self.used_nonces: set[bytes] = set()
        """Multistream Commit nonces this (first) stream's streams have taken (§4.4.3.1)."""
        self.goclear_refused = False

    # ---- state ------------------------------------------------------------------------

    def move(self, event: ZrtpInput) -> None:
        """Change state along `state.TRANSITIONS`."""
        self.state = next_state(self.state, event)

    @property
    def multistream(self) -> bool:
        return self.first_stream is not None

    def zids(self) -> tuple[bytes, bytes]:
        """(ZIDi, ZIDr)."""
        peer = have(self.peer.hello, "peer Hello").zid
        return (self.zid, peer) if self.role == "initiator" else (peer, self.zid)

    def responder_hello(self) -> bytes:
        """The responder's Hello, the start of total_hash (§4.4.1.4) and of hvi (§4.4.1.1)."""
        return self.ours.raw if self.role == "responder" else self.peer.raw

    @property
    def answer_raw(self) -> bytes:
        """The responder's latest answer, sent again when the peer's message it answered comes
        again (§6: only the initiator retransmits): Confirm1 once sent, else DHPart1."""
        return self.confirm_raw or self.own_part_raw

    def bind(self, hello: Hello, raw: bytes, ssrc: int) -> None:
        """This Hello is the peer's (see hello.py): say so."""
        self.peer.bind(hello, raw, ssrc)
        self.events.append(PeerHelloReceived(hello.zid, hello.client_id, hello.version))

    # ---- output -----------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        self.out.extend(self.framer.frame(message))

    def send_retransmitted(self, message: bytes, now: float) -> None:
        """Send `message` and retransmit it until stopped (§6, the initiator's timer T2)."""
        self.send(message)
        config = self.config
        self.retransmit = Retransmit(
            message,
            now + config.retransmit_interval,
            config.retransmit_interval,
            config.retransmit_interval_cap,
            config.retransmissions,
        )

    def send_hello(self, now: float) -> None:
        """Send our Hello and retransmit it (§6, timer T1) until an answer stops it."""
        config = self.config
        self.send(self.ours.raw)
        self.retransmit = Retransmit(
            self.ours.raw,
            now + config.hello_interval,
            config.hello_interval,
            config.hello_interval_cap,
            config.hello_retransmissions,
            is_hello=True,
        )

    def stop_hello(self) -> None:
        """The peer heard our Hello (Table 9: HelloACK or Commit stops it)."""
        if self.retransmit is not None and self.retransmit.is_hello:
            self.retransmit = None

    # ---- failure ----------------------------------------------------------------------

    def fail(self, code: int, reason: str, now: float) -> None:
        """Fail, telling the peer with Error (retransmitted until ErrorACK)."""
        if self.state in (ZrtpState.FAILED, ZrtpState.CLOSED):
            return
        self.fail_quietly(code, reason)
        self.send_retransmitted(bytes(Error(code)), now)

    def fail_quietly(self, code: int, reason: str, *, local: bool = True) -> None:
        """Fail without a word to the peer (it failed, is silent, or is not the peer)."""
        if self.state in (ZrtpState.FAILED, ZrtpState.CLOSED):
            return
        was_secure = self.state is ZrtpState.SECURE
        self.move(ZrtpInput.FAILURE)
        self.retransmit = None
        self.deadline = None
        self.wipe()
        if was_secure:
            self.events.append(SecurityLost(reason))
        else:
            self.events.append(ZrtpFailed(code, reason, local))

    def timeout(self, what: str) -> str:
        """A timeout's reason, naming the last peer message that failed its check, if any."""
        suspect = f" (dropped {self.suspect})" if self.suspect else ""
        return f"Protocol timeout: {what}{suspect}"

    def wipe(self) -> None:
        """Forget the key agreement's private part and any postponed retained secret."""
        if self.agreement is not None:
            self.agreement.forget()
        self.agreement = None
        self.secrets.forget()
