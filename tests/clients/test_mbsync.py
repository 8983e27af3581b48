"""mbsync (isync) keeps a local Maildir and alice's IMAP mailboxes in step, both ways:
messages, new folders, flags and expunges (RFC 3501 6.3, 6.4 as a sync client uses them:
UID FETCH ranges, UID STORE, APPEND with flags, CREATE, UID EXPUNGE, UIDPLUS codes)."""

from __future__ import annotations

import email
import imaplib
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


def mbsyncrc(home: Path, server) -> Path:
    host, port = server.address("imap")
    maildir = home / "Mail"
    maildir.mkdir()
    config = home / ".mbsyncrc"
    config.write_text(
        f"IMAPAccount refmail\nHost {host}\nPort {port}\nUser alice\nPass alice-pw\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount refmail\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel alice\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n"
        "Expunge Both\nSyncState *\nSync All\n"
    )
    return config


def maildir_messages(folder: Path) -> dict[str, tuple[Path, str]]:
    """Subject -> (file, maildir flags) of the messages in a Maildir folder."""
    found = {}
    for sub in ("new", "cur"):
        for path in (folder / sub).iterdir():
            subject = email.message_from_bytes(path.read_bytes())["Subject"]
            flags = path.name.partition(":2,")[2]
            found[subject] = (path, flags)
    return found


def set_maildir_flags(path: Path, flags: str) -> None:
    """What a Maildir reader does to flag a message: move it to cur/ with new info flags."""
    base = path.name.partition(":")[0]
    path.rename(path.parent.parent / "cur" / f"{base}:2,{flags}")


def server_messages(client: imaplib.IMAP4, mailbox: str) -> dict[str, set[str]]:
    """Subject -> IMAP flags (without \\Recent) of a mailbox on the server."""
    typ, _ = client.select(mailbox, readonly=True)
    assert typ == "OK", mailbox
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    result = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = set(imaplib.ParseFlags(item[0])) - {b"\\Recent"}
        subject = email.message_from_bytes(item[1])["Subject"]
        result[subject] = {f.decode() for f in flags}
    client.close()
    return result


def test_mbsync_both_ways(make_server, home: Path, run_client, mbsync, send_mail) -> None:
    server = make_server()
    for n in range(3):
        send_mail(server, "alice@example.test", f"note {n}")
    config = mbsyncrc(home, server)
    sync = [mbsync, "-c", str(config), "alice"]

    # 1. server -> Maildir: the messages and every mailbox (special-use ones made at login)
    run_client(sync)
    inbox = home / "Mail" / "INBOX"
    local = maildir_messages(inbox)
    assert sorted(local) == ["note 0", "note 1", "note 2"]
    assert all(flags == "" for _, flags in local.values())
    for name in ("Sent", "Drafts", "Trash"):
        assert (home / "Mail" / name / "cur").is_dir()

    # 2. Maildir -> server: flags, a deletion, a new folder with a new message
    set_maildir_flags(local["note 0"][0], "FS")
    set_maildir_flags(local["note 1"][0], "ST")
    work = home / "Mail" / "Work"
    for sub in ("cur", "new", "tmp"):
        (work / sub).mkdir(parents=True)
    (work / "cur" / f"{int(time.time())}.1.local:2,S").write_bytes(
        b"From: alice@example.test\nTo: bob@example.org\nSubject: local draft\n"
        b"Message-ID: <local.draft@example.test>\n\nwritten offline\n"
    )
    run_client(sync)
    host, port = server.address("imap")
    imap = imaplib.IMAP4(host, port, timeout=10)
    imap.login("alice", "alice-pw")
    remote = server_messages(imap, "INBOX")
    assert remote == {"note 0": {"\\Seen", "\\Flagged"}, "note 2": set()}  # note 1 expunged
    assert server_messages(imap, "Work") == {"local draft": {"\\Seen"}}

    # 3. server -> Maildir again: a flag set by another client, a new delivery
    imap.select("INBOX")
    typ, data = imap.search(None, "HEADER", "Subject", "note 2")
    imap.store(data[0].decode(), "+FLAGS", "(\\Answered)")
    imap.close()
    send_mail(server, "alice@example.test", "note 3")
    run_client(sync)
    local = maildir_messages(inbox)
    assert {subject: flags for subject, (_, flags) in local.items()} == {
        "note 0": "FS",
        "note 2": "R",
        "note 3": "",
    }

    # 4. nothing changed: another sync changes nothing on either side
    before = sorted(p.name for p in inbox.rglob("*") if p.is_file() and "mbsync" not in p.name)
    run_client(sync)
    after = sorted(p.name for p in inbox.rglob("*") if p.is_file() and "mbsync" not in p.name)
    assert after == before
    remote = server_messages(imap, "INBOX")
    assert remote == {"note 0": {"\\Seen", "\\Flagged"}, "note 2": {"\\Answered"}, "note 3": set()}
    imap.logout()
