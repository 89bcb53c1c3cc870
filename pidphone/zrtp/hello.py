"""Our Hello and which Hello is the peer's (RFC 6189 §4.1, §5.2, §8.1, §9.1).

`OurHello` is made once per stream: the hash chain H0-H3 (§9) and the Hello whose MAC H2 keys.
`PeerHello` decides whose Hello counts. Anyone can send UDP to the media port and the CRC is
no secret, so a Hello is taken only if it hashes to the peer's a=zrtp-hash (§8.1). Without
one, up to `MAX_CANDIDATES` different Hellos are held, none trusted, until a Commit, DHPart1 or
Confirm1 reveals an H2 that hashes to one's H3 and keys its MAC (§9.1): that one is the peer's.
From then on the peer is bound to that Hello's SSRC.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable
from typing import TypeVar

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import algorithms as alg
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.kdf import digest, implicit_mac
from pidphone.zrtp.messages import Commit, DHPart1, DHPart2, Hello
from pidphone.zrtp.state import DropError

VERSION = "1.10"
MAX_CANDIDATES = 4
"""Different Hellos held while no a=zrtp-hash says which is the peer's: a forger's Hello cannot
push the peer's out, and memory stays bounded."""
MAX_ACKED_SSRCS = 8
"""SSRCs whose HelloACK is remembered before the peer's Hello is known."""
MISMATCH = "peer Hello does not match its a=zrtp-hash"


def sha256(data: bytes) -> bytes:
    """The implicit hash (§5.1.2.2): hash chain, Hello/Commit/DHPart MACs, a=zrtp-hash."""
    return digest(data, "sha256")


M = TypeVar("M", bound=Hello | Commit | DHPart1 | DHPart2)


def sealed(message: M, key: bytes) -> tuple[M, bytes]:
    """The message with its trailing implicit MAC (§5.1.2.2) set, and its bytes."""
    unsealed = bytes(message)
    closed = dataclasses.replace(message, mac=implicit_mac(key, unsealed[:-8]))
    return closed, bytes(closed)


def mac_ok(raw: bytes, key: bytes) -> bool:
    """The implicit MAC that closes `raw` (a Hello, Commit or DHPart) is keyed by `key`."""
    return hmac.compare_digest(implicit_mac(key, raw[:-8]), raw[-8:])


def matches(hello_raw: bytes, expected: bytes) -> bool:
    """The Hello message hashes to the a=zrtp-hash digest (§8.1)."""
    return hmac.compare_digest(sha256(hello_raw), expected)


def algorithm_lists(hello: Hello) -> dict[str, tuple[str, ...]]:
    """A Hello's offered algorithms by kind, as `algorithms.choose_suite` takes them."""
    return {
        "hashes": hello.hashes,
        "ciphers": hello.ciphers,
        "auth_tags": hello.auth_tags,
        "key_agreements": hello.key_agreements,
        "sas_types": hello.sas_types,
    }


class OurHello:
    """Our hash chain (§9: H0 random, each H the SHA-256 of the one before) and our Hello."""

    def __init__(self, config: ZrtpConfig, zid: bytes, random_bytes: Callable[[int], bytes]):
        self.h0 = random_bytes(32)
        self.h1 = sha256(self.h0)
        self.h2 = sha256(self.h1)
        self.h3 = sha256(self.h2)
        self.offered: dict[str, tuple[str, ...]] = alg.with_post_quantum_companions(
            {
                "hashes": tuple(alg.wire(n) for n in config.hashes),
                "ciphers": tuple(alg.wire(n) for n in config.ciphers),
                "auth_tags": tuple(alg.wire(n) for n in config.auth_tags),
                "key_agreements": tuple(alg.wire(n) for n in config.key_agreements),
                "sas_types": tuple(alg.wire(n) for n in config.sas_types),
            }
        )
        """What our Hello offers, as wire names by kind."""
        hello = Hello(
            version=VERSION,
            client_id=config.client_id.ljust(16).encode("ascii"),
            h3=self.h3,
            zid=zid,
            passive=config.passive,
            hashes=self.offered["hashes"],
            ciphers=self.offered["ciphers"],
            auth_tags=self.offered["auth_tags"],
            key_agreements=self.offered["key_agreements"],
            sas_types=self.offered["sas_types"],
        )
        self.raw = sealed(hello, self.h2)[1]

    @property
    def hash(self) -> str:
        """Our `a=zrtp-hash` value (§8.1): version, space, hex SHA-256 of our Hello."""
        return f"{VERSION} {sha256(self.raw).hex()}"

    def forget(self) -> None:
        """Drop the preimages still unrevealed (H0, H1): the stream is over."""
        self.h0 = self.h1 = b""


class PeerHello:
    """The peer's Hello: bound (by a=zrtp-hash or a hash chain) or held as a candidate."""

    def __init__(self) -> None:
        self.known = False
        """The peer speaks ZRTP (a=zrtp-hash came, or a Hello or Ping did): Hello is extended."""
        self.expected: bytes | None = None
        """The a=zrtp-hash digest, once the SDP gave one."""
        self.hello: Hello | None = None
        """The bound Hello, else the first candidate."""
        self.raw = b""
        self.ssrc: int | None = None
        """The SSRC of the bound Hello: every later packet must carry it."""
        self.candidates: dict[bytes, tuple[Hello, int]] = {}
        """Unproven Hellos (no a=zrtp-hash), raw message -> (Hello, SSRC), first one first."""
        self.acked_ssrcs: set[int] = set()
        self.mismatches = 0
        """Hellos dropped for not hashing to the a=zrtp-hash."""
        self.refused: tuple[int, str | None] | None = None
        """The §5.9 code (and reason) an unproven Hello would have failed the exchange with."""

    @property
    def bound(self) -> bool:
        return self.ssrc is not None

    @property
    def zid(self) -> bytes | None:
        """The bound peer's ZID (None while no Hello is proven)."""
        return self.hello.zid if self.hello and self.ssrc is not None else None

    def bind(self, hello: Hello, raw: bytes, ssrc: int) -> None:
        """This Hello is the peer's: keep it, its SSRC, and forget the other candidates."""
        self.hello, self.raw, self.ssrc = hello, raw, ssrc
        self.candidates.clear()

    def may_send(self, ssrc: int) -> bool:
        """Whether `ssrc` may be the peer's: the bound Hello's, or a candidate's (a peer sends
        its Hello before any message that could need fragments)."""
        if self.ssrc is not None:
            return ssrc == self.ssrc
        return any(held_ssrc == ssrc for _, held_ssrc in self.candidates.values())

    def candidate_ssrc(self) -> int:
        """The SSRC of the candidate held as `hello` (the first one)."""
        held = self.candidates.get(self.raw)
        if held is None:
            raise LocalProtocolError("no candidate Hello to bind")
        return held[1]

    def hold(self, hello: Hello, raw: bytes, ssrc: int) -> None:
        """An unproven Hello, kept until a hash chain proves it (bounded)."""
        if len(self.candidates) >= MAX_CANDIDATES:
            raise DropError("unexpected")
        self.candidates[raw] = (hello, ssrc)
        if self.hello is None:
            self.hello, self.raw = hello, raw

    def refusal(
        self, hello: Hello, our_zid: bytes, first_stream_zid: bytes | None
    ) -> tuple[int, str | None] | None:
        """Why this Hello cannot start an exchange with us (§5.9 code, reason), if it cannot."""
        if not hello.version.startswith("1.1"):
            return (0x30, None)
        if hello.zid == our_zid:
            return (0x90, None)
        if first_stream_zid is not None and hello.zid != first_stream_zid:
            return (0x40, "multistream Hello from another ZID than the first stream")
        return None

    def sort(self, expected: bytes) -> tuple[Hello, bytes, int] | None:
        """The a=zrtp-hash came while candidates were held: the matching one, if any; every
        other candidate is dropped (and counted as a mismatch)."""
        matching = [
            (hello, raw, ssrc)
            for raw, (hello, ssrc) in self.candidates.items()
            if matches(raw, expected)
        ]
        self.mismatches += len(self.candidates) - len(matching)
        self.candidates.clear()
        self.hello, self.raw = None, b""
        return matching[0] if matching else None

    def prove(self, h2: bytes, zid: bytes, ssrc: int) -> tuple[Hello, bytes] | None:
        """The Hello (bound, or one candidate) whose H3 is the hash of `h2` and whose MAC `h2`
        keys (§9.1): a message revealing `h2` comes from that Hello's sender."""
        h3 = sha256(h2)
        if self.ssrc is not None and self.hello is not None:
            options = [(self.hello, self.raw, self.ssrc)]
        else:
            options = [(hello, raw, s) for raw, (hello, s) in self.candidates.items()]
        for hello, raw, hello_ssrc in options:
            if (
                hello_ssrc == ssrc
                and hello.zid == zid
                and hmac.compare_digest(h3, hello.h3)
                and mac_ok(raw, h2)
            ):
                return hello, raw
        return None

    def chain_ok(self, h1: bytes) -> bool:
        """`h1` (from a DHPart1, or a Multistream Confirm1's H0) proves the Hello we hold:
        its H2 hashes to that Hello's H3 and keys its MAC (§9.1)."""
        h2 = sha256(h1)
        hello = self.hello
        return (
            hello is not None and hmac.compare_digest(sha256(h2), hello.h3) and mac_ok(self.raw, h2)
        )

    @property
    def acked(self) -> bool:
        """Our Hello is acknowledged by the sender of the Hello we would commit to."""
        if self.ssrc is not None:
            return self.ssrc in self.acked_ssrcs
        if len(self.candidates) != 1:
            return False  # none yet, or several and no way to tell which is the peer's
        ((_, ssrc),) = self.candidates.values()
        return ssrc in self.acked_ssrcs

    def ack(self, ssrc: int) -> None:
        """A HelloACK from `ssrc` (bounded, since anyone can send one)."""
        if ssrc not in self.acked_ssrcs:
            if len(self.acked_ssrcs) >= MAX_ACKED_SSRCS:
                raise DropError("unexpected")
            self.acked_ssrcs.add(ssrc)
