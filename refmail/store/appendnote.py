"""The note an append keeps while it writes, so the tail a crash tears off is cut, never served.

A SIGKILL inside ``write(2)`` can leave the start of an entry at the end of the mbox, never
acknowledged (Linux stops a regular-file write between pages).  Before it writes, an append
*arms* its mailbox's note ``.NAME.append`` (beside the mbox) with the inode, where the entry
starts and ends, and its first bytes; once written, it *disarms* it.  The next look at the file
under the lock (``Mailbox._refresh``) finds an armed note only after a crash, and truncates
the torn tail it describes (DESIGN.md "Durability": every mbox stays readable and complete).

The note file stays between appends and is rewritten in place (``pwrite``): a file created and
removed per append cost an inode allocation per delivery, about as much as the rest of the
delivery's own work.  Armed, it reads ``INO START END LENGTH CRC\\n`` and LENGTH first bytes of
the entry; CRC (zlib.crc32 of the numbers' line without it, and of the bytes) tells a whole
note from anything else.  Disarming overwrites the first byte with ``#``.  Notes written by
earlier versions (``INO START END\\n`` and the bytes, the file removed after each append) are
still read, so a crash before an upgrade is still cut.  Not fsynced: the note guards against a
process crash, whose page cache survives; a power loss is the fsync's business.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

from refmail.errors import InsufficientStorage
from refmail.store.fileio import DISK_FULL

log = logging.getLogger(__name__)

#: Bytes of an append kept in its note, to recognize its torn start on disk.
NOTE_PREFIX = 128
#: What a disarmed note starts with (no number does).
DISARMED = b"#"
#: Enough to read any note (its numbers and NOTE_PREFIX bytes).
_NOTE_READ = 512


def note_path(mbox: Path) -> Path:
    """Where the note of the mbox at ``mbox`` lives."""
    return mbox.with_name(f".{mbox.name}.append")


def format_note(ino: int, start: int, end: int, data: bytes) -> bytes:
    """An armed note for an append of ``data`` at ``start`` of the file with inode ``ino``."""
    prefix = data[:NOTE_PREFIX]
    line = b"%d %d %d %d" % (ino, start, end, len(prefix))
    return b"%s %d\n%s" % (line, zlib.crc32(prefix, zlib.crc32(line)), prefix)


def parse_note(note: bytes) -> tuple[int, int, int, bytes] | None:
    """``(ino, start, end, first bytes)`` of an armed note; None for a disarmed, empty or
    damaged one (a note torn while armed: its append had not begun to write)."""
    head, _, rest = note.partition(b"\n")
    try:
        numbers = [int(field) for field in head.split()]
    except ValueError:
        return None
    if len(numbers) == 5:
        ino, start, end, length, crc = numbers
        prefix = rest[:length]
        line = b"%d %d %d %d" % (ino, start, end, length)
        if len(prefix) != length or zlib.crc32(prefix, zlib.crc32(line)) != crc:
            return None
    elif len(numbers) == 3:  # an earlier version's note: the rest of the file is the prefix
        ino, start, end = numbers
        prefix = rest
    else:
        return None
    if end <= start or len(prefix) != min(NOTE_PREFIX, end - start):
        return None
    return ino, start, end, prefix


class AppendNote:
    """The note of one mbox.  Used with the mailbox lock held; ``close()`` when releasing it
    (the descriptor is not kept between holds: another process may remove or replace the
    file, as DELETE and CREATE of the same name do)."""

    def __init__(self, mbox: Path, name: str) -> None:
        self.path = note_path(mbox)
        self._path_name = os.fspath(self.path)
        self._name = name  # the mailbox's, for the log
        self._fd = -1

    def arm(self, ino: int, start: int, data: bytes) -> None:
        """Note that ``data`` is about to be written at ``start`` of the mbox (inode ``ino``)."""
        note = format_note(ino, start, start + len(data), data)
        try:
            if self._fd < 0:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._fd = os.open(self._path_name, flags, 0o600)
            if os.pwrite(self._fd, note, 0) != len(note):
                raise OSError("short write of the append note")
        except OSError as exc:
            if exc.errno in DISK_FULL:  # its first append on a full disk: 452, not 451
                raise InsufficientStorage("insufficient storage for the mailbox") from exc
            raise

    def disarm(self) -> None:
        """The write is over (whole, or truncated away): nothing for the next look to cut."""
        if self._fd >= 0:
            os.pwrite(self._fd, DISARMED, 0)

    def cut_torn_append(self, fd: int) -> None:
        """If an armed note is here (a crash's: appends disarm theirs before unlocking) and
        the mbox open at ``fd`` ends inside the append it describes, with that append's first
        bytes where it began (so a message another program appended since is never taken for
        it), truncate the torn tail away.  Then disarm the note."""
        if self._fd < 0:
            try:
                self._fd = os.open(self._path_name, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                return
        noted = parse_note(os.pread(self._fd, _NOTE_READ, 0))
        if noted is None:
            return
        ino, start, end, prefix = noted
        stat = os.fstat(fd)
        if ino == stat.st_ino and start < stat.st_size < end:
            written = os.pread(fd, min(stat.st_size - start, len(prefix)), start)
            if prefix.startswith(written):
                log.warning(
                    "mailbox %s: cutting off %d octets of an append torn by a crash",
                    self._name,
                    stat.st_size - start,
                )
                os.ftruncate(fd, start)
                os.fsync(fd)
        self.disarm()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """The mailbox goes (DELETE) or moves (RENAME): its note goes too."""
        self.close()
        try:
            os.unlink(self._path_name)
        except FileNotFoundError:
            pass
