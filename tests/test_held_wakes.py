"""Wake-ups a connection's input causes are sent after its reply (``refmail.server.HeldWakes``).

An APPEND or an SMTP delivery wakes every session idling on the mailbox; the client that made
the change gets its reply first, and the woken sessions still hear of it at once after.
"""

from __future__ import annotations

import select
import smtplib
import socket
import threading

import pytest

from refmail.server import HeldWakes

pytestmark = pytest.mark.timeout(60)


class Woken:
    """A stand-in for a ConnectionHandler: records when ``wake_now`` is called."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def wake_now(self) -> None:
        self.log.append(self.name)


def test_wakes_are_held_in_the_holding_thread_only_and_sent_once_each_at_the_end() -> None:
    wakes, log = HeldWakes(), []
    a, b = Woken(log, "a"), Woken(log, "b")
    with wakes.holding():
        wakes.wake(a)
        wakes.wake(b)
        wakes.wake(a)
        other = threading.Thread(target=wakes.wake, args=(b,))
        other.start()
        other.join()
        assert log == ["b"]  # another thread's wake-up is not held
        log.append("reply")
    assert log == ["b", "reply", "a", "b"]
    wakes.wake(a)  # outside holding(): at once
    assert log[-1] == "a"


def test_held_wakes_are_sent_when_the_block_fails() -> None:
    wakes, log = HeldWakes(), []
    with pytest.raises(OSError), wakes.holding():
        wakes.wake(Woken(log, "a"))
        raise OSError("client gone")
    assert log == ["a"]


class Line:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buffer = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def readable(self) -> bool:
        return bool(self.buffer) or bool(select.select([self.sock], [], [], 0)[0])

    def command(self, tag: str, text: str) -> list[bytes]:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = [self.line()]
        while not lines[-1].startswith(tag.encode() + b" "):
            lines.append(self.line())
        return lines


def idle(server, count: int) -> list[Line]:
    idlers = []
    for _ in range(count):
        client = Line(server.address("imap"))
        client.line()
        assert client.command("a", "LOGIN alice alice-pw")[-1].startswith(b"a OK")
        client.command("b", "SELECT INBOX")
        client.sock.sendall(b"c IDLE\r\n")
        assert client.line().startswith(b"+ ")
        idlers.append(client)
    return idlers


def test_the_appending_client_has_its_reply_before_idle_sessions_hear_of_the_append(
    server,
) -> None:
    idlers = idle(server, 5)
    appender = Line(server.address("imap"))
    appender.line()
    appender.command("a", "LOGIN alice alice-pw")
    message = b"Subject: held\r\n\r\nbody\r\n"
    for round_ in range(5):
        appender.sock.sendall(b"d%d APPEND INBOX {%d+}\r\n%s\r\n" % (round_, len(message), message))
        for client in idlers:
            assert client.line() == b"* %d EXISTS" % (round_ + 1)
            # the reply was written before any wake-up was sent, so it is here already
            assert appender.readable()
            assert client.line().endswith(b" RECENT")
        assert appender.line().startswith(b"d%d OK" % round_)


def test_an_smtp_delivery_held_by_the_smtp_thread_still_wakes_idle_sessions(server) -> None:
    (idler,) = idle(server, 1)
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.sendmail("bob@example.org", ["alice@example.test"], b"Subject: x\r\n\r\nhi\r\n")
    assert idler.line() == b"* 1 EXISTS"
