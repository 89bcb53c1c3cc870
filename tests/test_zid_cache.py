"""The ZID cache file: persistence, atomic rewrite, corrupt and torn files (RFC 6189 §4.9)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from pidphone.drivers import zid_cache
from pidphone.drivers.zid_cache import FileZidCache
from pidphone.zrtp import CacheEntry, MemoryZidCache, ZidCache
from tests.harness import exchange, zrtp_end

PEER_A = bytes(range(12))
PEER_B = bytes(range(12, 24))
PEER_C = bytes(range(24, 36))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def filled(path: Path, clock: Clock | None = None) -> FileZidCache:
    cache = FileZidCache(path, clock=clock or Clock())
    cache.store(PEER_A, CacheEntry(rs1=b"\x01" * 32, rs2=b"\x02" * 32, verified=True, name="Bob"))
    cache.store(PEER_B, CacheEntry(rs1=b"\x03" * 32))
    return cache


def test_both_caches_implement_the_protocol(tmp_path: Path) -> None:
    caches: list[ZidCache] = [MemoryZidCache(), FileZidCache(tmp_path / "c.json")]
    for cache in caches:
        cache.store(PEER_A, CacheEntry(rs1=b"\x05" * 32))
        entry = cache.load(PEER_A)
        assert entry is not None and entry.rs1 == b"\x05" * 32


def test_new_cache_makes_a_random_zid_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "zid-cache.json"
    first = FileZidCache(path)
    assert len(first.our_zid) == 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FileZidCache(path).our_zid == first.our_zid
    assert FileZidCache(tmp_path / "other.json").our_zid != first.our_zid
    assert first.recovered_from is None


def test_entries_survive_reopening(tmp_path: Path) -> None:
    clock = Clock()
    filled(tmp_path / "c.json", clock)
    again = FileZidCache(tmp_path / "c.json", clock=clock)
    entry = again.load(PEER_A)
    assert entry == CacheEntry(
        rs1=b"\x01" * 32, rs2=b"\x02" * 32, verified=True, last_used=clock.now, name="Bob"
    )
    assert set(again.entries()) == {PEER_A, PEER_B}
    assert again.load(bytes(12)) is None


def test_cli_edits(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cache = filled(path)
    cache.set_verified(PEER_B, True)
    cache.set_name(PEER_B, "Alice")
    cache.forget(PEER_A)
    again = FileZidCache(path)
    assert set(again.entries()) == {PEER_B}
    entry = again.load(PEER_B)
    assert entry is not None and entry.verified and entry.name == "Alice"
    with pytest.raises(KeyError):
        again.forget(PEER_A)


def test_expired_entries_are_not_loaded(tmp_path: Path) -> None:
    clock = Clock()
    cache = FileZidCache(tmp_path / "c.json", clock=clock)
    cache.store(PEER_A, CacheEntry(rs1=b"\x01" * 32, expires_at=clock.now + 10))
    assert cache.load(PEER_A) is not None
    clock.now += 10
    assert cache.load(PEER_A) is None
    assert PEER_A in cache.entries()


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    entry = filled(tmp_path / "c.json").load(PEER_A)
    assert "0101" not in repr(entry) and "\\x01" not in repr(entry)


def test_a_torn_file_at_every_offset_is_moved_aside_never_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # durability is not what this test is about: skip the (slow) fsyncs of the rewrites
    monkeypatch.setattr("pidphone.drivers.zid_cache.os.fsync", lambda fd: None)
    original = tmp_path / "original.json"
    good = filled(original)
    content = original.read_bytes()
    target = tmp_path / "c.json"
    caplog.set_level(logging.WARNING)
    for offset in range(len(content)):
        for leftover in target.parent.glob("c.json.corrupt-*"):
            leftover.unlink()
        target.write_bytes(content[:offset])
        cache = FileZidCache(target)
        if cache.recovered_from is None:
            # only a cut in the trailing newline leaves a complete document
            assert content[offset:].strip() == b""
            assert cache.our_zid == good.our_zid and set(cache.entries()) == {PEER_A, PEER_B}
            continue
        assert cache.recovered_from.read_bytes() == content[:offset]
        assert cache.our_zid != good.our_zid and cache.entries() == {}
        assert json.loads(target.read_bytes())["peers"] == {}
    assert "corrupt" in caplog.text


def test_a_write_killed_midway_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    good = filled(path)
    content = path.read_bytes()
    newer = content.replace(b"Bob", b"Robert")
    for offset in range(0, len(newer), 7):
        # what a kill during _write leaves behind: the old file and a partial temporary
        (tmp_path / f".c.json.{offset}.tmp").write_bytes(newer[:offset])
        cache = FileZidCache(path)
        assert cache.recovered_from is None
        assert cache.our_zid == good.our_zid
        entry = cache.load(PEER_A)
        assert entry is not None and entry.name == "Bob"
        assert not list(tmp_path.glob(".c.json.*.tmp"))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe garbage",
        b"[]",
        b'{"format": "something else"}',
        b'{"format": "pidphone-zid-cache", "version": 2, "zid": "00", "peers": {}}',
        b'{"format": "pidphone-zid-cache", "version": 1, "zid": "0011", "peers": {}}',
        b'{"format": "pidphone-zid-cache", "version": 1, "zid": "000102030405060708090a0b",'
        b' "peers": {"zz": {}}}',
        b'{"format": "pidphone-zid-cache", "version": 1, "zid": "000102030405060708090a0b",'
        b' "peers": {"000102030405060708090a0c": {"rs1": "01", "rs2": null, "verified": true,'
        b' "expires_at": null, "last_used": 0, "name": ""}}}',
        b'{"format": "pidphone-zid-cache", "version": 1, "zid": "000102030405060708090a0b",'
        b' "peers": {"000102030405060708090a0c": {"rs1": null, "rs2": null, "verified": 1,'
        b' "expires_at": null, "last_used": 0, "name": ""}}}',
        b'{"format": "pidphone-zid-cache", "version": 1, "zid": "000102030405060708090a0b",'
        b' "peers": {"000102030405060708090a0c": {"rs1": null, "rs2": null, "verified": true,'
        b' "expires_at": "soon", "last_used": 0, "name": ""}}}',
    ],
)
def test_corrupt_file_is_reported_and_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    cache = FileZidCache(path)
    assert cache.recovered_from is not None
    assert cache.recovered_from.name.startswith("c.json.corrupt-")
    assert cache.recovered_from.read_bytes() == content
    assert cache.entries() == {}
    assert FileZidCache(path).our_zid == cache.our_zid


def test_back_to_back_sessions_with_file_caches(tmp_path: Path) -> None:
    from pidphone.zrtp import Secured

    # each phone's daemon keeps its cache open across calls, as `pidphone run` does
    daemons = [FileZidCache(tmp_path / name) for name in ("a.json", "b.json")]

    def call() -> list[Secured]:
        a, b = (zrtp_end(cache=cache, ssrc=i) for i, cache in enumerate(daemons))
        exchange(a, b)
        found = [s for s in (a.secured, b.secured) if s is not None]
        assert len(found) == 2
        return found

    first = call()
    # `pidphone zid verify` on each phone between the calls, while the daemons run
    a = FileZidCache(tmp_path / "a.json")
    b = FileZidCache(tmp_path / "b.json")
    a.set_verified(b.our_zid, True)
    b.set_verified(a.our_zid, True)
    a.set_name(b.our_zid, "Bob")
    second = call()
    assert first[0].sas == first[1].sas and second[0].sas == second[1].sas
    assert not first[0].verified and second[0].verified and second[1].verified
    after = FileZidCache(tmp_path / "a.json").load(b.our_zid)
    assert after is not None and after.verified and after.name == "Bob"


def test_a_failed_write_during_a_call_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileZidCache(tmp_path / "c.json")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pidphone.drivers.zid_cache.os.fsync", disk_full)
    cache.store(PEER_A, CacheEntry(rs1=b"\x01" * 32))
    assert isinstance(cache.write_error, OSError)
    assert "No space left" in caplog.text
    entry = cache.load(PEER_A)
    assert entry is not None and entry.rs1 == b"\x01" * 32
    assert not list(tmp_path.glob(".c.json.*.tmp"))
    monkeypatch.undo()
    assert FileZidCache(tmp_path / "c.json").load(PEER_A) is None
    with pytest.raises(OSError):
        monkeypatch.setattr("pidphone.drivers.zid_cache.os.fsync", disk_full)
        cache.set_name(PEER_A, "Bob")


# ---- two processes on one file: the daemon and `pidphone zid ...` ----------------------


def test_a_command_while_the_daemon_runs_survives_the_daemons_next_store(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    daemon = FileZidCache(path)
    daemon.store(PEER_A, CacheEntry(rs1=b"\x01" * 32))
    daemon.store(PEER_B, CacheEntry(rs1=b"\x03" * 32))
    command = FileZidCache(path)
    command.set_verified(PEER_A, True)
    command.set_name(PEER_A, "Bob")
    command.forget(PEER_B)
    daemon.store(PEER_C, CacheEntry(rs1=b"\x04" * 32))
    on_disk = FileZidCache(path).entries()
    assert set(on_disk) == {PEER_A, PEER_C}
    assert on_disk[PEER_A].verified and on_disk[PEER_A].name == "Bob"
    assert on_disk[PEER_A].rs1 == b"\x01" * 32


def test_the_daemon_sees_a_command_on_its_next_load(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    daemon = filled(path)
    FileZidCache(path).set_verified(PEER_B, True)
    FileZidCache(path).forget(PEER_A)
    entry = daemon.load(PEER_B)
    assert entry is not None and entry.verified
    assert daemon.load(PEER_A) is None
    assert set(daemon.entries()) == {PEER_B}


def test_a_command_on_a_peer_another_process_forgot_is_a_key_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    first = filled(path)
    FileZidCache(path).forget(PEER_A)
    with pytest.raises(KeyError):
        first.set_verified(PEER_A, True)
    assert FileZidCache(path).load(PEER_A) is None


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    FileZidCache(path)
    caches = [FileZidCache(path), FileZidCache(path)]

    def write(index: int) -> None:
        for n in range(25):
            peer = bytes([index, n]) + bytes(10)
            caches[index].store(peer, CacheEntry(rs1=bytes([n]) * 32))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(FileZidCache(path).entries()) == 50


def test_changes_wait_for_the_lock_beside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cache = filled(path)
    lock = os.open(tmp_path / "c.json.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    writer = threading.Thread(target=cache.set_name, args=(PEER_B, "Carol"))
    writer.start()
    writer.join(0.2)
    blocked = writer.is_alive()
    on_disk = json.loads(path.read_bytes())["peers"][PEER_B.hex()]["name"]
    os.close(lock)
    writer.join()
    assert blocked and on_disk == ""
    entry = FileZidCache(path).load(PEER_B)
    assert entry is not None and entry.name == "Carol"


# ---- a user who can write the cache directory aims its names elsewhere (issue 10)

OTHER_UID = 4321
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the attack is on root")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of root's that the directory's owner would like root to hand over."""
    path = tmp_path / "victim"
    path.write_bytes(b"root:secret\n")
    path.chmod(0o644)
    return path


def unchanged(victim: Path) -> bool:
    st = victim.stat()
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), victim.read_bytes()) == (
        0,
        0,
        0o644,
        b"root:secret\n",
    )


@needs_root
def test_root_refuses_a_directory_another_user_owns(tmp_path: Path, victim: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = filled(state / "c.json").path
    os.unlink(state / "c.json.lock")
    os.symlink(victim, state / "c.json.lock")
    os.chown(state, OTHER_UID, OTHER_UID)
    with pytest.raises(zid_cache.UnsafeCacheFileError, match=f"belongs to uid {OTHER_UID}"):
        FileZidCache(path).set_verified(PEER_B, True)
    assert unchanged(victim)


def test_root_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    if os.geteuid() != 0:
        FileZidCache(state / "c.json")  # only root is refused
        return
    with pytest.raises(zid_cache.UnsafeCacheFileError, match="can be written by other users"):
        FileZidCache(state / "c.json")


def test_a_lock_file_that_is_a_symbolic_link_is_refused(tmp_path: Path, victim: Path) -> None:
    path = filled(tmp_path / "c.json").path
    os.unlink(tmp_path / "c.json.lock")
    os.symlink(victim, tmp_path / "c.json.lock")
    with pytest.raises(zid_cache.UnsafeCacheFileError, match="is a symbolic link"):
        FileZidCache(path)
    assert victim.stat().st_size == len(b"root:secret\n")


@pytest.mark.parametrize("kind", ["hard link", "fifo", "foreign"])
def test_a_lock_file_that_is_not_our_own_regular_file_is_refused(
    tmp_path: Path, victim: Path, kind: str
) -> None:
    lock = tmp_path / "c.json.lock"
    if kind == "hard link":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock, 0o600)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to make a file of another user's")
        lock.touch(0o600)
        os.chown(lock, OTHER_UID, OTHER_UID)
    with pytest.raises(zid_cache.UnsafeCacheFileError, match="not the cache's lock file"):
        FileZidCache(tmp_path / "c.json")


def test_a_cache_file_that_is_a_symbolic_link_is_moved_aside_not_followed(
    tmp_path: Path,
) -> None:
    elsewhere = filled(tmp_path / "elsewhere" / "c.json")
    before = elsewhere.path.read_bytes()
    state = tmp_path / "state"
    state.mkdir()
    os.symlink(elsewhere.path, state / "c.json")
    cache = FileZidCache(state / "c.json")
    assert cache.our_zid != elsewhere.our_zid and cache.entries() == {}
    assert cache.recovered_from is not None and cache.recovered_from.is_symlink()
    assert not (state / "c.json").is_symlink()
    assert elsewhere.path.read_bytes() == before


def test_a_fifo_in_place_of_the_cache_file_is_moved_aside_not_read(tmp_path: Path) -> None:
    """Opening a FIFO to read blocks until a writer comes: the phone would never start."""
    path = tmp_path / "c.json"
    os.mkfifo(path, 0o600)
    opened: list[FileZidCache] = []
    worker = threading.Thread(target=lambda: opened.append(FileZidCache(path)), daemon=True)
    worker.start()
    worker.join(5.0)
    if worker.is_alive():  # unblock it, so that the failure is reported and nothing hangs
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5.0)
        pytest.fail("opening the cache blocked on a FIFO")
    (cache,) = opened
    assert cache.recovered_from is not None and stat.S_ISFIFO(cache.recovered_from.lstat().st_mode)
    assert stat.S_ISREG(path.lstat().st_mode)


def test_a_directory_in_place_of_the_zid_cache_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "c.json").mkdir()
    cache = FileZidCache(tmp_path / "c.json")
    assert cache.recovered_from is not None and cache.recovered_from.is_dir()


def test_a_temporary_file_swapped_for_a_link_during_a_write_is_not_followed(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever owns the directory may rename our temporary file and put a link in its place
    between its creation and the rename: its mode is set through the descriptor only."""
    cache = filled(tmp_path / "c.json")
    real_fsync = os.fsync

    def swap_then_fsync(fd: int) -> None:
        for temp in tmp_path.glob(".c.json.*.tmp"):
            os.rename(temp, tmp_path / "stolen")
            os.symlink(victim, temp)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", swap_then_fsync)
    cache.set_name(PEER_B, "Carol")
    monkeypatch.undo()
    assert unchanged(victim)
    assert stat.S_IMODE((tmp_path / "stolen").stat().st_mode) == 0o600


def test_an_unreadable_file_during_a_call_keeps_memory_and_is_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    daemon = filled(path)
    FileZidCache(path).set_name(PEER_B, "Carol")  # replaced: the daemon will re-read it

    def denied(path: Path) -> tuple[tuple[int, int, int], bytes]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(zid_cache, "_read", denied)
    entry = daemon.load(PEER_A)
    assert entry is not None and entry.name == "Bob"
    assert "Permission denied" in caplog.text
    daemon.store(PEER_C, CacheEntry(rs1=b"\x04" * 32))
    assert daemon.write_error is None
    monkeypatch.undo()
    assert set(FileZidCache(path).entries()) == {PEER_A, PEER_B, PEER_C}


def test_a_file_corrupted_while_the_daemon_runs_is_moved_aside_and_memory_stands(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    daemon = filled(path)
    path.write_bytes(b"{not json")
    entry = daemon.load(PEER_A)
    assert entry is not None and entry.name == "Bob"
    assert daemon.recovered_from is not None and daemon.recovered_from.read_bytes() == b"{not json"
    daemon.store(PEER_C, CacheEntry(rs1=b"\x04" * 32))
    again = FileZidCache(path)
    assert again.our_zid == daemon.our_zid and set(again.entries()) == {PEER_A, PEER_B, PEER_C}
