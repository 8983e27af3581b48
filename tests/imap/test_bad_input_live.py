"""The IMAP issue's bad-input list, each sent over a real connection to the live server: the
client gets a clear tagged BAD/NO (RFC 3501 7.1), never a traceback, and the server goes on
serving (the same connection where the input allows it, and always a new one)."""

from __future__ import annotations

import socket
import time

import pytest

from refmail.imap.protocol import MAX_NESTING_DEPTH

pytestmark = pytest.mark.timeout(60)

#: Small limits, so "too long" and "too big" are cheap to send.
COMMAND_LINE_LIMIT = 8192
LITERAL_LIMIT = 4096


class Wire:
    """A raw IMAP connection: send bytes, read CRLF lines."""

    def __init__(self, server, *, login: bool = True) -> None:
        self.sock = socket.create_connection(server.address("imap"), timeout=10)
        self.buffer = b""
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting
        if login:
            assert self.command(b"L LOGIN alice alice-pw")[-1].startswith(b"L OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; unread: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def command(self, data: bytes) -> list[bytes]:
        """Send one command line; every response line through its tagged one."""
        tag = data.split(b" ", 1)[0]
        self.send(data + b"\r\n")
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines

    def closed(self) -> bool:
        """The server closed the connection (after whatever it still had to say)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(make_server):
    return make_server(
        limits={"imap_command_line": COMMAND_LINE_LIMIT, "imap_literal_size": LITERAL_LIMIT}
    )


@pytest.fixture
def wire(server):
    connection = Wire(server)
    yield connection
    connection.close()


def still_serving(server) -> None:
    """A new session logs in and works: the bad input hurt nobody else."""
    other = Wire(server)
    assert other.command(b"N NOOP")[-1] == b"N OK NOOP completed"
    other.close()


def test_unknown_command(wire: Wire, server) -> None:
    assert wire.command(b"a1 FROBNICATE 1 2") == [b"a1 BAD unknown command FROBNICATE"]
    assert wire.command(b"a2 UID FROBNICATE 1")[-1].startswith(b"a2 BAD unknown command")
    assert wire.command(b"a3 UID CREATE x")[-1].startswith(b"a3 BAD")
    assert wire.command(b"a4 NOOP")[-1] == b"a4 OK NOOP completed"


def test_command_in_the_wrong_state(server) -> None:
    fresh = Wire(server, login=False)
    assert fresh.command(b"a1 SELECT INBOX") == [
        b"a1 BAD SELECT not valid in the not authenticated state"
    ]
    assert fresh.command(b"a2 LOGIN alice alice-pw")[-1].startswith(b"a2 OK")
    assert fresh.command(b"a3 FETCH 1 FLAGS") == [
        b"a3 BAD FETCH not valid in the authenticated state"
    ]
    assert fresh.command(b"a4 LOGIN alice alice-pw")[-1].startswith(b"a4 BAD")
    fresh.command(b"a5 SELECT INBOX")
    assert fresh.command(b"a6 ENABLE UTF8=ACCEPT")[-1].startswith(b"a6 BAD")
    fresh.close()


@pytest.mark.parametrize(
    "line",
    [
        b'a1 LIST ("" *',  # unclosed list
        b"a1 SEARCH ALL)",  # closing what was never opened
        b'a1 LIST "" "INBOX',  # unterminated quoted string
        b'a1 LOGIN "alice alice-pw',
        b'a1 LIST "" "in\\box"',  # a backslash may only quote " or \ (RFC 3501 9)
        b"a1 STORE 1 FLAGS ((\\Seen)",
    ],
)
def test_broken_parentheses_and_quotes(wire: Wire, server, line: bytes) -> None:
    reply = wire.command(line)
    assert reply[-1].startswith(b"a1 BAD"), reply
    assert wire.command(b"a2 NOOP")[-1] == b"a2 OK NOOP completed"


def test_literal_larger_than_the_limit_gets_no_continuation(wire: Wire, server) -> None:
    """RFC 3501 7.5 / RFC 7888 4: a synchronizing literal past the limit is refused before
    a byte of it is sent: no ``+``, a tagged NO [TOOBIG], and the connection stays usable."""
    wire.send(b"a1 APPEND INBOX {%d}\r\n" % (LITERAL_LIMIT + 1))
    reply = wire.line()
    assert not reply.startswith(b"+"), reply
    assert reply.startswith(b"a1 NO [TOOBIG]"), reply
    assert wire.command(b"a2 NOOP")[-1] == b"a2 OK NOOP completed"
    # at the limit it is accepted
    wire.send(b"a3 APPEND INBOX {%d}\r\n" % LITERAL_LIMIT)
    assert wire.line().startswith(b"+")
    wire.send(b"Subject: x\r\n\r\n" + b"y" * (LITERAL_LIMIT - 14) + b"\r\n")
    assert wire.line().startswith(b"a3 OK [APPENDUID")


def test_non_synchronizing_literal_larger_than_the_limit_closes(wire: Wire, server) -> None:
    """RFC 7888 4: the client sends a ``{n+}`` literal without waiting, so the server can
    only refuse it and close: BAD/NO, then BYE."""
    wire.send(b"a1 APPEND INBOX {%d+}\r\n" % (LITERAL_LIMIT * 4))
    lines = [wire.line(), wire.line()]
    assert lines[0].startswith(b"a1 ") and b"[TOOBIG]" in lines[0], lines
    assert lines[1].startswith(b"* BYE"), lines
    assert wire.closed()
    still_serving(server)


def test_sequence_numbers_past_the_end(wire: Wire, server) -> None:
    wire.command(b"d1 APPEND INBOX {14+}\r\nSubject: a\r\n\r\n")
    assert wire.command(b"s SELECT INBOX")[-1].startswith(b"s OK")
    assert wire.command(b"a1 FETCH 2 FLAGS") == [b"a1 BAD invalid message sequence number"]
    assert wire.command(b"a2 FETCH 1:5 FLAGS") == [b"a2 BAD invalid message sequence number"]
    assert wire.command(b"a3 STORE 9 +FLAGS (\\Seen)")[-1].startswith(b"a3 BAD")
    assert wire.command(b"a4 COPY 4294967295 INBOX")[-1].startswith(b"a4 BAD")
    assert wire.command(b"a5 FETCH 4294967296 FLAGS")[-1].startswith(b"a5 BAD")
    # UIDs past the end name no message, which is no error (RFC 3501 6.4.8)
    assert wire.command(b"a6 UID FETCH 7:9 FLAGS") == [b"a6 OK FETCH completed"]


def test_star_on_an_empty_mailbox(wire: Wire, server) -> None:
    wire.command(b"c CREATE Empty")
    assert wire.command(b"s SELECT Empty")[-1].startswith(b"s OK")
    assert wire.command(b"a1 FETCH * FLAGS") == [b"a1 BAD no messages in the mailbox"]
    assert wire.command(b"a2 FETCH 1:* FLAGS") == [b"a2 BAD no messages in the mailbox"]
    assert wire.command(b"a3 UID FETCH 1:* FLAGS") == [b"a3 OK FETCH completed"]
    assert wire.command(b"a4 SEARCH 1:*") == [b"* SEARCH", b"a4 OK SEARCH completed"]
    assert wire.command(b"a5 UID STORE * +FLAGS (\\Seen)") == [b"a5 OK STORE completed"]


@pytest.mark.parametrize(
    "line",
    [
        b'a1 LIST "" caf\xc3\xa9',  # UTF-8 in an atom
        b"a1 CREATE \xff\xfe",
        b"a1 FETCH 1 (FLAGS \xe9)",
        b"a1 SEL\xc9CT INBOX",  # even in the command name
    ],
)
def test_8bit_in_atoms(wire: Wire, server, line: bytes) -> None:
    """RFC 3501 9: ATOM-CHAR is 7-bit; 8-bit is BAD (mailbox names: RFC 3501 5.1.3)."""
    reply = wire.command(line)
    assert reply[-1].startswith(b"a1 BAD"), reply
    assert all(line.isascii() for line in reply)  # nothing echoed raw
    assert wire.command(b"a2 NOOP")[-1] == b"a2 OK NOOP completed"


def test_very_deep_nesting(wire: Wire, server) -> None:
    deep = b"(" * (MAX_NESTING_DEPTH + 1) + b")" * (MAX_NESTING_DEPTH + 1)
    assert wire.command(b"a1 SEARCH " + deep) == [b"a1 BAD lists nested too deeply"]
    deepest = b"(" * 4000 + b")" * 4000  # within the line limit: no recursion error
    assert wire.command(b"a2 SEARCH " + deepest) == [b"a2 BAD lists nested too deeply"]
    ok = b"(" * MAX_NESTING_DEPTH + b"ALL" + b")" * MAX_NESTING_DEPTH
    wire.command(b"s SELECT INBOX")
    assert wire.command(b"a3 SEARCH " + ok)[-1] == b"a3 OK SEARCH completed"


def test_a_100_kb_command(wire: Wire, server) -> None:
    """A line past the command-line limit is answered BAD [TOOBIG] once it ends, its bytes
    are dropped as they come (never buffered whole), and the session goes on."""
    long_line = b"a1 SEARCH " + b"ALL " * 25_000  # 100 KB
    assert len(long_line) > 100_000 > COMMAND_LINE_LIMIT
    reply = wire.command(long_line)
    assert reply == [b"a1 BAD [TOOBIG] command line too long"], reply
    assert wire.command(b"a2 NOOP")[-1] == b"a2 OK NOOP completed"
    wire.command(b"s SELECT INBOX")
    fits = b"a3 SEARCH " + b"ALL " * ((COMMAND_LINE_LIMIT - 20) // 4)
    assert len(fits) + 2 <= COMMAND_LINE_LIMIT
    assert wire.command(fits.rstrip())[-1] == b"a3 OK SEARCH completed"


def test_client_gone_in_the_middle_of_a_literal(server) -> None:
    """The connection drops after half an APPEND literal: nothing is appended, no lock is
    left behind, and the mailbox works for the next session."""
    wire = Wire(server)
    wire.send(b"a1 APPEND INBOX {1000}\r\n")
    assert wire.line().startswith(b"+")
    wire.send(b"Subject: half\r\n\r\n" + b"z" * 400)
    wire.sock.shutdown(socket.SHUT_RDWR)
    wire.close()
    time.sleep(0.2)
    box = server.store.mailbox("alice", "INBOX")
    with box.locked(timeout=5):  # the lock is free
        pass
    assert box.messages() == []
    other = Wire(server)
    other.command(b"a2 APPEND INBOX {14+}\r\nSubject: b\r\n\r\n")
    assert b"* 1 EXISTS" in other.command(b"s SELECT INBOX")
    other.close()
