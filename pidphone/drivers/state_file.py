"""Small files of the phone's state directory (the call history, the preferences), read and
written the way the ZID cache is: never through a symbolic link, never more than a bound,
and rewritten whole and atomically (a temporary file of mode 0600 beside it, fsync, rename
over, fsync of the directory), so a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

MAX_FILE_BYTES = 1 << 20

_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class CorruptFileError(Exception):
    """The file is not one this code wrote (a link, a device, too large, bad content)."""


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; a symbolic link, a FIFO or a device is corrupt, never followed."""
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptFileError("a symbolic link, not a file") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise CorruptFileError("not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise CorruptFileError(f"larger than {limit} bytes")
    return data


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename over, fsync the directory."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
