"""mutt against the live server: batch mode (``mutt -s ... < body``) submits over SMTP AUTH
and files the copy in the IMAP Sent folder with APPEND; on a pseudo-terminal, keys pushed
with ``-e`` make it open the IMAP INBOX, copy every message into a local mbox, flag them and
quit, with no one at the keyboard."""

from __future__ import annotations

import imaplib
import mailbox
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

#: How long mutt may take to do what the pushed keys say and quit.
SCREEN_TIMEOUT = 30.0


def muttrc(home: Path, server) -> Path:
    smtp_host, smtp_port = server.address("submission")
    imap_host, imap_port = server.address("imap")
    config = home / ".muttrc"
    config.write_text(
        'set from="alice@example.test" realname="Alice"\n'
        f'set smtp_url="smtp://alice@{smtp_host}:{smtp_port}/" smtp_pass="alice-pw"\n'
        # plaintext AUTH is accepted on loopback (DESIGN.md); the test certificate is
        # self-signed, which mutt would ask about
        "set ssl_starttls=no ssl_force_tls=no\n"
        'set imap_user="alice" imap_pass="alice-pw"\n'
        f'set folder="imap://{imap_host}:{imap_port}/" record="=Sent" copy=yes\n'
        "set confirmcreate=no confirmappend=no quit=yes delete=yes move=no mbox_type=mbox\n"
    )
    return config


def run_on_terminal(argv: list[str], home: Path) -> tuple[int, bytes]:
    """Run a full-screen program on a pseudo-terminal until it exits; its status and
    what it drew (for failure messages)."""
    master, slave = pty.openpty()
    env = {"HOME": str(home), "TERM": "vt100", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=home, start_new_session=True
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + SCREEN_TIMEOUT
    try:
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the terminal closed: the program is exiting
                    break
        try:
            status = process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"mutt did not finish; screen:\n{screen[-3000:]!r}")
    finally:
        os.close(master)
    return status, screen


def imap_login(server) -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=10)
    client.login("alice", "alice-pw")
    return client


def test_mutt_batch_send_files_a_copy_over_imap(
    make_server, home: Path, run_client, mutt, send_mail
) -> None:
    server = make_server()
    send_mail(server, "alice@example.test", "first contact")  # alice exists, has a Sent
    imap_login(server).logout()
    config = muttrc(home, server)
    run_client(
        [mutt, "-n", "-F", str(config), "-s", "batch mode", "bob@example.test"],
        input="sent by mutt\n",
    )
    bob = server.store.mailbox("bob", "INBOX")
    (received,) = bob.messages()
    data = bob.read(received.uid)
    assert b"Subject: batch mode" in data and b"sent by mutt" in data
    assert b"From: Alice <alice@example.test>" in data
    sent = server.store.mailbox("alice", "Sent")
    (copy,) = sent.messages()
    assert copy.flags == {"\\Seen"}  # APPEND (\Seen) of the fcc
    assert b"sent by mutt" in sent.read(copy.uid)


def test_mutt_copies_and_flags_imap_messages(make_server, home: Path, mutt, send_mail) -> None:
    server = make_server()
    for n in range(3):
        send_mail(server, "alice@example.test", f"for mutt {n}", f"body {n}")
    config = muttrc(home, server)
    imap_host, imap_port = server.address("imap")
    local = home / "saved.mbox"
    keys = (
        "<tag-pattern>~A<enter>"  # tag all
        f"<tag-prefix><copy-message>{local}<enter>"  # copy them into a local mbox
        "<tag-prefix><flag-message>"  # flag them \Flagged
        "<quit>"  # quit=yes: sync the flags, no question asked
    )
    status, screen = run_on_terminal(
        [
            mutt,
            "-n",
            "-F",
            str(config),
            "-f",
            f"imap://{imap_host}:{imap_port}/INBOX",
            "-e",
            f'push "{keys}"',
        ],
        home,
    )
    assert status == 0, screen[-3000:]
    saved = list(mailbox.mbox(str(local)))
    assert [m["Subject"] for m in saved] == ["for mutt 0", "for mutt 1", "for mutt 2"]
    assert saved[1].get_payload() == "body 1\n"
    client = imap_login(server)
    client.select("INBOX", readonly=True)
    typ, data = client.fetch("1:*", "(FLAGS)")
    for line in data:
        flags = set(imaplib.ParseFlags(line))
        assert b"\\Flagged" in flags
        assert b"Old" in flags  # mutt's keyword for "seen in the index, not read"
        assert b"\\Seen" not in flags  # copying is no reading
    client.logout()
