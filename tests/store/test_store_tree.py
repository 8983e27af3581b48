"""A user's tree of mailboxes: names, CREATE/DELETE/RENAME/LIST, subscriptions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from refmail.errors import (
    InvalidMailboxName,
    MailboxExists,
    NoSuchMailbox,
    StorageError,
)
from refmail.store import MailStore


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/etc",
        "/etc/passwd",
        "a/../../b",
        "a/./b",
        "..",
        "\x00",
        "a\x00b",
        "tab\there",
        "del\x7f",
        ".index",
        "Work/.index",
        ".hidden",
        "a//b",
        "a/",
        "",
        "Sent.lock",
        "INBOX/child",
        "inbox/child",
        "x" * 256,
    ],
)
def test_bad_names_are_rejected_everywhere(store: MailStore, name: str) -> None:
    for call in (
        lambda: store.create_mailbox("alice", name),
        lambda: store.mailbox("alice", name),
        lambda: store.delete_mailbox("alice", name),
        lambda: store.rename_mailbox("alice", "INBOX", name),
        lambda: store.subscribe("alice", name),
        lambda: store.deliver("alice", b"x\r\n", mailbox=name),
    ):
        with pytest.raises(InvalidMailboxName):
            call()
    assert set(os.listdir(store.root / "alice")) - {".index"} == {"INBOX"}
    assert os.listdir(store.root) == ["alice"]


def test_symlink_out_of_the_user_tree_is_refused(store: MailStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"From x Mon Jan  5 07:08:09 2026\n\nsecret\n\n")
    os.symlink(outside, store.root / "alice" / "Link")
    with pytest.raises(InvalidMailboxName):
        store.mailbox("alice", "Link/secret")
    with pytest.raises(InvalidMailboxName):
        store.create_mailbox("alice", "Link/new")
    assert os.listdir(outside) == ["secret"]


def test_unicode_names_are_utf8_files(store: MailStore) -> None:
    store.create_mailbox("alice", "Entw\u00fcrfe/\u65e5\u672c")
    assert (store.root / "alice" / "Entw\u00fcrfe" / "\u65e5\u672c").is_file()
    assert store.list_mailboxes("alice") == ["INBOX", "Entw\u00fcrfe/\u65e5\u672c"]


def test_create_list_and_hierarchy(store: MailStore) -> None:
    assert store.list_mailboxes("alice") == ["INBOX"]
    store.create_mailbox("alice", "Sent")
    store.create_mailbox("alice", "Work/Projects/2026")
    store.create_mailbox("alice", "Archive")
    assert store.list_mailboxes("alice") == ["INBOX", "Archive", "Sent", "Work/Projects/2026"]
    assert (store.root / "alice" / "Work" / "Projects").is_dir()
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "Sent")
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "inbox")
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "Work")  # a directory holding mailboxes
    with pytest.raises(StorageError):
        store.create_mailbox("alice", "Sent/Sub")  # an mbox file cannot hold mailboxes
    box = store.mailbox("alice", "Work/Projects/2026")
    assert store.mailbox("alice", "Work/Projects/2026") is box  # one shared object
    assert box.append(b"Subject: s\r\n\r\nb\r\n") == 1
    assert box.uidvalidity > 0
    with pytest.raises(NoSuchMailbox):
        store.mailbox("alice", "Nope")
    with pytest.raises(NoSuchMailbox):
        store.mailbox("nobody", "INBOX")


def test_uidvalidity_differs_for_a_recreated_name(store: MailStore) -> None:
    store.create_mailbox("alice", "Trash")
    first = store.mailbox("alice", "Trash").uidvalidity
    store.delete_mailbox("alice", "Trash")
    store.create_mailbox("alice", "Trash")
    assert store.mailbox("alice", "Trash").uidvalidity > first


def test_delete(store: MailStore) -> None:
    store.create_mailbox("alice", "Old")
    store.create_mailbox("alice", "Work/Projects")
    store.deliver("alice", b"Subject: x\r\n\r\ny\r\n", mailbox="Old")
    old = store.mailbox("alice", "Old")
    heard: list[tuple[str, tuple[int, ...]]] = []
    old.add_listener(lambda kind, uids: heard.append((kind, uids)))
    store.delete_mailbox("alice", "Old")
    assert heard == [("expunge", (1,))]
    assert not (store.root / "alice" / "Old").exists()
    with pytest.raises(NoSuchMailbox):
        store.mailbox("alice", "Old")
    with pytest.raises(NoSuchMailbox):
        old.messages()
    with pytest.raises(NoSuchMailbox):
        store.delete_mailbox("alice", "Old")
    with pytest.raises(StorageError):
        store.delete_mailbox("alice", "INBOX")
    with pytest.raises(StorageError):
        store.delete_mailbox("alice", "Work")  # has children
    store.delete_mailbox("alice", "Work/Projects")
    # the parent stays, a folder (RFC 3501 6.3.4: foo is still listed after DELETE foo/bar)
    assert (store.root / "alice" / "Work").is_dir()
    assert store.list_mailboxes("alice") == ["INBOX"]
    assert store.list_folders("alice") == ["Work"]
    store.delete_mailbox("alice", "Work")  # an empty folder may go
    assert store.list_folders("alice") == []
    assert not (store.root / "alice" / "Work").exists()


def test_folders_hold_mailboxes_but_no_messages(store: MailStore) -> None:
    store.create_folder("alice", "Lists/2026")
    assert store.list_folders("alice") == ["Lists", "Lists/2026"]
    assert store.list_mailboxes("alice") == ["INBOX"]
    with pytest.raises(NoSuchMailbox):
        store.mailbox("alice", "Lists")  # no messages here
    with pytest.raises(MailboxExists):
        store.create_folder("alice", "Lists/2026")
    with pytest.raises(MailboxExists):
        store.create_mailbox("alice", "Lists")  # a folder cannot also be an mbox file
    store.create_mailbox("alice", "Lists/2026/python")
    with pytest.raises(StorageError):
        store.delete_mailbox("alice", "Lists/2026")  # holds a mailbox
    store.create_mailbox("alice", "Notes")
    with pytest.raises(StorageError):
        store.create_folder("alice", "Notes/sub")  # below an mbox file
    store.rename_mailbox("alice", "Lists", "Archive/Lists")
    assert store.list_folders("alice") == ["Archive", "Archive/Lists", "Archive/Lists/2026"]
    assert store.list_mailboxes("alice") == ["INBOX", "Archive/Lists/2026/python", "Notes"]


def test_rename_moves_children_and_keeps_messages(store: MailStore) -> None:
    store.create_mailbox("alice", "Work")
    store.create_mailbox("alice", "Projects/A")
    store.create_mailbox("alice", "Projects/B/C")
    uid = store.deliver("alice", b"Subject: a\r\n\r\nin A\r\n", mailbox="Projects/A")
    validity = store.mailbox("alice", "Projects/A").uidvalidity
    store.rename_mailbox("alice", "Projects", "Work2/Old Projects")
    assert store.list_mailboxes("alice") == [
        "INBOX",
        "Work",
        "Work2/Old Projects/A",
        "Work2/Old Projects/B/C",
    ]
    moved = store.mailbox("alice", "Work2/Old Projects/A")
    assert moved.read(uid) == b"Subject: a\r\n\r\nin A\r\n"
    assert moved.uidvalidity == validity
    assert moved.parsed_messages == 0  # the index rows moved with it
    assert not (store.root / "alice" / "Projects").exists()
    with pytest.raises(NoSuchMailbox):
        store.rename_mailbox("alice", "Projects", "Other")
    with pytest.raises(MailboxExists):
        store.rename_mailbox("alice", "Work", "Work2/Old Projects/A")
    with pytest.raises(MailboxExists):
        store.rename_mailbox("alice", "Work", "INBOX")
    with pytest.raises(StorageError):
        store.rename_mailbox("alice", "Work2", "Work2/Inner")
    store.rename_mailbox("alice", "Work", "Play")
    assert store.list_mailboxes("alice")[1] == "Play"


def test_rename_inbox_moves_messages_and_leaves_it_empty(store: MailStore, make_message) -> None:
    inbox = store.mailbox("alice", "INBOX")
    for n in range(1, 4):
        inbox.append(make_message(n))
    inbox.set_flags({2: frozenset({"\\Seen"})})
    validity = inbox.uidvalidity
    store.rename_mailbox("alice", "inbox", "Old/Inbox 2026")
    assert store.list_mailboxes("alice") == ["INBOX", "Old/Inbox 2026"]
    assert inbox.messages() == []
    assert inbox.uidvalidity == validity
    assert inbox.append(make_message(4)) == 4  # RFC 3501 2.3.1.1: UIDs are not reused
    moved = store.mailbox("alice", "Old/Inbox 2026")
    infos = moved.messages()
    assert [i.uid for i in infos] == [1, 2, 3]
    assert infos[1].flags == {"\\Seen"}
    assert [moved.read(i.uid) for i in infos] == [make_message(n) for n in range(1, 4)]
    assert moved.uidvalidity != validity
    assert moved.uidnext == 4


def test_subscriptions(store: MailStore) -> None:
    assert store.subscriptions("alice") == []
    store.subscribe("alice", "inbox")
    store.subscribe("alice", "Lists/python")  # need not exist (RFC 3501 6.3.6)
    store.subscribe("alice", "Lists/python")
    assert store.subscriptions("alice") == ["INBOX", "Lists/python"]
    store.unsubscribe("alice", "INBOX")
    store.unsubscribe("alice", "never subscribed")
    assert store.subscriptions("alice") == ["Lists/python"]
    assert MailStore(store.root).subscriptions("alice") == ["Lists/python"]


def test_other_programs_files_are_not_mailboxes(store: MailStore) -> None:
    user = store.root / "alice"
    (user / "INBOX.lock").write_bytes(b"")
    (user / ".Sent.123.tmp").write_bytes(b"")
    (user / "inbox").write_bytes(b"")  # not INBOX: only the file INBOX is
    (user / b"bad\xff".decode("utf-8", "surrogateescape")).write_bytes(b"")
    (user / "Real").write_bytes(b"")
    assert store.list_mailboxes("alice") == ["INBOX", "Real"]


def test_ensure_user_and_deliver_create_inbox(mail_root: Path) -> None:
    store = MailStore(mail_root)
    with pytest.raises(NoSuchMailbox):
        store.deliver("bob", b"x\r\n")
    store.ensure_user("bob")
    store.ensure_user("bob")
    assert (mail_root / "bob" / "INBOX").read_bytes() == b""
    (mail_root / "bob" / "INBOX").unlink()
    assert store.deliver("bob", b"Subject: x\r\n\r\nx\r\n") == 1
    with pytest.raises(StorageError):
        store.ensure_user("../evil")
    assert sorted(os.listdir(mail_root)) == ["bob"]
