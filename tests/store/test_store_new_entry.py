"""``new_entry`` (the append hot path) agrees with ``build_entry`` + ``parse_entry``.

Mailbox.append takes an entry's header length and served size from ``new_entry`` instead of
parsing the entry it just built; the index then holds those figures, and a rescan of the file
(``parse_entry``) must find the same ones, or RFC822.SIZE / LIST sizes would change after an
index rebuild.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refmail.store import MailStore
from refmail.store.mboxfmt import build_entry, new_entry, parse_entry

DATE = datetime(2026, 1, 5, 7, 8, 9, tzinfo=UTC)
ARGS = {"sender": "a@b.c", "date": DATE, "uid": 7, "flags": (), "old": False, "base": None}

#: Lines that exercise the cuts: quoting, internal fields, folding, blank lines, bare CR/LF.
LINES = st.sampled_from(
    [
        b"Subject: hi",
        b"X-UID: 9",
        b"Status: RO",
        b"X-Keywords: a",
        b"\tfolded",
        b" folded",
        b"",
        b"From me",
        b">From me",
        b">>From x",
        b"body text",
        b".",
        b"no-colon-line",
        b"\r",
    ]
)
ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(LINES, ENDINGS), max_size=12))
    text = b"".join(line + end for line, end in lines)
    if draw(st.booleans()) and text:
        text = text[: draw(st.integers(0, len(text)))]  # cut anywhere: no final line end
    return text


def check(message: bytes, **kw: object) -> None:
    args = {**ARGS, **kw}
    entry, header_length, size = new_entry(message, **args)  # type: ignore[arg-type]
    assert entry == build_entry(message, **args)  # type: ignore[arg-type]
    parsed = parse_entry(entry)
    assert (header_length, size) == (parsed.header_length, parsed.size)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"Subject: x\r\n\r\nbody\r\n",
        b"Subject: x\r\n\r\n",
        b"Subject: header only, no line end",
        b"\r\nbody without headers\r\n",
        b"From: a\r\n\r\nFrom the start\r\n>From quoted\r\n",
        b"X-UID: 5\r\nStatus: RO\r\nSubject: s\r\n\r\nb\r\n",
        b"Subject: a\n\nLF only\n",
        b"Subject: a\r\n\r\nno final line end",
        b">From at the very start\r\n\r\nx\r\n",
    ],
)
def test_new_entry_matches_build_and_parse(message: bytes) -> None:
    check(message)
    check(message, flags=("\\Seen", "work"), old=True, base=(3, 8))


@settings(max_examples=300, deadline=None)
@given(messages())
def test_new_entry_matches_on_any_message(message: bytes) -> None:
    check(message)


def test_sizes_survive_an_index_rebuild(tmp_path: Path) -> None:
    """The sizes an append records are the served sizes, before and after a rescan."""
    bodies = [b"Subject: a\r\n\r\nFrom x\r\n>From y\r\n", b"no headers", b"Subject: b\n\nLF\n"]
    store = MailStore(tmp_path)
    store.ensure_user("u")
    for body in bodies:
        store.deliver("u", body)
    box = store.mailbox("u", "INBOX")
    appended = [(info.uid, info.size) for info in box.messages()]
    assert [size for _, size in appended] == [len(box.read(uid)) for uid, _ in appended]
    store.close()
    indexes = list(tmp_path.glob("u/.index*"))
    assert indexes, "no index to remove"
    for index in indexes:
        for path in sorted(index.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        index.rmdir()
    rescanned = MailStore(tmp_path).mailbox("u", "INBOX")
    assert [(info.uid, info.size) for info in rescanned.messages()] == appended
