"""IDLE over loopback (RFC 2177): an SMTP delivery reaches an idling client within a second,
pushed by the store's listener through the connection's wake-up, with no polling."""

from __future__ import annotations

import smtplib
import time

import pytest

from .line_client import LineClient

pytestmark = pytest.mark.timeout(60)


def deliver(server, subject: str) -> None:
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.sendmail(
            "bob@example.org",
            ["alice@example.test"],
            f"From: bob@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n".encode(),
        )


def test_idle_is_woken_by_smtp_delivery_within_a_second(server):
    client = LineClient(server.address("imap"))
    assert client.line().startswith(b"* OK")
    assert client.command("a", "LOGIN alice alice-pw")[-1].startswith(b"a OK")
    assert b"* 0 EXISTS" in client.command("b", "SELECT INBOX")
    client.sock.sendall(b"c IDLE\r\n")
    assert client.line() == b"+ idling"
    started = time.monotonic()
    deliver(server, "wake up")
    assert client.line(timeout=5) == b"* 1 EXISTS"
    assert time.monotonic() - started < 1.0
    assert client.line(timeout=5) == b"* 1 RECENT"
    client.sock.sendall(b"DONE\r\n")
    assert client.line() == b"c OK IDLE terminated"
    assert client.command("d", "LOGOUT")[-1] == b"d OK LOGOUT completed"
    client.close()


def test_idle_sees_another_sessions_expunge(server):
    deliver(server, "one")
    deliver(server, "two")
    idler, worker = LineClient(server.address("imap")), LineClient(server.address("imap"))
    for client in (idler, worker):
        client.line()
        client.command("a", "LOGIN alice alice-pw")
        client.command("b", "SELECT INBOX")
    idler.sock.sendall(b"c IDLE\r\n")
    assert idler.line() == b"+ idling"
    worker.command("d", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    # the idler selected first, so it holds \Recent for both messages
    assert idler.line(timeout=5) == b"* 1 FETCH (FLAGS (\\Deleted \\Recent))"
    worker.command("e", "EXPUNGE")
    assert idler.line(timeout=5) == b"* 1 EXPUNGE"
    idler.sock.sendall(b"DONE\r\n")
    assert idler.line() == b"c OK IDLE terminated"
    for client in (idler, worker):
        client.close()
