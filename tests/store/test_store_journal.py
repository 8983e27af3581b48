"""The mailbox's change journal (``Mailbox.changes_since``): what changed since a generation,
costing the changes; the whole mailbox when the journal cannot say (reset, overflow, another
program's change); and reads without fcntl and the dotlock only while nothing changed on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from refmail.errors import LockTimeout, NoSuchMailbox
from refmail.store import MailStore
from refmail.store import journal as journal_module
from refmail.store.journal import ChangeJournal

EXTERNAL = b"From procmail Mon Jan  5 07:08:09 2026\nSubject: external\n\nhello\n\n"


def uids_of(infos) -> list[int]:
    return [info.uid for info in infos]


# ---------------------------------------------------------------------------- the journal alone


def test_journal_unions_the_changes_after_a_generation() -> None:
    journal = ChangeJournal(length=8)
    start = journal.generation
    journal.record("append", (1, 2))
    middle = journal.generation
    journal.record("flags", (1,))
    journal.record("expunge", (2,))
    journal.record("append", (3,))
    span = journal.since(start)
    assert span is not None
    assert (span.appended, span.flagged, span.expunged) == ({1, 2, 3}, {1}, {2})
    later = journal.since(middle)
    assert later is not None
    assert (later.appended, later.flagged, later.expunged) == ({3}, {1}, {2})
    now = journal.since(journal.generation)
    assert now is not None and not (now.appended or now.flagged or now.expunged)


def test_journal_cannot_answer_across_a_reset_an_overflow_or_the_future() -> None:
    journal = ChangeJournal(length=3)
    before = journal.generation
    journal.record("append", (1,))
    journal.reset()
    assert journal.since(before) is None  # a picture adopted from outside since
    after_reset = journal.generation
    assert journal.since(after_reset) is not None
    for uid in range(2, 5):
        journal.record("append", (uid,))
    span = journal.since(after_reset)  # exactly the three kept
    assert span is not None and span.appended == {2, 3, 4}
    journal.record("append", (5,))
    assert journal.since(after_reset) is None  # the change right after it was dropped
    assert journal.since(journal.generation - 3) is not None
    assert journal.since(journal.generation + 1) is None  # not a generation it handed out


# ---------------------------------------------------------------------------- Mailbox


def test_changes_since_reports_appends_flags_and_expunges(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    for n in range(1, 6):
        box.append(make_message(n))
    snapshot = box.changes_since(None)
    assert snapshot.reset and uids_of(snapshot.messages) == [1, 2, 3, 4, 5]
    assert snapshot.uidvalidity == box.uidvalidity
    generation = snapshot.generation
    assert not box.changes_since(generation).reset  # nothing since: an empty answer
    box.set_flags({2: frozenset({"\\Seen"}), 4: frozenset({"\\Deleted"})})
    box.expunge([4])
    box.append(make_message(6), flags=["\\Flagged"])
    box.set_flags({6: frozenset({"\\Answered"})})  # flags of a new message: just new
    changes = box.changes_since(generation)
    assert not changes.reset and changes.messages is None
    assert uids_of(changes.appended) == [6]
    assert changes.appended[0].flags == {"\\Answered"} and changes.appended[0].recent
    assert [(i.uid, i.flags) for i in changes.flagged] == [(2, {"\\Seen"})]  # 4 is gone
    assert changes.expunged == {4}
    assert changes.generation > generation
    assert not box.changes_since(changes.generation).appended


def test_a_message_added_and_removed_since_is_only_expunged(store: MailStore, make_message):
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    generation = box.changes_since(None).generation
    uid = box.append(make_message(2))
    box.expunge([uid])
    changes = box.changes_since(generation)
    assert changes.appended == () and changes.expunged == {uid}


def test_overflow_falls_back_to_the_whole_mailbox(
    store: MailStore, make_message, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "JOURNAL_LENGTH", 4)  # read as the mailbox opens
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(0))
    generation = box.changes_since(None).generation
    for n in range(1, 5):
        box.append(make_message(n))
    assert uids_of(box.changes_since(generation).appended) == [2, 3, 4, 5]  # four: kept
    box.append(make_message(5))
    changes = box.changes_since(generation)
    assert changes.reset and uids_of(changes.messages) == [1, 2, 3, 4, 5, 6]


def test_another_programs_append_is_a_reset(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    generation = box.changes_since(None).generation
    with open(box.path, "ab") as f:  # procmail or mutt, behind the store's back
        f.write(EXTERNAL)
    changes = box.changes_since(generation)
    assert changes.reset and uids_of(changes.messages) == [1, 2]
    # the journal goes on from the new picture
    box.append(make_message(3))
    assert uids_of(box.changes_since(changes.generation).appended) == [3]


def test_another_stores_index_only_flag_change_is_seen(mail_root: Path, make_message) -> None:
    """Lazy flag writes change the index and not the mbox: the lock-free read must still
    notice another index writer (``PRAGMA data_version``) and look again."""
    mine, theirs = MailStore(mail_root), MailStore(mail_root)
    mine.ensure_user("alice")
    box = mine.mailbox("alice", "INBOX")
    box.append(make_message(1))
    generation = box.changes_since(None).generation
    size = os.stat(box.path)
    theirs.mailbox("alice", "INBOX").set_flags({1: frozenset({"\\Seen"})})
    after = os.stat(box.path)
    assert (size.st_size, size.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
    changes = box.changes_since(generation)
    assert changes.reset and changes.messages[0].flags == {"\\Seen"}
    mine.close()
    theirs.close()


def hold_dotlock(path: Path) -> Path:
    """Take the mbox's dotlock as another mbox program would (our pid: never stale)."""
    lock = path.with_name(path.name + ".lock")
    lock.write_text(f"{os.getpid()}\n")
    return lock


def test_a_read_of_an_unchanged_mailbox_takes_no_file_lock(mail_root: Path, make_message):
    """The consistency rule of ``changes_since``: with the file and the index as the picture
    describes them, the picture is current and no fcntl or dotlock is needed; once the file
    differs, the reader waits for the locks (and here times out, as they are held)."""
    store = MailStore(mail_root, lock_timeout=0.3)
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    generation = box.changes_since(None).generation
    box.append(make_message(2))
    lock = hold_dotlock(box.path)
    try:
        with pytest.raises(LockTimeout):
            box.messages()  # a locked read waits for the other program
        changes = box.changes_since(generation)  # the journal answers without the locks
        assert uids_of(changes.appended) == [2]
        assert box.changes_since(None).reset  # and so does a whole snapshot
        with open(box.path, "ab") as f:  # the other program writes under its lock
            f.write(EXTERNAL)
        with pytest.raises(LockTimeout):  # now the file differs: look under the locks
            box.changes_since(changes.generation)
    finally:
        lock.unlink()
    changes = box.changes_since(changes.generation)
    assert changes.reset and uids_of(changes.messages) == [1, 2, 3]
    store.close()


def test_a_wake_up_answers_from_the_last_change_made_here(mail_root: Path, make_message):
    """``look=False``: the picture as the last change made in this process left it (that
    change took every lock and looked at the file), so no lock and no look; another
    program's later change waits for the next look."""
    store = MailStore(mail_root, lock_timeout=0.3)
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    with open(box.path, "ab") as f:  # seen by the append below, which looks first
        f.write(EXTERNAL)
    generation = box.changes_since(None).generation
    with open(box.path, "ab") as f:
        f.write(EXTERNAL)
    box.append(make_message(3))  # takes every lock: finds the external message 2 first
    lock = hold_dotlock(box.path)
    try:
        with open(box.path, "ab") as f:  # made after the last change here
            f.write(EXTERNAL)
        changes = box.changes_since(generation, look=False)
        assert changes.reset and uids_of(changes.messages) == [1, 2, 3]
        with pytest.raises(LockTimeout):
            box.changes_since(changes.generation)  # a look must wait for the locks
    finally:
        lock.unlink()
    assert uids_of(box.changes_since(changes.generation).messages) == [1, 2, 3, 4]
    store.close()


def test_a_rewrite_here_keeps_the_journal(store: MailStore, make_message) -> None:
    """EXPUNGE renames a new file over the mbox (a new inode): the picture records it, so
    the journal still answers and the next read needs no lock."""
    box = store.mailbox("alice", "INBOX")
    for n in range(1, 4):
        box.append(make_message(n))
    generation = box.changes_since(None).generation
    inode = os.stat(box.path).st_ino
    box.expunge([2])
    assert os.stat(box.path).st_ino != inode
    changes = box.changes_since(generation)
    assert not changes.reset and changes.expunged == {2}


def test_a_removed_mailbox_says_so(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    generation = box.changes_since(None).generation
    os.unlink(box.path)
    with pytest.raises(NoSuchMailbox):
        box.changes_since(generation)


def test_claim_recent_of_some_uids(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    for n in range(1, 5):
        box.append(make_message(n))
    assert box.claim_recent([3, 1, 99]) == {1, 3}  # 99: no such message
    assert box.claim_recent([1, 2]) == {2}  # 1 is claimed already
    assert [i.recent for i in box.messages()] == [False, False, False, True]
    assert box.claim_recent() == {4}
