"""What the IMAP server takes from the store's index instead of the mbox, over real sessions
(imaplib against the live server): a large mailbox answered from the index, ENVELOPE and
BODYSTRUCTURE cached after first computation, FETCH never holding the mailbox lock while the
client reads, and \\Recent surviving a restart (RFC 3501 2.3.2)."""

from __future__ import annotations

import imaplib
import re
import threading
import time
from pathlib import Path

import pytest

from refmail.store import MailStore

pytestmark = pytest.mark.timeout(120)

LARGE_MAILBOX = 10_000
UNCLAIMED = 10  # of the large mailbox, messages no session has selected yet (\Recent)


def connect(server) -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=30)
    client.login("alice", "alice-pw")
    return client


def mbox_entry(uid: int, *, base: tuple[int, int] | None, old: bool, seen: bool) -> bytes:
    """One mbox entry in the store's format, as an earlier refmail (or Dovecot) wrote it."""
    status = ("R" if seen else "") + ("O" if old else "")
    return b"".join(
        [
            b"From sender@example.org Thu Nov 26 03:37:47 2026\n",
            b"From: Sender %d <sender%d@example.org>\n" % (uid, uid),
            b"To: alice@example.test\nSubject: message %d\n" % uid,
            b"Date: Thu, 26 Nov 2026 03:37:47 +0000\nMessage-ID: <%d@example.org>\n" % uid,
            b"X-IMAPbase: %010d %010d\n" % base if base else b"",
            b"X-UID: %d\n" % uid,
            b"Status: %s\n" % status.encode() if status else b"",
            b"\nbody of message %d\n\n" % uid,
        ]
    )


def write_mbox(data_dir: Path, count: int, *, unclaimed: int = 0) -> None:
    """alice's INBOX with ``count`` messages (every third seen), indexed once by a store,
    as a server that ran before would have left it."""
    inbox = data_dir / "mail" / "alice" / "INBOX"
    inbox.parent.mkdir(parents=True, exist_ok=True)
    with inbox.open("wb") as out:
        for uid in range(1, count + 1):
            base = (1700000000, count + 1) if uid == 1 else None
            out.write(mbox_entry(uid, base=base, old=uid <= count - unclaimed, seen=uid % 3 == 0))
    store = MailStore(data_dir / "mail")
    box = store.mailbox("alice", "INBOX")
    assert len(box.messages()) == count and box.parsed_messages == count
    store.close()


def test_large_mailbox_selects_and_fetches_from_the_index(make_server, data_dir: Path) -> None:
    write_mbox(data_dir, LARGE_MAILBOX, unclaimed=UNCLAIMED)
    server = make_server()
    client = connect(server)
    started = time.monotonic()
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [str(LARGE_MAILBOX).encode()]
    assert client.response("RECENT")[1] == [str(UNCLAIMED).encode()]
    typ, data = client.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
    elapsed = time.monotonic() - started
    assert typ == "OK" and len(data) == LARGE_MAILBOX
    first = data[0].decode()
    assert re.fullmatch(r"1 \(UID 1 FLAGS \(\) RFC822\.SIZE \d+\)", first), first
    assert "\\Seen" in data[2].decode() and "\\Recent" in data[-1].decode()
    box = server.store.mailbox("alice", "INBOX")
    assert box.parsed_messages == 0  # the index answered: no scan of the mbox
    assert box.message_reads == 0  # and no message was read for these items
    client.logout()
    assert elapsed < 30, f"SELECT + UID FETCH of {LARGE_MAILBOX} took {elapsed:.1f} s"


def test_envelope_and_bodystructure_come_from_the_cache_the_second_time(
    make_server, data_dir: Path
) -> None:
    count = 300  # more than one FETCH batch (messages.FETCH_BATCH)
    write_mbox(data_dir, count)
    server = make_server()
    client = connect(server)
    client.select("INBOX", readonly=True)
    box = server.store.mailbox("alice", "INBOX")
    typ, first = client.fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK" and len(first) == count
    assert box.message_reads == count  # computed once from each message
    assert b'"message 7"' in first[6] and b'"sender7" "example.org"' in first[6]
    typ, second = client.fetch("1:*", "(ENVELOPE)")
    typ, third = client.fetch("1:*", "(BODYSTRUCTURE)")
    assert box.message_reads == count  # the second FETCH read no message bytes
    assert box.parsed_messages == 0
    for whole, again in zip(first, second, strict=True):
        envelope = whole.split(b"ENVELOPE ", 1)[1].split(b" BODYSTRUCTURE ", 1)[0]
        assert again.split(b"ENVELOPE ", 1)[1] == envelope + b")"
    assert [line.split(b"BODYSTRUCTURE")[1] for line in first] == [
        line.split(b"BODYSTRUCTURE")[1] for line in third
    ]
    client.fetch("1:*", "(BODY)")  # not cached yet: computed (and cached) now
    client.fetch("1:*", "(BODY ENVELOPE)")
    assert box.message_reads == 2 * count
    client.logout()


def test_fetch_lets_go_of_the_lock_while_the_client_reads(make_server, data_dir: Path) -> None:
    """A FETCH of more than the socket buffers hold stalls on the network, never holding
    the mailbox lock: a delivery into the mailbox goes through meanwhile (STYLE.md 12)."""
    store = MailStore(data_dir / "mail")
    store.ensure_user("alice")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200  # ~200 KB
    for _ in range(40):
        store.deliver("alice", big)
    store.close()
    server = make_server()
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=30)
    client.login("alice", "alice-pw")
    client.select("INBOX")
    client.send(b"F1 FETCH 1:* BODY.PEEK[]\r\n")  # 8 MB of responses, none read yet
    time.sleep(0.5)
    done = threading.Event()

    def deliver() -> None:
        server.store.deliver("alice", b"Subject: meanwhile\r\n\r\nhi\r\n")
        done.set()

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    assert done.wait(5), "delivery blocked behind a FETCH waiting on the client"
    received = 0
    while True:
        line = client.readline()
        if line.startswith(b"F1 "):
            assert line.startswith(b"F1 OK")
            break
        received += len(line)
    assert received > 40 * 200_000
    client.logout()


def test_recent_survives_a_restart(make_server, data_dir: Path) -> None:
    """RFC 3501 2.3.2: a message is \\Recent to the first session that selects its mailbox
    after delivery, also when the server restarted in between; EXAMINE leaves it recent."""
    server = make_server()
    server.store.ensure_user("alice")
    server.store.deliver("alice", b"Subject: one\r\n\r\nhi\r\n")
    looker = connect(server)
    looker.select("INBOX", readonly=True)
    assert looker.response("RECENT")[1] == [b"1"]
    looker.logout()
    first = connect(server)
    first.select("INBOX")
    assert first.response("RECENT")[1] == [b"1"]
    first.logout()
    server.stop()

    server = make_server()
    again = connect(server)
    again.select("INBOX")
    assert again.response("RECENT")[1] == [b"0"]
    typ, data = again.fetch("1", "(FLAGS)")
    assert b"\\Recent" not in data[0]
    server.store.deliver("alice", b"Subject: two\r\n\r\nhi\r\n")
    again.noop()
    assert again.response("RECENT")[1] == [b"1"]
    typ, data = again.status("INBOX", "(RECENT)")
    assert data == [b'"INBOX" (RECENT 0)']  # claimed by the selecting session
    again.logout()
    server.stop()
    # The claim reached the mbox when the server stopped (lazy write-back): Status O
    inbox = (data_dir / "mail" / "alice" / "INBOX").read_bytes()
    assert inbox.count(b"\nStatus: O\n") == 2
