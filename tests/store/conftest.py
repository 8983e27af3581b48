"""Fixtures of the store tests: a MailStore over a temporary ``mail/`` with user alice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from refmail.store import MailStore


@pytest.fixture
def mail_root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def store(mail_root: Path) -> Iterator[MailStore]:
    store = MailStore(mail_root, lock_timeout=5.0)
    store.ensure_user("alice")
    yield store
    store.close()


def sample_message(n: int, body: bytes = b"") -> bytes:
    """A small distinct message with CRLF line endings, as SMTP DATA delivers it."""
    return (
        b"From: sender%d@example.org\r\nTo: alice@example.test\r\nSubject: message %d\r\n"
        b"Message-ID: <%d@example.org>\r\n\r\nbody of message %d\r\n" % (n, n, n, n)
    ) + body


@pytest.fixture
def make_message():
    """``make_message(n, body=b"")``: a distinct CRLF message."""
    return sample_message
