"""One mailbox: append/read, quoting, flags, expunge, UIDs and the index cache."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from refmail.errors import StorageError
from refmail.parse import to_crlf
from refmail.store import MailStore


def inbox_path(mail_root: Path, user: str = "alice") -> Path:
    return mail_root / user / "INBOX"


def test_append_read_and_sizes(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    uids = [store.deliver("alice", make_message(n), sender=f"s{n}@example.org") for n in range(3)]
    assert uids == [1, 2, 3]
    infos = box.messages()
    assert [info.uid for info in infos] == uids
    for n, info in enumerate(infos):
        data = box.read(info.uid)
        assert data == make_message(n)
        assert info.size == len(data)
        header = box.read_header(info.uid)
        assert data.startswith(header) and header.endswith(b"\r\n\r\n")
        assert b"Subject: message %d" % n in header and b"body" not in header
    assert box.uidnext == 4
    with pytest.raises(KeyError):
        box.read(99)
    disk = inbox_path(store.root).read_bytes()
    assert disk.startswith(b"From s0@example.org ")
    assert b"\r\n" not in disk
    assert disk.count(b"X-UID: ") == 3 and disk.count(b"X-IMAPbase: ") == 1


def test_internaldate_and_flags_given_at_append(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "inbox")  # any case names INBOX
    when = datetime(2020, 2, 29, 12, 30, 45, 999, tzinfo=UTC) + timedelta()
    uid = box.append(make_message(1), flags=["\\Seen", "\\FLAGGED", "$Work"], internaldate=when)
    (info,) = box.messages()
    assert info.uid == uid
    assert info.flags == {"\\Seen", "\\Flagged", "$Work"}
    assert info.internaldate == when.replace(microsecond=0)
    assert info.internaldate.tzinfo is not None
    assert b" Sat Feb 29 12:30:45 2020\n" in inbox_path(store.root).read_bytes()


def test_from_lines_in_body_round_trip_byte_exact(store: MailStore) -> None:
    message = (
        b"Subject: quoting\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\n"
        b" From not at start\r\nFrom\r\nFromage\r\n"
    )
    box = store.mailbox("alice", "INBOX")
    uid = box.append(message)
    assert box.read(uid) == message
    disk = inbox_path(store.root).read_bytes()
    assert b"\n>From the start\n>>From quoted\n>>>From twice\n From not at start\nFrom\n" in disk
    # And after a rewrite (flags written back) the entry still reads back the same.
    box.set_flags({uid: frozenset({"\\Seen"})})
    box.sync()
    assert box.read(uid) == message
    assert box.messages()[0].size == len(message)


def test_incoming_internal_headers_cannot_choose_uid_or_flags(store: MailStore) -> None:
    forged = (
        b"X-UID: 4000000000\r\nX-IMAPbase: 1 4000000001\r\nStatus: RO\r\nX-Status: D\r\n"
        b"X-Keywords: forged\r\nSubject: forged\r\n\r\nbody\r\n"
    )
    box = store.mailbox("alice", "INBOX")
    uid = box.append(forged)
    assert uid == 1
    assert box.messages()[0].flags == frozenset()
    assert box.read(uid) == b"Subject: forged\r\n\r\nbody\r\n"
    assert box.uidnext == 2


def test_mbox_written_by_python_mailbox_is_read_and_stamped(mail_root: Path) -> None:
    store = MailStore(mail_root)
    store.ensure_user("alice")
    bodies = [
        b"Subject: one\n\nFrom the body\nline\n",
        b"Subject: two\nTo: alice@example.test\n\nsecond\n",
        b"Subject: three\n\n",
    ]
    writer = stdlib_mailbox.mbox(str(inbox_path(mail_root)))
    for body in bodies:
        writer.add(body)
    writer.flush()
    writer.close()

    box = store.mailbox("alice", "INBOX")
    infos = box.messages()
    assert [info.uid for info in infos] == [1, 2, 3]
    assert [box.read(info.uid) for info in infos] == [to_crlf(body) for body in bodies]
    disk = inbox_path(mail_root).read_bytes()
    assert disk.count(b"X-UID: ") == 3  # stamped at once, so the UIDs survive the index
    uidvalidity = box.uidvalidity
    store.close()

    shutil.rmtree(mail_root / "alice" / ".index")
    again = MailStore(mail_root).mailbox("alice", "INBOX")
    assert [info.uid for info in again.messages()] == [1, 2, 3]
    assert again.uidvalidity == uidvalidity
    assert again.read(1) == to_crlf(bodies[0])
    # Python's reader still sees the same three messages.
    reader = stdlib_mailbox.mbox(str(inbox_path(mail_root)))
    assert [m["Subject"] for m in reader] == ["one", "two", "three"]


def test_flags_sync_visible_to_python_mailbox(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    for n in range(3):
        box.append(make_message(n))
    box.set_flags(
        {
            1: frozenset({"\\Seen", "\\Answered"}),
            2: frozenset({"\\Flagged", "\\Deleted", "\\Draft", "$Label1", "work"}),
        }
    )
    # Lazy: the mbox does not have them yet, the mailbox does.
    assert b"X-Status" not in inbox_path(store.root).read_bytes()
    assert box.messages()[1].flags == {"\\Flagged", "\\Deleted", "\\Draft", "$Label1", "work"}
    box.sync()
    reader = stdlib_mailbox.mbox(str(inbox_path(store.root)))
    messages = list(reader)
    # O (old) is \\Recent's bit: only a session's claim sets it, a flag change does not
    assert set(messages[0].get_flags()) == set("RA")
    assert set(messages[1].get_flags()) == set("FDT")
    assert messages[1]["X-Keywords"] == "$Label1 work"
    assert messages[2].get_flags() == ""
    assert [m["X-UID"] for m in messages] == ["1", "2", "3"]
    assert box.claim_recent([1, 3]) == {1, 3}
    box.sync()
    flags = [set(m.get_flags()) for m in stdlib_mailbox.mbox(str(inbox_path(store.root)))]
    assert flags == [set("ROA"), set("FDT"), {"O"}]


def test_lazy_flags_survive_reopen_and_index_deletion_after_sync(
    mail_root: Path, make_message
) -> None:
    first = MailStore(mail_root)
    first.ensure_user("alice")
    box = first.mailbox("alice", "INBOX")
    for n in range(4):
        box.append(make_message(n))
    box.set_flags({2: frozenset({"\\Seen"}), 3: frozenset({"\\Deleted", "kw"})})
    uidvalidity = box.uidvalidity

    # Another store (another process, or a restart without close) sees them from the index.
    second = MailStore(mail_root).mailbox("alice", "INBOX")
    assert {i.uid: i.flags for i in second.messages()}[3] == {"\\Deleted", "kw"}
    assert b"X-Keywords" not in inbox_path(mail_root).read_bytes()
    second.sync()
    assert b"X-Keywords: kw" in inbox_path(mail_root).read_bytes()
    expected = [(i.uid, i.flags, i.size, i.internaldate) for i in second.messages()]

    shutil.rmtree(mail_root / "alice" / ".index")
    third = MailStore(mail_root).mailbox("alice", "INBOX")
    assert [(i.uid, i.flags, i.size, i.internaldate) for i in third.messages()] == expected
    assert third.uidvalidity == uidvalidity
    assert third.uidnext == 5
    first.close()


def test_close_writes_back_pending_flags(mail_root: Path, make_message) -> None:
    store = MailStore(mail_root)
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    box.set_flags({1: frozenset({"\\Answered"})})
    store.close()
    assert b"X-Status: A\n" in inbox_path(mail_root).read_bytes()


def test_expunge_removes_and_never_reuses_uids(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    for n in range(1, 6):
        box.append(make_message(n))
    box.set_flags({3: frozenset({"\\Seen"})})
    assert box.expunge([4, 2, 99]) == [2, 4]
    assert [i.uid for i in box.messages()] == [1, 3, 5]
    for uid in (1, 3, 5):
        assert box.read(uid) == make_message(uid)
    assert box.messages()[1].flags == {"\\Seen"}  # pending flags went out with the rewrite
    assert b"Status: R\n" in inbox_path(store.root).read_bytes()  # O: claim_recent only
    assert box.expunge([1]) == [1]  # the first message carried X-IMAPbase: it moves on
    disk = inbox_path(store.root).read_bytes()
    assert disk.count(b"X-IMAPbase: ") == 1
    assert disk.index(b"X-IMAPbase: ") < disk.index(b"X-UID: 3")
    assert box.expunge([5]) == [5]
    assert box.append(make_message(6)) == 6  # 5 was the highest, so 6, never 5 again
    store.close()
    reopened = MailStore(store.root).mailbox("alice", "INBOX")
    assert [i.uid for i in reopened.messages()] == [3, 6]
    assert reopened.uidnext == 7


def test_uidnext_kept_for_an_emptied_mailbox(mail_root: Path, make_message) -> None:
    store = MailStore(mail_root)
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    box.append(make_message(2))
    uidvalidity = box.uidvalidity
    box.expunge([1, 2])
    assert inbox_path(mail_root).stat().st_size == 0
    store.close()
    again = MailStore(mail_root).mailbox("alice", "INBOX")
    assert again.uidvalidity == uidvalidity  # kept in .index/ state: the mbox has nowhere
    assert again.append(make_message(3)) == 3


def test_new_larger_uidvalidity_when_mbox_and_index_lost_it(mail_root: Path) -> None:
    user = mail_root / "alice"
    user.mkdir(parents=True)
    (user / "INBOX").write_bytes(
        b"From a Mon Jan  5 07:08:09 2026\nX-IMAPbase: 1000 0000000009\nX-UID: 8\n\nold\n\n"
    )
    store = MailStore(mail_root)
    box = store.mailbox("alice", "INBOX")
    assert (box.uidvalidity, box.uidnext) == (1000, 9)
    box.expunge([8])
    store.close()
    shutil.rmtree(user / ".index")
    fresh = MailStore(mail_root).mailbox("alice", "INBOX")
    assert fresh.uidvalidity >= int(time.time()) - 5 > 1000


def test_messages_without_uids_from_other_programs(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    events: list[tuple[str, tuple[int, ...]]] = []
    box.append(make_message(1))
    box.add_listener(lambda kind, uids: events.append((kind, uids)))
    # mutt or procmail appends without X-UID, and without a final blank line.
    with open(inbox_path(store.root), "ab") as f:
        f.write(b"From procmail Mon Jan  5 07:08:09 2026\nSubject: external\n\nhello\n")
    infos = box.messages()
    assert [i.uid for i in infos] == [1, 2]
    assert box.read(2) == b"Subject: external\r\n\r\nhello\r\n"
    assert events == [("append", (2,))]
    assert b"X-UID: 2" in inbox_path(store.root).read_bytes()
    assert box.append(make_message(3)) == 3
    assert box.read(3) == make_message(3) and box.read(2).endswith(b"hello\r\n")


def test_out_of_order_and_duplicate_uids_are_reassigned(mail_root: Path) -> None:
    user = mail_root / "alice"
    user.mkdir(parents=True)
    entries = [
        b"From a Mon Jan  5 07:08:09 2026\nX-IMAPbase: 77 0000000005\nX-UID: 3\n\none\n\n",
        b"From a Mon Jan  5 07:08:09 2026\nX-UID: 10\n\ntwo\n\n",
        b"From a Mon Jan  5 07:08:09 2026\nX-UID: 10\n\nthree\n\n",  # duplicate
        b"From a Mon Jan  5 07:08:09 2026\nX-UID: 4\n\nfour\n\n",  # goes backwards
    ]
    (user / "INBOX").write_bytes(b"".join(entries))
    box = MailStore(mail_root).mailbox("alice", "INBOX")
    uids = [i.uid for i in box.messages()]
    assert uids == [3, 10, 11, 12]
    assert [box.read(uid) for uid in uids] == [
        b"\r\none\r\n",
        b"\r\ntwo\r\n",
        b"\r\nthree\r\n",
        b"\r\nfour\r\n",
    ]
    assert box.uidvalidity == 77 and box.uidnext == 13


def test_reopen_is_served_from_the_index_10000_messages(mail_root: Path) -> None:
    user = mail_root / "alice"
    user.mkdir(parents=True)
    count = 10_000
    with open(user / "INBOX", "wb") as f:
        for n in range(count):
            f.write(
                b"From x@example.org Mon Jan  5 07:08:09 2026\nSubject: %d\n\nbody %d\n\n" % (n, n)
            )
    first = MailStore(mail_root).mailbox("alice", "INBOX")
    infos = first.messages()
    assert len(infos) == count and first.parsed_messages == count
    assert infos[-1].uid == count

    second = MailStore(mail_root).mailbox("alice", "INBOX")
    assert second.messages() == infos
    assert second.parsed_messages == 0  # the index answered; the mbox was not parsed
    assert second.read(5000) == b"Subject: 4999\r\n\r\nbody 4999\r\n"
    # Our own append updates the index, so a third opener still does not parse.
    second.append(b"Subject: new\r\n\r\nnew\r\n")
    third = MailStore(mail_root).mailbox("alice", "INBOX")
    assert len(third.messages()) == count + 1 and third.parsed_messages == 0
    # A change behind the index's back (size/mtime differ) makes it rescan.
    with open(user / "INBOX", "ab") as f:
        f.write(b"From y Mon Jan  5 07:08:09 2026\nSubject: late\n\nlate\n\n")
    assert len(third.messages()) == count + 2
    assert third.parsed_messages == count + 2


def test_listeners_hear_changes(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    heard: list[tuple[str, tuple[int, ...]]] = []

    def broken(kind: str, uids: tuple[int, ...]) -> None:
        raise RuntimeError("a broken listener must not break the store")

    def listener(kind: str, uids: tuple[int, ...]) -> None:
        heard.append((kind, uids))
        box.messages()  # the lock is free again when listeners run

    box.add_listener(broken)
    box.add_listener(listener)
    box.append(make_message(1))
    store.deliver("alice", make_message(2))
    box.set_flags({1: frozenset({"\\Seen"}), 2: frozenset(), 77: frozenset({"\\Seen"})})
    box.expunge([1])
    box.remove_listener(listener)
    box.append(make_message(3))
    assert heard == [
        ("append", (1,)),
        ("append", (2,)),
        ("flags", (1,)),
        ("expunge", (1,)),
    ]


def test_set_flags_rejects_bad_flags(store: MailStore, make_message) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    with pytest.raises(ValueError):
        box.set_flags({1: frozenset({"\\Nonsense"})})
    with pytest.raises(ValueError):
        box.append(make_message(2), flags=["bad keyword"])
    assert [i.uid for i in box.messages()] == [1]


def test_damaged_index_is_rebuilt(mail_root: Path, make_message) -> None:
    store = MailStore(mail_root)
    store.ensure_user("alice")
    store.deliver("alice", make_message(1))
    store.close()
    (mail_root / "alice" / ".index" / "index.sqlite3").write_bytes(b"this is not sqlite" * 100)
    for suffix in ("-wal", "-shm"):
        (mail_root / "alice" / ".index" / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    box = MailStore(mail_root).mailbox("alice", "INBOX")
    assert [i.uid for i in box.messages()] == [1]
    assert box.read(1) == make_message(1)


def test_from_line_without_date_gets_a_stable_internaldate(mail_root: Path) -> None:
    user = mail_root / "alice"
    user.mkdir(parents=True)
    (user / "INBOX").write_bytes(b"From someone@example.org\nSubject: undated\n\nbody\n\n")
    box = MailStore(mail_root).mailbox("alice", "INBOX")
    (info,) = box.messages()
    assert info.internaldate.tzinfo is not None
    first_line = (user / "INBOX").read_bytes().split(b"\n", 1)[0]
    assert first_line.startswith(b"From someone@example.org ")  # now with its date
    shutil.rmtree(user / ".index")
    time.sleep(0.01)
    (again,) = MailStore(mail_root).mailbox("alice", "INBOX").messages()
    assert again.internaldate == info.internaldate
    assert MailStore(mail_root).mailbox("alice", "INBOX").read(1) == (
        b"Subject: undated\r\n\r\nbody\r\n"
    )


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_scan_in_small_chunks_finds_the_same_entries(
    mail_root: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    import refmail.store.mboxio as mboxio_module

    user = mail_root / "alice"
    user.mkdir(parents=True)
    bodies = [b"x" * size for size in (0, 1, 50, 300, 5, 2000, 64)]
    with open(user / "INBOX", "wb") as f:
        f.write(b"junk before the first message\n")
        for n, body in enumerate(bodies):
            f.write(b"From a Mon Jan  5 07:08:09 2026\nSubject: %d\n\n>From %s\n\n" % (n, body))
    monkeypatch.setattr(mboxio_module, "SCAN_CHUNK", chunk)
    box = MailStore(mail_root).mailbox("alice", "INBOX")
    assert [box.read(i.uid) for i in box.messages()] == [
        b"Subject: %d\r\n\r\nFrom %s\r\n" % (n, body) for n, body in enumerate(bodies)
    ]


def test_change_hidden_from_size_and_mtime_is_detected_and_healed(
    store: MailStore, make_message
) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(make_message(1))
    box.append(make_message(2))
    inbox = inbox_path(store.root)
    stat = inbox.stat()
    data = inbox.read_bytes()
    # Another program swaps bytes in place and restores size and mtime (no lock, no trace).
    second = data.index(b"From ", 1)
    shifted = data[:second] + b"X" + data[second:-1]
    with open(inbox, "r+b") as f:
        f.write(shifted)
    os.utime(inbox, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(StorageError):
        box.read(2)
    # The next look rescans the file and finds the one message it can still see whole.
    assert [i.uid for i in box.messages()] == [1]
