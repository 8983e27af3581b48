"""POP3 through real clients over loopback: poplib and curl against the live server."""

from __future__ import annotations

import poplib
import shutil
import socket
import ssl
import subprocess

import pytest
from pop3_harness import make_message

from refmail.server import Server

MESSAGES = [
    make_message(120, subject="one"),
    b"Subject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast\r\n",
    make_message(2000, subject="three"),
]


def deliver_all(server: Server, user: str = "alice") -> list[int]:
    server.store.ensure_user(user)
    return [server.store.deliver(user, m, mailbox="INBOX") for m in MESSAGES]


def inbox_uids(server: Server, user: str = "alice") -> list[int]:
    return [m.uid for m in server.store.mailbox(user, "INBOX").messages()]


def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served(lines: list[bytes]) -> bytes:
    """poplib's lines (endings stripped, dots unstuffed) back to the message's bytes."""
    return b"".join(line + b"\r\n" for line in lines)


def test_poplib_full_session(server: Server) -> None:
    uids = deliver_all(server)
    host, port = server.address("pop3")
    client = poplib.POP3(host, port, timeout=10)
    try:
        assert client.getwelcome() == b"+OK refmail POP3 server ready"
        capa = client.capa()
        assert {"TOP", "UIDL", "USER", "SASL", "STLS", "PIPELINING"} <= set(capa)
        assert client.user("alice") == b"+OK send PASS"
        assert client.pass_("alice-pw").startswith(b"+OK alice's maildrop has 3 messages")
        sizes = [len(m) for m in MESSAGES]
        assert client.stat() == (3, sum(sizes))
        _, listing, _ = client.list()
        assert listing == [f"{n} {s}".encode() for n, s in enumerate(sizes, 1)]
        assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
        for number, message in enumerate(MESSAGES, 1):
            response, lines, octets = client.retr(number)
            assert response == f"+OK {len(message)} octets".encode()
            assert served(lines) == message
        _, ids, _ = client.uidl()
        assert len({i.split()[1] for i in ids}) == 3
        _, top, _ = client.top(3, 2)
        assert served(top) == MESSAGES[2][: MESSAGES[2].index(b"\r\n\r\n") + 4] + b"x\r\nx\r\n"
        assert client.dele(1) == b"+OK message 1 deleted"
        with pytest.raises(poplib.error_proto, match="already deleted"):
            client.retr(1)
        assert client.rset().startswith(b"+OK maildrop has 3 messages")
        client.dele(2)
        assert client.stat() == (2, sizes[0] + sizes[2])
        assert client.quit() == b"+OK refmail POP3 server signing off (2 messages left)"
    finally:
        client.close()
    assert inbox_uids(server) == [uids[0], uids[2]]


def test_poplib_errors_and_in_use(server: Server) -> None:
    deliver_all(server)
    host, port = server.address("pop3")
    first = poplib.POP3(host, port, timeout=10)
    second = poplib.POP3(host, port, timeout=10)
    try:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            first.user("alice")
            first.pass_("wrong")
        first.user("alice")
        first.pass_("alice-pw")
        second.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_("alice-pw")
        with pytest.raises(poplib.error_proto, match="no such message"):
            first.retr(4)
        first.quit()
        second.user("alice")
        assert second.pass_("alice-pw").startswith(b"+OK")
        second.quit()
    finally:
        first.close()
        second.close()


def test_poplib_stls(server: Server) -> None:
    deliver_all(server)
    host, port = server.address("pop3")
    client = poplib.POP3(host, port, timeout=10)
    try:
        assert client.stls(unverified_context()) == b"+OK Begin TLS negotiation"
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_("alice-pw")
        assert client.stat()[0] == 3
        assert served(client.retr(2)[1]) == MESSAGES[1]
        client.quit()
    finally:
        client.close()


def test_poplib_pop3s(server: Server) -> None:
    deliver_all(server)
    host, port = server.address("pop3s")
    client = poplib.POP3_SSL(host, port, timeout=10, context=unverified_context())
    try:
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_("alice-pw")
        assert client.stat()[0] == 3
        client.quit()
    finally:
        client.close()


def test_stls_drops_pipelined_plaintext(server: Server) -> None:
    """CVE-2011-0411: commands sent with STLS in one packet must not run after the handshake."""
    host, port = server.address("pop3")
    with socket.create_connection((host, port), timeout=10) as raw:
        stream = raw.makefile("rb")
        assert stream.readline().startswith(b"+OK")
        raw.sendall(b"STLS\r\nUSER alice\r\nPASS alice-pw\r\n")
        assert stream.readline() == b"+OK Begin TLS negotiation\r\n"
        with unverified_context().wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"STAT\r\n")
            reply = tls.recv(1000)
            assert reply.startswith(b"-ERR STAT is not allowed before login")
            tls.sendall(b"QUIT\r\n")
            tls.recv(1000)


def test_pipelined_retr_burst_over_the_wire(server: Server) -> None:
    """RFC 2449 6.6: 30 RETRs of a 200 kB message in one packet (past the session's output
    high-water mark, so the handler's wake/pending_output path carries the rest)."""
    message = make_message(200_000)
    server.store.ensure_user("alice")
    server.store.deliver("alice", message, mailbox="INBOX")
    expected = b"+OK 200000 octets\r\n" + message + b".\r\n"
    host, port = server.address("pop3")
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"USER alice\r\nPASS alice-pw\r\n" + b"RETR 1\r\n" * 30 + b"QUIT\r\n")
        received = b""
        while chunk := raw.recv(1 << 20):
            received += chunk
    lines = received.split(b"\r\n", 3)
    assert lines[0].startswith(b"+OK") and lines[2].startswith(b"+OK alice's maildrop")
    assert lines[3] == expected * 30 + b"+OK refmail POP3 server signing off (1 messages left)\r\n"


def test_line_limit_over_the_wire(server: Server) -> None:
    host, port = server.address("pop3")
    with socket.create_connection((host, port), timeout=10) as raw:
        stream = raw.makefile("rb")
        stream.readline()
        raw.sendall(b"NOOP " + b"x" * 5000 + b"\r\nCAPA\r\n")
        assert stream.readline().startswith(b"-ERR command line too long")
        assert stream.readline() == b"+OK Capability list follows\r\n"


curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def run_curl(*args: str) -> bytes:
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return result.stdout


@curl
def test_curl_list_retr_dele(server: Server) -> None:
    uids = deliver_all(server)
    host, port = server.address("pop3")
    url = f"pop3://alice:alice-pw@{host}:{port}/"
    sizes = [len(m) for m in MESSAGES]
    assert run_curl(url) == b"".join(f"{n} {s}\r\n".encode() for n, s in enumerate(sizes, 1))
    assert run_curl(url + "2") == MESSAGES[1]
    assert run_curl(url + "3") == MESSAGES[2]
    run_curl("--request", "DELE 1", "--head", url)
    assert inbox_uids(server) == uids[1:]
    assert run_curl(url) == b"".join(f"{n} {s}\r\n".encode() for n, s in enumerate(sizes[1:], 1))


@curl
def test_curl_wrong_password(server: Server) -> None:
    host, port = server.address("pop3")
    result = subprocess.run(
        ["curl", "--silent", "--max-time", "20", f"pop3://alice:nope@{host}:{port}/"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 67  # CURLE_LOGIN_DENIED
