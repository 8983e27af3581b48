"""Concurrent appends (threads, two stores, two processes) and the layered mailbox lock."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from refmail.errors import LockTimeout
from refmail.store import MailStore

BODY_LINES = 400  # ~20 KB per message: several write() calls' worth if anything split them


def tagged_message(writer: str, n: int) -> bytes:
    line = b"%s message %d: From here on the line is long enough to matter.\r\n" % (
        writer.encode(),
        n,
    )
    return b"Subject: %s %d\r\n\r\n" % (writer.encode(), n) + line * BODY_LINES


def check_whole(box, expected: set[bytes]) -> None:
    infos = box.messages()
    uids = [info.uid for info in infos]
    assert uids == sorted(set(uids)), "UIDs must be unique and ascending"
    found = {box.read(uid) for uid in uids}
    assert found == expected
    assert len(infos) == len(expected)
    for info in infos:
        assert info.size == len(box.read(info.uid))


def test_eight_threads_append_whole_messages(mail_root: Path) -> None:
    # Two stores in one process as well: only the dotlock keeps them apart.
    stores = [MailStore(mail_root), MailStore(mail_root)]
    stores[0].ensure_user("alice")
    per_thread = 15
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            box = stores[k % 2].mailbox("alice", "INBOX")
            for n in range(per_thread):
                box.append(tagged_message(f"thread{k}", n))
                if n % 5 == 0:
                    box.messages()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = {tagged_message(f"thread{k}", n) for k in range(8) for n in range(per_thread)}
    check_whole(stores[0].mailbox("alice", "INBOX"), expected)
    check_whole(MailStore(mail_root).mailbox("alice", "INBOX"), expected)


def _process_writer(root: str, name: str, count: int) -> None:
    store = MailStore(Path(root))
    store.ensure_user("alice")  # both processes race to create the user's tree
    box = store.mailbox("alice", "INBOX")
    for n in range(count):
        box.append(tagged_message(name, n))
        if n % 7 == 0:
            box.set_flags({box.messages()[-1].uid: frozenset({"\\Seen"})})
    store.close()


def test_two_processes_append_whole_messages(mail_root: Path) -> None:
    context = multiprocessing.get_context("fork")
    count = 30
    processes = [
        context.Process(target=_process_writer, args=(str(mail_root), f"proc{k}", count))
        for k in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    expected = {tagged_message(f"proc{k}", n) for k in range(2) for n in range(count)}
    box = MailStore(mail_root).mailbox("alice", "INBOX")
    check_whole(box, expected)
    assert box.uidnext == 2 * count + 1


def test_thread_lock_times_out(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with box.locked():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(10)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            with box.locked(timeout=0.2):
                pass
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join()
    with box.locked(timeout=1):  # re-entrant in one thread
        with box.locked(timeout=1):
            box.messages()


def test_foreign_dotlock_is_respected_and_stale_one_broken(mail_root: Path) -> None:
    store = MailStore(mail_root, lock_timeout=0.3)
    store.ensure_user("alice")
    dotlock = mail_root / "alice" / "INBOX.lock"
    for holder in (b"", b"%d\n" % os.getppid()):  # mutt's empty one; a live process's pid
        dotlock.write_bytes(holder)
        with pytest.raises(LockTimeout):
            store.deliver("alice", b"Subject: x\r\n\r\nx\r\n")
        assert (mail_root / "alice" / "INBOX").read_bytes() == b""
    old = time.time() - 3600
    os.utime(dotlock, (old, old))  # its holder died an hour ago
    assert store.deliver("alice", b"Subject: x\r\n\r\nx\r\n") == 1
    assert not dotlock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dotlock.write_bytes(b"%d\n" % dead.pid)  # a fresh dotlock of a process that is gone
    assert store.deliver("alice", b"Subject: y\r\n\r\ny\r\n") == 2


FCNTL_HOLDER = """
import fcntl, sys, time
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""

FCNTL_PROBE = """
import fcntl, sys
f = open(sys.argv[1], "r+b")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("busy")
else:
    print("free")
"""


def test_foreign_fcntl_lock_is_respected(mail_root: Path) -> None:
    store = MailStore(mail_root, lock_timeout=0.3)
    store.ensure_user("alice")
    inbox = mail_root / "alice" / "INBOX"
    holder = subprocess.Popen(
        [sys.executable, "-c", FCNTL_HOLDER, str(inbox)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(LockTimeout):
            store.deliver("alice", b"Subject: x\r\n\r\nx\r\n")
        assert not (mail_root / "alice" / "INBOX.lock").exists()  # nothing left behind
    finally:
        holder.communicate(b"\n", timeout=10)
    assert store.deliver("alice", b"Subject: x\r\n\r\nx\r\n") == 1


def test_our_lock_keeps_other_programs_out(store: MailStore) -> None:
    box = store.mailbox("alice", "INBOX")
    inbox = store.root / "alice" / "INBOX"

    def probe() -> str:
        result = subprocess.run(
            [sys.executable, "-c", FCNTL_PROBE, str(inbox)], capture_output=True, timeout=30
        )
        return result.stdout.decode().strip()

    with box.locked():
        assert probe() == "busy"
        assert (store.root / "alice" / "INBOX.lock").exists()
    assert probe() == "free"
    assert not (store.root / "alice" / "INBOX.lock").exists()


def test_lock_follows_a_rewrite(store: MailStore) -> None:
    """After a rewrite renamed a new file over the mbox, a waiter locks the new file."""
    box = store.mailbox("alice", "INBOX")
    for n in range(3):
        box.append(tagged_message("w", n))
    other = MailStore(store.root).mailbox("alice", "INBOX")
    done = threading.Event()
    result: list[list[int]] = []

    def waiter() -> None:
        result.append([info.uid for info in other.messages()])
        done.set()

    with box.locked():
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.1)
        assert box.expunge([2]) == [2]
        assert not done.is_set()
    thread.join(10)
    assert result == [[1, 3]]
