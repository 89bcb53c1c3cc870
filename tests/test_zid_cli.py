"""`pidphone zid list | verify | forget | name`: peers found by hex ZID, prefix or name."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from pidphone import cli
from pidphone.cli import zid as cli_zid
from pidphone.zrtp.cache import CacheEntry, confirmed

OURS = bytes.fromhex("00112233445566778899aabb")
BOB = bytes.fromhex("b0b0b0b0b0b0b0b0b0b0b0b0")
BOX = bytes.fromhex("b0b1c2d3e4f5a6b7c8d9eaf0")
CAROL = bytes.fromhex("ca201ca201ca201ca201ca20")


class FakeCache:
    """The FileZidCache operations the commands use, in memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries = {
            BOB: CacheEntry(rs1=b"\x01" * 32, verified=True, last_used=1_700_000_000.0, name="bob"),
            BOX: CacheEntry(rs1=b"\x02" * 32, last_used=1_700_000_100.0),
            CAROL: CacheEntry(rs1=b"\x03" * 32, name="carol"),
        }

    @property
    def our_zid(self) -> bytes:
        return OURS

    def entries(self) -> Mapping[bytes, CacheEntry]:
        return dict(self._entries)

    def set_verified(self, peer_zid: bytes, verified: bool) -> None:
        old = self._entries[peer_zid]
        self._entries[peer_zid] = CacheEntry(
            old.rs1, old.rs2, verified, old.expires_at, old.last_used, old.name
        )

    def confirm_sas(self, peer_zid: bytes) -> CacheEntry:
        old = self._entries[peer_zid]
        self._entries[peer_zid] = confirmed(old)
        return old

    def forget(self, peer_zid: bytes) -> None:
        del self._entries[peer_zid]

    def set_name(self, peer_zid: bytes, name: str) -> None:
        old = self._entries[peer_zid]
        self._entries[peer_zid] = CacheEntry(
            old.rs1, old.rs2, old.verified, old.expires_at, old.last_used, name
        )


@pytest.mark.parametrize(
    ("peer", "zid"),
    [
        ("b0b0b0b0b0b0b0b0b0b0b0b0", BOB),
        ("B0B0B0B0B0B0B0B0B0B0B0B0", BOB),
        ("bob", BOB),
        ("b0b1", BOX),
        ("carol", CAROL),
        ("ca2", CAROL),
    ],
)
def test_find_peer(peer: str, zid: bytes) -> None:
    assert cli_zid.find_peer(FakeCache().entries(), peer) == zid


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        ("b0", "matches several peers (b0b0b0b0b0b0b0b0b0b0b0b0, b0b1c2d3e4f5a6b7c8d9eaf0)"),
        ("dave", 'no peer "dave" in the ZID cache'),
        ("", 'no peer "" in the ZID cache'),
    ],
)
def test_find_peer_refuses_unclear_names(peer: str, message: str) -> None:
    with pytest.raises(cli_zid.PeerNotFoundError) as info:
        cli_zid.find_peer(FakeCache().entries(), peer)
    assert message in str(info.value)


def test_two_peers_with_one_name_need_the_zid() -> None:
    entries = dict(FakeCache().entries())
    entries[BOX] = CacheEntry(name="bob")
    with pytest.raises(cli_zid.PeerNotFoundError, match='2 peers are named "bob"'):
        cli_zid.find_peer(entries, "bob")


def test_list_shows_every_peer_newest_first() -> None:
    out = io.StringIO()
    assert cli_zid.list_peers(FakeCache(), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "our ZID: 00112233445566778899aabb"
    assert lines[1].split() == ["PEER", "ZID", "VERIFIED", "LAST", "USED", "NAME"]
    assert lines[2].split() == ["b0b1c2d3e4f5a6b7c8d9eaf0", "no", "2023-11-14", "22:15", "UTC"]
    assert lines[3].split() == [
        "b0b0b0b0b0b0b0b0b0b0b0b0",
        "yes",
        "2023-11-14",
        "22:13",
        "UTC",
        "bob",
    ]
    assert lines[4].split() == ["ca201ca201ca201ca201ca20", "no", "never", "carol"]
    assert "0101" not in out.getvalue()  # no secret ever printed


def test_verify_forget_and_name_change_the_cache() -> None:
    cache = FakeCache()
    out = io.StringIO()
    assert cli_zid.verify(cache, "b0b1", out) == 0
    assert cache.entries()[BOX].verified
    assert cli_zid.rename(cache, "b0b1", "bob's office", out) == 0
    assert cache.entries()[BOX].name == "bob's office"
    assert cli_zid.forget(cache, "carol", out) == 0
    assert CAROL not in cache.entries()
    assert out.getvalue().splitlines() == [
        "b0b1c2d3e4f5a6b7c8d9eaf0: SAS marked as verified",
        'b0b1c2d3e4f5a6b7c8d9eaf0: named "bob\'s office"',
        "ca201ca201ca201ca201ca20: forgotten; compare the SAS on the next call",
    ]


class VanishingCache(FakeCache):
    """Another process forgets every peer between our listing and our change."""

    def entries(self) -> Mapping[bytes, CacheEntry]:
        listed = super().entries()
        self._entries = {}
        return listed


@pytest.mark.parametrize(
    "command",
    [
        lambda cache, out: cli_zid.verify(cache, "bob", out),
        lambda cache, out: cli_zid.forget(cache, "bob", out),
        lambda cache, out: cli_zid.rename(cache, "bob", "Bob", out),
    ],
)
def test_a_peer_removed_meanwhile_is_a_clean_failure(
    command: Callable[[FakeCache, io.StringIO], int],
) -> None:
    with pytest.raises(cli_zid.PeerNotFoundError, match="just removed"):
        command(VanishingCache(), io.StringIO())


def test_empty_cache_lists_no_peers() -> None:
    cache = FakeCache()
    for zid in list(cache.entries()):
        cache.forget(zid)
    out = io.StringIO()
    assert cli_zid.list_peers(cache, out) == 0
    assert out.getvalue().splitlines()[1] == "no peers yet"


def test_command_line_uses_the_cache_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_file = tmp_path / "zid-cache.json"
    cache_file.write_text("{}")
    config = tmp_path / "pidphone.toml"
    config.write_text(f'[security]\nzid_cache = "{cache_file}"\n')
    caches: list[FakeCache] = []

    def opener(module: str, function: str) -> object:
        assert module == "pidphone.drivers.zid_cache"
        if function == "CorruptCacheError":
            return ValueError
        if function == "read_cache":  # listing reads the file, never opens it for writing

            def read(path: Path) -> tuple[bytes, Mapping[bytes, CacheEntry]]:
                caches.append(FakeCache(path))
                return caches[-1].our_zid, caches[-1].entries()

            return read
        assert function == "FileZidCache"

        def make(path: Path) -> FakeCache:
            caches.append(FakeCache(path))
            return caches[-1]

        return make

    monkeypatch.setattr(cli_zid, "lazy", opener)
    assert cli.main(["zid", "-c", str(config), "list"]) == 0
    assert caches[-1].path == cache_file
    assert cli.main(["zid", "list", "--config", str(config)]) == 0
    assert caches[-1].path == cache_file
    assert capsys.readouterr().out.count("our ZID: 00112233445566778899aabb") == 2
    assert cli.main(["zid", "--cache", str(cache_file), "verify", "carol"]) == 0
    assert cli.main(["zid", "--cache", str(cache_file), "name", "carol", "Carol"]) == 0
    assert cli.main(["zid", "--cache", str(cache_file), "forget", "ca2"]) == 0
    assert cli.main(["zid", "--cache", str(cache_file), "forget", "b0"]) == 1
    err = capsys.readouterr().err
    assert "pidphone: " in err
    assert "matches several peers" in err


def test_missing_cache_file_is_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["zid", "--cache", str(tmp_path / "none.json"), "list"]) == 1
    assert "no ZID cache at" in capsys.readouterr().err


def test_with_the_real_file_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zid_cache = pytest.importorskip("pidphone.drivers.zid_cache")
    path = tmp_path / "zid-cache.json"
    cache = zid_cache.FileZidCache(path)
    cache.store(BOB, CacheEntry(rs1=b"\x05" * 32, last_used=1.0))
    assert path.exists()
    assert cli.main(["zid", "--cache", str(path), "name", "b0b0", "bob"]) == 0
    assert cli.main(["zid", "--cache", str(path), "verify", "bob"]) == 0
    capsys.readouterr()
    assert cli.main(["zid", "--cache", str(path), "list"]) == 0
    out = capsys.readouterr().out
    assert f"our ZID: {cache.our_zid.hex()}" in out
    assert out.splitlines()[2].split()[:2] == [BOB.hex(), "yes"]
    assert out.splitlines()[2].split()[-1] == "bob"
    assert cli.main(["zid", "--cache", str(path), "forget", "bob"]) == 0
    assert zid_cache.FileZidCache(path).load(BOB) is None


@pytest.mark.parametrize("action", [["list"], ["verify", "bob"], ["forget", "bob"]])
def test_a_cache_this_user_cannot_open_is_a_clean_failure(
    action: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache_file = tmp_path / "zid-cache.json"
    cache_file.write_text("{}")

    def opener(module: str, function: str) -> object:
        if function == "CorruptCacheError":
            return ValueError

        def make(path: Path) -> FakeCache:
            raise PermissionError(13, "Permission denied", str(path))

        return make

    monkeypatch.setattr(cli_zid, "lazy", opener)
    assert cli.main(["zid", "--cache", str(cache_file), *action]) == 1
    err = capsys.readouterr().err
    assert f"cannot use the ZID cache {cache_file}: Permission denied" in err
    assert "sudo -u pidphone" in err
    assert "Traceback" not in err


# ---- `sudo pidphone zid ...` in a directory the daemon's user owns (issue 10)

OTHER_UID = 4321


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can traverse (pytest's own is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="pidphone-zid-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def state_of_other_user(root: Path) -> Path:
    """/var/lib/pidphone in small: the cache with BOB in it, all owned by OTHER_UID."""
    from pidphone.drivers.zid_cache import FileZidCache

    state = root / "state"
    state.mkdir(mode=0o700)
    FileZidCache(state / "zid-cache.json").store(BOB, CacheEntry(rs1=b"\x05" * 32))
    for path in (state, *state.iterdir()):
        os.chown(path, OTHER_UID, OTHER_UID)
    return state / "zid-cache.json"


def zid_as_root(cache: Path, *action: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pidphone.cli", "zid", "--cache", str(cache), *action]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the attack is on root")


@needs_root
def test_root_acts_as_the_directorys_owner(shared_tmp: Path) -> None:
    cache = state_of_other_user(shared_tmp)
    done = zid_as_root(cache, "verify", BOB.hex())
    assert done.returncode == 0, done.stderr
    for path in cache.parent.iterdir():
        assert (path.stat().st_uid, path.stat().st_gid) == (OTHER_UID, OTHER_UID), path
    assert '"verified": true' in cache.read_text()


@needs_root
def test_root_never_chowns_a_file_a_planted_lock_link_points_at(shared_tmp: Path) -> None:
    """The daemon's user replaces the lock by a link to a file of root's, then waits for an
    administrator to run `sudo pidphone zid verify`: that file must stay root's."""
    cache = state_of_other_user(shared_tmp)
    victim = shared_tmp / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o640)
    lock = cache.with_name("zid-cache.json.lock")
    lock.unlink()
    lock.symlink_to(victim)
    done = zid_as_root(cache, "verify", BOB.hex())
    assert done.returncode == 1
    assert f"{lock} is a symbolic link" in done.stderr and "Traceback" not in done.stderr
    st = victim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
    assert '"verified": false' in cache.read_text()


def test_listing_a_corrupt_cache_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only command never rewrites the phone's identity: the corrupt file stays where
    it is, byte for byte, and no new cache (with a new ZID) appears."""
    from pidphone.drivers.zid_cache import FileZidCache

    path = tmp_path / "zid-cache.json"
    FileZidCache(path).store(BOB, CacheEntry(rs1=b"\x01" * 32))
    broken = path.read_bytes().replace(b'"verified": false', b'"verified": "maybe"')
    path.write_bytes(broken)
    assert cli.main(["zid", "--cache", str(path), "list"]) == 1
    assert "is corrupt" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zid-cache.json", "zid-cache.json.lock"]
    assert path.read_bytes() == broken


def test_the_phone_keeps_its_zid_when_a_corrupt_cache_still_names_it(tmp_path: Path) -> None:
    from pidphone.drivers.zid_cache import FileZidCache

    path = tmp_path / "zid-cache.json"
    first = FileZidCache(path)
    first.store(BOB, CacheEntry(rs1=b"\x01" * 32))
    path.write_bytes(path.read_bytes().replace(b'"verified": false', b'"verified": 7'))
    again = FileZidCache(path)
    assert again.recovered_from is not None  # moved aside for inspection
    assert again.our_zid == first.our_zid  # but peers still meet the same phone
    assert again.entries() == {}
