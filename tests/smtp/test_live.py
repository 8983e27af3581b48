"""SMTP over loopback against the real server: smtplib, curl, and a raw pipelining client."""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
from email.message import EmailMessage

import pytest


def inbox(server, user: str) -> list[bytes]:
    server.store.ensure_user(user)
    box = server.store.mailbox(user, "INBOX")
    return [box.read(info.uid) for info in box.messages()]


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed
    return context


def test_smtplib_local_delivery(server):
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as client:
        code, _ = client.ehlo("client.example")
        assert code == 250
        for feature in (
            "pipelining",
            "size",
            "8bitmime",
            "smtputf8",
            "chunking",
            "starttls",
            "auth",
        ):
            assert client.has_extn(feature), feature
        refused = client.sendmail(
            "someone@elsewhere.example",
            ["alice@example.test", "BOB@example.org", "nobody@example.test"],
            b"Subject: hello\r\n\r\nline\r\n.dot line\r\n",
        )
        assert list(refused) == ["nobody@example.test"]
        assert refused["nobody@example.test"][0] == 550
    for user in ("alice", "bob"):
        (message,) = inbox(server, user)
        assert message.startswith(b"Return-Path: <someone@elsewhere.example>\r\nReceived: ")
        assert message.endswith(b"Subject: hello\r\n\r\nline\r\n.dot line\r\n")


def test_smtplib_relay_denied_without_auth(server):
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo()
        client.mail("a@elsewhere.example")
        code, text = client.rcpt("victim@elsewhere.example")
    assert code == 550 and text.startswith(b"5.7.1")
    assert server.spool.list() == []


def test_submission_starttls_auth_and_relay(server):
    host, port = server.address("submission")
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "friend@elsewhere.example, bob@example.test"
    message["Subject"] = "grüße"
    message.set_content("naïve café\n")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail("alice@example.test", ["bob@example.test"], b"x\r\n")
        assert info.value.smtp_code == 530
        client.starttls(context=client_context())
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login("alice", "alice-pw")
        # smtplib sends 8-bit content without BODY=8BITMIME: accepted, as Postfix does
        client.send_message(message)
    (queued,) = server.spool.list()
    assert [r["address"] for r in queued["recipients"]] == ["friend@elsewhere.example"]
    assert b"with ESMTPSA" in server.spool.message(queued["id"])
    (local,) = inbox(server, "bob")
    assert b"with ESMTPSA" in local


def test_wrong_password(server):
    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "wrong")
        assert info.value.smtp_code == 535


def test_raw_pipelining_and_bdat(server):
    host, port = server.address("smtp")
    chunk_body = b"Subject: two\r\n\r\nQUIT\r\n"
    commands = (
        b"EHLO raw.example\r\nMAIL FROM:<r@raw.example>\r\nRCPT TO:<alice@example.test>\r\n"
        b"DATA\r\nSubject: one\r\n\r\nfirst\r\n.\r\n"
        b"MAIL FROM:<r@raw.example>\r\nRCPT TO:<alice@example.test>\r\n"
        + b"BDAT %d LAST\r\n" % len(chunk_body)
        + chunk_body
        + b"QUIT\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(commands)
        received = b""
        while not received.endswith(b"221 2.0.0 mx.example.test closing connection\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    finals = [line[:3] for line in received.split(b"\r\n") if line[3:4] == b" "]
    assert finals == [
        b"220",
        b"250",
        b"250",
        b"250",
        b"354",
        b"250",
        b"250",
        b"250",
        b"250",
        b"221",
    ]
    first, second = inbox(server, "alice")
    assert first.endswith(b"Subject: one\r\n\r\nfirst\r\n")
    assert second.endswith(b"Subject: two\r\n\r\nQUIT\r\n")


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_smtp(server, tmp_path):
    host, port = server.address("smtp")
    mail = tmp_path / "mail.txt"
    mail.write_bytes(b"From: c@curl.example\r\nSubject: via curl\r\n\r\nhello from curl\r\n")
    result = subprocess.run(
        [
            CURL,
            "-sS",
            f"smtp://{host}:{port}",
            "--mail-from",
            "c@curl.example",
            "--mail-rcpt",
            "bob@example.org",
            "-T",
            str(mail),
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    (message,) = inbox(server, "bob")
    assert message.endswith(b"Subject: via curl\r\n\r\nhello from curl\r\n")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_smtps_with_auth(server, tmp_path):
    host, port = server.address("smtps")
    mail = tmp_path / "mail.txt"
    mail.write_bytes(b"Subject: implicit tls\r\n\r\nsecret stuff\r\n")
    result = subprocess.run(
        [
            CURL,
            "-sS",
            "-k",
            f"smtps://{host}:{port}",
            "--user",
            "alice:alice-pw",
            "--mail-from",
            "alice@example.test",
            "--mail-rcpt",
            "bob@example.test",
            "-T",
            str(mail),
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    (message,) = inbox(server, "bob")
    assert b"with ESMTPSA" in message and message.endswith(b"secret stuff\r\n")
