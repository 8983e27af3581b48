"""POP3 session harness: a real MailStore in a directory, a real UserDB, no network.

``Harness.client()`` makes a session as server.py would and wraps it so a test can send bytes;
``Client.converse`` runs a whole transcript fed in one of four ways (whole, line by line, one
byte at a time, and in chunks that carry the start of the next command) and checks the replies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from refmail.auth import Authenticator, UserDB
from refmail.config import Config, Limits
from refmail.connection import ConnectionInfo
from refmail.pop3.session import POP3Service, POP3Session
from refmail.store import MailStore

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
FEED_MODES = ("whole", "lines", "bytes", "trailing")


def make_message(size: int, subject: str = "test", body_line: bytes = b"x") -> bytes:
    """A CRLF message of exactly ``size`` octets (filled with body lines)."""
    head = f"From: mrose@example.test\r\nSubject: {subject}\r\n\r\n".encode()
    left = size - len(head)
    assert left >= 2
    line = body_line + b"\r\n"
    body = line * ((left - 2) // len(line))
    body += b"y" * (left - len(body) - 2) + b"\r\n"
    message = head + body
    assert len(message) == size
    return message


def chunks(data: bytes, mode: str) -> Iterator[bytes]:
    """``data`` split for feeding: whole, per line, per byte, or lines plus 3 trailing bytes."""
    if mode == "whole":
        yield data
    elif mode == "bytes":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        lines = data.splitlines(keepends=True)
        if mode == "lines":
            yield from lines
            return
        assert mode == "trailing"
        pos = 0
        for line in lines:
            end = min(len(data), pos + len(line) + 3)
            if end > pos:
                yield data[pos:end]
                pos = end
        if pos < len(data):
            yield data[pos:]


class Client:
    """A session plus a feed mode: ``send`` returns everything the session answered."""

    def __init__(self, session: POP3Session, greeting: bytes, mode: str) -> None:
        self.session = session
        self.greeting = greeting
        self.mode = mode

    def send(self, data: bytes) -> bytes:
        return b"".join(self.session.receive_data(c) for c in chunks(data, self.mode))

    def converse(self, script: list[tuple[bytes, bytes]]) -> None:
        """Feed every client line of ``script`` (all at once, in the client's mode) and check
        the concatenated replies against the script's."""
        client = b"".join(c for c, _ in script)
        expected = b"".join(s for _, s in script)
        assert self.send(client).decode("latin-1") == expected.decode("latin-1")

    def login(self, user: str = "alice") -> bytes:
        reply = self.send(f"USER {user}\r\nPASS {USERS[user]}\r\n".encode())
        assert reply.startswith(b"+OK send PASS\r\n+OK "), reply
        return reply


class Harness:
    def __init__(self, root: Path, mode: str = "whole", **config: object) -> None:
        self.root = root
        self.mode = mode
        limits = dataclasses.replace(Limits(), **config.pop("limits", {}))  # type: ignore[arg-type]
        self.config = Config(data_dir=root, hostname="pop.example.test", limits=limits, **config)
        self.users = UserDB(self.config.users_file)
        for name, password in USERS.items():
            self.users.add(name, password)
        self.auth = Authenticator(self.users, failure_delay=0)
        self.store = MailStore(self.config.mail_dir)
        self.service = self.make_service(tls_available=True)

    def make_service(self, tls_available: bool) -> POP3Service:
        return POP3Service(
            self.config, auth=self.auth, store=self.store, tls_available=tls_available
        )

    def restart(self) -> None:
        """A new store and service over the same directory, as after a server restart."""
        self.store.close()
        self.store = MailStore(self.config.mail_dir)
        self.service = self.make_service(tls_available=True)

    def deliver(self, message: bytes, user: str = "alice") -> int:
        self.store.ensure_user(user)
        return self.store.deliver(user, message, mailbox="INBOX")

    def client(
        self,
        peer_ip: str = "127.0.0.1",
        tls: bool = False,
        service: POP3Service | None = None,
        mode: str | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> Client:
        conn = ConnectionInfo(
            peer_ip=peer_ip,
            peer_port=40000,
            local_ip="127.0.0.1",
            local_port=110,
            service="pop3s" if tls else "pop3",
            tls=tls,
        )
        session = (service or self.service).new_session(conn, wake)
        return Client(session, session.start(), mode or self.mode)

    def inbox_uids(self, user: str = "alice") -> list[int]:
        """The INBOX as a fresh store (a restarted server) sees it."""
        store = MailStore(self.config.mail_dir)
        try:
            return [m.uid for m in store.mailbox(user, "INBOX").messages()]
        finally:
            store.close()
