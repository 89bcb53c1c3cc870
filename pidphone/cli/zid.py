"""`pidphone zid ...`: look at and manage the ZID cache (RFC 6189 §4.9, §7.1) by hand.

A peer is named by its ZID in hex, by a unique prefix of it, or by the name given to it.
Forgetting a peer erases its retained secrets and its verified flag: the next call shows the
SAS as never compared, which is what to do after a SAS mismatch or when a peer's phone was
replaced.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO, cast

from pidphone.config import Config, load_config
from pidphone.zrtp.cache import CacheEntry

from .common import EXIT_OK, CommandError, config_path, lazy, warn


class AdminZidCache(Protocol):
    """What the zid commands need of pidphone.drivers.zid_cache.FileZidCache."""

    @property
    def our_zid(self) -> bytes: ...

    def entries(self) -> Mapping[bytes, CacheEntry]: ...

    def confirm_sas(self, peer_zid: bytes) -> CacheEntry: ...

    def forget(self, peer_zid: bytes) -> None: ...

    def set_name(self, peer_zid: bytes, name: str) -> None: ...


class PeerNotFoundError(Exception):
    """PEER names no peer, or several."""


def become_owner_of(directory: Path) -> None:
    """Run as root, become the user who owns `directory` (the daemon's state directory).

    That user can plant links in the directory; whatever root then opened or changed there
    would be theirs to aim. As its owner, this process can do nothing that user could not.
    Must run before any file in the directory is opened, after every module is imported.
    """
    if os.geteuid() != 0:
        return
    st = os.stat(directory)
    if st.st_uid == 0:
        return  # root's own directory (the cache refuses one that others can write)
    try:
        gid = pwd.getpwuid(st.st_uid).pw_gid
    except KeyError:
        gid = st.st_gid
    os.setgroups([])
    os.setgid(gid)
    os.setuid(st.st_uid)


def find_peer(entries: Mapping[bytes, CacheEntry], peer: str) -> bytes:
    """The ZID `peer` names: a whole hex ZID, a name, or a unique hex prefix."""
    text = peer.strip()
    lowered = text.lower().replace(":", "")
    for zid in entries:
        if zid.hex() == lowered:
            return zid
    named = [zid for zid, entry in entries.items() if entry.name and entry.name == text]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise PeerNotFoundError(f'{len(named)} peers are named "{text}"; give the ZID instead')
    prefixed = [zid for zid in entries if lowered and zid.hex().startswith(lowered)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        listed = ", ".join(sorted(zid.hex() for zid in prefixed))
        raise PeerNotFoundError(f'"{text}" matches several peers ({listed}); give more digits')
    raise PeerNotFoundError(f'no peer "{text}" in the ZID cache (see: pidphone zid list)')


def list_peers(cache: AdminZidCache, out: TextIO) -> int:
    out.write(f"our ZID: {cache.our_zid.hex()}\n")
    entries = cache.entries()
    if not entries:
        out.write("no peers yet\n")
        return EXIT_OK
    out.write(f"{'PEER ZID':<24}  {'VERIFIED':<8}  {'LAST USED':<20}  NAME\n")
    for zid, entry in sorted(entries.items(), key=lambda item: -item[1].last_used):
        verified = "MISMATCH" if entry.mismatch else "yes" if entry.verified else "no"
        out.write(f"{zid.hex():<24}  {verified:<8}  {_when(entry.last_used):<20}  {entry.name}\n")
    return EXIT_OK


def _change(cache: AdminZidCache, peer: str, change: Callable[[bytes], object]) -> bytes:
    """Apply `change` to the ZID `peer` names and return that ZID."""
    zid = find_peer(cache.entries(), peer)
    _apply(zid, change)
    return zid


def _apply(zid: bytes, change: Callable[[bytes], object]) -> None:
    try:
        change(zid)
    except KeyError:  # another process forgot it since we listed the peers
        raise PeerNotFoundError(f"peer {zid.hex()} was just removed from the ZID cache") from None


def last_mismatch(entries: Mapping[bytes, CacheEntry]) -> bytes:
    """The peer of the newest exchange that ended in a cached-secret mismatch not yet settled."""
    waiting = [(entry.last_used, zid) for zid, entry in entries.items() if entry.mismatch]
    if not waiting:
        raise PeerNotFoundError(
            "no cached-secret mismatch waits to be settled; name the peer: pidphone zid verify PEER"
        )
    return max(waiting)[1]


def verify(cache: AdminZidCache, peer: str | None, out: TextIO) -> int:
    """Mark the SAS compared and matching: what the SAS-matches key does in the call. After a
    cached-secret mismatch that also keeps the secret the mismatched exchange made, so the
    next call with the peer does not warn again; without PEER, that exchange is the last one.
    """
    entries = cache.entries()
    zid = find_peer(entries, peer) if peer is not None else last_mismatch(entries)
    entry = entries[zid]
    if entry.mismatch and entry.pending_rs1 is None:
        raise CommandError(
            f"{zid.hex()}: the cached-secret mismatch of {_when(entry.last_used)} left no new"
            " secret to keep (the other phone asked for none to be cached), so marking it"
            " verified would not stop the next warning; compare the SAS on the next call and"
            " press SAS matches there"
        )
    _apply(zid, cache.confirm_sas)
    if entry.mismatch:
        out.write(
            f"{zid.hex()}: SAS marked as verified; the secret of the cached-secret mismatch of"
            f" {_when(entry.last_used)} is kept, so the next call will not warn\n"
        )
    else:
        out.write(f"{zid.hex()}: SAS marked as verified\n")
    return EXIT_OK


def forget(cache: AdminZidCache, peer: str, out: TextIO) -> int:
    zid = _change(cache, peer, cache.forget)
    out.write(f"{zid.hex()}: forgotten; compare the SAS on the next call\n")
    return EXIT_OK


def rename(cache: AdminZidCache, peer: str, name: str, out: TextIO) -> int:
    zid = _change(cache, peer, lambda zid: cache.set_name(zid, name))
    out.write(f'{zid.hex()}: named "{name}"\n')
    return EXIT_OK


def _when(timestamp: float) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


# --------------------------------------------------------------------------- the commands


class _Snapshot:
    """The cache as the file holds it, for listing: reading never writes (a corrupt file is
    reported, not moved aside and replaced by a new identity)."""

    def __init__(self, path: Path) -> None:
        read_cache = lazy("pidphone.drivers.zid_cache", "read_cache")
        corrupt = cast(type[Exception], lazy("pidphone.drivers.zid_cache", "CorruptCacheError"))
        try:
            found: tuple[bytes, dict[bytes, CacheEntry]] = read_cache(path)
        except corrupt as exc:
            raise CommandError(
                f"the ZID cache {path} is corrupt ({exc}); nothing was changed. The phone moves"
                " it aside when it next opens it (keeping its ZID if that still reads): look"
                " at it, or put a backup back, before then"
            ) from None
        self._zid, self._entries = found

    @property
    def our_zid(self) -> bytes:
        return self._zid

    def entries(self) -> Mapping[bytes, CacheEntry]:
        return self._entries


def cmd_list(args: argparse.Namespace) -> int:
    return _zid_command(args, lambda cache: list_peers(cache, sys.stdout), read_only=True)


def cmd_verify(args: argparse.Namespace) -> int:
    return _zid_command(args, lambda cache: verify(cache, args.peer, sys.stdout))


def cmd_forget(args: argparse.Namespace) -> int:
    return _zid_command(args, lambda cache: forget(cache, args.peer, sys.stdout))


def cmd_name(args: argparse.Namespace) -> int:
    return _zid_command(args, lambda cache: rename(cache, args.peer, args.name, sys.stdout))


def _zid_command(
    args: argparse.Namespace, action: Callable[[Any], int], *, read_only: bool = False
) -> int:
    """Run one `pidphone zid` action, as root first becoming the cache directory's owner; a
    peer not found or a file we may not touch is a one-line failure (exit 1), never a
    traceback."""
    path = _zid_cache_path(args)
    file_zid_cache = lazy("pidphone.drivers.zid_cache", "FileZidCache")
    try:
        become_owner_of(path.parent)
    except OSError as exc:
        raise CommandError(
            f"cannot act as the owner of {path.parent}: {exc.strerror or exc}"
            " (run as the phone's user: sudo -u pidphone pidphone zid ...)"
        ) from None
    try:
        return action(_Snapshot(path) if read_only else file_zid_cache(path))
    except PeerNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(
            f"cannot use the ZID cache {path}: {exc.strerror or exc}"
            " (run as the phone's user: sudo -u pidphone pidphone zid ...)"
        ) from None


def _zid_cache_path(args: argparse.Namespace) -> Path:
    cache_path: Path | None = args.cache
    if cache_path is None:
        path = config_path(args)
        explicit = getattr(args, "config", None) is not None
        config = load_config(path, warn=warn) if explicit or path.exists() else Config()
        cache_path = Path(config.security.zid_cache)
    if not cache_path.exists():
        raise CommandError(f"no ZID cache at {cache_path} (no secure call has been made yet)")
    return cache_path
