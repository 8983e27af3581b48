"""What a delivery does to the file system besides the mbox: no file created per message.

Creating a file (an inode) costs about 0.1 ms on the benchmark machine's ext4, more than the
rest of an append's own work, so an append rewrites its note in place (``appendnote``) and
its dotlock is a hard link of the process's pid file in ``.index/`` (``locking``).  These
tests hold that down, and that the torn-tail and lock rules still hold with those files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from refmail.errors import NoSuchMailbox
from refmail.store import MailStore
from refmail.store.appendnote import NOTE_PREFIX, format_note, parse_note
from refmail.store.index import INDEX_DIR
from refmail.store.locking import PID_FILE_PREFIX


def message(n: int) -> bytes:
    return b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n)


def user_files(store: MailStore) -> dict[str, int]:
    """Every file under the user's directory, by relative path, with its inode."""
    base = store.root / "alice"
    return {
        str(path.relative_to(base)): path.stat().st_ino
        for path in base.rglob("*")
        if path.is_file() and "-wal" not in path.name and "-shm" not in path.name
    }


def test_appends_create_no_file_after_the_first(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(message(0))
    before = user_files(store)
    for n in range(1, 6):
        box.append(message(n))
        assert user_files(store) == before  # same names, same inodes: nothing made or removed
    pid_file = f"{INDEX_DIR}/{PID_FILE_PREFIX}{os.getpid()}"
    assert pid_file in before and ".INBOX.append" in before
    assert parse_note((store.root / "alice" / ".INBOX.append").read_bytes()) is None
    assert not (store.root / "alice" / "INBOX.lock").exists()


def test_the_dotlock_is_a_link_of_the_pid_file_with_our_pid(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    pid_file = store.root / "alice" / INDEX_DIR / f"{PID_FILE_PREFIX}{os.getpid()}"
    with box.locked():
        dotlock = store.root / "alice" / "INBOX.lock"
        assert dotlock.read_bytes() == b"%d\n" % os.getpid()
        assert dotlock.stat().st_ino == pid_file.stat().st_ino
        os.utime(pid_file, (0, 0))  # an old pid file ...
    with box.locked():  # ... is touched before it is linked: the lock's age is its own
        assert dotlock.stat().st_mtime > 1e9
    assert not dotlock.exists() and pid_file.exists()


def test_a_pid_file_removed_or_on_another_file_system_falls_back(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(message(1))
    index_dir = store.root / "alice" / INDEX_DIR
    (index_dir / f"{PID_FILE_PREFIX}{os.getpid()}").unlink()
    box.append(message(2))  # made again
    assert (index_dir / f"{PID_FILE_PREFIX}{os.getpid()}").exists()
    box._file._pid_dir = str(index_dir / "missing")  # cannot be made: a private file is used
    assert box.append(message(3)) == 3
    assert [p.name for p in (store.root / "alice").iterdir() if p.name.startswith(".INBOX.l")] == []


def test_pid_files_of_dead_processes_are_removed(mail_root: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    index_dir = mail_root / "alice" / INDEX_DIR
    index_dir.mkdir(parents=True)
    (index_dir / f"{PID_FILE_PREFIX}{dead.stdout.strip()}").write_bytes(b"1\n")
    (index_dir / f"{PID_FILE_PREFIX}1").write_bytes(b"1\n")  # init: alive, kept
    store = MailStore(mail_root)
    store.ensure_user("alice")
    store.deliver("alice", message(1))
    names = sorted(p.name for p in index_dir.iterdir() if p.name.startswith(PID_FILE_PREFIX))
    assert names == sorted([f"{PID_FILE_PREFIX}1", f"{PID_FILE_PREFIX}{os.getpid()}"])
    store.close()


def test_a_note_torn_while_armed_is_ignored(store: MailStore) -> None:
    """A crash while writing the note itself: its append had not begun, nothing is cut."""
    box = store.mailbox("alice", "INBOX")
    box.append(message(1))
    inbox = store.root / "alice" / "INBOX"
    whole = inbox.read_bytes()
    data = b"From x Thu Nov 26 03:37:47 2026\n" + b"y" * 500
    ino = inbox.stat().st_ino
    note = format_note(ino, len(whole) - 10, len(whole) + 600, data)
    assert parse_note(note) == (ino, len(whole) - 10, len(whole) + 600, data[:NOTE_PREFIX])
    damaged = note[:-1] + b"z"  # its bytes do not match its CRC
    assert parse_note(damaged) is None
    assert parse_note(b"#" + note[1:]) is None  # disarmed
    assert parse_note(b"") is None
    (store.root / "alice" / ".INBOX.append").write_bytes(damaged)
    store.close()
    again = MailStore(store.root)
    assert [info.uid for info in again.mailbox("alice", "INBOX").messages()] == [1]
    assert inbox.read_bytes() == whole
    again.close()


def test_an_earlier_versions_note_is_still_cut(store: MailStore) -> None:
    """``INO START END\\n`` and the first bytes, as written before the note stayed: a crash
    before an upgrade is cut after it."""
    box = store.mailbox("alice", "INBOX")
    box.append(message(1))
    store.close()
    inbox = store.root / "alice" / "INBOX"
    whole = inbox.read_bytes()
    entry = b"From x@example.test Thu Nov 26 03:37:47 2026\nSubject: torn\n\n" + b"z" * 300
    with open(inbox, "ab") as f:
        f.write(entry[:200])
    start, end = len(whole), len(whole) + len(entry)
    old_note = b"%d %d %d\n" % (inbox.stat().st_ino, start, end) + entry[:NOTE_PREFIX]
    assert parse_note(old_note) is not None
    (store.root / "alice" / ".INBOX.append").write_bytes(old_note)
    again = MailStore(store.root)
    assert [info.uid for info in again.mailbox("alice", "INBOX").messages()] == [1]
    assert inbox.read_bytes() == whole
    assert parse_note((store.root / "alice" / ".INBOX.append").read_bytes()) is None
    again.close()


def test_delete_and_rename_take_the_note_along(store: MailStore) -> None:
    store.create_mailbox("alice", "Work/Old")
    store.mailbox("alice", "Work/Old").append(message(1))
    work = store.root / "alice" / "Work"
    assert (work / ".Old.append").exists()
    store.rename_mailbox("alice", "Work/Old", "New")
    assert not work.exists()  # emptied by the move, so removed as before (no note left)
    assert (store.root / "alice" / "New").exists()
    assert store.mailbox("alice", "New").messages()[0].uid == 1
    store.mailbox("alice", "New").append(message(2))
    store.delete_mailbox("alice", "New")
    assert not (store.root / "alice" / ".New.append").exists()
    with pytest.raises(NoSuchMailbox):
        store.mailbox("alice", "New")


def test_the_note_crc_covers_the_numbers() -> None:
    note = format_note(7, 100, 300, b"From " + b"a" * 195)
    line, _, rest = note.partition(b"\n")
    ino, start, end, length, crc = (int(x) for x in line.split())
    assert crc == zlib.crc32(rest, zlib.crc32(b"%d %d %d %d" % (ino, start, end, length)))
    assert parse_note(note.replace(b"7 100", b"7 101", 1)) is None
