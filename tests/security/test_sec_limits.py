"""Abuse limits over loopback, each tried at N (accepted) and N+1 (the protocol's error, and
the server goes on): connections per address and in all, recipients, message size, header
fields and octets, command line length on all three protocols, IMAP literal size, IMAP list
nesting, and a MIME bomb's BODYSTRUCTURE."""

from __future__ import annotations

import imaplib
import re
import time

import pytest
from security_helpers import connect, greeted, read_until

from refmail.imap.protocol import MAX_NESTING_DEPTH

BUSY = {"smtp": b"421 4.7.0", "pop3": b"-ERR [SYS/TEMP]", "imap": b"* BYE"}
GREETING = {"smtp": b"220 ", "pop3": b"+OK", "imap": b"* OK"}


# ---------------------------------------------------------------- connections


@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap"])
def test_connections_per_address_n_and_n_plus_1(make_server, protocol) -> None:
    n = 3
    server = make_server(limits={"max_connections_per_ip": n})
    address = server.address(protocol)
    held = [greeted(address, "127.0.0.2") for _ in range(n)]  # N: all greeted
    try:
        greeted(address, "127.0.0.3").close()  # another address is counted apart
        with connect(address, "127.0.0.2") as refused:  # N+1 from the same address
            assert read_until(refused, b"\r\n").startswith(BUSY[protocol])
            assert refused.recv(100) == b""  # and closed
        held.pop().close()
        time.sleep(0.2)  # the slot is released as the handler finishes
        greeted(address, "127.0.0.2").close()
    finally:
        for sock in held:
            sock.close()


def test_connections_in_all_n_and_n_plus_1(make_server) -> None:
    n = 4
    server = make_server(limits={"max_connections": n})
    held = []
    try:
        for i in range(n):  # N, from four addresses over three protocols
            protocol = ("smtp", "pop3", "imap", "smtp")[i]
            sock = connect(server.address(protocol), f"127.0.0.{10 + i}")
            assert read_until(sock, b"\r\n").startswith(GREETING[protocol])
            held.append(sock)
        with connect(server.address("imap"), "127.0.0.20") as refused:  # N+1
            assert read_until(refused, b"\r\n").startswith(BUSY["imap"])
        held.pop().close()
        time.sleep(0.2)  # the slot is released as the handler finishes
        with connect(server.address("imap"), "127.0.0.20") as admitted:
            assert read_until(admitted, b"\r\n").startswith(GREETING["imap"])
    finally:
        for sock in held:
            sock.close()


# ---------------------------------------------------------------- SMTP transaction limits


def smtp_session(server):
    sock = greeted(server.address("smtp"))
    sock.sendall(b"EHLO c.example.net\r\n")
    read_until(sock, b"\r\n250 ")
    return sock


def smtp(sock, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    data = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", data):
        data += read_until(sock, b"\r\n")
    return data


def test_recipients_n_and_n_plus_1(make_server) -> None:
    server = make_server(limits={"recipients": 3})
    with smtp_session(server) as sock:
        assert smtp(sock, b"MAIL FROM:<x@example.net>").startswith(b"250")
        for rcpt in (b"alice@example.test", b"bob@example.test", b"postmaster@example.test"):
            assert smtp(sock, b"RCPT TO:<" + rcpt + b">").startswith(b"250")
        # RFC 5321 4.5.3.1.10: 452 for recipients past the limit.
        assert smtp(sock, b"RCPT TO:<alice@example.org>").startswith(b"452 4.5.3")
        assert smtp(sock, b"DATA").startswith(b"354")
        assert smtp(sock, b"Subject: r\r\n\r\nbody\r\n.").startswith(b"250 ")


def send_message(server, content: bytes, *, bdat: bool = False) -> bytes:
    with smtp_session(server) as sock:
        smtp(sock, b"MAIL FROM:<x@example.net>")
        smtp(sock, b"RCPT TO:<alice@example.test>")
        if bdat:
            sock.sendall(b"BDAT %d LAST\r\n" % len(content) + content)
            return smtp(sock, b"NOOP").split(b"\r\n")[0]
        smtp(sock, b"DATA")
        stuffed = content.replace(b"\r\n.", b"\r\n..")
        return smtp(sock, stuffed + b".")


def sized(total: int) -> bytes:
    """A message of exactly ``total`` octets (CRLF lines under 1000 octets)."""
    head = b"Subject: size\r\n\r\n"
    body = b""
    while len(head) + len(body) + 80 <= total:
        body += b"z" * 76 + b"\r\n"
    filler = total - len(head) - len(body) - 2
    return head + body + b"y" * filler + b"\r\n"


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_message_size_n_and_n_plus_1(make_server, bdat) -> None:
    n = 5000
    server = make_server(limits={"message_size": n})
    assert len(sized(n)) == n
    assert send_message(server, sized(n), bdat=bdat).startswith(b"250 ")
    assert send_message(server, sized(n + 1), bdat=bdat).startswith(b"552 5.3.4")
    with smtp_session(server) as sock:  # RFC 1870: the SIZE parameter at N and N+1
        assert smtp(sock, b"MAIL FROM:<x@example.net> SIZE=%d" % n).startswith(b"250")
        smtp(sock, b"RSET")
        assert smtp(sock, b"MAIL FROM:<x@example.net> SIZE=%d" % (n + 1)).startswith(b"552")


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_header_field_count_n_and_n_plus_1(make_server, bdat) -> None:
    n = 50
    server = make_server(limits={"max_header_fields": n})

    def message(fields: int) -> bytes:
        return b"".join(b"X-F%d: v\r\n" % i for i in range(fields)) + b"\r\nbody\r\n"

    assert send_message(server, message(n), bdat=bdat).startswith(b"250 ")
    folded = message(n).replace(b"X-F1: v\r\n", b"X-F1: v\r\n continued\r\n")
    assert send_message(server, folded, bdat=bdat).startswith(b"250 ")  # folding is one field
    assert send_message(server, message(n + 1), bdat=bdat).startswith(b"554 5.6.0")


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_header_section_size_n_and_n_plus_1(make_server, bdat) -> None:
    n = 2000
    server = make_server(limits={"max_header_size": n})

    def message(head_octets: int) -> bytes:
        fields = b"X-Pad: " + b"p" * 91 + b"\r\n"  # 100 octets
        head = fields * ((head_octets - 100) // 100)
        fixed = len(b"Subject: \r\n\r\n")
        return head + b"Subject: " + b"h" * (head_octets - len(head) - fixed) + b"\r\n\r\nbody\r\n"

    assert send_message(server, message(n), bdat=bdat).startswith(b"250 ")
    assert send_message(server, message(n + 1), bdat=bdat).startswith(b"554 5.6.0")
    assert len(server.store.mailbox("alice", "INBOX").messages()) == 1


# ---------------------------------------------------------------- command lines


def test_smtp_command_line_n_and_n_plus_1(server) -> None:
    """RFC 5321 4.5.3.1.4: 512 octets including CRLF."""
    with smtp_session(server) as sock:
        assert smtp(sock, b"NOOP " + b"x" * (512 - 7)).startswith(b"250")
        assert smtp(sock, b"NOOP " + b"x" * (512 - 6)).startswith(b"500 5.5.2")
        assert smtp(sock, b"NOOP").startswith(b"250")  # and the session goes on


def test_pop3_command_line_n_and_n_plus_1(server) -> None:
    """RFC 2449 4: 255 octets including CRLF."""
    with greeted(server.address("pop3")) as sock:
        sock.sendall(b"USER " + b"u" * (255 - 7) + b"\r\n")
        assert b"too long" not in read_until(sock, b"\r\n")
        sock.sendall(b"USER " + b"u" * (255 - 6) + b"\r\n")
        assert read_until(sock, b"\r\n").startswith(b"-ERR command line too long")
        sock.sendall(b"USER alice\r\n")
        assert read_until(sock, b"\r\n").startswith(b"+OK")


def test_imap_command_line_n_and_n_plus_1(make_server) -> None:
    n = 4096
    server = make_server(limits={"imap_command_line": n})
    with greeted(server.address("imap")) as sock:
        sock.sendall(b"a LOGIN alice alice-pw\r\n")
        read_until(sock, b"a OK")
        fixed = len(b'b STATUS "" (MESSAGES)\r\n')
        sock.sendall(b'b STATUS "' + b"m" * (n - fixed) + b'" (MESSAGES)\r\n')
        reply = read_until(sock, b"b NO", b"b BAD")
        assert b"b NO" in reply and b"TOOBIG" not in reply  # N: parsed, no such mailbox
        sock.sendall(b'c STATUS "' + b"m" * (n - fixed + 1) + b'" (MESSAGES)\r\n')
        assert b"[TOOBIG]" in read_until(sock, b"c BAD", b"c NO")
        sock.sendall(b"d NOOP\r\n")
        assert b"d OK" in read_until(sock, b"d OK")


# ---------------------------------------------------------------- IMAP literals and nesting


def imap_login(server):
    sock = greeted(server.address("imap"))
    sock.sendall(b"a LOGIN alice alice-pw\r\n")
    read_until(sock, b"a OK")
    return sock


def test_imap_literal_size_n_and_n_plus_1(make_server) -> None:
    n = 4096
    server = make_server(limits={"imap_literal_size": n})
    message = sized(n)
    with imap_login(server) as sock:
        sock.sendall(b"b APPEND INBOX {%d}\r\n" % n)
        assert read_until(sock, b"\r\n").startswith(b"+ ")  # N: go ahead
        sock.sendall(message + b"\r\n")
        assert b"b OK" in read_until(sock, b"b OK", b"b NO", b"b BAD")
        # N+1: refused before a byte is sent, no continuation (RFC 7889 TOOBIG).
        sock.sendall(b"c APPEND INBOX {%d}\r\n" % (n + 1))
        reply = read_until(sock, b"\r\n")
        assert reply.startswith(b"c NO [TOOBIG]"), reply
        sock.sendall(b"d NOOP\r\n")
        assert b"d OK" in read_until(sock, b"d OK")
        # A non-synchronizing literal over the limit: its octets are already on their way
        # and could pass for commands, so the server says BYE and closes (RFC 7888 4).
        sock.sendall(b"e APPEND INBOX {%d+}\r\n" % (n + 1) + b"e2 LOGOUT\r\n")
        reply = read_until(sock, b"* BYE")
        assert b"* BYE" in reply and b"e2 OK" not in reply
    assert len(server.store.mailbox("alice", "INBOX").messages()) == 1


def test_imap_list_nesting_n_and_n_plus_1(server) -> None:
    with imap_login(server) as sock:
        nested = b"(" * MAX_NESTING_DEPTH + b"ALL" + b")" * MAX_NESTING_DEPTH
        sock.sendall(b"b SELECT INBOX\r\nc SEARCH " + nested + b"\r\n")
        assert b"c OK" in read_until(sock, b"c OK", b"c BAD", b"c NO")
        deeper = b"(" + nested + b")"
        sock.sendall(b"d SEARCH " + deeper + b"\r\n")
        assert b"d BAD" in read_until(sock, b"d OK", b"d BAD", b"d NO")
        # Far deeper (100,000 levels) is refused as cheaply, and the session goes on.
        started = time.monotonic()
        sock.sendall(b"e SEARCH " + b"(" * 30000 + b"ALL" + b")" * 30000 + b"\r\nf NOOP\r\n")
        assert b"f OK" in read_until(sock, b"f OK")
        assert time.monotonic() - started < 2


def mime_bomb(depth: int) -> bytes:
    """``depth`` multiparts nested one in the other, a text part at the bottom."""
    head, tail = [], []
    for i in range(depth):
        head.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
        tail.append(b"\r\n--b%d--\r\n" % i)
    inner = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    return b"Subject: bomb\r\n" + b"".join(head) + inner + b"".join(reversed(tail))


def wide_bomb(parts: int) -> bytes:
    one = b"--w\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (
        b'Subject: wide\r\nContent-Type: multipart/mixed; boundary="w"\r\n\r\n'
        + one * parts
        + b"--w--\r\n"
    )


@pytest.mark.parametrize(
    ("message", "bound"),
    [(mime_bomb(10_000), 20_000), (wide_bomb(50_000), 2_000_000)],
    ids=["10000-nested", "50000-siblings"],
)
def test_mime_bomb_gets_a_bounded_bodystructure_quickly(server, message, bound) -> None:
    client = imaplib.IMAP4(*server.address("imap"), timeout=30)
    try:
        client.login("alice", "alice-pw")
        assert client.append("INBOX", None, None, message)[0] == "OK"
        client.select("INBOX")
        started = time.monotonic()
        typ, data = client.fetch("1", "(BODYSTRUCTURE)")
        elapsed = time.monotonic() - started
        assert typ == "OK"
        response = b"".join(d if isinstance(d, bytes) else b"".join(d) for d in data)
        assert len(response) < bound
        depth = max_depth(response)
        assert depth <= 110  # refmail.imap.message.MAX_MIME_DEPTH (100) plus the wrapping
        assert elapsed < 5, elapsed
        typ, _ = client.noop()
        assert typ == "OK"
    finally:
        client.logout()


def max_depth(data: bytes) -> int:
    depth = deepest = 0
    for byte in data:
        if byte == 0x28:
            depth += 1
            deepest = max(deepest, depth)
        elif byte == 0x29:
            depth -= 1
    return deepest
