"""Local delivery: which local user an address names, and one copy per user into INBOX.

A delivered message gets ``Return-Path:`` and ``Received:`` trace fields prepended
(RFC 5321 4.4); the store fsyncs each copy before ``deliver`` returns, so the SMTP session
replies 250 only for mail that is on disk (DESIGN.md, "Durability").
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from refmail import parse
from refmail.auth import UserDB
from refmail.config import Config
from refmail.errors import NoSuchMailbox

if TYPE_CHECKING:  # the store is passed in; only its interface is used here
    from refmail.store import MailStore

log = logging.getLogger(__name__)

#: RFC 5321 4.5.1: every SMTP server must accept mail for "postmaster" (any local domain).
POSTMASTER = "postmaster"
#: Characters of an old relaying trick inside a local part (``u%foreign@here``, ``u!host``,
#: ``u@foreign@here``): never resolved locally, so they are relay attempts (RFC 5321 3.6.1).
RELAY_HACK = re.compile(r"[%!@]")
#: What may appear of a client-chosen name in a trace field: no CR, LF, parentheses or spaces.
TRACE_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
#: A trace field's client name is cut here; RFC 5321 4.5.3.1.2 caps a domain at 255 octets.
MAX_TRACE_NAME = 255
#: Dropped from incoming mail: ``Return-Path`` only final delivery may add (RFC 5321 4.4);
#: the mbox bookkeeping fields, so a sender cannot choose a UID or a flag (DESIGN.md, "On disk").
DROPPED_HEADERS = (
    b"return-path",
    b"x-uid",
    b"x-imapbase",
    b"x-imap",
    b"status",
    b"x-status",
    b"x-keywords",
)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc5322_date(when: float | None = None) -> str:
    """RFC 5322 3.3 ``date-time`` in local time with its numeric zone, English names whatever
    the locale: ``Fri, 27 Nov 2026 06:36:03 +0100`` (what ``email.utils.format_datetime``
    of ``localtime()`` gives, at a fifth of its cost: it runs for every message)."""
    t = time.localtime(when)
    offset = (t.tm_gmtoff or 0) // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


def new_message_id() -> str:
    """A short unique id for the ``Received: ... id`` clause and the logs."""
    return f"{time.time_ns() // 1_000_000:x}{secrets.token_hex(3)}".upper()


def trace_name(text: str) -> str:
    """``text`` made safe for a trace field: client text never brings its own CR/LF."""
    cleaned = TRACE_UNSAFE.sub("?", text)[:MAX_TRACE_NAME]
    return cleaned or "unknown"


def received_header(
    *,
    helo: str,
    peer_ip: str | None,
    hostname: str,
    protocol: str,
    message_id: str,
    recipient: str | None,
    when: float | None = None,
) -> bytes:
    """The ``Received:`` field (RFC 5321 4.4 Time-stamp-line; ``with`` values RFC 3848).

    ``Received: from HELO ([ip]) by hostname (refmail) with ESMTPSA id ID for <rcpt>; date``.
    The ``for`` clause is given only for a single recipient so it never lists the others.
    ``peer_ip=None`` hides the client: no ``from`` clause at all, neither its HELO name nor
    its address (RFC 5321 7.6; RFC 5322 3.6.7 received-tokens allow it, as Gmail's
    ``Received: by ... with SMTP id ...`` does).
    """
    stamp = rfc5322_date(when)
    by = f"by {trace_name(hostname)} (refmail) with {protocol} id {message_id}"
    if peer_ip is None:
        parts = [f"Received: {by}"]
    else:
        literal = f"[IPv6:{peer_ip}]" if ":" in peer_ip else f"[{peer_ip}]"
        parts = [f"Received: from {trace_name(helo)} ({trace_name(literal)})", f"\t{by}"]
    if recipient is not None and "\r" not in recipient and "\n" not in recipient:
        parts[-1] += f"\r\n\tfor <{recipient}>"
    parts[-1] += f"; {stamp}"
    return ("\r\n".join(parts) + "\r\n").encode("utf-8")


def strip_headers(message: bytes, names: Iterable[bytes] = DROPPED_HEADERS) -> bytes:
    """Drop the header fields ``names`` (lower-case) with their continuation lines."""
    end = parse.header_end(message)
    head = message[:end]
    wanted = tuple(names)
    lower = head.lower()
    if not any(n in lower for n in wanted):
        return message  # the common case: no copy of the body (a 1 MiB copy is not free)
    # Lines end at LF, as the store reads them (mboxfmt.split_internal uses the same core
    # function), so a bare CR inside a field never hides a field from one and not the other.
    kept, _ = parse.split_header_fields(head, wanted)
    return kept + message[end:]


class LocalDelivery:
    """Resolves addresses to local users and delivers into their INBOX."""

    def __init__(self, store: MailStore, users: UserDB, config: Config) -> None:
        self.store = store
        self.users = users
        self.config = config

    def is_local_domain(self, domain: str) -> bool:
        """True for one of ``config.local_domains``, which include the server's own hostname
        (case-insensitive, trailing dot ignored).

        Address literals (``[192.0.2.1]``) are never local here: mail to them is relayed
        or refused, so they cannot be used to slip past the relay rules.
        """
        return domain.lower().rstrip(".") in self.config.local_domains

    def postmaster(self) -> str | None:
        """The user receiving postmaster mail: ``config.postmaster`` or the first user."""
        if self.config.postmaster:
            return self.config.postmaster.lower()
        names = self.users.names()
        return names[0] if names else None

    def is_local_address(self, address: str) -> bool:
        """True when ``address`` is for this server: bare ``postmaster``, or a local domain
        with a plain local part.  A local part holding ``%``, ``!`` or ``@`` is a relaying
        trick and counts as foreign, so it meets the relay rules (RFC 5321 3.6.1, 3.6.2)."""
        local, at, domain = address.rpartition("@")
        if not at:
            return address.lower() == POSTMASTER
        if local.startswith('"'):
            local = local.strip('"')
        return self.is_local_domain(domain) and bool(local) and not RELAY_HACK.search(local)

    def resolve(self, address: str) -> str | None:
        """The local user ``address`` names, or None (foreign or unknown).

        ``local@domain`` resolves when the domain is local and the local part, compared
        case-insensitively, is a user; ``postmaster`` with or without a local domain goes to
        ``postmaster()`` (RFC 5321 4.5.1).  Use ``is_local_domain`` to tell "unknown user"
        from "foreign".
        """
        local, at, domain = address.rpartition("@")
        if not at:  # RFC 5321 4.1.1.3: "<Postmaster>" with no domain
            return self.postmaster() if address.lower() == POSTMASTER else None
        if not self.is_local_domain(domain):
            return None
        if len(local) >= 2 and local[0] == local[-1] == '"':  # Quoted-string local part
            local = re.sub(r"\\(.)", r"\1", local[1:-1])
        if not local or RELAY_HACK.search(local):
            return None
        name = local.lower()
        if name == POSTMASTER:
            return self.postmaster()
        return name if self.users.exists(name) else None

    def deliver(
        self,
        message: bytes,
        users: Iterable[str],
        *,
        return_path: str,
        received: bytes,
    ) -> list[tuple[str, int]]:
        """Store one copy per distinct user in INBOX, trace fields prepended (RFC 5321 4.4).

        Returns ``(user, uid)`` pairs.  Raises the store's ``StorageError`` (or
        ``InsufficientStorage``) at the first copy that fails; copies made before it stay.
        Each copy is logged at DEBUG only: the callers log the outcome at INFO in their own
        line (the SMTP session one per message, with these pairs; the queue one per entry),
        and a log record costs as much as a dozen system calls on every delivery.
        """
        body = strip_headers(message)
        head = f"Return-Path: <{return_path}>\r\n".encode() + received
        sender = return_path or "MAILER-DAEMON"
        done: list[tuple[str, int]] = []
        for user in dict.fromkeys(users):  # two addresses of one user: one copy
            try:
                uid = self.store.deliver(user, head + body, mailbox="INBOX", sender=sender)
            except NoSuchMailbox:  # a first delivery: make mail/USER/ and INBOX, once
                self.store.ensure_user(user)
                uid = self.store.deliver(user, head + body, mailbox="INBOX", sender=sender)
            log.debug("delivered to %s uid %s (%d octets)", user, uid, len(body))
            done.append((user, uid))
        return done
