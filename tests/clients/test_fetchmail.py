"""fetchmail collects alice's mail over POP3 (RFC 1939: UIDL, TOP, DELE) and over IMAP
(RFC 3501: SEARCH UNSEEN, FETCH, STORE \\Deleted, EXPUNGE) and hands each message to an MDA
that appends it to a local mbox, which the stdlib ``mailbox`` module then reads."""

from __future__ import annotations

import imaplib
import mailbox
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

#: fetchmail's exit status when the server had no mail for it (fetchmail(1) EXIT CODES).
NO_MAIL = 1
#: An MDA appending to an mbox, mboxrd-quoting ``From `` lines, as procmail would.
MDA_SCRIPT = """#!/bin/sh
{{ echo "From fetchmail@localhost Thu Jan  1 00:00:00 1970"
  sed 's/^\\(>*From \\)/>\\1/'
  echo; }} >> {mbox}
"""


def fetchmailrc(
    home: Path, server, protocol: str, options: str = "", server_options: str = ""
) -> Path:
    """A run control file polling the server's ``protocol`` listener without TLS."""
    mbox = home / "fetched.mbox"
    mda = home / "mda.sh"
    mda.write_text(MDA_SCRIPT.format(mbox=mbox))
    mda.chmod(0o700)
    host, port = server.address(protocol)
    rc = home / f"fetchmailrc-{protocol}"
    rc.write_text(
        "set no syslog\n"
        f"poll {host} service {port} proto {protocol} auth password {server_options}\n"
        f'  user "alice" there password "alice-pw" sslproto "" mda "{mda}" {options}\n'
    )
    rc.chmod(0o600)  # fetchmail refuses a run control file others can read
    return rc


def fetched(home: Path) -> list[mailbox.mboxMessage]:
    path = home / "fetched.mbox"
    return list(mailbox.mbox(str(path))) if path.exists() else []


def subjects(messages: list[mailbox.mboxMessage]) -> list[str]:
    return [str(m["Subject"]) for m in messages]


def test_fetchmail_pop3(make_server, home: Path, run_client, fetchmail, send_mail) -> None:
    server = make_server()
    send_mail(server, "alice@example.test", "pop one", "From the start\r\nline two")
    send_mail(server, "alice@example.test", "pop two")
    keep = fetchmailrc(home, server, "pop3", "keep", server_options="uidl")
    command = [fetchmail, "--nosyslog", "-f", str(keep), "--idfile", str(home / "ids")]

    run_client(command)  # keep + uidl: fetched, left on the server, remembered by UIDL
    assert subjects(fetched(home)) == ["pop one", "pop two"]
    body = fetched(home)[0].get_payload()
    # the server sent the line as delivered (its own mboxrd quoting undone); the MDA quoted
    # it once, and the stdlib reader (mboxo) leaves that quote in place
    assert body == ">From the start\nline two\n"
    second = run_client(command, ok=False)
    assert second.returncode == NO_MAIL, second.stderr  # UIDs stable across sessions
    assert len(fetched(home)) == 2

    send_mail(server, "alice@example.test", "pop three")
    take = fetchmailrc(home, server, "pop3", "fetchall")
    run_client([fetchmail, "--nosyslog", "-f", str(take), "--idfile", str(home / "ids2")])
    assert subjects(fetched(home)) == ["pop one", "pop two", "pop one", "pop two", "pop three"]
    inbox = server.store.mailbox("alice", "INBOX")
    assert inbox.messages() == []  # DELE then QUIT expunged them


def test_fetchmail_imap(make_server, home: Path, run_client, fetchmail, send_mail) -> None:
    server = make_server()
    for n in range(3):
        send_mail(server, "alice@example.test", f"imap {n}")
    host, port = server.address("imap")
    imap = imaplib.IMAP4(host, port, timeout=10)
    imap.login("alice", "alice-pw")
    imap.select("INBOX")
    imap.store("2", "+FLAGS", "(\\Seen)")
    imap.logout()

    unseen = fetchmailrc(home, server, "imap", "keep")
    run_client([fetchmail, "--nosyslog", "-f", str(unseen)])
    assert subjects(fetched(home)) == ["imap 0", "imap 2"]  # only the unseen ones
    box = server.store.mailbox("alice", "INBOX")
    assert [("\\Seen" in info.flags) for info in box.messages()] == [True, True, True]

    everything = fetchmailrc(home, server, "imap", "fetchall")
    run_client([fetchmail, "--nosyslog", "-f", str(everything)])
    assert subjects(fetched(home))[2:] == ["imap 0", "imap 1", "imap 2"]
    assert box.messages() == []  # flagged \Deleted and expunged
    assert fetched(home)[2]["Return-Path"] == "<bob@example.org>"
