"""The index's per-message fetch cache and the \\Recent claim (``Status: O``): what they
survive (our own rewrites, a restart, a rename) and what drops them (expunge, delete, a
rescan after another program changed the mbox)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from refmail.store import MailStore
from refmail.store.index import INDEX_DIR, INDEX_FILE, SCHEMA_VERSION


def filled(store: MailStore, name: str = "INBOX", count: int = 3):
    box = store.mailbox("alice", name)
    for n in range(count):
        box.append(b"Subject: %d\r\n\r\nbody\r\n" % n)
    with box.reading() as reader:
        reader.put_cached({(uid, "ENVELOPE"): b"E%d" % uid for uid in range(1, count + 1)})
    return box


def cached(box) -> dict[tuple[int, str], bytes]:
    with box.reading() as reader:
        return reader.cached(info.uid for info in box.messages())


def test_cache_rows_go_with_expunged_messages_and_rescans(store: MailStore) -> None:
    box = filled(store)
    with box.reading() as reader:
        reader.put_cached({(99, "ENVELOPE"): b"not a message of this mailbox"})
        assert reader.cached([1, 2, 3, 99]) == {(u, "ENVELOPE"): b"E%d" % u for u in (1, 2, 3)}
    box.set_flags({1: frozenset({"\\Seen"})})
    box.sync()  # our own rewrite: the messages as served did not change
    assert set(cached(box)) == {(1, "ENVELOPE"), (2, "ENVELOPE"), (3, "ENVELOPE")}
    box.expunge([2])
    assert set(cached(box)) == {(1, "ENVELOPE"), (3, "ENVELOPE")}
    with box.path.open("ab") as other_program:  # mutt or procmail appending
        other_program.write(b"From x Thu Nov 26 03:37:47 2026\nSubject: new\n\nhi\n\n")
    assert cached(box) == {}  # rescanned: another program may have changed anything
    assert box.parsed_messages == 3


def test_cache_moves_with_rename_and_goes_with_delete(store: MailStore) -> None:
    store.create_mailbox("alice", "Work")
    filled(store, "Work")
    store.rename_mailbox("alice", "Work", "Done")
    moved = store.mailbox("alice", "Done")
    assert cached(moved) == {(u, "ENVELOPE"): b"E%d" % u for u in (1, 2, 3)}
    store.delete_mailbox("alice", "Done")
    store.create_mailbox("alice", "Done")
    again = store.mailbox("alice", "Done")
    again.append(b"Subject: new\r\n\r\n")
    assert cached(again) == {}


def test_cache_survives_a_restart(mail_root: Path) -> None:
    first = MailStore(mail_root)
    first.ensure_user("alice")
    filled(first)
    first.close()
    second = MailStore(mail_root)
    box = second.mailbox("alice", "INBOX")
    assert len(cached(box)) == 3 and box.parsed_messages == 0 and box.message_reads == 0
    second.close()


def test_a_version_1_index_is_upgraded_in_place(mail_root: Path) -> None:
    first = MailStore(mail_root)
    first.ensure_user("alice")
    first.mailbox("alice", "INBOX").append(b"Subject: a\r\n\r\n")
    first.close()
    path = mail_root / "alice" / INDEX_DIR / INDEX_FILE
    db = sqlite3.connect(path)
    db.execute("DROP TABLE fetch_cache")
    db.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    db.commit()
    db.close()
    second = MailStore(mail_root)
    box = second.mailbox("alice", "INBOX")
    assert box.parsed_messages == 0  # the index was kept, not rebuilt
    with box.reading() as reader:
        reader.put_cached({(1, "ENVELOPE"): b"E"})
    second.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA_VERSION,)
    db.close()


def test_recent_is_claimed_once_and_kept_across_a_crash(mail_root: Path) -> None:
    """RFC 3501 2.3.2: the claim is in the index at once (a crash before the lazy write to
    the mbox keeps it), in the mbox after a sync (deleting the index keeps it then)."""
    first = MailStore(mail_root)
    first.ensure_user("alice")
    box = first.mailbox("alice", "INBOX")
    for n in range(3):
        box.append(b"Subject: %d\r\n\r\n" % n)
    assert [info.recent for info in box.messages()] == [True, True, True]
    assert box.claim_recent([1, 2]) == {1, 2}
    assert box.claim_recent([1, 2]) == set()  # recent to one session only
    assert b"Status: O" not in box.path.read_bytes()  # lazily written
    # no close(): as after a crash
    second = MailStore(mail_root)
    again = second.mailbox("alice", "INBOX")
    assert [info.recent for info in again.messages()] == [False, False, True]
    assert again.claim_recent() == {3}
    second.close()  # writes the claims into the mbox
    assert box.path.read_bytes().count(b"\nStatus: O\n") == 3
    for leftover in (mail_root / "alice" / INDEX_DIR).iterdir():
        leftover.unlink()
    third = MailStore(mail_root)
    assert [info.recent for info in third.mailbox("alice", "INBOX").messages()] == [False] * 3
    third.close()
