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


def test_two_sessions_see_each_others_changes(server):
    for n in range(3):
        deliver(server, "alice@example.test", f"note {n}")
    first, second = connect(server), connect(server)
    assert first.select("INBOX")[1] == [b"3"]
    assert second.select("INBOX")[1] == [b"3"]
    first.store("2", "+FLAGS", "(\\Deleted)")
    first.expunge()
    deliver(server, "alice@example.test", "note 3")
    typ, _ = second.noop()
    assert typ == "OK"
    assert second.response("EXPUNGE")[1] == [b"2"]
    assert second.response("EXISTS")[1][-1] == b"3"
    typ, data = second.uid("SEARCH", None, "ALL")
    assert data == [b"1 3 4"]
    first.logout()
    second.logout()


def test_append_copy_move_with_uidplus(server):
    client = connect(server)
    typ, data = client.append("Drafts", "(\\Draft)", None, b"Subject: draft\r\n\r\nwip\r\n")
    assert typ == "OK" and b"APPENDUID" in data[0]
    client.select("Drafts")
    typ, data = client.copy("1", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = client._simple_command("MOVE", "1", "Trash")
    assert typ == "OK"
    assert client.select("Drafts")[1] == [b"0"]
    assert client.status("Trash", "(MESSAGES)")[1] == [b'"Trash" (MESSAGES 1)']
    typ, data = client.list()
    assert b'(\\HasNoChildren \\Sent) "/" "Sent"' in data
    client.logout()


def test_starttls_then_login(server):
    import ssl

    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=10)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert client.starttls(context)[0] == "OK"
    client.login("bob", "bob-pw")
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_imaps(server):
    import ssl

    host, port = server.address("imaps")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=10)
    client.login("alice", "alice-pw")
    assert client.list()[0] == "OK"
    client.logout()


def test_curl_fetches_a_message(server):
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    deliver(server, "alice@example.test", "for curl", body="curl was here")
    host, port = server.address("imap")
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-u",
            "alice:alice-pw",
            f"imap://{host}:{port}/INBOX;UID=1",
        ],
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert b"curl was here" in result.stdout
    assert b"Subject: for curl" in result.stdout


def test_fetch_of_several_megabytes(server):
    """A FETCH larger than one output slice reaches the client whole, through the
    connection's wake-ups."""
    body = b"".join(b"line %06d of a long message\r\n" % i for i in range(40000))  # ~1.2 MB
    server.store.ensure_user("alice")
    for n in range(3):
        server.store.deliver("alice", b"Subject: big %d\r\n\r\n" % n + body)
    client = connect(server)
    client.select("INBOX")
    typ, data = client.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    messages = [item[1] for item in data if isinstance(item, tuple)]
    assert len(messages) == 3
    assert all(m.endswith(body) for m in messages)
    assert client.noop()[0] == "OK"
    client.logout()
