"""A man in the middle of the media, run by a malicious proxy, as real processes on loopback.

Kamailio (tests/peers/mitm.py's MitmKamailio) routes calls to "bob-via-mitm" to bob, strips
a=zrtp-hash from their SDP and points both phones' media at a relay process that runs one ZRTP
exchange with each phone and passes the audio between them, decrypted. The phones cannot see
it on the wire; what gives it away is the SAS, which differs between the two ends, and, once
the phones have talked before, the retained secret the relay cannot know: each end reports the
cache mismatch (RFC 6189 §4.6.1.1), even when the relay presents the other phone's own ZID.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pidphone.drivers.certs import make_test_pki
from tests.peers.interop import Rig, has_tone, need_interop
from tests.peers.mitm import MITM_USER, MitmKamailio, MitmRun
from tests.peers.netns import private_network

pytestmark = [pytest.mark.kamailio, pytest.mark.slow]

ALICE_TONE = 1000.0
BOB_TONE = 700.0
PORT_A, PORT_B = 27000, 27002


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop(linphone=False)
    workdir = tmp_path_factory.mktemp("mitm")
    with private_network():
        pki = make_test_pki(workdir / "pki")
        kamailio = MitmKamailio(workdir / "kamailio", pki, port_a=PORT_A, port_b=PORT_B)
        kamailio.start()
        rig = Rig(workdir, pki, kamailio)
        try:
            yield rig
        finally:
            rig.close()
            kamailio.stop()


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def one_call(
    rig: Rig, alice: Any, bob: Any, target: str, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    bob_run = rig.answer(bob, duration=30, name=f"answer-{name}")
    alice_run = rig.call(alice, target, duration=3, name=f"call-{name}")
    at_alice, at_bob = alice_run.result(timeout=60), bob_run.result(timeout=30)
    # secure (0), or secure with a cached-secret mismatch to compare (4): as each report says
    for run, report in ((alice_run, at_alice), (bob_run, at_bob)):
        assert run.returncode == (4 if report["cache_mismatch"] else 0), run.describe()
    return at_alice, at_bob


def through_mitm(
    rig: Rig, alice: Any, bob: Any, name: str, *, impersonate: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    relay = MitmRun(rig.workdir / name, PORT_A, PORT_B, impersonate=impersonate)
    try:
        at_alice, at_bob = one_call(rig, alice, bob, f"sip:{MITM_USER}@127.0.0.1", name)
    finally:
        legs = relay.stop()
    return at_alice, at_bob, legs


def test_a_relay_running_two_exchanges_gives_each_end_its_own_sas(rig: Rig) -> None:
    alice = rig.config("alice", tone=ALICE_TONE)
    bob = rig.config("bob", tone=BOB_TONE)
    at_alice, at_bob, legs = through_mitm(rig, alice, bob, "mitm-fresh", impersonate=False)
    # both ends are "secure", and the relay hears everything ...
    assert at_alice["state"] == at_bob["state"] == "secure"
    assert legs["a"]["state"] == legs["b"]["state"] == "secure", legs
    assert has_tone(legs["a"]["heard"], ALICE_TONE) and has_tone(legs["b"]["heard"], BOB_TONE)
    assert has_tone(at_alice["received_frequencies"], BOB_TONE)
    assert has_tone(at_bob["received_frequencies"], ALICE_TONE)
    # ... but the SAS the two users read to each other differ: each is its own leg's
    assert at_alice["sas"] != at_bob["sas"]
    assert (legs["a"]["sas"], legs["b"]["sas"]) == (at_alice["sas"], at_bob["sas"])
    assert not at_alice["cache_mismatch"] and not at_bob["cache_mismatch"]  # strangers yet


def test_after_a_direct_call_the_relay_raises_the_cache_mismatch_at_both_ends(rig: Rig) -> None:
    alice = rig.config("alice", tone=ALICE_TONE)
    bob = rig.config("bob", tone=BOB_TONE)
    first = one_call(rig, alice, bob, "sip:bob@127.0.0.1", "direct")
    assert first[0]["state"] == first[1]["state"] == "secure"
    assert first[0]["sas"] == first[1]["sas"] and not first[0]["cache_mismatch"]

    at_alice, at_bob, legs = through_mitm(rig, alice, bob, "mitm-known", impersonate=True)
    # the relay showed each phone the other's ZID, but not the secret they share
    assert legs["a"]["phone_zid"] == first[1]["peer_zid"]
    assert legs["b"]["phone_zid"] == first[0]["peer_zid"]
    assert (
        at_alice["peer_zid"] == first[0]["peer_zid"] and at_bob["peer_zid"] == first[1]["peer_zid"]
    )
    assert at_alice["cache_mismatch"] and at_bob["cache_mismatch"]
    assert at_alice["sas"] != at_bob["sas"]
    assert not at_alice["verified"] and not at_bob["verified"]
