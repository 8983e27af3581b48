"""No open relay on port 25 (RFC 5321 3.6.2, 7.1): whatever the shape of a recipient, an
unauthenticated client gets mail only to local users; and no client text reaches the trace
fields as a header of its own (RFC 5321 4.4)."""

from __future__ import annotations

import email
import email.policy
import re
import ssl

import pytest
from security_helpers import greeted, read_until

#: Each names a foreign mailbox (or tries to); none may be accepted on port 25.
RELAY_TRICKS = [
    "victim@foreign.example",
    "@example.test:victim@foreign.example",  # source route through us (RFC 5321 4.1.2)
    "@a.example,@b.example:victim@foreign.example",
    "victim%foreign.example@example.test",  # the %-hack
    "victim%foreign.example@mx.example.test",
    '"victim@foreign.example"@example.test',  # quoted local part holding an address
    '"victim%foreign.example"@example.test',
    "victim@foreign.example@example.test",  # two @
    "foreign.example!victim@example.test",  # UUCP bang path
    "victim@[192.0.2.1]",  # address literals
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "alice@[127.0.0.1]",
    "postmaster@foreign.example",
    "postmaster%foreign.example@example.test",
    '"postmaster@foreign.example"',
    "victim@example.test.foreign.example",
    "victim@foreign.example.",
    "victim@localhost",
    "../bob@example.test",
    "alice@example.test@foreign.example",
]


def smtp_lines(sock, *lines: bytes) -> list[bytes]:
    """Send ``lines`` one by one, return each one's final reply line."""
    replies = []
    for line in lines:
        sock.sendall(line + b"\r\n")
        data = b""
        while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", data):
            data += read_until(sock, b"\r\n")
        replies.append(data.split(b"\r\n")[-2])
    return replies


def queue_files(server) -> list[str]:
    queue = server.config.queue_dir
    return [str(p) for p in queue.rglob("*") if p.is_file()] if queue.exists() else []


@pytest.mark.parametrize("rcpt", RELAY_TRICKS)
@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_no_relay_without_authentication(server, rcpt, service) -> None:
    with greeted(server.address(service)) as sock:
        ehlo, mail, rcpt_reply, data = smtp_lines(
            sock,
            b"EHLO c.example.net",
            b"MAIL FROM:<spammer@example.net>",
            b"RCPT TO:<" + rcpt.encode() + b">",
            b"DATA",
        )
        assert rcpt_reply[:1] == b"5", rcpt_reply
        assert data[:1] == b"5", data  # no valid recipient: DATA refused (554/503)
    assert queue_files(server) == []


def test_local_postmaster_and_users_are_still_accepted(server) -> None:
    with greeted(server.address("smtp")) as sock:
        replies = smtp_lines(
            sock,
            b"EHLO c.example.net",
            b"MAIL FROM:<x@example.net>",
            b"RCPT TO:<postmaster@example.test>",
            b"RCPT TO:<Postmaster>",
            b"RCPT TO:<ALICE@Example.ORG>",
            b"RCPT TO:<victim@foreign.example>",
        )
        assert [r[:3] for r in replies[2:]] == [b"250", b"250", b"250", b"550"]
    assert queue_files(server) == []


def test_submission_relays_only_after_auth(server) -> None:
    """The relay opens on submission only once authenticated (RFC 6409 4.3: 530 before)."""
    with greeted(server.address("submission")) as sock:
        replies = smtp_lines(sock, b"EHLO c.example.net", b"MAIL FROM:<alice@example.test>")
        assert replies[1].startswith(b"530 5.7.0")


# ---------------------------------------------------------------- trace field injection


INJECTIONS = [
    b"EHLO evil\nX-Injected: helo-lf",
    b"EHLO evil\rX-Injected: helo-cr",
    b"EHLO evil\r X-Injected: helo-cr-space",
    b"EHLO evil)\tby forged.example (x",
    b"EHLO " + b"h" * 400,
]


@pytest.mark.parametrize("helo", INJECTIONS)
def test_helo_and_envelope_text_cannot_inject_headers(server, helo) -> None:
    with greeted(server.address("smtp")) as sock:
        sock.sendall(helo + b"\r\n")
        read_until(sock, b"\r\n")
        replies = smtp_lines(
            sock,
            b"EHLO fallback.example",  # in case the odd greeting was refused
            b"MAIL FROM:<a\nX-Injected: from@example.net>",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice@example.test\rX-Injected: rcpt>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
            b"Subject: t\r\n\r\nbody\r\n.",
        )
        assert replies[-1].startswith(b"250 "), replies
    head = fetch_header(server)
    parsed = email.message_from_bytes(head, policy=email.policy.compat32)
    assert "X-Injected" not in parsed
    field_names = [line.split(b":")[0] for line in head.split(b"\r\n") if line[:1].isalpha()]
    assert field_names.count(b"Received") == 1 and b"X-Injected" not in field_names
    received = parsed["Received"]
    assert "forged" not in received and "\r" not in received.replace("\r\n", "")
    assert re.match(r"from [A-Za-z0-9.?\-_:\[\]]+ \(\[127\.0\.0\.1\]\)", received), received


def fetch_header(server) -> bytes:
    """The header section of alice's newest message, as IMAP serves it."""
    import imaplib

    client = imaplib.IMAP4(*server.address("imap"), timeout=10)
    try:
        client.login("alice", "alice-pw")
        client.select("INBOX")
        typ, data = client.fetch("*", "(BODY.PEEK[HEADER])")
        assert typ == "OK"
        return data[0][1]
    finally:
        client.logout()


def test_no_relay_after_starttls_or_a_failed_auth(server) -> None:
    """TLS is not authentication, and neither is a failed AUTH (RFC 4954 6)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = greeted(server.address("smtp"))
    smtp_lines(sock, b"EHLO c.example.net", b"STARTTLS")
    with context.wrap_socket(sock) as tls:
        replies = smtp_lines(
            tls,
            b"EHLO c.example.net",
            b"AUTH PLAIN AGFsaWNlAHdyb25n",  # \0alice\0wrong
            b"MAIL FROM:<alice@example.test>",
            b"RCPT TO:<victim@foreign.example>",
        )
        assert replies[1].startswith(b"535 ")
        assert replies[3].startswith(b"550 5.7.1")
    assert queue_files(server) == []
