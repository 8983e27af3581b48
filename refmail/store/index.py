"""The per-user index cache ``mail/USER/.index/index.sqlite3`` (DESIGN.md, "On disk").

It caches each mailbox's entries (offsets, sizes, flags) together with the ``(inode, size,
mtime)`` of the mbox they describe, so a mailbox opens without reading its file; holds flag
and \\Recent changes not yet written to the mbox (lazy writes); caches what the IMAP layer
derived from each message's bytes (ENVELOPE, BODYSTRUCTURE: ``fetch_cache``, dropped with the
message and whenever the mailbox is rescanned, since another program may have changed it);
and keeps the UID state of mailboxes whose file cannot (an empty mbox has no first message to
carry ``X-IMAPbase``).  Everything but that last state is rebuilt from the mbox files when
lost; losing the state just means a new, larger UIDVALIDITY (RFC 3501 2.3.1.1).

Writers of one mailbox's rows hold that mailbox's lock; SQLite's own locking covers the rest.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from refmail.errors import InsufficientStorage, StorageError
from refmail.store.model import Entry, MailboxState

log = logging.getLogger(__name__)

INDEX_DIR = ".index"
INDEX_FILE = "index.sqlite3"
#: 2 added ``fetch_cache``; a version 1 index is upgraded in place (the table is created).
SCHEMA_VERSION = 2
UPGRADABLE_VERSIONS = frozenset({1})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mailbox (
    name TEXT PRIMARY KEY, uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL,
    ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS message (
    mailbox TEXT NOT NULL, uid INTEGER NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, header_length INTEGER NOT NULL, size INTEGER NOT NULL,
    flags TEXT NOT NULL, old INTEGER NOT NULL, internaldate INTEGER NOT NULL,
    has_base INTEGER NOT NULL, dirty INTEGER NOT NULL, PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fetch_cache (
    mailbox TEXT NOT NULL, uid INTEGER NOT NULL, item TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (mailbox, uid, item)
) WITHOUT ROWID;
"""
#: Cache rows of UIDs that left the mailbox (expunged, or a rewrite dropped them).
_DROP_ORPHANS = (
    "DELETE FROM fetch_cache WHERE mailbox = ?"
    " AND uid NOT IN (SELECT uid FROM message WHERE mailbox = ?)"
)
_ENTRY_COLUMNS = (
    "uid, offset, length, header_length, size, flags, old, internaldate, has_base, dirty"
)


def _row(name: str, e: Entry) -> tuple[object, ...]:
    return (
        name,
        e.uid,
        e.offset,
        e.length,
        e.header_length,
        e.size,
        " ".join(sorted(e.flags)),
        int(e.old),
        int(e.internaldate.timestamp()),
        int(e.has_base),
        int(e.dirty),
    )


def _entry(row: tuple) -> Entry:
    uid, offset, length, header_length, size, flags, old, date, has_base, dirty = row
    return Entry(
        uid,
        offset,
        length,
        header_length,
        size,
        frozenset(flags.split()),
        bool(old),
        datetime.fromtimestamp(date, UTC),
        bool(has_base),
        bool(dirty),
    )


class MailIndex:
    """One user's index database.  Thread-safe: one connection behind a lock."""

    def __init__(self, user_dir: Path, *, timeout: float = 10.0) -> None:
        self.dir = user_dir / INDEX_DIR
        self.path = self.dir / INDEX_FILE
        self._lock = threading.Lock()
        self._timeout = timeout
        self.dir.mkdir(mode=0o700, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # A cache: a damaged one is thrown away and rebuilt from the mbox files.
            log.warning("index %s unusable (%s); rebuilding it", self.path, exc)
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif version[0] in UPGRADABLE_VERSIONS:
                db.execute("UPDATE meta SET value = ? WHERE key='schema'", (SCHEMA_VERSION,))
            elif version[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version[0]}")
            db.execute("SELECT count(*) FROM mailbox").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple | list]]) -> None:
        """Run ``(sql, params)`` pairs in one transaction; a params list means executemany."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        if isinstance(params, list):
                            self._db.executemany(sql, params)
                        else:
                            self._db.execute(sql, params)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"index read failed: {exc}") from exc

    # ------------------------------------------------------------------ state

    def version(self) -> int:
        """SQLite's ``PRAGMA data_version``: it changes when another connection (another
        process, another MailStore) commits to the index, never for this one's commits, so
        a mailbox that wrote its row here knows the row is unchanged while this stays."""
        return self._read("PRAGMA data_version")[0][0]

    def state(self, name: str) -> MailboxState | None:
        rows = self._read(
            "SELECT uidvalidity, uidnext, ino, size, mtime_ns, generation FROM mailbox"
            " WHERE name = ?",
            (name,),
        )
        return MailboxState(*rows[0]) if rows else None

    def new_uidvalidity(self) -> int:
        """A UIDVALIDITY larger than any this index handed out and time based, so it is larger
        than earlier ones even when the index was lost (RFC 3501 2.3.1.1)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
                value = max(int(time.time()), (row[0] if row else 0) + 1)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('uidvalidity', ?)", (value,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _storage_error(exc) from exc
        return value

    def put_state(self, name: str, state: MailboxState) -> None:
        self._write([(_PUT_STATE, (name, *_state_values(state)))])

    # ------------------------------------------------------------------ entries

    def entries(self, name: str) -> list[Entry]:
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM message WHERE mailbox = ? ORDER BY uid", (name,)
        )
        return [_entry(row) for row in rows]

    def dirty_flags(self, name: str) -> dict[int, frozenset[str]]:
        rows = self._read("SELECT uid, flags FROM message WHERE mailbox = ? AND dirty", (name,))
        return {uid: frozenset(flags.split()) for uid, flags in rows}

    def replace(
        self, name: str, state: MailboxState, entries: list[Entry], *, keep_cache: bool = True
    ) -> None:
        """All of a mailbox's rows at once (after a scan or a rewrite).  Cached fetch data
        of UIDs still present survives a rewrite of ours (``keep_cache``: the messages'
        bytes as served did not change), never a rescan."""
        drop_cache = (
            (_DROP_ORPHANS, (name, name))
            if keep_cache
            else ("DELETE FROM fetch_cache WHERE mailbox = ?", (name,))
        )
        self._write(
            [
                ("DELETE FROM message WHERE mailbox = ?", (name,)),
                (_INSERT_ENTRY, [_row(name, e) for e in entries]),
                (_PUT_STATE, (name, *_state_values(state))),
                drop_cache,
            ]
        )

    def upsert(self, name: str, state: MailboxState, entries: list[Entry]) -> None:
        """Some entries changed or were added (an append, a flag change)."""
        self._write(
            [
                (_INSERT_ENTRY, [_row(name, e) for e in entries]),
                (_PUT_STATE, (name, *_state_values(state))),
            ]
        )

    # ------------------------------------------------------------------ fetch cache

    def cached(self, name: str, uids: Iterable[int]) -> dict[tuple[int, str], bytes]:
        """``{(uid, item): value}`` of the cached fetch data of these UIDs."""
        wanted = set(uids)
        if not wanted:
            return {}
        low, high = min(wanted), max(wanted)
        rows = self._read(
            "SELECT uid, item, value FROM fetch_cache WHERE mailbox = ? AND uid BETWEEN ? AND ?",
            (name, low, high),
        )
        return {(uid, item): bytes(value) for uid, item, value in rows if uid in wanted}

    def put_cached(self, name: str, values: dict[tuple[int, str], bytes]) -> None:
        """Store fetch data of messages in the index (the caller holds the mailbox lock and
        has checked that the UIDs are the mailbox's)."""
        if values:
            rows = [(name, uid, item, value) for (uid, item), value in values.items()]
            self._write([("INSERT OR REPLACE INTO fetch_cache VALUES (?, ?, ?, ?)", rows)])

    # ------------------------------------------------------------------ names

    def delete(self, name: str) -> None:
        self._write(
            [
                ("DELETE FROM message WHERE mailbox = ?", (name,)),
                ("DELETE FROM mailbox WHERE name = ?", (name,)),
                ("DELETE FROM fetch_cache WHERE mailbox = ?", (name,)),
            ]
        )

    def rename(self, old: str, new: str) -> None:
        """Move rows of ``old`` and of every mailbox below it (``old/...``) to ``new``.
        Children are matched by exact prefix (LIKE would ignore ASCII case)."""
        old_prefix, new_prefix = old + "/", new + "/"
        statements: list[tuple[str, tuple | list]] = []
        tables = (("message", "mailbox"), ("mailbox", "name"), ("fetch_cache", "mailbox"))
        for table, column in tables:
            below = f"substr({column}, 1, ?) = ?"
            statements += [
                (f"DELETE FROM {table} WHERE {column} = ?", (new,)),
                (f"DELETE FROM {table} WHERE {below}", (len(new_prefix), new_prefix)),
                (f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new, old)),
                (
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {below}",
                    (new_prefix, len(old_prefix) + 1, len(old_prefix), old_prefix),
                ),
            ]
        self._write(statements)


def _storage_error(exc: sqlite3.Error) -> StorageError:
    """SQLITE_FULL is a full disk like ENOSPC on the mbox; anything else a storage fault."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return InsufficientStorage("insufficient storage for the mail index")
    return StorageError(f"index update failed: {exc}")


def _state_values(state: MailboxState) -> tuple[int, ...]:
    return (
        state.uidvalidity,
        state.uidnext,
        state.ino,
        state.size,
        state.mtime_ns,
        state.generation,
    )


#: An upsert, not INSERT OR REPLACE: the row is updated in place, so the name's index entry is
#: not deleted and reinserted (one page fewer in the WAL per append).
_PUT_STATE = (
    "INSERT INTO mailbox VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
    " uidvalidity = excluded.uidvalidity, uidnext = excluded.uidnext, ino = excluded.ino,"
    " size = excluded.size, mtime_ns = excluded.mtime_ns, generation = excluded.generation"
)
_INSERT_ENTRY = (
    f"INSERT OR REPLACE INTO message (mailbox, {_ENTRY_COLUMNS}) VALUES ({', '.join('?' * 11)})"
)
