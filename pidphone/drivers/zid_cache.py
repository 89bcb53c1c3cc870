"""The ZID cache on disk (RFC 6189 §4.9): a small JSON file, rewritten atomically.

Our ZID is made once from 96 random bits (`secrets`) the first time the file is created, so it
is never baked into an image. Every change rewrites the whole file: a temporary file in the same
directory (mode 0600), fsync, `os.replace`, fsync of the directory; a power cut leaves either
the old or the new file, never a torn one. A file that does not parse is never trusted: it is
logged, moved aside as `<name>.corrupt-<UTC time>` (kept for inspection, `recovered_from`) and
a fresh cache starts, with a new ZID.

The daemon and `pidphone zid verify/forget/name` may hold the same file open at once, so no
process trusts its memory for long: every change takes an advisory lock (`flock` on
`<name>.lock` beside the file), re-reads the file, changes only its one entry and writes; a
read (`load`, `entries`) re-reads the file whenever it was replaced since we last saw it. A
command run during a call is therefore neither lost at the daemon's next store nor unseen by
its next call.

Every file is opened without following a symbolic link and checked after opening (a regular
file; the lock also ours and with one link): whoever can write the directory could otherwise
point a name at a file of someone else's. Root never works in a directory another user can
change (`UnsafeCacheFileError`): `pidphone zid` run as root first becomes the directory's owner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pidphone.zrtp.cache import ZID_BYTES, CacheEntry, confirmed

log = logging.getLogger(__name__)

FORMAT = "pidphone-zid-cache"
VERSION = 1
SECRET_BYTES = 32
MAX_FILE_BYTES = 4 << 20
"""A cache file larger than this is not one this code wrote (about 15,000 peers)."""

_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class CorruptCacheError(Exception):
    """The file's content is not a cache this code wrote."""


def read_cache(path: str | os.PathLike[str]) -> tuple[bytes, dict[bytes, CacheEntry]]:
    """Our ZID and the peers, as the file holds them, for a command that only looks
    (`pidphone zid list`): nothing is written, created or moved aside, so looking never
    changes the phone's identity. Raises FileNotFoundError, OSError or CorruptCacheError."""
    _, text = _read(Path(path))
    return _decode(text)


class UnsafeCacheFileError(OSError):
    """A name beside the cache points somewhere else, or root was asked to work in a
    directory another user can change; `strerror` says which."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)


class FileZidCache:
    """A `ZidCache` persisted in one JSON file; methods for the CLI to list and edit peers.

    Opening raises `OSError` only when the file or its directory cannot be read or written at
    all (permissions); bad content is recovered from as described above.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.recovered_from: Path | None = None
        """Where a corrupt cache file was moved aside by this object, else None."""
        self.write_error: OSError | None = None
        """Why the last `store` could not reach the disk, else None."""
        self._clock = clock
        self._seen: tuple[int, int, int] | None = None
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_directory(self.path.parent)
        self._lock_path = self.path.with_name(f"{self.path.name}.lock")
        with self._locked():
            self._remove_stale_temporaries()
            self._zid, self._entries = self._open()

    @property
    def our_zid(self) -> bytes:
        return self._zid

    def load(self, peer_zid: bytes) -> CacheEntry | None:
        self._refresh()
        entry = self._entries.get(peer_zid)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self._clock():
            return None
        return entry

    def store(self, peer_zid: bytes, entry: CacheEntry) -> None:
        """Keep the entry; a failed write (disk full, read-only) is logged, not raised.

        The ZRTP session calls this in the middle of a call: the entry stays in memory for
        this process and `write_error` says what went wrong, so the call itself goes on.
        """
        stamped = dataclasses.replace(entry, last_used=self._clock())
        try:
            self._change(peer_zid, lambda _: stamped, must_exist=False)
        except OSError as exc:
            self._entries[peer_zid] = stamped
            self.write_error = exc
            log.error("cannot write ZID cache %s: %s", self.path, exc)
        else:
            self.write_error = None

    def entries(self) -> dict[bytes, CacheEntry]:
        """Every peer, expired ones included."""
        self._refresh()
        return dict(self._entries)

    def set_verified(self, peer_zid: bytes, verified: bool) -> None:
        """Set or clear V for a known peer; KeyError if the file has no such peer."""
        self._change(peer_zid, lambda old: dataclasses.replace(old, verified=verified))

    def confirm_sas(self, peer_zid: bytes) -> CacheEntry:
        """The user confirmed the SAS of the last exchange with a known peer: V set and, after
        a cache mismatch, its postponed secret kept (`zrtp.cache.confirmed`). Returns the
        entry as it was; KeyError if the file has no such peer."""
        before: list[CacheEntry] = []

        def confirm(old: CacheEntry) -> CacheEntry:
            before.append(old)
            return confirmed(old)

        self._change(peer_zid, confirm)
        return before[0]

    def set_name(self, peer_zid: bytes, name: str) -> None:
        """Name a known peer; KeyError if the file has no such peer."""
        self._change(peer_zid, lambda old: dataclasses.replace(old, name=name))

    def forget(self, peer_zid: bytes) -> None:
        """Erase a peer and its secrets; the next call with it starts as with a stranger."""
        self._change(peer_zid, lambda _: None, must_exist=True)

    # ---- internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive advisory lock shared with every other FileZidCache on this path.

        The lock file is never removed: unlinking it would let two processes lock two
        different files of the same name.
        """
        fd = _open_lock(self._lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _change(
        self,
        peer_zid: bytes,
        change: Callable[[CacheEntry], CacheEntry | None],
        *,
        must_exist: bool = True,
    ) -> None:
        """Under the lock: re-read the file, replace (or drop, on None) one entry, write.

        A peer missing from the file raises KeyError when `must_exist`; otherwise `change`
        sees an empty entry.
        """
        with self._locked():
            self._refresh()
            entries = dict(self._entries)
            old = entries.get(peer_zid)
            if old is None and must_exist:
                raise KeyError(f"no peer with ZID {peer_zid.hex()} in {self.path}")
            new = change(old or CacheEntry())
            if new is None:
                entries.pop(peer_zid, None)
            else:
                entries[peer_zid] = new
            self._write(self._zid, entries)
            self._entries = entries

    def _refresh(self) -> None:
        """Re-read the file if another process replaced it since we last read or wrote it.

        A file that cannot be read now (permissions) is logged and memory stands: this runs
        in the middle of a call, and the next change rewrites the file from memory.
        """
        try:
            if _identity(os.lstat(self.path)) == self._seen:
                return
            seen, text = _read(self.path)
            zid, entries = _decode(text)
        except FileNotFoundError:
            return  # removed under us: memory stands, and the next change writes it back
        except OSError as exc:
            log.warning("cannot read ZID cache %s: %s", self.path, exc)
            return
        except CorruptCacheError as exc:
            try:
                self._move_aside(exc)
            except OSError as error:
                log.warning("cannot move corrupt ZID cache %s aside: %s", self.path, error)
            return
        self._seen = seen
        self._zid, self._entries = zid, entries

    def _open(self) -> tuple[bytes, dict[bytes, CacheEntry]]:
        text = b""
        try:
            seen, text = _read(self.path)
            decoded = _decode(text)
        except FileNotFoundError:
            return self._fresh()
        except CorruptCacheError as exc:
            self._move_aside(exc)
            return self._fresh(_salvage_zid(text))
        self._seen = seen
        return decoded

    def _move_aside(self, exc: CorruptCacheError) -> None:
        aside = self._aside_name()
        os.replace(self.path, aside)
        self.recovered_from = aside
        log.warning(
            "ZID cache %s is corrupt (%s): moved to %s, starting a new cache",
            self.path,
            exc,
            aside,
        )

    def _fresh(self, zid: bytes | None = None) -> tuple[bytes, dict[bytes, CacheEntry]]:
        """A cache with no peers: with `zid` (the old file's, still readable), else a new one."""
        if zid is None:
            zid = secrets.token_bytes(ZID_BYTES)
        else:
            log.warning("ZID cache %s: keeping this phone's ZID %s", self.path, zid.hex())
        self._write(zid, {})
        return zid, {}

    def _aside_name(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        counter = 1
        while os.path.lexists(candidate):
            candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}.{counter}")
            counter += 1
        return candidate

    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _remove_stale_temporaries(self) -> None:
        for stale in self.path.parent.glob(f"{self._temp_prefix()}*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def _write(self, zid: bytes, entries: dict[bytes, CacheEntry]) -> None:
        data = _encode(zid, entries)
        # mkstemp creates with O_EXCL | O_NOFOLLOW; mode and identity come from the open fd,
        # never from the name, which the directory's owner could swap meanwhile.
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self._temp_prefix(), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                seen = _identity(os.fstat(handle.fileno()))
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._seen = seen
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when the file is replaced: inode, size and modification time."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def _check_directory(directory: Path) -> None:
    """Root works only in a directory no other user can change (see the module docstring)."""
    if os.geteuid() != 0:
        return
    st = os.stat(directory)
    if st.st_uid != 0:
        raise UnsafeCacheFileError(
            errno.EPERM,
            f"{directory} belongs to uid {st.st_uid}; as root, work on it as that user "
            "(pidphone zid does so itself; else: sudo -u pidphone ...)",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheFileError(
            errno.EPERM,
            f"{directory} can be written by other users (mode {stat.S_IMODE(st.st_mode):04o})",
        )


def _open_lock(path: Path) -> int:
    """The lock file, created if missing: a regular file of ours with no other link."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeCacheFileError(
                errno.ELOOP, f"{path} is a symbolic link, not the cache's lock file"
            ) from None
        raise
    st = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to this user"
    elif st.st_nlink != 1:
        problem = "has other hard links"
    if problem:
        os.close(fd)
        raise UnsafeCacheFileError(errno.EPERM, f"{path} {problem}; not the cache's lock file")
    return fd


def _read(path: Path) -> tuple[tuple[int, int, int], bytes]:
    """The identity and content of the cache file; anything but a regular file of a sane
    size (a symbolic link, a FIFO, a device) is corrupt: it is moved aside, never followed."""
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptCacheError("a symbolic link, not a file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CorruptCacheError("not a regular file")
    with os.fdopen(fd, "rb") as handle:
        text = handle.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        raise CorruptCacheError(f"larger than {MAX_FILE_BYTES} bytes")
    return _identity(st), text


def _encode(zid: bytes, entries: dict[bytes, CacheEntry]) -> bytes:
    peers = {
        peer.hex(): {
            "rs1": entry.rs1.hex() if entry.rs1 is not None else None,
            "rs2": entry.rs2.hex() if entry.rs2 is not None else None,
            "verified": entry.verified,
            "expires_at": entry.expires_at,
            "last_used": entry.last_used,
            "name": entry.name,
            **_mismatch_fields(entry),
        }
        for peer, entry in sorted(entries.items())
    }
    document = {"format": FORMAT, "version": VERSION, "zid": zid.hex(), "peers": peers}
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _salvage_zid(text: bytes) -> bytes | None:
    """Our ZID from a corrupt file when that much of it still reads (a peer entry broken, the
    rest intact): peers then meet the same phone, not a stranger."""
    try:
        document = json.loads(text)
        return _hex(document.get("zid"), ZID_BYTES, "zid") if isinstance(document, dict) else None
    except (UnicodeDecodeError, json.JSONDecodeError, CorruptCacheError):
        return None


def _mismatch_fields(entry: CacheEntry) -> dict[str, object]:
    """An unsettled cache mismatch and its postponed secret; absent (as in older files) when
    there is none."""
    if not entry.mismatch:
        return {}
    pending = entry.pending_rs1.hex() if entry.pending_rs1 is not None else None
    return {"mismatch": True, "pending_rs1": pending}


def _decode(text: bytes) -> tuple[bytes, dict[bytes, CacheEntry]]:
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCacheError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptCacheError("not a pidphone ZID cache")
    if document.get("version") != VERSION:
        raise CorruptCacheError(f"unknown version {document.get('version')!r}")
    zid = _hex(document.get("zid"), ZID_BYTES, "zid")
    peers = document.get("peers")
    if not isinstance(peers, dict):
        raise CorruptCacheError("peers is not an object")
    entries = {}
    for key, value in peers.items():
        entries[_hex(key, ZID_BYTES, "peer ZID")] = _entry(value)
    return zid, entries


def _entry(value: object) -> CacheEntry:
    if not isinstance(value, dict):
        raise CorruptCacheError("a peer entry is not an object")
    verified, name = value.get("verified"), value.get("name")
    expires_at, last_used = value.get("expires_at"), value.get("last_used")
    if not isinstance(verified, bool) or not isinstance(name, str):
        raise CorruptCacheError("verified must be a boolean and name a string")
    rs1, rs2 = value.get("rs1"), value.get("rs2")
    mismatch, pending = value.get("mismatch", False), value.get("pending_rs1")
    if not isinstance(mismatch, bool):
        raise CorruptCacheError("mismatch must be a boolean")
    return CacheEntry(
        rs1=None if rs1 is None else _hex(rs1, SECRET_BYTES, "rs1"),
        rs2=None if rs2 is None else _hex(rs2, SECRET_BYTES, "rs2"),
        verified=verified,
        expires_at=None if expires_at is None else _number(expires_at, "expires_at"),
        last_used=_number(last_used, "last_used"),
        name=name,
        mismatch=mismatch,
        pending_rs1=None if pending is None else _hex(pending, SECRET_BYTES, "pending_rs1"),
    )


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptCacheError(f"{what} is not a number")
    return float(value)


def _hex(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise CorruptCacheError(f"{what} is not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise CorruptCacheError(f"{what} is not hex") from None
    if len(raw) != length:
        raise CorruptCacheError(f"{what} is {len(raw)} bytes, not {length}")
    return raw
