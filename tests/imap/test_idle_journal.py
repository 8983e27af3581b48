"""Untagged updates from the store's change journal (issue 6): a session catching up pays for
the changes, not the mailbox, and says exactly what the whole-mailbox comparison would say
(RFC 3501 7.4.1, RFC 2180 4.1), falling back to that comparison when the journal cannot answer
(overflow, another program's change to the mbox)."""

from __future__ import annotations

import random
import re
import smtplib
import time
from pathlib import Path

import pytest

from refmail.imap.view import SelectedMailbox
from refmail.store import MailStore
from refmail.store import journal as journal_module

from .conftest import Client, Env
from .line_client import LineClient

pytestmark = pytest.mark.timeout(120)

EXTERNAL = b"From procmail Mon Jan  5 07:08:09 2026\nSubject: external\n\nhello\n\n"


class ScanCounter:
    """Counts the views' whole-mailbox comparisons (the journal's fallback)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = SelectedMailbox._compare_all

        def counting(view: SelectedMailbox, *args: object, **kwargs: object) -> list[bytes]:
            self.calls += 1
            return original(view, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(SelectedMailbox, "_compare_all", counting)


def view_state(view: SelectedMailbox) -> tuple:
    return (list(view.uids), dict(view.flags), set(view.recent), set(view.ghosts))


@pytest.mark.parametrize("seed", range(4))
def test_journal_and_whole_mailbox_comparison_agree(tmp_path: Path, seed: int) -> None:
    """Random appends, flag changes, expunges and other programs' appends; after each, a
    view answered by the journal and one made to compare the whole mailbox give the same
    responses and keep the same numbering, ghosts and flags."""
    rng = random.Random(seed)
    store = MailStore(tmp_path / "mail")
    store.ensure_user("alice")
    box = store.mailbox("alice", "INBOX")
    for n in range(5):
        box.append(b"Subject: %d\r\n\r\nbody\r\n" % n)
    journal_view, scan_view = (
        SelectedMailbox(box, user="alice", name="INBOX", readonly=True) for _ in range(2)
    )
    keywords = ["\\Seen", "\\Flagged", "\\Deleted", "$Label"]
    for step in range(120):
        uids = [info.uid for info in box.messages()]
        op = rng.random()
        if op < 0.3 or not uids:
            box.append(b"Subject: step %d\r\n\r\n" % step, flags=rng.sample(keywords, 1))
        elif op < 0.6:
            chosen = rng.sample(uids, min(len(uids), rng.randint(1, 3)))
            box.set_flags({uid: frozenset(rng.sample(keywords, 2)) for uid in chosen})
        elif op < 0.8:
            box.expunge(rng.sample(uids, min(len(uids), rng.randint(1, 2))))
        elif op < 0.85:
            with open(box.path, "ab") as f:
                f.write(EXTERNAL)
        allow_expunge, refresh = rng.random() < 0.6, rng.random() < 0.5
        scan_view.generation = -1  # no generation the journal knows: compare everything
        expected = scan_view.updates(allow_expunge=allow_expunge, refresh=refresh)
        got = journal_view.updates(allow_expunge=allow_expunge, refresh=refresh)
        assert got == expected, (seed, step)
        assert view_state(journal_view) == view_state(scan_view), (seed, step)
    for view in (journal_view, scan_view):
        view.close()
    store.close()


def idle(client: Client) -> None:
    assert client.send(b"i IDLE\r\n") == b"+ idling\r\n"


def test_flags_expunge_and_append_from_another_session_while_idle(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 6):
        env.deliver("alice", f"message {n}")
    idler, other = env.session(), env.session()
    for client in (idler, other):
        client.login()
        client.select()  # the idler first: \Recent 1:5 is its
    idle(idler)
    scans = ScanCounter(monkeypatch)
    other.cmd("a STORE 2 +FLAGS (\\Flagged)")
    other.cmd("b STORE 1,4 +FLAGS.SILENT (\\Deleted)")
    assert other.cmd("c EXPUNGE") == ["* 1 EXPUNGE", "* 3 EXPUNGE", "c OK EXPUNGE completed"]
    reply = other.cmd("d APPEND INBOX {5+}\r\nhello")
    assert reply[:2] == ["* 4 EXISTS", "* 1 RECENT"]  # the APPENDer heard of it first
    assert idler.session.pending_output() == (
        b"* 1 EXPUNGE\r\n"  # UID 1
        b"* 3 EXPUNGE\r\n"  # UID 4, third once UID 1 is gone
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"  # UID 2, now first
        b"* 4 EXISTS\r\n"
        b"* 3 RECENT\r\n"  # 2, 3 and 5 stay \Recent here; 6 is the APPENDer's
    )
    assert idler.session.pending_output() == b""  # told once
    assert scans.calls == 0  # all of it from the journal
    assert idler.cmd("DONE") == ["i OK IDLE terminated"]
    assert idler.cmd("e FETCH 1:* UID") == [
        "* 1 FETCH (UID 2)",
        "* 2 FETCH (UID 3)",
        "* 3 FETCH (UID 5)",
        "* 4 FETCH (UID 6)",
        "e OK FETCH completed",
    ]


def test_expunge_is_held_back_as_a_ghost_then_announced(env: Env) -> None:
    """RFC 2180 4.1: an expunge heard during FETCH waits; the journal keeps no second copy
    of it, the view's ghosts do."""
    for n in range(1, 4):
        env.deliver("alice", f"message {n}")
    watcher, other = env.session(), env.session()
    for client in (watcher, other):
        client.login()
        client.select()
    other.cmd("a STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.cmd("b EXPUNGE")
    env.deliver("alice", "new")
    reply = watcher.cmd("c FETCH 3 UID")
    assert "* 3 FETCH (UID 3)" in reply and "* 4 EXISTS" in reply
    assert not any(line.endswith("EXPUNGE") for line in reply)
    assert watcher.cmd("d NOOP")[:1] == ["* 2 EXPUNGE"]
    assert watcher.cmd("e FETCH 3 UID")[0] == "* 3 FETCH (UID 4)"


def test_many_idle_sessions_each_pay_for_the_change_only(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 51):
        env.deliver("alice", f"message {n}")
    writer = env.session()
    writer.login()
    writer.select()  # claims \Recent 1:50
    idlers = [env.session() for _ in range(40)]
    for client in idlers:
        client.login()
        client.select()
        idle(client)
    scans = ScanCounter(monkeypatch)
    env.deliver("alice", "news")
    outputs = [client.session.pending_output() for client in idlers]
    assert all(out.startswith(b"* 51 EXISTS\r\n") for out in outputs)
    # RFC 3501 2.3.2: the new message is \Recent in exactly one session
    assert sorted(out.split(b"\r\n")[1] for out in outputs) == [b"* 0 RECENT"] * 39 + [
        b"* 1 RECENT"
    ]
    writer.cmd("a STORE 7 +FLAGS (\\Answered)")
    assert {client.session.pending_output() for client in idlers} == {
        b"* 7 FETCH (FLAGS (\\Answered))\r\n"
    }
    writer.cmd("b STORE 3 +FLAGS.SILENT (\\Deleted)")
    writer.cmd("c EXPUNGE")
    # the flag change of a message expunged since is not told, the expunge is
    assert {client.session.pending_output() for client in idlers} == {b"* 3 EXPUNGE\r\n"}
    assert scans.calls == 0


def test_an_idler_too_far_behind_compares_the_whole_mailbox(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "JOURNAL_LENGTH", 4)  # before the mailbox opens
    env.deliver("alice", "first")
    idler = env.session()
    idler.login()
    idler.select()
    idle(idler)
    scans = ScanCounter(monkeypatch)
    for n in range(10):  # ten changes, and the idler reads none of them yet
        env.deliver("alice", f"message {n}")
    assert idler.session.pending_output() == b"* 11 EXISTS\r\n* 11 RECENT\r\n"
    assert scans.calls == 1
    env.deliver("alice", "one more")  # caught up again: the journal answers
    assert idler.session.pending_output() == b"* 12 EXISTS\r\n* 12 RECENT\r\n"
    assert scans.calls == 1


def test_another_programs_append_reaches_an_idler_with_the_next_change(env: Env) -> None:
    for n in range(1, 3):
        env.deliver("alice", f"message {n}")
    idler, other = env.session(), env.session()
    for client in (idler, other):
        client.login()
    idler.select()
    idle(idler)
    inbox = env.store.mailbox("alice", "INBOX")
    with open(inbox.path, "ab") as f:  # procmail, behind the store's back
        f.write(EXTERNAL)
    env.deliver("alice", "in-process")  # wakes the idler; the store notices the file
    # the idler selected first: \Recent 1:2 and now 3:4 are its
    assert idler.session.pending_output() == b"* 4 EXISTS\r\n* 4 RECENT\r\n"
    with open(inbox.path, "ab") as f:
        f.write(EXTERNAL)
    assert idler.cmd("DONE") == ["i OK IDLE terminated"]
    assert idler.cmd("a NOOP") == ["* 5 EXISTS", "* 5 RECENT", "a OK NOOP completed"]
    assert idler.cmd("b UID FETCH 5 (FLAGS)") == [
        "* 5 FETCH (UID 5 FLAGS (\\Recent))",
        "b OK FETCH completed",
    ]


# ---------------------------------------------------------------------------- over loopback


def test_many_idle_clients_over_loopback_see_each_kind_of_change(server) -> None:
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        for n in range(3):
            smtp.sendmail(
                "bob@example.org", ["alice@example.test"], b"Subject: %d\r\n\r\nx\r\n" % n
            )
    worker = LineClient(server.address("imap"))
    worker.line()
    worker.command("a", "LOGIN alice alice-pw")
    worker.command("b", "SELECT INBOX")  # \Recent 1:3 is the worker's
    idlers = []
    for _ in range(25):
        client = LineClient(server.address("imap"))
        client.line()
        assert client.command("a", "LOGIN alice alice-pw")[-1].startswith(b"a OK")
        assert b"* 3 EXISTS" in client.command("b", "SELECT INBOX")
        client.sock.sendall(b"c IDLE\r\n")
        assert client.line() == b"+ idling"
        idlers.append(client)
    started = time.monotonic()
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.sendmail("bob@example.org", ["alice@example.test"], b"Subject: new\r\n\r\nx\r\n")
    recent = []
    for client in idlers:
        assert client.line(timeout=10) == b"* 4 EXISTS"
        recent.append(client.line(timeout=10))
    assert time.monotonic() - started < 5.0
    assert sorted(recent) == [b"* 0 RECENT"] * 24 + [b"* 1 RECENT"]
    worker.command("d", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    for client in idlers:
        assert client.line(timeout=10) == b"* 2 FETCH (FLAGS (\\Flagged))"
    worker.command("e", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    worker.command("f", "EXPUNGE")
    for client in idlers:
        line = client.line(timeout=10)
        if re.fullmatch(rb"\* 1 FETCH \(FLAGS \(\\Deleted\)\)", line):
            line = client.line(timeout=10)  # woken before the expunge was made
        assert line == b"* 1 EXPUNGE"
        client.sock.sendall(b"DONE\r\n")
        assert client.line() == b"c OK IDLE terminated"
        client.sock.close()
    worker.sock.close()
