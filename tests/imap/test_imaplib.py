"""The IMAP server over loopback with the stdlib client (imaplib), as a mail client uses it."""

from __future__ import annotations

import imaplib
import smtplib

import pytest

pytestmark = pytest.mark.timeout(60)


def connect(server, user: str = "alice", password: str = "alice-pw") -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=10)
    client.login(user, password)
    return client


def deliver(server, to: str, subject: str, body: str = "hello") -> None:
    host, port = server.address("smtp")
    message = (
        f"From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.sendmail("bob@example.org", [to], message.encode())


def test_login_select_fetch_logout(server):
    deliver(server, "alice@example.test", "first")
    client = connect(server)
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = client.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    assert b"Subject: first" in data[0][1]
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = client.fetch("1", "(RFC822)")
    assert b"hello" in data[0][1]
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    assert client.logout()[0] == "BYE"
