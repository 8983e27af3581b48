"""Helpers for SMTP transcript tests: a real MailStore, UserDB and Spool on disk; no sockets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from refmail.auth import Authenticator, UserDB
from refmail.config import Config
from refmail.connection import ConnectionInfo
from refmail.delivery import LocalDelivery
from refmail.mta.spool import Spool
from refmail.smtp.session import SMTPService, SMTPSession
from refmail.store import MailStore

HOSTNAME = "mx.foo.com"
#: RFC 5321 Appendix D's server is foo.com; example.test is a second local domain.
DOMAINS = ("foo.com", "example.test")
USERS = {"alice": "alice-pw", "jones": "jones-pw", "brown": "brown-pw", "admin.mrc": "mrc-pw"}
HOW = ["whole", "bytewise", "trailing"]
#: After QUIT nothing more is read, so these trailing bytes must change no reply.
TRAILING = b"NOOP\r\nMAIL FROM:<late@bar.com>\r\nNOO"


class World:
    """Everything a session needs, real and on disk, plus helpers to drive and inspect it."""

    def __init__(self, root: Path, delivery_class: type[LocalDelivery] = LocalDelivery, **cfg):
        limits = cfg.pop("limits", {})
        config = Config(data_dir=root, hostname=HOSTNAME, domains=DOMAINS, **cfg)
        self.config = dataclasses.replace(
            config, limits=dataclasses.replace(config.limits, **limits)
        )
        self.users = UserDB(self.config.users_file)
        for name, password in USERS.items():
            self.users.add(name, password)
        self.store = MailStore(self.config.mail_dir)
        self.delivery = delivery_class(self.store, self.users, self.config)
        self.spool = Spool(self.config.queue_dir)
        self.auth = Authenticator(self.users, failure_delay=0.0)
        self.service = SMTPService(
            self.config,
            auth=self.auth,
            delivery=self.delivery,
            spool=self.spool,
            tls_available=True,
        )

    def session(
        self, service: str = "smtp", peer: str = "127.0.0.1", tls: bool = False
    ) -> SMTPSession:
        conn = ConnectionInfo(peer, 40000, "127.0.0.1", 25, service, tls)
        return self.service.new_session(conn, lambda: None)

    def inbox(self, user: str) -> list[bytes]:
        """The messages of ``user``'s INBOX as served (CRLF)."""
        self.store.ensure_user(user)
        box = self.store.mailbox(user, "INBOX")
        return [box.read(info.uid) for info in box.messages()]


def feed(session: SMTPSession, data: bytes, how: str = "whole") -> bytes:
    """The greeting plus every reply to ``data`` fed ``how``: whole, one byte at a time, or
    whole with bytes after it (which a closed session must ignore)."""
    out = [session.start()]
    if how == "bytewise":
        out += [session.receive_data(data[i : i + 1]) for i in range(len(data))]
    elif how == "trailing":
        out.append(session.receive_data(data + TRAILING))
    else:
        out.append(session.receive_data(data))
    return b"".join(out)


def replies(output: bytes) -> list[str]:
    """Each reply's last line (``"250 2.1.5 ..."``), multi-line replies folded into one."""
    return [line for line in output.decode("utf-8").split("\r\n") if line[3:4] == " "]


def codes(output: bytes) -> list[int]:
    return [int(line[:3]) for line in replies(output)]


def script(*lines: str | bytes) -> bytes:
    """Client lines joined with CRLF (bytes items are taken as they are, no CRLF added)."""
    return b"".join(x if isinstance(x, bytes) else x.encode("utf-8") + b"\r\n" for x in lines)


def normalized(output: bytes) -> bytes:
    """Replies with the per-message ids blanked, so runs can be compared."""
    return re.sub(rb"id=[0-9A-F]+", b"id=X", output)


def header_names(message: bytes) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if line[:1] not in b" \t"
    ]
