"""Exceptions that carry their protocol reply.

An error is raised where the fault is found and turned into a reply in one place per
protocol (the session's dispatcher).  Any other exception becomes 451 / ``-ERR`` / ``BAD``
plus a logged traceback: internals never reach the wire (DESIGN.md, "Layers").
"""

from __future__ import annotations


class RefmailError(Exception):
    """Base class of every error refmail raises on purpose."""


class ProtocolError(RefmailError):
    """A fault in what a client sent; the subclass knows how to phrase the reply."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class SMTPError(ProtocolError):
    """An SMTP reply: ``SMTPError(550, "5.1.1", "no such user")``.

    ``code`` is the RFC 5321 section 4.2 reply code, ``status`` the RFC 3463 enhanced status
    code (sent when ENHANCEDSTATUSCODES applies, i.e. always after EHLO), ``text`` the reply text.
    """

    def __init__(self, code: int, status: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.status = status


class POP3Error(ProtocolError):
    """A ``-ERR`` reply, with an optional RFC 2449 response code such as ``"IN-USE"``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


class IMAPError(ProtocolError):
    """A tagged ``NO`` or ``BAD`` reply, with an optional response code (``"TRYCREATE"``)."""

    def __init__(self, kind: str, text: str, code: str | None = None) -> None:
        if kind not in ("NO", "BAD"):
            raise ValueError(f"IMAP error kind must be NO or BAD, not {kind!r}")
        super().__init__(text)
        self.kind = kind
        self.code = code


class StorageError(RefmailError):
    """Something in the mail store failed; sessions map it to a temporary failure."""


class NoSuchMailbox(StorageError):
    """The named mailbox does not exist."""


class MailboxExists(StorageError):
    """CREATE or RENAME onto a mailbox that already exists."""


class InvalidMailboxName(StorageError):
    """A mailbox name a client may not use: ``..``, absolute, control characters."""


class LockTimeout(StorageError):
    """A mailbox lock could not be taken in time (another program holds it)."""


class InsufficientStorage(StorageError):
    """The disk is full (ENOSPC/EDQUOT): a temporary condition, reported as 452/4xx."""


class AuthError(RefmailError):
    """A user-database problem, e.g. adding a user that exists."""
