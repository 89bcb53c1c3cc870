"""pidphone against bzrtp 5.5, replayed byte for byte from runs recorded by hand.

tests/data/zrtp/pidphone-vs-bzrtp55.json holds 36 runs of pidphone's ZrtpSession against
bzrtp 5.5.15 with its post-quantum engine (`python -m tests.peers.bzrtp --record-versus`):
X3M3, MLK3 and MLK2, each auth tag (GCM, HS80, HS32) and SAS type, pidphone as initiator and
as responder. Each run here gives a new session the recorded seed and ML-KEM encapsulations,
and bzrtp's recorded packets at their recorded times (`RecordedPeer`, in the place of the live
library): every packet pidphone sends must be the recorded one, its SAS bzrtp's, its SRTP keys
bzrtp's crossed, and SRTP must pass each way between pidphone's keys and bzrtp's (libsrtp on
bzrtp's side for AES-GCM, as in Linphone).
"""

from __future__ import annotations

import random

import pytest

from pidphone.zrtp import MemoryZidCache, Secured, SrtpKeysReady, ZrtpConfig, ZrtpSession
from pidphone.zrtp.crc import crc32c
from pidphone.zrtp.fragment import FRAGMENT_FIRST_BYTE
from tests.bzrtp_transcripts import (
    RecordedPeer,
    ReplayedEncapsulation,
    srtp_both_ways,
    versus_runs,
)
from tests.peers.bzrtp import PIDPHONE_ZID, ROLES, VERSUS_AUTH_TAGS, VERSUS_SAS, versus_session

RUNS = versus_runs()


def _with_crc(packet: bytes) -> bytes:
    return packet[:-4] + crc32c(packet[:-4]).to_bytes(4, "little")


def test_every_combination_and_both_roles_were_recorded() -> None:
    wanted = {
        f"{ka}-{tag}-{sas}-pidphone-{role}"
        for ka in ("X3M3", "MLK3", "MLK2")
        for tag in VERSUS_AUTH_TAGS
        for sas in VERSUS_SAS
        for role in ROLES
    }
    assert set(RUNS) == wanted


@pytest.mark.parametrize("name", sorted(RUNS))
def test_pidphone_replays_its_side_against_bzrtp(name: str) -> None:
    run = RUNS[name]
    config = ZrtpConfig(
        key_agreements=(run["key_agreement"],),
        auth_tags=(run["auth_tag"],),
        sas_types=(run["sas"],),
        passive=run["role"] == "responder",
    )
    session = ZrtpSession(
        cache=MemoryZidCache(PIDPHONE_ZID),
        ssrc=0xB0B,
        config=config,
        random_bytes=random.Random(run["seed"]).randbytes,
        encapsulate_mlkem=ReplayedEncapsulation(run["encapsulations"]),
    )
    bzrtp = RecordedPeer(run["wire"])
    events: list[object] = []

    def done() -> bool:
        while (event := session.next_event()) is not None:
            events.append(event)
        return bzrtp.finished and any(isinstance(e, Secured) for e in events)

    wire = versus_session(bzrtp, session, done=done)
    assert bzrtp.mismatches == []
    assert bzrtp.finished
    assert len(wire) == len(run["wire"])

    (secured,) = [e for e in events if isinstance(e, Secured)]
    (keys,) = [e for e in events if isinstance(e, SrtpKeysReady)]
    theirs = run["bzrtp"]
    assert secured.sas == theirs["sas"] and secured.role == run["role"]
    assert secured.key_agreement == theirs["key_agreement"] == run["key_agreement"]
    assert (secured.hash, secured.cipher) == (theirs["hash"], theirs["cipher"]) == ("S512", "AES3")
    assert secured.post_quantum
    assert keys.send_key.hex() == theirs["peer_srtp_key"]
    assert keys.recv_key.hex() == theirs["self_srtp_key"]
    assert keys.send_salt.hex() == theirs["peer_srtp_salt"]
    profile = "AEAD_AES_256_GCM" if run["auth_tag"] == "GCM" else keys.profile
    assert keys.profile == profile and len(keys.send_salt) == (
        12 if run["auth_tag"] == "GCM" else 14
    )
    ours = (keys.send_key, keys.send_salt, keys.recv_key, keys.recv_salt)
    assert srtp_both_ways(keys.profile, ours, theirs) == 5

    fragments = [d for _, who, d in run["wire"] if bytes.fromhex(d[:2])[0] == FRAGMENT_FIRST_BYTE]
    senders = {who for _, who, d in run["wire"] if d.startswith("11")}
    # MLK2's messages fit whole; X3M3 and MLK3 fragment both the Commit and the DHPart1
    assert bool(fragments) == (run["key_agreement"] != "MLK2")
    assert senders == (set() if run["key_agreement"] == "MLK2" else {"bzrtp", "pidphone"})


def test_a_changed_bzrtp_packet_is_noticed() -> None:
    """The replay can fail: a bit of bzrtp's DHPart1 changed (its ciphertext, CRC fixed) gives
    pidphone another secret, so bzrtp's Confirm1 does not authenticate and pidphone does not
    send the recorded Confirm2."""
    run = dict(RUNS["X3M3-GCM-B32-pidphone-initiator"])
    wire = [list(row) for row in run["wire"]]
    at = max(i for i, (_, who, d) in enumerate(wire) if who == "bzrtp" and d.startswith("11"))
    packet = bytearray(bytes.fromhex(wire[at][2]))
    packet[-40] ^= 1
    wire[at][2] = _with_crc(bytes(packet)).hex()
    session = ZrtpSession(
        cache=MemoryZidCache(PIDPHONE_ZID),
        ssrc=0xB0B,
        config=ZrtpConfig(key_agreements=("X3M3",), auth_tags=("GCM",), sas_types=("B32",)),
        random_bytes=random.Random(run["seed"]).randbytes,
        encapsulate_mlkem=ReplayedEncapsulation(run["encapsulations"]),
    )
    bzrtp = RecordedPeer(wire)
    versus_session(bzrtp, session, done=lambda: bzrtp.finished, until_ms=2_000)
    assert bzrtp.mismatches or not bzrtp.finished
