"""MTA test helpers, used by conftest.py's fixtures and the tests: a configuration over a
temporary data directory with the real store and local delivery (``World``), reading an
INBOX from its mbox file, and a fake DNS resolver.  No DNS: every route is fixed, or the
resolver is a fake."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import mailbox
from email.message import EmailMessage
from pathlib import Path

import dns.rdata
import dns.resolver

from refmail.auth import UserDB
from refmail.config import Config, load_config
from refmail.delivery import LocalDelivery
from refmail.mta.client import SMTPClient, Timeouts
from refmail.mta.scheduler import Scheduler
from refmail.mta.spool import Spool
from refmail.store import MailStore

HOSTNAME = "mx.example.test"
DOMAINS = ("example.test", "example.org")
#: Short per-phase timeouts: every test is bounded in seconds.
FAST = Timeouts(connect=5, command=5, data_start=5, data_end=5)


def message(
    subject: str = "hello", body: str = "Hi there.\r\n", sender: str = "alice@example.test"
) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@remote.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n\r\n{body}"
    ).encode()


def inbox(data_dir: Path, user: str) -> list[EmailMessage]:
    """The user's INBOX read straight from the mbox file (the on-disk contract)."""
    path = data_dir / "mail" / user / "INBOX"
    if not path.exists():
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [
            email.message_from_bytes(m.as_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for m in box
        ]
    finally:
        box.close()


class World:
    """A data directory with users alice and bob, its store, delivery and spool."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        db = UserDB(data_dir / "users")
        for name, password in (("alice", "alice-pw"), ("bob", "bob-pw")):
            db.add(name, password)
        self.users = db
        self.store = MailStore(data_dir / "mail")
        self.schedulers: list[Scheduler] = []
        self.config = self.configure()

    def configure(self, **mta: object) -> Config:
        config = load_config(data_dir=self.data_dir, hostname=HOSTNAME, domains=DOMAINS)
        self.config = dataclasses.replace(config, mta=dataclasses.replace(config.mta, **mta))
        self.delivery = LocalDelivery(self.store, self.users, self.config)
        self.spool = Spool(self.config.queue_dir)
        return self.config

    def scheduler(self, *, start: bool = False, **kwargs: object) -> Scheduler:
        kwargs.setdefault("client", SMTPClient(helo_name=HOSTNAME, timeouts=FAST))
        scheduler = Scheduler(self.config, self.spool, self.delivery, **kwargs)  # type: ignore[arg-type]
        self.spool.on_enqueue = scheduler.wake
        self.schedulers.append(scheduler)
        if start:
            scheduler.start()
        return scheduler

    def inbox(self, user: str) -> list[EmailMessage]:
        return inbox(self.data_dir, user)

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.stop(timeout=5)
        self.store.close()


class FakeResolver:
    """Answers from a table ``{(name, rdtype): [rdata text...] | exception}``."""

    def __init__(self, table: dict[tuple[str, str], object]) -> None:
        self.table = table
        self.queries: list[tuple[str, str]] = []

    def resolve(self, qname: str, rdtype: str, **kwargs: object) -> list[object]:
        self.queries.append((qname, rdtype))
        answer = self.table.get((qname, rdtype))
        if answer is None:
            if any(name == qname for name, _ in self.table):
                raise dns.resolver.NoAnswer()
            raise dns.resolver.NXDOMAIN()
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, list)
        return [dns.rdata.from_text("IN", rdtype, text) for text in answer]
