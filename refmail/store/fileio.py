"""File-system steps every durable write uses: write it all, fsync it, fsync the directory.

DESIGN.md, "Durability": an append is fsynced before the reply; a rewrite's new file is
fsynced, renamed over the old and its directory fsynced.  A full disk is not a crash but a
temporary condition the protocols report (452, NO [OVERQUOTA]): InsufficientStorage.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from refmail.errors import InsufficientStorage

#: errno values that mean "the disk is full" (EFBIG: past RLIMIT_FSIZE or the fs's limit).
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def fsync_dir(path: Path) -> None:
    """Make a created, removed or renamed directory entry durable (rename(2) alone is not)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of ``data`` is written; a full disk is InsufficientStorage."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise InsufficientStorage("insufficient storage for the mailbox") from exc
        raise


def fsync_file(fd: int) -> None:
    """fsync(2); a full disk (delayed allocation fails late) is InsufficientStorage."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise InsufficientStorage("insufficient storage for the mailbox") from exc
        raise
