"""One mbox mailbox: its messages by UID, appends, flag changes, expunges, and its lock.

The mbox file is the source of truth (DESIGN.md, "On disk"); the index caches what a scan of
it found, keyed by the file's ``(inode, size, mtime)``.  Every operation takes the mailbox
lock, checks the cache against the file (``_refresh``) and works on a current picture, so
changes by other processes and other mbox programs are picked up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from refmail.errors import InsufficientStorage, LockTimeout, StorageError
from refmail.store.appendnote import AppendNote
from refmail.store.fileio import fsync_dir, fsync_file, write_all
from refmail.store.index import MailIndex
from refmail.store.journal import ChangeJournal, MailboxChanges
from refmail.store.locking import FileLock
from refmail.store.mboxfmt import (
    MAX_UID,
    new_entry,
    parse_entry,
)
from refmail.store.mboxio import scan_entries, write_mbox
from refmail.store.model import Entry, MailboxState, MessageInfo, normalize_flags
from refmail.store.reader import MailboxReader
from refmail.store.rescan import number_entries

log = logging.getLogger(__name__)

Listener = Callable[[str, tuple[int, ...]], None]


def _utc_seconds(date: datetime | None) -> datetime:
    """INTERNALDATE as the From line keeps it: aware UTC, whole seconds (naive = UTC)."""
    if date is None:
        date = datetime.now(UTC)
    elif date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return date.astimezone(UTC).replace(microsecond=0)


class Mailbox:
    """An mbox mailbox; one object per (user, name) in the process, shared by all sessions."""

    def __init__(
        self, user: str, name: str, path: Path, index: MailIndex, *, lock_timeout: float = 10.0
    ) -> None:
        self.user = user
        self.name = name
        self.path = path
        self.lock_timeout = lock_timeout
        #: Messages parsed from the mbox file by this object (a scan, not an index load);
        #: tests use it to prove that a reopened mailbox was served from the index.
        self.parsed_messages = 0
        #: Reads of message bytes from the mbox for the protocols (read, read_header and
        #: their ``reading()`` forms); tests use it to prove an answer came from the index.
        self.message_reads = 0
        self._index = index
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file = FileLock(path, pid_dir=index.dir)
        #: Where an append in progress is noted (a dotfile beside the mbox, not a mailbox).
        self._note = AppendNote(path, name)
        self._state: MailboxState | None = None
        #: the picture _refresh last found current while the lock is held (None after release)
        self._checked: MailboxState | None = None
        #: ``MailIndex.version()`` when the index's row was last known to be ``_state``
        self._index_version: int | None = None
        self._entries: list[Entry] = []
        self._position: dict[int, int] = {}
        self._infos: list[MessageInfo] | None = None
        self._listeners: list[Listener] = []
        self._events: list[tuple[str, tuple[int, ...]]] = []
        #: the events above, numbered, for sessions catching up (``changes_since``)
        self._journal = ChangeJournal()

    def __repr__(self) -> str:
        return f"<Mailbox {self.user}:{self.name}>"

    # ------------------------------------------------------------------ locking

    @contextmanager
    def locked(self, timeout: float | None = None) -> Iterator[Mailbox]:
        """Thread lock, then fcntl, then the dotlock, all within ``timeout`` seconds
        (LockTimeout).  Re-entrant in one thread.  Listeners hear of the changes made under
        it once the outermost ``locked`` has released every lock."""
        timeout = self.lock_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0)):
            raise LockTimeout("mailbox is busy")
        events: list[tuple[str, tuple[int, ...]]] = []
        try:
            if self._depth == 0:
                self._file.acquire(deadline)
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._checked = None
                    self._note.close()
                    self._file.release()
                    events, self._events = self._events, []
        finally:
            listeners = list(self._listeners) if events else []
            self._thread_lock.release()
            self._notify(listeners, events)

    def add_listener(self, callback: Listener) -> None:
        """``callback(kind, uids)`` after "append", "flags" or "expunge" by anyone in this
        process, and for changes another program made, once this object notices them."""
        with self._thread_lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._thread_lock:
            try:
                self._listeners.remove(callback)
            except ValueError:
                pass

    @staticmethod
    def _notify(listeners: list[Listener], events: list[tuple[str, tuple[int, ...]]]) -> None:
        for kind, uids in events:
            for callback in listeners:
                try:
                    callback(kind, uids)
                except Exception:
                    log.exception("mailbox listener %r failed on %s", callback, kind)

    # ------------------------------------------------------------------ reading

    @property
    def uidvalidity(self) -> int:
        """RFC 3501 2.3.1.1."""
        with self.locked():
            return self._refresh().uidvalidity

    @property
    def uidnext(self) -> int:
        """RFC 3501 2.3.1.1: the UID the next appended message will get."""
        with self.locked():
            return self._refresh().uidnext

    def messages(self) -> list[MessageInfo]:
        """The messages in mailbox order (ascending UIDs)."""
        with self.locked():
            self._refresh()
            if self._infos is None:
                self._infos = [entry.info() for entry in self._entries]
            return list(self._infos)

    def changes_since(self, generation: int | None, *, look: bool = True) -> MailboxChanges:
        """What changed after ``generation`` (a ``MailboxChanges.generation`` this object
        handed out), costing the changes, not the mailbox; ``None``, or a generation the
        journal cannot answer for, gets the whole mailbox (``reset``).  UIDVALIDITY is in
        every answer (RFC 3501 2.3.1.1).

        No answer takes fcntl and the dotlock unless the file or the index changed behind
        this object's back.  Consistency rule: in this process the file, the index row and
        the picture in memory change only under the thread lock, and every change made
        here first takes every lock and looks at the file (``_refresh``); another program
        changes the mbox only under fcntl + dotlock, and any change it makes moves the
        file's (inode, size, mtime) at ``path`` (a rewrite is a rename: a new inode), while
        another index writer moves ``PRAGMA data_version``.  Hence:

        - ``look`` (SELECT, NOOP, the start of IDLE: a client asking what is new): when,
          before the thread lock is taken, the file at ``path`` is the one the picture
          describes and the index is unchanged since the picture was read, the picture was
          current at that moment, and the answer is the one a reader holding every lock
          would have got just then.  Else the locks are taken and the file looked at,
          which may find a half-written append or another program's change.  The
          (inode, size, mtime) test is the one ``_refresh`` trusts under the lock.
        - ``look=False`` (a session woken by a change made here): the picture as of the
          last change made or look taken here, under the thread lock only; it is current
          as of that change, which took every lock and looked at the file.  Another
          program's change made since is seen at the next look, as it is when no change
          here wakes anyone (nothing polls the file)."""
        if look:
            try:
                seen: os.stat_result | None = os.stat(self.path)
                version = self._index.version()
            except (OSError, StorageError):
                seen = None
        with self._thread_lock:
            state = self._state
            if state is not None and self._depth == 0:
                if not look:
                    return self._changes(state, generation)
                if (
                    seen is not None
                    and state.describes(seen.st_ino, seen.st_size, seen.st_mtime_ns)
                    and version == self._index_version
                ):
                    return self._changes(state, generation)
        with self.locked():
            return self._changes(self._refresh(), generation)

    def _changes(self, state: MailboxState, generation: int | None) -> MailboxChanges:
        """``changes_since`` once the picture is current (thread lock held)."""
        journal = self._journal
        span = None if generation is None else journal.since(generation)
        if span is None:
            if self._infos is None:
                self._infos = [entry.info() for entry in self._entries]
            return MailboxChanges(journal.generation, state.uidvalidity, list(self._infos))
        position, entries = self._position, self._entries

        def present(uids: Iterable[int]) -> tuple[MessageInfo, ...]:
            found = (position.get(uid) for uid in sorted(uids))
            return tuple(entries[p].info() for p in found if p is not None)

        return MailboxChanges(
            journal.generation,
            state.uidvalidity,
            appended=present(span.appended),
            flagged=present(span.flagged - span.appended),
            expunged=span.expunged,
        )

    def read(self, uid: int) -> bytes:
        """The message as served: CRLF, unquoted, internal headers removed (KeyError)."""
        with self.reading() as reader:
            return reader.read(uid)

    def read_header(self, uid: int) -> bytes:
        """Just the header block of ``read(uid)`` (with its blank line), reading no more of
        the file than that (KeyError)."""
        with self.reading() as reader:
            return reader.read_header(uid)

    @contextmanager
    def reading(self, timeout: float | None = None) -> Iterator[MailboxReader]:
        """Read many messages under one lock and one look at the file (FETCH of a range):
        ``with box.reading() as r: r.read(uid)``.  Callers collect what they need and leave
        the block before writing to the network (STYLE.md 12)."""
        with self.locked(timeout):
            self._refresh()
            yield MailboxReader(self)

    def claim_recent(self, uids: Iterable[int] | None = None) -> set[int]:
        """RFC 3501 2.3.2 \\Recent: the messages (of ``uids``, or all) no session has seen
        yet; they are recent to the caller only.  Marks them old (``Status: O``) in the index
        at once and in the mbox lazily, as flag changes are, so a restart keeps the claim."""
        with self.locked():
            state = self._refresh()
            if uids is None:
                positions: Iterable[int] = range(len(self._entries))
            else:  # a few new messages of a large mailbox: look at those only
                found = (self._position.get(uid) for uid in set(uids))
                positions = sorted(position for position in found if position is not None)
            claimed = []
            for position in positions:
                entry = self._entries[position]
                if entry.old:
                    continue
                entry = replace(entry, old=True, dirty=True)
                self._entries[position] = entry
                claimed.append(entry)
            if claimed:
                self._infos = None
                try:
                    self._save(state, None, claimed, full=False)
                except InsufficientStorage:
                    # A full disk must not stop reading: \Recent is told, not remembered
                    # (another session may see these as recent too until space returns).
                    log.warning("mailbox %s: \\Recent claims not saved: disk full", self.name)
            return {entry.uid for entry in claimed}

    def _read_whole(self, entry: Entry) -> bytes:
        return self._read_entry(entry, entry.length)

    def _read_entry(self, entry: Entry, length: int) -> bytes:
        raw = os.pread(self._file.fd, length, entry.offset)
        if not raw.startswith(b"From "):
            # The file changed in a way its (inode, size, mtime) did not show: distrust the
            # index, so the next operation rescans the file.
            if self._state is not None:
                self._index.put_state(self.name, replace(self._state, size=-1))
            self._state = None
            raise StorageError(f"mailbox {self.name}: index does not match the mbox file")
        return raw

    # ------------------------------------------------------------------ writing

    def append(
        self,
        message: bytes,
        *,
        sender: str = "MAILER-DAEMON",
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> int:
        """Append one message (RFC 3501 6.3.11, RFC 5321 4.4 delivery) and return its UID.

        Written, flushed and fsynced before returning; a failed write (full disk:
        InsufficientStorage) is truncated away, leaving the mbox as it was.

        The fsync runs after the mailbox lock is released, on a duplicate of the file
        descriptor (same open file, so it flushes this append), so that concurrent deliveries
        share journal commits instead of queueing one fsync each behind the lock (group
        commit: ext4's jbd2 batches waiters on one commit).  Readers may see the message a
        few milliseconds before it is durable, as with any mbox writer; if that fsync fails
        the caller gets the error (no 250) and the message may stay: delivered twice rather
        than lost (RFC 5321 6.1).  A rewrite in between fsyncs its own new file.
        """
        stored_flags = normalize_flags(flags)
        date = _utc_seconds(internaldate)
        with self.locked():
            state = self._refresh()
            uid = state.uidnext
            if uid > MAX_UID:
                raise StorageError("mailbox has used up its UIDs")
            first = not self._entries
            entry, header_length, size = new_entry(
                message,
                sender=sender,
                date=date,
                uid=uid,
                flags=stored_flags,
                old=False,
                base=(state.uidvalidity, uid + 1) if first else None,
            )
            fd = self._file.fd
            current = os.fstat(fd)
            end = current.st_size
            gap = self._separator_needed(fd, end)
            data = gap + entry
            # A crash inside write(2) can leave part of the entry: note where it goes, so
            # the next look at the file cuts it off (AppendNote.cut_torn_append).
            self._note.arm(current.st_ino, end, data)
            try:
                os.lseek(fd, end, os.SEEK_SET)
                write_all(fd, data)
                durable = os.dup(fd)
            except BaseException:
                self._truncate(fd, current)
                raise
            finally:
                self._note.disarm()
            stat = os.fstat(fd)
            new = Entry(
                uid,
                end + len(gap),
                len(entry),
                header_length,
                size,
                stored_flags,
                False,
                date,
                has_base=first,
            )
            changed = [new]
            if gap and self._entries:
                last = self._entries[-1]
                self._entries[-1] = replace(last, length=last.length + len(gap))
                changed.append(self._entries[-1])
            self._entries.append(new)
            self._position[uid] = len(self._entries) - 1
            try:
                self._save(
                    replace(state, uidnext=uid + 1),
                    stat,
                    changed,
                    full=False,
                    event=("append", (uid,)),
                )
            except BaseException:
                # Not indexed (a full disk, say): take it back, so that a failed append is
                # no append and a retried delivery is no duplicate.
                os.close(durable)
                self._truncate(fd, current)
                raise
        try:
            fsync_file(durable)
        finally:
            os.close(durable)
        return uid

    def _truncate(self, fd: int, before: os.stat_result) -> None:
        """Take a failed append back off the end of the file.  The file is byte for byte as
        ``before``, so its mtime goes back too: the index still describes it and a full
        disk does not force a rescan whose index update would fail as well."""
        try:
            os.ftruncate(fd, before.st_size)
            os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.fsync(fd)
        except OSError:
            log.exception("mailbox %s: could not truncate a failed append", self.name)

    @staticmethod
    def _separator_needed(fd: int, end: int) -> bytes:
        """What must precede a new From line so it starts after a blank line."""
        if end == 0:
            return b""
        tail = os.pread(fd, 2, max(end - 2, 0))
        if tail.endswith(b"\n\n") or tail == b"\n":
            return b""
        return b"\n" if tail.endswith(b"\n") else b"\n\n"

    def set_flags(self, changes: Mapping[int, frozenset[str]]) -> None:
        """Replace the flags of the given UIDs (RFC 3501 6.4.6 STORE computes them).  Kept in
        the index and written to the mbox lazily: by expunge, sync() or MailStore.close().
        UIDs no longer in the mailbox are ignored (another session expunged them)."""
        normalized = {uid: normalize_flags(flags) for uid, flags in changes.items()}
        with self.locked():
            state = self._refresh()
            changed = []
            for uid, flags in normalized.items():
                position = self._position.get(uid)
                if position is None:
                    continue
                entry = self._entries[position]
                if entry.flags == flags:
                    continue
                entry = replace(entry, flags=flags, dirty=True)  # \Recent is claim_recent's
                self._entries[position] = entry
                changed.append(entry)
            if changed:
                uids = tuple(entry.uid for entry in changed)
                self._save(state, None, changed, full=False, event=("flags", uids))

    def expunge(self, uids: Iterable[int]) -> list[int]:
        """Remove these messages (RFC 3501 6.4.3, RFC 1939 UPDATE state) by rewriting the
        mbox; returns the UIDs removed, in mailbox order.  Pending flags are written too."""
        wanted = set(uids)
        with self.locked():
            state = self._refresh()
            removed = [entry.uid for entry in self._entries if entry.uid in wanted]
            if removed:
                self._rewrite(state, drop=frozenset(removed), event=("expunge", tuple(removed)))
            return removed

    def sync(self) -> None:
        """Write flag changes kept in the index back into the mbox headers."""
        with self.locked():
            state = self._refresh()
            if any(entry.dirty for entry in self._entries):
                self._rewrite(state)

    # ------------------------------------------------------------------ the cache

    def _refresh(self) -> MailboxState:
        """Bring the in-memory picture up to date with the index and the file (lock held)."""
        if self._checked is not None and self._checked is self._state:
            # Found current earlier in this hold of the lock, and nothing here replaced it
            # since: no other program changes the file or the index while we hold the lock,
            # so a burst of reads (POP3 RETRs, a FETCH range) looks once, not per message.
            return self._state
        stat = os.fstat(self._file.fd)
        state = self._state
        if state is None or not state.describes(stat.st_ino, stat.st_size, stat.st_mtime_ns):
            # Bytes we do not know of: a torn append may be among them.  (A file just as
            # this object left it cannot end in one, so a delivery skips the note's read.)
            self._note.cut_torn_append(self._file.fd)
            stat = os.fstat(self._file.fd)
        version = self._index.version()
        if version == self._index_version and self._state is not None:
            # No other connection committed to the index since our row was last read or
            # written through this object (under the lock), so the row is still _state.
            known: MailboxState | None = self._state
        else:
            known = self._index.state(self.name)
        self._index_version = version
        if known is not None and known.describes(stat.st_ino, stat.st_size, stat.st_mtime_ns):
            if known != self._state:
                self._install(known, self._index.entries(self.name))
            self._checked = self._state
            return known
        return self._rescan(stat, known)

    def _install(self, state: MailboxState, entries: list[Entry]) -> None:
        """Adopt a new picture; listeners hear what changed when there was an old one."""
        if self._state is not None:
            self._queue_differences(self._entries, entries)
        self._journal.reset()
        self._state = state
        self._entries = entries
        self._position = {entry.uid: i for i, entry in enumerate(entries)}
        self._infos = None

    def _queue_differences(self, old: list[Entry], new: list[Entry]) -> None:
        old_flags = {entry.uid: entry.flags for entry in old}
        new_uids = {entry.uid for entry in new}
        gone = tuple(entry.uid for entry in old if entry.uid not in new_uids)
        added = tuple(entry.uid for entry in new if entry.uid not in old_flags)
        changed = tuple(
            entry.uid
            for entry in new
            if entry.uid in old_flags and old_flags[entry.uid] != entry.flags
        )
        for kind, uids in (("expunge", gone), ("append", added), ("flags", changed)):
            if uids:
                self._events.append((kind, uids))

    def _save(
        self,
        state: MailboxState,
        stat: os.stat_result | None,
        entries: list[Entry],
        *,
        full: bool,
        event: tuple[str, tuple[int, ...]] | None = None,
        keep_cache: bool = True,
    ) -> None:
        """Record a change made by this object: in the index, then in memory.
        ``keep_cache=False`` (after a rescan) drops every cached fetch item of the mailbox."""
        if stat is not None:
            state = replace(state, ino=stat.st_ino, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        state = replace(state, generation=state.generation + 1)
        try:
            if full:
                self._index.replace(self.name, state, entries, keep_cache=keep_cache)
            else:
                self._index.upsert(self.name, state, entries)
        except BaseException:
            # Memory may be ahead of the index now: forget it, the next _refresh reloads
            # from the index or rescans the file.
            self._state = None
            self._infos = None
            raise
        if full:
            self._entries = entries
            self._position = {entry.uid: i for i, entry in enumerate(entries)}
        self._state = state
        self._infos = None
        if event is not None:
            self._events.append(event)
            self._journal.record(*event)

    def _rescan(self, stat: os.stat_result, known: MailboxState | None) -> MailboxState:
        """Read the whole mbox and index what ``rescan.number_entries`` makes of it.
        Messages without a usable X-UID get UIDs now and the file is rewritten at once to
        carry them (as Dovecot does), so they survive the index."""
        offsets: list[int] = []
        parsed = []
        for offset, raw in scan_entries(self._file.fd, stat.st_size, self.name):
            offsets.append(offset)
            parsed.append(parse_entry(raw))
        self.parsed_messages += len(parsed)
        scan = number_entries(
            self.name,
            offsets,
            parsed,
            known,
            fallback_date=datetime.fromtimestamp(stat.st_mtime, UTC).replace(microsecond=0),
            new_uidvalidity=self._index.new_uidvalidity,
            dirty_flags=lambda: self._index.dirty_flags(self.name),
        )
        state, entries = scan.state, scan.entries
        self._install(state, entries)
        if scan.needs_rewrite:
            self._rewrite(state, restamp=scan.restamp, redate=scan.redate, keep_cache=False)
        else:
            self._save(state, stat, entries, full=True, keep_cache=False)
        return self._state or state

    # ------------------------------------------------------------------ rewriting

    def _rewrite(
        self,
        state: MailboxState,
        *,
        drop: frozenset[int] = frozenset(),
        restamp: frozenset[int] = frozenset(),
        redate: frozenset[int] = frozenset(),
        event: tuple[str, tuple[int, ...]] | None = None,
        keep_cache: bool = True,
    ) -> None:
        """Replace the mbox with a new file beside it, fsynced, renamed over, directory
        fsynced: a crash leaves the old file or the new one, whole.  Entries whose internal
        headers change (pending flags, new UIDs, X-IMAPbase moving to the first) are rebuilt;
        all others are copied byte for byte."""
        kept = [entry for entry in self._entries if entry.uid not in drop]
        written = write_mbox(self.path, kept, state, self._read_whole, restamp, redate)
        self._file.reopen()
        stat = os.fstat(self._file.fd)
        self._save(state, stat, written, full=True, event=event, keep_cache=keep_cache)

    def remove_file(self) -> None:
        """DELETE (RFC 3501 6.3.4): unlink the mbox under the lock; sessions that have it
        open hear that every message is gone."""
        with self.locked():
            self._refresh()
            uids = tuple(entry.uid for entry in self._entries)
            os.unlink(self.path)
            self._note.remove()
            fsync_dir(self.path.parent)
            self._index.delete(self.name)
            self._state = None
            self._entries, self._position, self._infos = [], {}, None
            self._journal.reset()
            if uids:
                self._events.append(("expunge", uids))

    def rename_file(self, new_path: Path) -> None:
        """RENAME (RFC 3501 6.3.5) of this mailbox's file, under its lock.  A crash's torn
        append is cut first, and the note stays behind no more than the file does."""
        with self.locked():
            self._note.cut_torn_append(self._file.fd)
            os.rename(self.path, new_path)
            self._note.remove()

    def move_messages_to(self, path: Path, name: str, uidvalidity: int) -> None:
        """RENAME INBOX (RFC 3501 6.3.5): every message goes to a new mailbox file at
        ``path`` (keeping its UID under a new UIDVALIDITY) and this mailbox is left empty,
        its UIDNEXT kept.  The new file is durable before this one is emptied."""
        with self.locked():
            state = self._refresh()
            target_state = replace(state, uidvalidity=uidvalidity, generation=0)
            written = write_mbox(path, self._entries, target_state, self._read_whole)
            stat = os.stat(path)
            target_state = replace(
                target_state, ino=stat.st_ino, size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
            self._index.replace(name, replace(target_state, generation=1), written)
            removed = tuple(entry.uid for entry in self._entries)
            if removed:
                self._rewrite(state, drop=frozenset(removed), event=("expunge", removed))
