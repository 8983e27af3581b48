"""Whole-mbox I/O: the chunked scan of a file into entries, and the crash-safe rewrite.

DESIGN.md "Durability": a rewrite writes a new file beside the old, fsyncs it, renames it over
and fsyncs the directory, so a crash leaves the old mailbox or the new one, whole.  The caller
(``Mailbox``) holds the mailbox lock throughout.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from refmail.parse import mbox_scan
from refmail.store.fileio import fsync_dir, fsync_file, write_all
from refmail.store.mboxfmt import build_entry, parse_entry, split_entry
from refmail.store.model import Entry, MailboxState

log = logging.getLogger(__name__)

#: A rewrite streams the new file in chunks of this size.
WRITE_CHUNK = 1 << 20
#: A scan reads the mbox in chunks of this size (plus the message that straddles them).
SCAN_CHUNK = 8 << 20


def scan_entries(fd: int, size: int, name: str) -> Iterator[tuple[int, bytes]]:
    """``(offset, raw entry)`` for every entry of the file, reading it in chunks so a
    large mbox never sits in memory whole (only its largest message does)."""
    chunk_size = SCAN_CHUNK  # read per call: tests shrink it
    buffer = b""
    buffer_offset = 0  # file offset of buffer[0]
    position = 0
    while position < size:
        chunk = os.pread(fd, min(chunk_size, size - position), position)
        if not chunk:
            break
        position += len(chunk)
        buffer += chunk
        starts = mbox_scan(buffer, 0)
        if not starts:
            continue
        if buffer_offset == 0 and starts[0] != 0:
            log.warning("mailbox %s: %d bytes before the first From", name, starts[0])
        final = position >= size
        # The last entry may continue in the next chunk: keep it for the next round.
        complete = starts if final else starts[:-1]
        ends = starts[1:] + [len(buffer)]
        for start, end in zip(complete, ends, strict=False):
            yield buffer_offset + start, buffer[start:end]
        if not final:
            buffer_offset += starts[-1]
            buffer = buffer[starts[-1] :]


def write_mbox(
    path: Path,
    entries: list[Entry],
    state: MailboxState,
    read_entry: Callable[[Entry], bytes],
    restamp: frozenset[int] = frozenset(),
    redate: frozenset[int] = frozenset(),
) -> list[Entry]:
    """Write ``entries`` (their raw bytes from ``read_entry``) as a new mbox at ``path``;
    ``restamp``: UIDs new to the file; ``redate``: entries whose From line lacks a date.
    Entries whose internal headers change (pending flags, new UIDs, X-IMAPbase moving to the
    first) are rebuilt; all others are copied byte for byte.  Returns the new entries."""

    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        # Every writer holds the lock, so this is what a crashed rewrite left behind.
        log.warning("removing %s, left by an interrupted rewrite", leftover)
        leftover.unlink(missing_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    written: list[Entry] = []
    try:
        chunk: list[bytes] = []
        pending = offset = 0
        for position, entry in enumerate(entries):
            raw = read_entry(entry)
            base = (state.uidvalidity, state.uidnext) if position == 0 else None
            length, header_length, size = entry.length, entry.header_length, entry.size
            if (
                base is not None
                or entry.has_base
                or entry.dirty
                or entry.uid in restamp
                or entry.uid in redate
                or not raw.endswith(b"\n\n")
            ):
                raw = build_entry(
                    split_entry(raw),
                    uid=entry.uid,
                    flags=entry.flags,
                    old=entry.old,
                    base=base,
                    date=entry.internaldate if entry.uid in redate else None,
                )
                parsed = parse_entry(raw)
                length, header_length, size = len(raw), parsed.header_length, parsed.size
            written.append(
                Entry(
                    entry.uid,
                    offset,
                    length,
                    header_length,
                    size,
                    entry.flags,
                    entry.old,
                    entry.internaldate,
                    has_base=base is not None,
                )
            )
            offset += len(raw)
            chunk.append(raw)
            pending += len(raw)
            if pending >= WRITE_CHUNK:
                write_all(out, b"".join(chunk))
                chunk, pending = [], 0
        write_all(out, b"".join(chunk))
        fsync_file(out)
        os.close(out)
        out = -1
        os.rename(temp, path)
    except BaseException:
        if out >= 0:
            os.close(out)
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return written
