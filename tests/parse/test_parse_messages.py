"""header_end (RFC 5322 2.1) and parse_headers (RFC 5322 2.2, 2.2.3), against the stdlib too."""

from __future__ import annotations

import email.parser
import email.policy
import re

import pytest


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"A: b\r\n\r\nbody", 8),
        (b"A: b\n\nbody", 6),
        (b"A: b\r\n\nbody", 7),
        (b"A: b\n\r\nbody", 7),
        (b"A: b\r\nC: d\r\n\r\n", 14),
        (b"\r\nbody", 2),
        (b"\nbody", 1),
        (b"\r\n\r\n", 2),
        (b"A: b\r\n", 6),
        (b"A: b", 4),
        (b"", 0),
        (b"\r", 1),
        (b"A: b\r\n\r\r\nx", 10),
        (b"A: b\r\n \r\nx", 10),
    ],
)
def test_header_end(parse_impl, data: bytes, end: int) -> None:
    assert parse_impl.header_end(data) == end


@pytest.mark.parametrize(
    ("block", "fields"),
    [
        (b"", []),
        (b"Subject: hi\r\n", [(b"Subject", b"hi")]),
        # RFC 5322 2.2.3: unfolding removes the CRLF, keeps the whitespace.
        (b"Subject: This\r\n is a test\r\n", [(b"Subject", b"This is a test")]),
        (b"Subject: a\r\n\tb\r\n  c\r\n", [(b"Subject", b"a\tb  c")]),
        (b"Subject: a\n b\n", [(b"Subject", b"a b")]),
        # Names kept as sent; leading whitespace of the value dropped, trailing kept.
        (b"sUbJeCt:   x  \r\nX-A:y\r\n", [(b"sUbJeCt", b"x  "), (b"X-A", b"y")]),
        (b"X-Empty:\r\nX-Blank:   \r\n", [(b"X-Empty", b""), (b"X-Blank", b"")]),
        # RFC 5322 4.5.3 (obsolete): whitespace before the colon.
        (b"Subject : x\r\n", [(b"Subject", b"x")]),
        # Only the first colon separates.
        (b"Date: 10:00:00 +0000\r\n", [(b"Date", b"10:00:00 +0000")]),
        # Lines without a colon, or with no valid name, are skipped with their continuations.
        (b"garbage\r\nA: 1\r\n", [(b"A", b"1")]),
        (b"From a@b Mon Jan  1 10:00:00 2024\nA: 1\n", [(b"A", b"1")]),
        (b"Bad Name: 1\r\n cont\r\nA: 2\r\n", [(b"A", b"2")]),
        (b": 1\r\nA: 2\r\n", [(b"A", b"2")]),
        (b" leading continuation\r\nA: 2\r\n", [(b"A", b"2")]),
        # The header section ends at the first empty line.
        (b"A: 1\r\n\r\nB: 2\r\n", [(b"A", b"1")]),
        (b"A: 1\n\nB: 2\n", [(b"A", b"1")]),
        # Last line without a line ending; a lone CR at its end is a line ending's half.
        (b"A: 1\r\nB: 2", [(b"A", b"1"), (b"B", b"2")]),
        (b"A: 1\r", [(b"A", b"1")]),
        (b"A: 1\r\r\n b\r\n", [(b"A", b"1\r b")]),
        # Bytes are bytes: 8-bit and encoded words are kept as sent.
        ("A: caf\u00e9\r\n".encode(), [(b"A", "caf\u00e9".encode())]),
        (b"A: =?utf-8?q?caf=C3=A9?=\r\n", [(b"A", b"=?utf-8?q?caf=C3=A9?=")]),
    ],
)
def test_parse_headers(parse_impl, block: bytes, fields: list) -> None:
    assert parse_impl.parse_headers(block) == fields


MESSAGE = (
    b"Return-Path: <a@example.org>\r\n"
    b"Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n"
    b"\tby mx.example.test with ESMTP id 42;\r\n"
    b"\tMon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"From: =?utf-8?q?J=C3=B6rg?= <a@example.org>\r\n"
    b"To: bob@example.test,\r\n"
    b"  carol@example.test\r\n"
    b"Subject: a long subject that was folded\r\n"
    b" over two lines\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Body: not a header\r\n"
)


def test_agrees_with_the_stdlib_header_parser(parse_impl) -> None:
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(MESSAGE)
    expected = [
        (name.encode(), re.sub(r"\r?\n", "", value).encode()) for name, value in parsed.items()
    ]
    end = parse_impl.header_end(MESSAGE)
    assert MESSAGE[end:] == b"Body: not a header\r\n"
    assert parse_impl.parse_headers(MESSAGE[:end]) == expected
    assert parse_impl.parse_headers(MESSAGE) == expected
    lf_message = MESSAGE.replace(b"\r\n", b"\n")
    lf_end = parse_impl.header_end(lf_message)
    assert parse_impl.parse_headers(lf_message[:lf_end]) == expected
