"""Reading the bzrtp 5.5 transcripts of tests/data/zrtp (recorded with tests/peers/bzrtp.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pylibsrtp

from pidphone.rtp.packet import build_rtp
from pidphone.srtp import new_context
from pidphone.zrtp.fragment import Reassembler
from pidphone.zrtp.messages import split_packet

DATA = Path(__file__).parent / "data" / "zrtp"
PQ_TRANSCRIPTS = sorted(p.stem for p in DATA.glob("bzrtp55-*.json"))


@dataclass(frozen=True)
class Row:
    at_ms: int
    sender: str
    kind: str
    data: bytes


@dataclass(frozen=True)
class Transcript:
    name: str
    rows: list[Row]
    record: dict[str, Any]

    @property
    def initiator(self) -> str:
        return str(self.record["initiator"])

    @property
    def responder(self) -> str:
        return "alice" if self.initiator == "bob" else "bob"

    def messages(self) -> list[tuple[str, bytes]]:
        """(sender, message) in wire order, fragments reassembled."""
        reassembler = Reassembler()
        found: list[tuple[str, bytes]] = []
        for row in self.rows:
            if row.kind == "fragment":
                whole = reassembler.receive(row.data, row.at_ms / 1000)
                if whole is not None:
                    found.append((row.sender, whole.message))
            else:
                found.append((row.sender, split_packet(row.data)[2]))
        return found

    def message(self, sender: str, type_block: bytes) -> bytes:
        return next(m for who, m in self.messages() if who == sender and m[4:12] == type_block)


def load(name: str) -> Transcript:
    rows = []
    for line in (DATA / f"{name}.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        at_ms, sender, kind, data = line.split("\t")
        rows.append(Row(int(at_ms), sender, kind, bytes.fromhex(data)))
    return Transcript(name, rows, json.loads((DATA / f"{name}.json").read_text()))


# ---- pidphone against bzrtp 5.5: runs recorded by tests/peers/bzrtp.py --record-versus -------

VERSUS = DATA / "pidphone-vs-bzrtp55.json"
"""Runs of pidphone's ZrtpSession against bzrtp 5.5 (both roles, every post-quantum key
agreement, auth tag and SAS type): bzrtp's packets and secrets, pidphone's packets, the seed
of pidphone's randomness and the ML-KEM encapsulations it made (whose randomness
`cryptography` draws itself)."""


def versus_runs() -> dict[str, dict[str, Any]]:
    """The recorded runs by name, e.g. "X3M3-GCM-B32-pidphone-initiator"."""
    runs: list[dict[str, Any]] = json.loads(VERSUS.read_text())["runs"]
    return {run["name"]: run for run in runs}


class ReplayedEncapsulation:
    """`kem.MlKemEncapsulate` giving the recorded results in order (a run that asks for more,
    or for another variant, was not the recorded one)."""

    def __init__(self, recorded: list[list[str]]) -> None:
        self._left = [(v, bytes.fromhex(s), bytes.fromhex(c)) for v, s, c in recorded]

    def __call__(self, variant: str, public_key: bytes) -> tuple[bytes, bytes]:
        recorded_variant, secret, ciphertext = self._left.pop(0)
        assert variant == recorded_variant, (variant, recorded_variant)
        return secret, ciphertext


class RecordedPeer:
    """bzrtp as a recorded run saw it, in `versus_session`'s place of a live bzrtp: it sends
    its recorded packets at their recorded times, each once everything recorded before it has
    happened, and checks that every packet it is given is the one pidphone sent then."""

    def __init__(self, wire: list[list[Any]], peer: str = "bzrtp") -> None:
        self._rows = [(int(at), who, bytes.fromhex(data)) for at, who, data in wire]
        self._peer = peer
        self._now = 0
        self.mismatches: list[str] = []

    @property
    def finished(self) -> bool:
        return not self._rows

    def start(self, now_ms: int) -> None:
        self._now = now_ms

    def iterate(self, now_ms: int) -> None:
        self._now = now_ms

    def datagrams_to_send(self) -> list[bytes]:
        out: list[bytes] = []
        while self._rows and self._rows[0][1] == self._peer and self._rows[0][0] <= self._now:
            out.append(self._rows.pop(0)[2])
        return out

    def receive_datagram(self, packet: bytes) -> int:
        if not self._rows or self._rows[0][1] == self._peer:
            self.mismatches.append(f"at {self._now} ms pidphone sent more: {packet[:24].hex()}")
            return 0
        at, _, expected = self._rows.pop(0)
        if packet != expected:
            self.mismatches.append(f"at {self._now} ms (recorded {at}) pidphone sent other bytes")
        return 0


LIBSRTP_PROFILES = {
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
"""What libsrtp's Python binding offers (no AES-256 counter mode): there, bzrtp's side is
libsrtp, as in Linphone; elsewhere it is our own context keyed with bzrtp's keys."""


class _Srtp(Protocol):
    def protect(self, rtp: bytes) -> bytes: ...
    def unprotect(self, srtp: bytes) -> bytes: ...


def _bzrtp_side(profile: str, key: bytes, salt: bytes, *, outbound: bool) -> _Srtp:
    if profile not in LIBSRTP_PROFILES:
        return new_context(profile, key, salt)
    policy = pylibsrtp.Policy(
        key=key + salt,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        ),
        srtp_profile=LIBSRTP_PROFILES[profile],
    )
    return pylibsrtp.Session(policy)


def srtp_both_ways(
    profile: str,
    pidphone: tuple[bytes, bytes, bytes, bytes],
    bzrtp: dict[str, Any],
    packets: int = 5,
) -> int:
    """SRTP audio each way under `profile`: pidphone's keys (send key, send salt, receive key,
    receive salt) on one side, bzrtp's recorded ones on the other. Returns how many packets
    each side decrypted to the bytes sent (an SrtpError or libsrtp error means the keys
    disagree)."""
    send_key, send_salt, recv_key, recv_salt = pidphone
    ours_out = new_context(profile, send_key, send_salt)
    ours_in = new_context(profile, recv_key, recv_salt)
    theirs_in = _bzrtp_side(
        profile,
        bytes.fromhex(bzrtp["peer_srtp_key"]),
        bytes.fromhex(bzrtp["peer_srtp_salt"]),
        outbound=False,
    )
    theirs_out = _bzrtp_side(
        profile,
        bytes.fromhex(bzrtp["self_srtp_key"]),
        bytes.fromhex(bzrtp["self_srtp_salt"]),
        outbound=True,
    )
    done = 0
    for n in range(packets):
        ours = build_rtp(0, 100 + n, 160 * n, 0xB0B, bytes([n]) * 160)
        theirs = build_rtp(0, 900 + n, 160 * n, 0xA11CE, bytes([0x80 | n]) * 160)
        assert theirs_in.unprotect(ours_out.protect(ours)) == ours
        assert ours_in.unprotect(theirs_out.protect(theirs)) == theirs
        done += 1
    return done
