"""header_fields (RFC 5322 2.2, 2.2.3 with spans) and mime_parts (RFC 2046 5.1.1): the
parsing core's half of the IMAP MIME tree, in both implementations."""

from __future__ import annotations

import gc
import time

import pytest

MESSAGE = b"From: a@b.c\r\nSubject: one\r\n two\r\n\tthree\r\nX-Empty:\r\n\r\nbody\r\n"


def test_header_fields_spans_and_unfolding(parse_impl) -> None:
    fields, body_start = parse_impl.header_fields(MESSAGE, 0, len(MESSAGE))
    assert fields == [
        (b"From", b"a@b.c", 0, 13),
        # RFC 5322 2.2.3: unfolding removes the line endings, keeps the whitespace.
        (b"Subject", b"one two\tthree", 13, 41),
        (b"X-Empty", b"", 41, 51),
    ]
    assert MESSAGE[body_start:] == b"body\r\n"
    for _, _, start, end in fields:
        assert MESSAGE[start:end].endswith(b"\r\n")


@pytest.mark.parametrize(
    ("data", "fields", "body_start"),
    [
        (b"", [], 0),
        (b"\r\nbody", [], 2),
        (b"\nbody", [], 1),
        (b"A: b", [(b"A", b"b", 0, 4)], 4),
        (b"A: b\n\nc", [(b"A", b"b", 0, 5)], 6),
        # obsolete whitespace before the colon (RFC 5322 4.5.3); CRs before an LF dropped
        (b"A \t: b\r\r\n\r\n", [(b"A", b"b", 0, 9)], 11),
        # a value starting on the continuation line loses the leading whitespace of both
        (b"A:\r\n  b\r\n\r\n", [(b"A", b"b", 0, 9)], 11),
        # a line that is neither a field nor a continuation starts the body
        (b"A: b\r\nnot a field\r\nC: d\r\n", [(b"A", b"b", 0, 6)], 6),
        (b"A: b\r\n: x\r\n", [(b"A", b"b", 0, 6)], 6),
        (b"A: b\r\nB\x80: x\r\n", [(b"A", b"b", 0, 6)], 6),
        (b"A: b\r\n\r", [(b"A", b"b", 0, 6)], 6),
        # a continuation before any field is no field: the body starts there
        (b" A: b\r\n", [], 0),
    ],
)
def test_header_fields_cases(parse_impl, data: bytes, fields: list, body_start: int) -> None:
    assert parse_impl.header_fields(data, 0, len(data)) == (fields, body_start)


def test_header_fields_of_a_range(parse_impl) -> None:
    data = b"xxA: b\r\nC: d\r\n\r\nyy"
    assert parse_impl.header_fields(data, 2, 10) == ([(b"A", b"b", 2, 8), (b"C", b"", 8, 10)], 10)
    assert parse_impl.header_fields(data, 5, 5) == ([], 5)


@pytest.mark.parametrize("name", ["header_fields", "mime_parts"])
@pytest.mark.parametrize(("start", "end"), [(-1, 3), (2, 1), (0, 6), (6, 6)])
def test_spans_checked(parse_impl, name: str, start: int, end: int) -> None:
    args = (b"abcde", start, end) + ((b"b",) if name == "mime_parts" else ())
    with pytest.raises(ValueError, match="start <= end"):
        getattr(parse_impl, name)(*args)


MULTIPART = (
    b"preamble\r\n"
    b"--xyz\r\n"
    b"Content-Type: text/plain\r\n\r\none\r\n"
    b"--xyz  \r\n"
    b"\r\ntwo\r\n"
    b"--xyzzy\r\n"  # a longer boundary: text of part two
    b"--xyz--\r\n"
    b"epilogue\r\n"
)


def test_mime_parts(parse_impl) -> None:
    spans = parse_impl.mime_parts(MULTIPART, 0, len(MULTIPART), b"xyz")
    assert [MULTIPART[a:b] for a, b in spans] == [
        b"Content-Type: text/plain\r\n\r\none",
        b"\r\ntwo\r\n--xyzzy",
    ]


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (b"", []),
        (b"no delimiter at all", []),
        (b"--b", [b""]),  # an opening delimiter without a line ending: one empty part
        (b"--b\nx\n--b--", [b"x"]),
        (b"--b\r\nx", [b"x"]),  # no close delimiter: the last part runs to the end
        (b"--b\r\nx\r\n--b\r\n--b--\r\n", [b"x", b""]),
        (b"--b\r\nx\r\n x--b\r\n--b--", [b"x\r\n x--b"]),  # not at line start
        (b"--b--\r\n--b\r\nx", []),  # a close delimiter ends the body, even before a part
        (b"--b\r\n\n--b--", [b""]),
        (b"--b\r\n\r\n--b--", [b""]),
        (b"--b\r\nx\r\n--b-", [b"x\r\n--b-"]),  # "--b-" is no delimiter
    ],
)
def test_mime_parts_cases(parse_impl, body: bytes, parts: list[bytes]) -> None:
    assert [body[a:b] for a, b in parse_impl.mime_parts(body, 0, len(body), b"b")] == parts


def test_mime_parts_of_a_range(parse_impl) -> None:
    data = b"--b\r\nzz\r\n--b\r\nx\r\n--b--\r\n"
    # the range starts mid-file: a delimiter right at its start counts; no close delimiter
    # inside the range, so the part runs to its end
    assert parse_impl.mime_parts(data, 9, 16, b"b") == [(14, 16)]
    # the delimiter must fit inside the range
    assert parse_impl.mime_parts(data, 9, 11, b"b") == []


def _spans(parse_impl, raw: bytes) -> list[tuple[object, bytes]]:
    names = {
        parse_impl.ADDRESS_ATOM: "atom",
        parse_impl.ADDRESS_QUOTED: "quoted",
        parse_impl.ADDRESS_COMMENT: "comment",
        parse_impl.ADDRESS_LITERAL: "literal",
    }
    return [(names.get(k, chr(k)), raw[a:b]) for k, a, b in parse_impl.address_tokens(raw)]


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        (b"", []),
        (b" \t\r\n ", []),
        (
            b'"Joe \\" Q." <joe@x.org>, b@[1.2.3.4]',
            [
                ("quoted", b'"Joe \\" Q."'),
                ("<", b"<"),
                ("atom", b"joe"),
                ("@", b"@"),
                ("atom", b"x"),
                (".", b"."),
                ("atom", b"org"),
                (">", b">"),
                (",", b","),
                ("atom", b"b"),
                ("@", b"@"),
                ("literal", b"[1.2.3.4]"),
            ],
        ),
        # RFC 5322 3.2.2: comments nest, a backslash quotes the next byte
        (b"a(x (y) \\) z)b", [("atom", b"a"), ("comment", b"x (y) \\) z"), ("atom", b"b")]),
        (b"g: a;", [("atom", b"g"), (":", b":"), ("atom", b"a"), (";", b";")]),
        (
            b"\xc3\xa9t\xc3\xa9 <\x80>",
            [("atom", b"\xc3\xa9t\xc3\xa9"), ("<", b"<"), ("atom", b"\x80"), (">", b">")],
        ),
        # unterminated forms run to the end; an unterminated comment ends tokenizing
        (b'"open \\', [("quoted", b'"open \\')]),
        (b"[1.2", [("literal", b"[1.2")]),
        (b"a (open ( b", [("atom", b"a"), ("comment", b"open ( b")]),
        (b"(x\\", [("comment", b"x\\")]),
        (b") ] \\", [(")", b")"), ("]", b"]"), ("\\", b"\\")]),
    ],
)
def test_address_tokens(parse_impl, raw: bytes, tokens: list) -> None:
    assert _spans(parse_impl, raw) == tokens


#: The worst shapes found for each function, of ``n`` octets or so (a boundary comes from
#: the message, so it may be as long as a header field).
PATHOLOGICAL = {
    "mime_parts_long_boundary": lambda n: ("mime_parts", b"-" * n, 0, n, b"-" * 5000 + b"x"),
    "mime_parts_delimiter_lines": lambda n: (
        "mime_parts",
        b"--b x\n" * (n // 6),
        0,
        n // 6 * 6,
        b"b",
    ),
    "header_fields_folded": lambda n: (
        "header_fields",
        b"a:" + b"\r\n x" * (n // 4),
        0,
        n // 4 * 4 + 2,
    ),
    "split_header_fields": lambda n: ("split_header_fields", b"x-uid: 1\n" * (n // 9), (b"x-uid",)),
    "address_tokens_comments": lambda n: ("address_tokens", b"(" * n),
    "address_tokens_quoted": lambda n: ("address_tokens", b'"' + b"\\\\" * (n // 2)),
}


def _seconds(function, args: list) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


@pytest.mark.parametrize("case", PATHOLOGICAL)
def test_pathological_inputs_cost_linear_time(parse_impl, case: str) -> None:
    """Eight times the input may cost up to 24 times the time (a quadratic scan costs 64
    times; 0.1 s of slack for a shared machine), with the collector off."""
    name, *small = PATHOLOGICAL[case](25_000)
    _, *large = PATHOLOGICAL[case](200_000)
    function = getattr(parse_impl, name)
    gc.collect()
    gc.disable()
    try:
        base = min(_seconds(function, small) for _ in range(3))
        big = min(_seconds(function, large) for _ in range(2))
    finally:
        gc.enable()
    assert big < 24 * base + 0.1, (case, base, big)
