"""pidphone calls pidphone through Kamailio over TLS (both registered, digest auth), as two
processes: `pidphone call` and `pidphone answer` with simulated audio. ZRTP secures the call
with the same SAS at both ends, each side hears the other's tone, either side can hang up, and
a later call uses the retained secret and, once both caches say so, reports the SAS verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.interop import (
    Rig,
    ZrtpSuite,
    cached_peers,
    has_tone,
    interop_rig,
    need_interop,
    pidphone_zid,
)

pytestmark = [pytest.mark.kamailio, pytest.mark.slow]

ALICE_TONE = 1000.0
BOB_TONE = 700.0


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop(linphone=False)
    with interop_rig(tmp_path_factory.mktemp("interop-pidphone")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def assert_secure_pair(alice: dict[str, Any], bob: dict[str, Any]) -> None:
    assert alice["state"] == bob["state"] == "secure", (alice, bob)
    assert alice["sas"] == bob["sas"] and alice["sas"], (alice["sas"], bob["sas"])
    for key in ("sas_scheme", "cipher", "key_agreement", "hash", "auth_tag", "verified"):
        assert alice[key] == bob[key], key
    assert not alice["cache_mismatch"] and not bob["cache_mismatch"]
    assert has_tone(alice["received_frequencies"], BOB_TONE), alice
    assert has_tone(bob["received_frequencies"], ALICE_TONE), bob


def test_caller_hangs_up(rig: Rig) -> None:
    bob_config = rig.config("bob", tone=BOB_TONE)
    alice_config = rig.config("alice", tone=ALICE_TONE)
    bob = rig.answer(bob_config, duration=30)
    alice = rig.call(alice_config, "sip:bob@127.0.0.1", duration=3)
    at_alice = alice.result(timeout=60)
    at_bob = bob.result(timeout=30)

    assert alice.returncode == 0, alice.describe()
    assert bob.returncode == 0, bob.describe()
    assert_secure_pair(at_alice, at_bob)
    # both offered their defaults: X3M3 first (examples/pidphone.toml), so a post-quantum
    # call: the fragmented Commit and DHPart1 crossed the media ports, AES3 and S512 chosen
    assert (at_alice["key_agreement"], at_alice["cipher"]) == ("X3M3", "AES3")
    assert at_alice["hash"] == "S512" and at_alice["post_quantum"] and at_bob["post_quantum"]
    assert at_alice["reason"] == "Hung up"
    assert at_bob["reason"] == "Hung up by peer"
    assert at_bob["remote"] == "sip:alice@127.0.0.1"
    assert any("proto=tls" in line for line in rig.kamailio.requests("BYE"))


def test_callee_hangs_up_with_a_chosen_suite(rig: Rig) -> None:
    suite = ZrtpSuite("DH2k", "AES1", "HS32", "S384", "B256")
    bob = rig.answer(rig.config("bob", tone=BOB_TONE, suite=suite), duration=3)
    alice = rig.call(
        rig.config("alice", tone=ALICE_TONE, suite=suite), "sip:bob@127.0.0.1", duration=30
    )
    at_bob = bob.result(timeout=60)
    at_alice = alice.result(timeout=30)

    assert alice.returncode == 0, alice.describe()
    assert bob.returncode == 0, bob.describe()
    assert_secure_pair(at_alice, at_bob)
    assert (at_alice["key_agreement"], at_alice["cipher"], at_alice["auth_tag"]) == (
        "DH2k",
        "AES1",
        "HS32",
    )
    assert (at_alice["hash"], at_alice["sas_scheme"]) == ("S384", "B256")
    assert at_bob["reason"] == "Hung up"
    assert at_alice["reason"] == "Hung up by peer"


def test_ml_kem_alone_with_aes_gcm(rig: Rig) -> None:
    """MLK3 (ML-KEM-1024 without X448) and SRTP AES-GCM: the other post-quantum agreement and
    the AEAD profile bzrtp 5.5 offers first, through Kamailio with real sockets."""
    suite = ZrtpSuite("MLK3", "AES3", "GCM", "S512", "B32")
    bob = rig.answer(rig.config("bob", tone=BOB_TONE, suite=suite), duration=30)
    alice = rig.call(
        rig.config("alice", tone=ALICE_TONE, suite=suite), "sip:bob@127.0.0.1", duration=3
    )
    at_alice = alice.result(timeout=60)
    at_bob = bob.result(timeout=30)

    assert alice.returncode == 0, alice.describe()
    assert bob.returncode == 0, bob.describe()
    assert_secure_pair(at_alice, at_bob)
    assert (at_alice["key_agreement"], at_alice["cipher"], at_alice["auth_tag"]) == (
        "MLK3",
        "AES3",
        "GCM",
    )
    assert at_alice["post_quantum"] and at_bob["post_quantum"]


def test_retained_secret_then_verified(rig: Rig) -> None:
    bob_config = rig.config("bob", tone=BOB_TONE)
    alice_config = rig.config("alice", tone=ALICE_TONE)

    def one_call(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        bob = rig.answer(bob_config, duration=30, name=f"answer-{name}")
        alice = rig.call(alice_config, "sip:bob@127.0.0.1", duration=2, name=f"call-{name}")
        at_alice, at_bob = alice.result(timeout=60), bob.result(timeout=30)
        assert alice.returncode == 0, alice.describe()
        assert bob.returncode == 0, bob.describe()
        return at_alice, at_bob

    first = one_call("1")
    assert_secure_pair(*first)
    assert not first[0]["verified"]
    alice_peers, bob_peers = cached_peers(alice_config), cached_peers(bob_config)
    assert list(alice_peers.values()) == list(bob_peers.values()) == [False]
    assert first[0]["peer_zid"] in alice_peers and first[1]["peer_zid"] in bob_peers

    second = one_call("2")  # the retained secret matches on both sides: no mismatch
    assert_secure_pair(*second)
    assert not second[0]["verified"]
    assert second[0]["sas"] != first[0]["sas"]
    for config, peer in ((alice_config, first[0]["peer_zid"]), (bob_config, first[1]["peer_zid"])):
        verified = pidphone_zid(config, "verify", peer)
        assert verified.returncode == 0, verified.stderr
    assert list(cached_peers(alice_config).values()) == [True]

    third = one_call("3")
    assert_secure_pair(*third)
    assert third[0]["verified"] and third[1]["verified"]
