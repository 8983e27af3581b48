"""Durability: rewrites are atomic, a crash leaves a whole mbox, a full disk is reported
and leaves the mailbox as it was."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from refmail.errors import InsufficientStorage
from refmail.store import MailStore


def body_message(n: int, size: int = 0) -> bytes:
    filler = b"x" * 70 + b"\r\n"
    return b"Subject: %d\r\n\r\nFrom %d\r\n" % (n, n) + filler * (size // 72)


def test_rewrite_renames_a_new_file_over_the_old(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    for n in range(3):
        box.append(body_message(n))
    inbox = store.root / "alice" / "INBOX"
    before = inbox.stat().st_ino
    with open(inbox, "rb") as reader_of_old_file:
        old_bytes = inbox.read_bytes()
        box.expunge([2])
        assert inbox.stat().st_ino != before  # a new file, not edited in place
        assert reader_of_old_file.read() == old_bytes  # the old one stayed whole
    assert [p.name for p in inbox.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_leftover_temp_file_of_a_crash_is_harmless(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    box.append(body_message(1))
    leftover = store.root / "alice" / ".INBOX.99999.1.tmp"
    leftover.write_bytes(b"From half a rewrite")
    assert [i.uid for i in box.messages()] == [1]
    assert "INBOX" in store.list_mailboxes("alice") and len(store.list_mailboxes("alice")) == 1
    box.set_flags({1: frozenset({"\\Seen"})})
    box.sync()
    assert not leftover.exists()


CRASH_WRITER = """
import sys
from pathlib import Path
from refmail.store import MailStore
box = MailStore(Path(sys.argv[1])).mailbox("alice", "INBOX")
uids = [info.uid for info in box.messages()]
print("ready", flush=True)
flag = 0
while True:
    flag ^= 1
    box.set_flags({uid: frozenset({"\\\\Seen"} if (uid + flag) % 2 else set()) for uid in uids})
    box.sync()
"""


def test_killed_during_rewrites_leaves_a_whole_mbox(mail_root: Path) -> None:
    store = MailStore(mail_root)
    store.ensure_user("alice")
    messages = [body_message(n, size=20_000) for n in range(40)]
    box = store.mailbox("alice", "INBOX")
    for message in messages:
        box.append(message)
    store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = random.Random(5321)
    for _ in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, str(mail_root)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.01, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        # Python's reader and a fresh store both find every message whole.
        reader = stdlib_mailbox.mbox(str(mail_root / "alice" / "INBOX"))
        assert len(reader) == len(messages)
        reader.close()
        fresh = MailStore(mail_root, lock_timeout=5)
        inbox = fresh.mailbox("alice", "INBOX")  # the dead writer's dotlock is broken
        assert [i.uid for i in inbox.messages()] == list(range(1, 41))
        assert [inbox.read(uid) for uid in range(1, 41)] == messages
        fresh.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: ENOSPC for real, no mocks.  Needs root (CAP_SYS_ADMIN)."""
    mount_point = tmp_path / f"small-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)


def test_full_disk_on_append_is_reported_and_truncated(small_disk: Path) -> None:
    store = MailStore(small_disk / "mail")
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    assert box.append(body_message(1, size=10_000)) == 1
    inbox = small_disk / "mail" / "alice" / "INBOX"
    size_before = inbox.stat().st_size
    with pytest.raises(InsufficientStorage):
        box.append(body_message(2, size=2_000_000))
    assert inbox.stat().st_size == size_before
    assert [i.uid for i in box.messages()] == [1]
    assert box.append(body_message(3, size=1_000)) == 2  # a failed append used no UID
    assert box.read(2) == body_message(3, size=1_000)
    store.close()


def test_full_disk_on_rewrite_keeps_the_old_mbox(small_disk: Path) -> None:
    store = MailStore(small_disk / "mail")
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    messages = [body_message(n, size=60_000) for n in range(5)]  # ~300 KB: no room for a copy
    for message in messages:
        box.append(message)
    inbox = small_disk / "mail" / "alice" / "INBOX"
    old = inbox.read_bytes()
    box.set_flags({1: frozenset({"\\Seen"})})
    with pytest.raises(InsufficientStorage):
        box.sync()
    assert inbox.read_bytes() == old
    assert [p.name for p in inbox.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert [box.read(uid) for uid in range(1, 6)] == messages
    assert box.messages()[0].flags == {"\\Seen"}  # still pending in the index
    with pytest.raises(InsufficientStorage):
        box.expunge([5])
    assert box.expunge([]) == []
    assert [i.uid for i in box.messages()] == [1, 2, 3, 4, 5]
    store.close()
