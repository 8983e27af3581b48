"""A crash inside an append's write(2): Linux stops a regular-file write between pages when
SIGKILL arrives, so part of a large entry can reach the file.  The append's note
(``.NAME.append``) lets the next look at the mailbox cut that tail off, so no partial message
is ever served and the next append starts on a clean boundary (DESIGN.md "Durability").

The crash is real: a child process appends with ``write_all`` patched to write half of the
entry and then SIGKILL itself."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import signal
import subprocess
import sys
from pathlib import Path

from refmail_testing import refmail_env

from refmail.store import MailStore
from refmail.store.appendnote import parse_note


def armed(root: Path) -> bool:
    """Whether INBOX's append note says an append was under way (the file itself stays)."""
    note = root / "alice" / ".INBOX.append"
    return note.exists() and parse_note(note.read_bytes()) is not None


TORN_WRITER = """
import os, signal, sys
from pathlib import Path
import refmail.store.mailbox as mailbox_module
from refmail.store import MailStore

real_write_all = mailbox_module.write_all

def torn(fd, data):
    if len(data) > 100_000:  # the mbox append, not the note
        real_write_all(fd, data[: int(sys.argv[2])])
        os.kill(os.getpid(), signal.SIGKILL)
    real_write_all(fd, data)

mailbox_module.write_all = torn
box = MailStore(Path(sys.argv[1])).mailbox("alice", "INBOX")
box.append(b"Subject: big\\r\\n\\r\\n" + b"y" * 70 + (b"\\r\\n" + b"y" * 70) * 3000)
"""


def message(n: int) -> bytes:
    return b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n)


def crash_in_the_middle(root: Path, written: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TORN_WRITER, str(root), str(written)],
        env=refmail_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


def test_a_torn_append_is_cut_off(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    store = MailStore(root)
    store.ensure_user("alice")
    store.mailbox("alice", "INBOX").append(message(1))
    store.close()
    inbox = root / "alice" / "INBOX"
    whole = inbox.read_bytes()

    crash_in_the_middle(root, written=50_000)
    assert inbox.stat().st_size == len(whole) + 50_000  # the torn tail is there
    assert armed(root)

    store = MailStore(root)
    box = store.mailbox("alice", "INBOX")
    assert [info.uid for info in box.messages()] == [1]
    assert inbox.read_bytes() == whole
    assert not armed(root)
    assert box.append(message(2)) == 2
    assert box.read(2) == message(2)
    store.close()
    assert [m["Subject"] for m in stdlib_mailbox.mbox(inbox)] == ["1", "2"]


def test_a_note_never_cuts_another_programs_message(tmp_path: Path) -> None:
    """The torn tail is gone (another program, say, truncated it) and mutt appended its own
    message where ours began: its first bytes differ from the note's, so it stays."""
    root = tmp_path / "mail"
    store = MailStore(root)
    store.ensure_user("alice")
    store.mailbox("alice", "INBOX").append(message(1))
    store.close()
    inbox = root / "alice" / "INBOX"
    size = inbox.stat().st_size
    crash_in_the_middle(root, written=50_000)
    with open(inbox, "r+b") as f:
        f.truncate(size)
        f.seek(size)
        f.write(b"\nFrom mutt@example.test Thu Nov 26 03:37:47 2026\nSubject: mutt\n\nhi\n\n")
    store = MailStore(root)
    box = store.mailbox("alice", "INBOX")
    assert len(box.messages()) == 2
    assert b"Subject: mutt" in box.read(box.messages()[1].uid)
    store.close()


def test_a_whole_append_the_crash_left_unrecorded_is_kept(tmp_path: Path) -> None:
    """Killed after its write but before the index knew (or the reply went out): the message
    is whole, so it stays, as an unacknowledged delivery may (RFC 5321 6.1)."""
    root = tmp_path / "mail"
    store = MailStore(root)
    store.ensure_user("alice")
    store.mailbox("alice", "INBOX").append(message(1))
    store.close()
    crash_in_the_middle(root, written=10**9)  # all of it, then the kill
    store = MailStore(root)
    box = store.mailbox("alice", "INBOX")
    assert [info.uid for info in box.messages()] == [1, 2]
    assert box.read(2).startswith(b"Subject: big")
    store.close()


def test_a_mailbox_open_here_sees_another_process_torn_append(tmp_path: Path) -> None:
    """A Mailbox object that knew the file skips the note only while the file is as it left
    it: the torn tail another process's crash added is still cut before it is served."""
    root = tmp_path / "mail"
    store = MailStore(root)
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    box.append(message(1))
    whole = (root / "alice" / "INBOX").read_bytes()
    crash_in_the_middle(root, written=50_000)
    assert armed(root)
    assert [info.uid for info in box.messages()] == [1]
    assert (root / "alice" / "INBOX").read_bytes() == whole
    assert not armed(root)
    assert box.append(message(2)) == 2
    store.close()
