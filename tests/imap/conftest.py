"""IMAP session fixtures: a real MailStore and UserDB in tmp_path, sessions driven by bytes.

``Transcript`` runs client lines against a fresh session three ways (each line whole, one
byte at a time, and every line sent together with the first bytes of the next) and checks
that the server's replies are identical, as the h11 reader tests do.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from refmail.auth import Authenticator, UserDB
from refmail.config import Config, Limits
from refmail.connection import ConnectionInfo
from refmail.imap.session import IMAPService, IMAPSession
from refmail.store import MailStore

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
LOOPBACK = ConnectionInfo("127.0.0.1", 40000, "127.0.0.1", 143, "imap", False)
REMOTE = ConnectionInfo("192.0.2.7", 40000, "192.0.2.1", 143, "imap", False)


def message(subject: str, body: str = "Hello.\r\n", **headers: str) -> bytes:
    fields = {
        "From": "Bob Example <bob@example.org>",
        "To": "alice@example.test",
        "Subject": subject,
        "Date": "Wed, 17 Jul 1996 02:23:25 -0700",
        "Message-ID": f"<{abs(hash(subject))}@example.org>",
        **headers,
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (head + "\r\n" + body).encode()


class Env:
    """The pieces every session test needs."""

    def __init__(self, root: Path, limits: Limits, feed: str, users_file: bytes) -> None:
        self.root = root
        self.feed = feed
        (root / "users").write_bytes(users_file)
        self.users = UserDB(root / "users")
        self.store = MailStore(root / "mail")
        self.auth = Authenticator(self.users, failure_delay=0)
        self.config = dataclasses.replace(Config(data_dir=root), limits=limits)
        self.service = IMAPService(
            self.config, auth=self.auth, store=self.store, tls_available=True
        )
        self.wakes: list[int] = []

    def deliver(self, user: str, subject: str, *, mailbox: str = "INBOX", **kw: object) -> int:
        self.store.ensure_user(user)
        date = datetime.datetime(1996, 7, 17, 9, 44, 25, tzinfo=datetime.UTC)
        return self.store.deliver(
            user,
            message(subject, **kw),
            mailbox=mailbox,
            internaldate=date,  # type: ignore[arg-type]
        )

    def session(self, conn: ConnectionInfo = LOOPBACK) -> Client:
        session = self.service.new_session(conn, lambda: self.wakes.append(1))
        return Client(session, bytewise=self.feed == "bytewise")


class Client:
    """Feeds a session and collects its replies."""

    def __init__(self, session: IMAPSession, *, bytewise: bool = False) -> None:
        self.session = session
        self.bytewise = bytewise
        self.greeting = session.start()

    def send(self, data: bytes, *, bytewise: bool | None = None) -> bytes:
        if not (self.bytewise if bytewise is None else bytewise):
            return self.session.receive_data(data)
        return b"".join(self.session.receive_data(data[i : i + 1]) for i in range(len(data)))

    def cmd(self, line: str | bytes) -> list[str]:
        """One command; the reply lines (decoded leniently)."""
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        return self.send(data).decode("utf-8", "replace").split("\r\n")[:-1]

    def login(self, user: str = "alice") -> None:
        reply = self.cmd(f"L0 LOGIN {user} {USERS[user]}")
        assert reply[-1].startswith("L0 OK"), reply

    def select(self, mailbox: str = "INBOX") -> list[str]:
        reply = self.cmd(f"S0 SELECT {mailbox}")
        assert reply[-1].startswith("S0 OK"), reply
        return reply


@pytest.fixture
def feed() -> str:
    """How clients send: "whole" commands, or "bytewise" (a module may parametrize this)."""
    return "whole"


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """alice and bob, hashed once: scrypt is slow on purpose (auth.py)."""
    path = tmp_path_factory.mktemp("users") / "users"
    users = UserDB(path)
    for name, password in USERS.items():
        users.add(name, password)
    return path.read_bytes()


@pytest.fixture
def env(tmp_path: Path, feed: str, users_file: bytes) -> Env:
    return Env(tmp_path, Limits(), feed, users_file)


@pytest.fixture
def make_env(tmp_path: Path, feed: str, users_file: bytes) -> Callable[..., Env]:
    counter = iter(range(1000))

    def make(**limits: object) -> Env:
        root = tmp_path / f"env{next(counter)}"
        root.mkdir()
        limits_ = dataclasses.replace(Limits(), **limits)  # type: ignore[arg-type]
        return Env(root, limits_, feed, users_file)

    return make


_UIDVALIDITY = re.compile(rb"(UIDVALIDITY|APPENDUID|COPYUID) \d+")


def normalize(reply: bytes) -> bytes:
    """UIDVALIDITY values differ between stores; everything else must not."""
    return _UIDVALIDITY.sub(rb"\1 V", reply)


def run_three_ways(
    make_env: Callable[[], Env], setup: Callable[[Env], None], lines: list[bytes]
) -> list[bytes]:
    """Replies to ``lines`` fed whole, byte by byte, and with each line's successor's first
    bytes attached; asserts all three agree and returns the replies per line."""
    results = []
    for mode in ("whole", "bytewise", "trailing"):
        env = make_env()
        setup(env)
        client = env.session()
        replies = []
        if mode == "trailing":
            carry = b""
            for i, line in enumerate(lines):
                rest = line[len(carry) :]
                nxt = lines[i + 1][:3] if i + 1 < len(lines) else b""
                replies.append(client.send(rest + nxt))
                carry = nxt
        else:
            for line in lines:
                replies.append(client.send(line, bytewise=mode == "bytewise"))
        results.append(replies)
    whole, bytewise, trailing = ([normalize(r) for r in replies] for replies in results)
    assert bytewise == whole
    assert trailing == whole
    return whole


@pytest.fixture
def transcript(make_env: Callable[..., Env]) -> Iterator[Callable[..., list[bytes]]]:
    def run(setup: Callable[[Env], None], lines: list[bytes]) -> list[bytes]:
        return run_three_ways(make_env, setup, lines)

    yield run
