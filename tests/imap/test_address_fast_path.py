"""ENVELOPE addresses (RFC 3501 7.4.2): the fast path for the common forms gives exactly what
the general RFC 5322 3.4 parser gives, wherever it answers; and the memo of formatted address
lists returns what formatting gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refmail.imap import fetch
from refmail.imap.message import (
    Address,
    _general_address_list,
    _simple_address_list,
    parse_address_list,
)

PIECES = [
    "a",
    "Bob",
    "b.c",
    "@",
    "<",
    ">",
    ",",
    " ",
    "\t",
    "\r\n",
    ".",
    "x-y",
    "=?u?q?x?=",
    "..",
    "@@",
    "\x0b",
    "\x7f",
    "é",
    "(",
    ")",
    '"',
    ":",
    ";",
    "[",
    "]",
    "\\",
    "!",
    "_",
    "1",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_fast_path_agrees_with_the_general_parser(text: str) -> None:
    simple = _simple_address_list(text) if text.isascii() else None
    if simple is not None:
        assert simple == _general_address_list(text.encode())


@pytest.mark.parametrize(
    ("raw", "addresses"),
    [
        (b"a@b.c", [Address(None, None, "a", "b.c")]),
        (
            b" Jo  Q <j.q@x.org> ,, k@y",
            [Address("Jo Q", None, "j.q", "x.org"), Address(None, None, "k", "y")],
        ),
        (b"<a@b>", [Address(None, None, "a", "b")]),
    ],
)
def test_fast_path_forms(raw: bytes, addresses: list[Address]) -> None:
    assert _simple_address_list(raw.decode()) == addresses
    assert parse_address_list(raw) == addresses


@pytest.mark.parametrize(
    "raw",
    [
        b'"Q" <a@b>',
        b"a@b (c)",
        b"g: a@b;",
        b"<@r:a@b>",
        b"a@[1.2.3.4]",
        b"a b@c",
        b"a@b.",
        b"\xc3\xa9 <a@b>",
        b"a@b, c",
    ],
)
def test_other_forms_go_to_the_general_parser(raw: bytes) -> None:
    assert raw.isascii() is False or _simple_address_list(raw.decode()) is None
    assert parse_address_list(raw) == _general_address_list(raw)


def test_memo_gives_what_formatting_gives() -> None:
    for raw in (b"a@b.c", b"Bob <b@x>, c@y", b"x" * (fetch.MEMO_VALUE_SIZE + 1) + b"@y", None):
        first = fetch._address_list(raw)
        assert first == fetch._address_list(raw) == fetch._format_address_list(raw)
