"""A cached-secret mismatch is settled by one act: SAS matches in the call, or `pidphone zid
verify` after it. Either keeps the secret the mismatched exchange made (RFC 6189 §4.6.1.1), so
the next call neither warns nor asks again; the real file cache and the real command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pidphone import cli
from pidphone.drivers.zid_cache import FileZidCache
from pidphone.zrtp.cache import MemoryZidCache
from tests.harness import ZrtpEnd, exchange, zrtp_end


def call(ours: FileZidCache, theirs: MemoryZidCache) -> tuple[ZrtpEnd, ZrtpEnd]:
    a, b = zrtp_end(cache=ours), zrtp_end(cache=theirs)
    exchange(a, b)
    assert a.secured is not None and b.secured is not None
    assert a.secured.sas == b.secured.sas
    return a, b


def mismatched(tmp_path: Path) -> tuple[FileZidCache, MemoryZidCache, Path]:
    """Two calls: the peer lost its cache in between (a new phone, a reinstall)."""
    path = tmp_path / "zid-cache.json"
    ours, theirs = FileZidCache(path), MemoryZidCache()
    call(ours, theirs)
    renewed = MemoryZidCache(theirs.our_zid)
    a, _ = call(ours, renewed)
    assert a.secured is not None and a.secured.cache_mismatch
    a.session.close()  # the call ends before anyone pressed a key
    return ours, renewed, path


def test_without_settling_every_call_warns_again(tmp_path: Path) -> None:
    ours, renewed, _ = mismatched(tmp_path)
    a, _ = call(ours, renewed)
    assert a.secured is not None and a.secured.cache_mismatch


def test_zid_verify_after_the_call_keeps_the_mismatched_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, renewed, path = mismatched(tmp_path)
    assert cli.main(["zid", "--cache", str(path), "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{renewed.our_zid.hex()}  MISMATCH" in listed
    assert cli.main(["zid", "--cache", str(path), "verify"]) == 0  # the last mismatch
    said = capsys.readouterr().out
    assert said.startswith(f"{renewed.our_zid.hex()}: SAS marked as verified; the secret of")
    assert "the next call will not warn" in said
    a, b = call(ours, renewed)
    assert a.secured is not None and b.secured is not None
    assert not a.secured.cache_mismatch
    after = ours.load(renewed.our_zid)  # the call's own flag also needs the peer's V
    assert after is not None and after.verified and not after.mismatch
    assert cli.main(["zid", "--cache", str(path), "verify"]) == 1
    assert "no cached-secret mismatch waits to be settled" in capsys.readouterr().err


def test_sas_matches_in_the_call_settles_it_at_once(tmp_path: Path) -> None:
    path = tmp_path / "zid-cache.json"
    ours, theirs = FileZidCache(path), MemoryZidCache()
    call(ours, theirs)
    renewed = MemoryZidCache(theirs.our_zid)
    a, _ = call(ours, renewed)
    assert a.secured is not None and a.secured.cache_mismatch
    a.session.confirm_sas(True)  # what the SAS-matches key on the warning sends
    entry = FileZidCache(path).load(renewed.our_zid)
    assert entry is not None and entry.verified and not entry.mismatch
    a, _ = call(ours, renewed)
    assert a.secured is not None and not a.secured.cache_mismatch
    after = ours.load(renewed.our_zid)
    assert after is not None and after.verified


def test_sas_differs_erases_the_postponed_secret_too(tmp_path: Path) -> None:
    ours, renewed, path = mismatched(tmp_path)
    a, _ = call(ours, renewed)
    assert a.secured is not None and a.secured.cache_mismatch
    a.session.confirm_sas(False)
    entry = FileZidCache(path).load(renewed.our_zid)
    assert entry is not None
    assert (entry.rs1, entry.rs2, entry.pending_rs1, entry.mismatch) == (None, None, None, False)
    assert "pending_rs1" not in path.read_text()
