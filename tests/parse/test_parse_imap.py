"""The IMAP part of the parsing core: ``imap_tokenize``, ``imap_literal_at_end``, ``imap_quote``
(RFC 3501 4.3, 9; RFC 7888), against both twins, and a property test that they agree."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parse_twins_check import compiled, needs_compiled, same

from refmail import _parse_py
from refmail._parse_errors import ParseError

DEPTH = 32
ATOM, QUOTED, LITERAL, LIST = 1, 2, 3, 4


def tokens(impl: ModuleType, *parts: bytes, depth: int = DEPTH) -> list[tuple[int, object]]:
    return impl.imap_tokenize(list(parts), depth)


def reason(impl: ModuleType, *parts: bytes, depth: int = DEPTH) -> str:
    with pytest.raises(ParseError) as info:
        impl.imap_tokenize(list(parts), depth)
    return str(info.value)


# ------------------------------------------------------------------ imap_tokenize


def test_token_kinds_are_the_same_constants(parse_impl: ModuleType) -> None:
    assert (parse_impl.IMAP_ATOM, parse_impl.IMAP_QUOTED) == (ATOM, QUOTED)
    assert (parse_impl.IMAP_LITERAL, parse_impl.IMAP_LIST) == (LITERAL, LIST)


def test_atoms_quoted_strings_and_lists(parse_impl: ModuleType) -> None:
    line = b'A1 STORE 2:4,7 +FLAGS.SILENT (\\Deleted $Label "x y")'
    assert tokens(parse_impl, line) == [
        (ATOM, b"A1"),
        (ATOM, b"STORE"),
        (ATOM, b"2:4,7"),
        (ATOM, b"+FLAGS.SILENT"),
        (LIST, [(ATOM, b"\\Deleted"), (ATOM, b"$Label"), (QUOTED, b"x y")]),
    ]


def test_empty_input_and_empty_list(parse_impl: ModuleType) -> None:
    assert tokens(parse_impl, b"") == []
    assert tokens(parse_impl, b"a X ()") == [(ATOM, b"a"), (ATOM, b"X"), (LIST, [])]
    assert tokens(parse_impl, b"a X (())") == [(ATOM, b"a"), (ATOM, b"X"), (LIST, [(LIST, [])])]


def test_spaces_doubled_and_trailing_are_tolerated(parse_impl: ModuleType) -> None:
    assert tokens(parse_impl, b"a  NOOP ") == [(ATOM, b"a"), (ATOM, b"NOOP")]
    assert tokens(parse_impl, b"a X (b  c )") == [
        (ATOM, b"a"),
        (ATOM, b"X"),
        (LIST, [(ATOM, b"b"), (ATOM, b"c")]),
    ]


def test_quoted_escapes(parse_impl: ModuleType) -> None:
    got = tokens(parse_impl, b'a LOGIN "ali\\"ce" "back\\\\slash" ""')
    assert got[2:] == [(QUOTED, b'ali"ce'), (QUOTED, b"back\\slash"), (QUOTED, b"")]


def test_quoted_keeps_8bit_bytes_as_sent(parse_impl: ModuleType) -> None:
    """Whether 8-bit text is allowed is the session's call (UTF8=ACCEPT, RFC 6855)."""
    assert tokens(parse_impl, '"Grüße"'.encode())[0] == (QUOTED, "Grüße".encode())


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ((b'a "x\\y"',), "invalid escape in quoted string"),
        ((b'a "x\\',), "invalid escape in quoted string"),
        ((b'a "xy',), "unterminated quoted string"),
        ((b"a X (b",), "unterminated list"),
        ((b"a X )",), "unexpected ')'"),
        ((b"a X (b))",), "unexpected ')'"),
        ((b"a X(b)",), "expected a space between arguments"),
        ((b'a X"b"',), "expected a space between arguments"),
        ((b" a",), "invalid character"),
        ((b"a \x01",), "invalid character"),
        ((b"a x\x01y",), "control character in command"),
        ((b"a \xc3\xa9",), "8-bit data in atom"),
        ((b"a x\x7f",), "8-bit data in atom"),
        ((b"a FETCH 1 BODY[TEXT",), "unterminated section"),
        ((b"a FETCH 1 BODY[\xff]",), "invalid character in section"),
        ((b"a FETCH 1 BODY[\t]",), "invalid character in section"),
        ((b"a LOGIN {-100}",), "invalid literal"),
        ((b"a LOGIN {5} x", b"alice", b""), "invalid literal"),
        ((b"a LOGIN {5}",), "invalid literal"),
        ((b"a LOGIN {}", b"", b""), "invalid literal"),
        ((b"a LOGIN {4}", b"alice", b""), "literal size mismatch"),
        ((b"a LOGIN {99999999999999999999999}", b"alice", b""), "literal size mismatch"),
        ((b"a LOGIN x", b"alice", b""), "literal not at the end of a line"),
    ],
)
def test_malformed(parse_impl: ModuleType, parts: tuple[bytes, ...], text: str) -> None:
    assert reason(parse_impl, *parts) == text


def test_fetch_section_keeps_spaces_and_parens(parse_impl: ModuleType) -> None:
    line = b'a FETCH 1 (UID body.peek[HEADER.FIELDS (DATE "X" {3})]<0.2048>)'
    assert tokens(parse_impl, line)[3] == (
        LIST,
        [(ATOM, b"UID"), (ATOM, b'body.peek[HEADER.FIELDS (DATE "X" {3})]<0.2048>')],
    )
    for name in (b"BODY", b"BINARY", b"BINARY.PEEK", b"Binary.Size"):
        assert tokens(parse_impl, name + b"[1 2]") == [(ATOM, name + b"[1 2]")]


def test_brackets_elsewhere_are_atom_chars(parse_impl: ModuleType) -> None:
    """``[`` after any other name is an ASTRING-CHAR (RFC 3501 9, resp-specials)."""
    assert tokens(parse_impl, b"a SELECT [Gmail]/Sent")[2] == (ATOM, b"[Gmail]/Sent")
    assert tokens(parse_impl, b"RFC822[a b]") == [(ATOM, b"RFC822[a"), (ATOM, b"b]")]


def test_nesting_depth_at_the_limit_and_past_it(parse_impl: ModuleType) -> None:
    nested: list[tuple[int, object]] = []
    for _ in range(DEPTH):
        nested = [(LIST, nested)]
    ok = b"(" * DEPTH + b")" * DEPTH
    assert tokens(parse_impl, ok) == nested
    deep = b"(" * (DEPTH + 1) + b")" * (DEPTH + 1)
    assert reason(parse_impl, deep) == "lists nested too deeply"
    assert reason(parse_impl, b"()", depth=0) == "lists nested too deeply"


def test_any_depth_costs_no_stack(parse_impl: ModuleType) -> None:
    """Nesting is walked with a list, not by recursion: a deep limit cannot crash the server."""
    depth = 100_000
    got = tokens(parse_impl, b"(" * depth + b")" * depth, depth=depth)
    for _ in range(depth):
        (token,) = got
        assert token[0] == LIST
        got = token[1]  # type: ignore[assignment]
    assert got == []


def test_literals(parse_impl: ModuleType) -> None:
    data = b"a1 \r\n\x00{3}\r\n)"
    got = tokens(parse_impl, b"a APPEND INBOX (\\Seen) {%d}" % len(data), data, b"")
    assert got[-1] == (LITERAL, data)
    got = tokens(parse_impl, b"a1 LOGIN {5+}", b"alice", b" {008}", b"alice-pw", b"")
    assert got[2:] == [(LITERAL, b"alice"), (LITERAL, b"alice-pw")]
    assert tokens(parse_impl, b"a X {0}", b"", b"")[2] == (LITERAL, b"")


def test_literal_inside_a_list_spans_parts(parse_impl: ModuleType) -> None:
    got = tokens(parse_impl, b"a SEARCH (SUBJECT {2}", b"hi", b" FROM x) ALL")
    assert got[2:] == [
        (LIST, [(ATOM, b"SUBJECT"), (LITERAL, b"hi"), (ATOM, b"FROM"), (ATOM, b"x")]),
        (ATOM, b"ALL"),
    ]
    assert reason(parse_impl, b"a X {2}", b"hi", b"x") == "expected a space between arguments"


def test_parts_must_be_a_list_of_odd_length_of_bytes(parse_impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        parse_impl.imap_tokenize([], DEPTH)
    with pytest.raises(ValueError):
        parse_impl.imap_tokenize([b"a {1}", b"x"], DEPTH)
    with pytest.raises(ValueError):
        parse_impl.imap_tokenize((b"a",), DEPTH)
    with pytest.raises(TypeError):
        parse_impl.imap_tokenize(["a NOOP"], DEPTH)


# ------------------------------------------------------------------ imap_literal_at_end


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a APPEND INBOX {12}", (12, False)),
        (b"a APPEND INBOX {12+}", (12, True)),
        (b"{0}", (0, False)),
        (b"a {007}", (7, False)),
        (b"a {4294967295}", (4294967295, False)),  # 10 digits: the limit
        (b"a {00000000001+}", (-1, True)),  # 11 digits: too big, whatever they say
        (b"a {" + b"9" * 150 + b"}", (-1, False)),
        (b"a {12} ", None),
        (b"a {-1}", None),
        (b"a {+}", None),
        (b"a {}", None),
        (b"a 12}", None),
        (b"a {1a}", None),
        (b"}", None),
        (b"", None),
        (b"a NOOP", None),
    ],
)
def test_literal_at_end(parse_impl: ModuleType, line: bytes, expected: object) -> None:
    assert parse_impl.imap_literal_at_end(line, 10) == expected


def test_literal_at_end_digit_limit_range(parse_impl: ModuleType) -> None:
    assert parse_impl.imap_literal_at_end(b"{" + b"9" * 18 + b"}", 18) == (10**18 - 1, False)
    for bad in (0, 19):
        with pytest.raises(ValueError):
            parse_impl.imap_literal_at_end(b"{1}", bad)


# ------------------------------------------------------------------ imap_quote


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"INBOX", b'"INBOX"'),
        (b"", b'""'),
        (b"a b (c) {3} [x] ~", b'"a b (c) {3} [x] ~"'),
        (b'say "hi"', b'{8}\r\nsay "hi"'),
        (b"back\\slash", b"{10}\r\nback\\slash"),
        (b"two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        (b"nul\x00", b"{4}\r\nnul\x00"),
        ("Grüße".encode(), b"{7}\r\n" + "Grüße".encode()),
    ],
)
def test_quote(parse_impl: ModuleType, value: bytes, expected: bytes) -> None:
    assert parse_impl.imap_quote(value) == expected


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=60))
def test_quote_reads_back(parse_impl: ModuleType, value: bytes) -> None:
    """What the server quotes, a client tokenizer reads back as the same bytes."""
    quoted = parse_impl.imap_quote(value)
    if quoted.startswith(b"{"):
        marker, _, octets = quoted.partition(b"\r\n")
        assert parse_impl.imap_literal_at_end(marker, 10) == (len(value), False)
        assert tokens(parse_impl, marker, octets, b"") == [(LITERAL, value)]
    else:
        assert tokens(parse_impl, quoted) == [(QUOTED, value)]


# ------------------------------------------------------------------ twins agree


# fmt: off
FRAGMENTS = [
    b" ", b"  ", b"(", b")", b"((", b"))", b'"', b'\\"', b"\\\\", b"\\", b"{", b"}", b"{3}",
    b"{3+}", b"{003}", b"{-1}", b"[", b"]", b"BODY[", b"body.peek[", b"BINARY.SIZE[",
    b"HEADER.FIELDS (DATE FROM)", b"<0.10>", b"a", b"FETCH", b"1:*", b"\\Seen", b"\x00",
    b"\x01", b"\t", b"\r", b"\x7f", b"\x80", b"\xc3\xa9", b"\xff", b"0", b"9", b"+", b"%", b"*",
]
# fmt: on
TEXT = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(b"".join),
)
LITERAL_OCTETS = st.one_of(st.binary(max_size=6), st.sampled_from([b"abc", b"", b"(x)"]))


@needs_compiled
@settings(max_examples=500, deadline=None)
@given(
    texts=st.lists(TEXT, min_size=1, max_size=3),
    literals=st.lists(LITERAL_OCTETS, max_size=2),
    depth=st.integers(-1, 4),
)
def test_twins_tokenize_alike(texts: list[bytes], literals: list[bytes], depth: int) -> None:
    parts = [texts[0]]
    for literal, text in zip(literals, texts[1:], strict=False):
        parts[-1] += b" {%d}" % len(literal)
        parts += [literal, text]
    same("imap_tokenize", parts, depth)
    same("imap_tokenize", [texts[0]], depth)
    same("imap_tokenize", parts + [b""], depth)  # even: a ValueError in both


@needs_compiled
@settings(max_examples=500, deadline=None)
@given(line=TEXT, max_digits=st.integers(-1, 20))
def test_twins_find_literals_alike(line: bytes, max_digits: int) -> None:
    same("imap_literal_at_end", line, max_digits)
    same("imap_literal_at_end", line + b"{12+}", max_digits)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(value=TEXT)
def test_twins_quote_alike(value: bytes) -> None:
    same("imap_quote", value)


@needs_compiled
def test_compiled_has_the_imap_api() -> None:
    assert compiled is not None
    for name in ("imap_tokenize", "imap_literal_at_end", "imap_quote", "imap_sequence_set"):
        assert callable(getattr(compiled, name))
    for name in ("IMAP_ATOM", "IMAP_QUOTED", "IMAP_LITERAL", "IMAP_LIST"):
        assert getattr(compiled, name) == getattr(_parse_py, name)


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        (b"1", [(1, 1)]),
        (b"*", [(0, 0)]),
        (b"1:*", [(1, 0)]),
        (b"3:1", [(3, 1)]),  # RFC 3501 9 seq-range: either order, the caller sorts
        (b"2,4:7,9,12:*", [(2, 2), (4, 7), (9, 9), (12, 0)]),
        (b"*:4,4294967295", [(0, 4), (4294967295, 4294967295)]),
    ],
)
def test_imap_sequence_set(parse_impl, text: bytes, ranges: list[tuple[int, int]]) -> None:
    assert parse_impl.imap_sequence_set(text) == ranges


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b",",
        b"1,",
        b",1",
        b"1:",
        b":1",
        b"1:2:3",
        b"0",
        b"01",
        b"1:0",
        b"4294967296",
        b"12345678901",
        b"1 ,2",
        b"1, 2",
        b"**",
        b"*1",
        b"1*",
        b"a",
        b"\xd9\xa1",
        b"-1",
    ],
)
def test_imap_sequence_set_invalid(parse_impl, text: bytes) -> None:
    with pytest.raises(parse_impl.ParseError, match="invalid sequence set"):
        parse_impl.imap_sequence_set(text)
