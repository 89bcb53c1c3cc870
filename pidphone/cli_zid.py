"""`pidphone zid ...`: look at and manage the ZID cache (RFC 6189 §4.9, §7.1) by hand.

A peer is named by its ZID in hex, by a unique prefix of it, or by the name given to it.
Forgetting a peer erases its retained secrets and its verified flag: the next call shows the
SAS as never compared, which is what to do after a SAS mismatch or when a peer's phone was
replaced.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, TextIO

from pidphone.zrtp.cache import CacheEntry

EXIT_OK = 0


class AdminZidCache(Protocol):
    """What the zid commands need of pidphone.drivers.zid_cache.FileZidCache."""

    @property
    def our_zid(self) -> bytes: ...

    def entries(self) -> Mapping[bytes, CacheEntry]: ...

    def set_verified(self, peer_zid: bytes, verified: bool) -> None: ...

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
        verified = "yes" if entry.verified else "no"
        out.write(f"{zid.hex():<24}  {verified:<8}  {_when(entry.last_used):<20}  {entry.name}\n")
    return EXIT_OK


def _change(cache: AdminZidCache, peer: str, change: Callable[[bytes], None]) -> bytes:
    """Apply `change` to the ZID `peer` names and return that ZID."""
    zid = find_peer(cache.entries(), peer)
    try:
        change(zid)
    except KeyError:  # another process forgot it since we listed the peers
        raise PeerNotFoundError(f"peer {zid.hex()} was just removed from the ZID cache") from None
    return zid


def verify(cache: AdminZidCache, peer: str, out: TextIO) -> int:
    zid = _change(cache, peer, lambda zid: cache.set_verified(zid, True))
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
