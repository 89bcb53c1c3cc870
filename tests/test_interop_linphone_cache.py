"""Retained secrets and the SAS-verified flag (RFC 6189 §4.9, §7.1) between pidphone and
linphonec, over three calls through Kamailio over TLS, with the same ZID caches throughout
(pidphone's file cache, one linphonec process):

1. first call: both sides learn each other's ZID and a retained secret; nothing verified;
2. second call: the retained secret is found and used on both sides (no cache mismatch, the
   exchange succeeds with s1 = rs1); the SAS is then confirmed on both sides — linphonec's
   `zrtp-set-verified` during the call, `pidphone zid verify PEER` after it;
3. third call: both report the SAS as verified, which the caches only do when the retained
   secret matched again.

And a retained secret that does not match is reported by both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.peers.interop import (
    InteropCall,
    Rig,
    cached_peers,
    call_linphone,
    has_tone,
    interop_rig,
    need_interop,
    pidphone_zid,
    same_sas,
)

pytestmark = [pytest.mark.kamailio, pytest.mark.linphone, pytest.mark.slow]


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    need_interop()
    with interop_rig(tmp_path_factory.mktemp("interop-cache")) as rig:
        yield rig


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    yield module_rig
    module_rig.close()


def assert_secure(result: InteropCall) -> None:
    report = result.report
    assert result.run.returncode == 0, result.run.describe()
    assert report["state"] == "secure", report
    assert same_sas(report["sas"], result.linphone_sas), (report["sas"], result.linphone_sas)
    assert not report["cache_mismatch"], report
    assert has_tone(report["received_frequencies"], 700), report
    assert has_tone(result.linphone_heard, 1000), result.linphone_heard


@pytest.mark.parametrize("pidphone_calls", [True, False], ids=["pidphone-calls", "linphonec-calls"])
def test_retained_secret_then_verified_on_both_sides(rig: Rig, pidphone_calls: bool) -> None:
    linphone = rig.linphone("linphone", tone=700, auto_answer=pidphone_calls)
    config = rig.config("alice" if pidphone_calls else "bob", tone=1000)

    first = call_linphone(rig, linphone, config, pidphone_calls=pidphone_calls, call=1)
    assert_secure(first)
    assert not first.report["verified"] and not first.linphone_verified
    peers = cached_peers(config)
    assert list(peers.values()) == [False], peers  # one peer, linphonec, not verified
    (peer_zid,) = peers
    assert first.report["peer_zid"] == peer_zid

    second = call_linphone(
        rig,
        linphone,
        config,
        pidphone_calls=pidphone_calls,
        call=2,
        during=linphone.set_sas_verified,
    )
    assert_secure(second)
    assert not second.report["verified"] and not second.linphone_verified
    assert second.report["peer_zid"] == peer_zid
    assert second.report["sas"] != first.report["sas"]  # a fresh exchange, a fresh SAS
    assert "mismatch" not in linphone.log().lower()
    verified = pidphone_zid(config, "verify", peer_zid[:8])
    assert verified.returncode == 0, verified.stderr
    assert cached_peers(config) == {peer_zid: True}

    third = call_linphone(rig, linphone, config, pidphone_calls=pidphone_calls, call=3)
    assert_secure(third)
    assert third.report["verified"], third.report
    assert third.linphone_verified
    assert [s.previously_verified for s in linphone.zrtp_secrets()][-1] is True


def test_cached_secret_mismatch_is_seen_on_both_sides(rig: Rig) -> None:
    """Our retained secrets for linphonec are replaced (what a man in the middle on an earlier
    call would have left): the next call still completes with matching SAS, but both sides
    report the cache mismatch (RFC 6189 §4.6.1.1), so the SAS must be compared again."""
    linphone = rig.linphone("linphone", tone=700, auto_answer=True)
    config = rig.config("alice", tone=1000)
    first = call_linphone(rig, linphone, config, pidphone_calls=True, call=1)
    assert_secure(first)
    assert "cache mismatch" not in linphone.log()

    cache = config.with_suffix(".zid.json")  # write_config's default place for it
    data = json.loads(cache.read_text())
    (entry,) = data["peers"].values()
    entry["rs1"], entry["rs2"] = "11" * 32, "22" * 32
    cache.write_text(json.dumps(data))

    second = call_linphone(rig, linphone, config, pidphone_calls=True, call=2)
    assert second.run.returncode == 4, second.run.describe()  # secure, compare the SAS
    assert second.report["state"] == "secure"
    assert second.report["cache_mismatch"], second.report
    assert not second.report["verified"] and not second.linphone_verified
    assert same_sas(second.report["sas"], second.linphone_sas)
    assert has_tone(second.report["received_frequencies"], 700)
    assert "cache mismatch" in linphone.log()  # bzrtp: "Zrtp Event dispatched : cache mismatch"
