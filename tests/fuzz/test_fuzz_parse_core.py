"""Every function of the parsing core (``refmail/_parse.pyi``) fuzzed with hypothesis through
``fuzz/parse_contracts.py``: only the documented exceptions, the twins agree, the results keep
the API's contract; and large pathological inputs cost linear time.

``tests/parse/test_parse_twins.py`` compares the twins on arbitrary bytes; these tests add the
contract each result must keep, which a comparison cannot see when both twins share a bug.
"""

from __future__ import annotations

import gc
import time

import parse_contracts as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from session_fuzz_strategies import FUZZ_SETTINGS

# fmt: off
FRAGMENTS = [
    b"\r\n", b"\n", b"\r", b".", b"..", b".\r\n", b"\r\n.\r\n", b"\x00", b"\x7f", b"\x80",
    b"\xc3\xa9", b"\xff", b" ", b"\t", b":", b"From ", b">From ", b">", b"a", b"Z", b"0", b"9",
    b"FROM:", b"TO:", b"<", b"<>", b"@", b",", b'"', b"\\", b"[", b"]", b"IPv6:", b"::1",
    b"1.2.3.4", b"=", b"SIZE=10", b"Subject: ", b"\r\n\r\n", b"\n\n", b"(", b")", b"{", b"}",
    b"{3}", b"{3+}", b"{99999999999}", b"BODY[", b"HEADER.FIELDS (A B)", b"<0.1>", b"*",
]
# fmt: on
SOUP = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join),
)
SMALL = st.integers(-3, 140)


@FUZZ_SETTINGS
@given(buf=SOUP, start=SMALL, search_from=SMALL, max_len=st.integers(-1, 150))
def test_next_line(buf: bytes, start: int, search_from: int, max_len: int) -> None:
    pc.check_next_line(buf, start, search_from, max_len)


@FUZZ_SETTINGS
@given(line=SOUP)
def test_parse_smtp_command(line: bytes) -> None:
    pc.check_parse_smtp_command(line)


@FUZZ_SETTINGS
@given(
    arg=SOUP,
    prefix=st.sampled_from([b"", b"FROM:<", b"TO:<", b"FROM:<a@b.c>", b"TO:<@x,@y:", b"to: <"]),
    keyword=st.sampled_from([b"FROM", b"TO"]),
)
def test_parse_smtp_path(arg: bytes, prefix: bytes, keyword: bytes) -> None:
    pc.check_parse_smtp_path(prefix + arg, keyword)


@FUZZ_SETTINGS
@given(buf=SOUP, state=st.integers(0, 255), max_line=st.integers(0, 40))
def test_read_data(buf: bytes, state: int, max_line: int) -> None:
    pc.check_read_data(buf, state, max_line)


@FUZZ_SETTINGS
@given(stream=SOUP, cut=st.integers(0, 200), max_line=st.integers(3, 30))
def test_read_data_chunking(stream: bytes, cut: int, max_line: int) -> None:
    pc.check_read_data_chunking(stream, cut, max_line)


@FUZZ_SETTINGS
@given(data=SOUP)
def test_dot_stuff(data: bytes) -> None:
    pc.check_dot_stuff(data)


@FUZZ_SETTINGS
@given(data=SOUP)
def test_header_end_and_parse_headers(data: bytes) -> None:
    pc.check_header_end(data)
    pc.check_parse_headers(data)


@FUZZ_SETTINGS
@given(data=SOUP, start=st.integers(-2, 130))
def test_mbox_functions(data: bytes, start: int) -> None:
    pc.check_mbox_quoting(data)
    pc.check_mbox_unquote(data)
    pc.check_mbox_scan(data, start)


@FUZZ_SETTINGS
@given(data=SOUP)
def test_to_crlf_and_crlf_size(data: bytes) -> None:
    pc.check_crlf(data)


@FUZZ_SETTINGS
@given(
    texts=st.lists(SOUP, min_size=1, max_size=3),
    literals=st.lists(st.binary(max_size=8), max_size=2),
    depth=st.integers(0, 5),
)
def test_imap_tokenize(texts: list[bytes], literals: list[bytes], depth: int) -> None:
    parts = [texts[0]]
    for literal, text in zip(literals, texts[1:], strict=False):
        parts[-1] += b" {%d}" % len(literal)
        parts += [literal, text]
    pc.check_imap_tokenize(parts, depth)
    pc.check_imap_tokenize([b"".join(texts)], depth)


@FUZZ_SETTINGS
@given(line=SOUP, max_digits=st.integers(-1, 20))
def test_imap_literal_at_end(line: bytes, max_digits: int) -> None:
    pc.check_imap_literal_at_end(line, max_digits)


@FUZZ_SETTINGS
@given(value=SOUP)
def test_imap_quote(value: bytes) -> None:
    pc.check_imap_quote(value)


# ---------------------------------------------------------------------------- cost

#: Inputs that make a naive scanner quadratic or recursive, of ``n`` octets or so.
PATHOLOGICAL = {
    "next_line": lambda n: ("next_line", b"x" * n, 0, n // 2, n + 2),
    "smtp_command": lambda n: ("parse_smtp_command", b"MAIL " + b" " * n),
    "smtp_path": lambda n: ("parse_smtp_path", b"FROM:<" + b"@a," * (n // 3) + b">", b"FROM"),
    "smtp_path_quoted": lambda n: ("parse_smtp_path", b'TO:<"' + b"\\" * n, b"TO"),
    "read_data_dots": lambda n: ("read_data", b".\r\n." * (n // 4), 3, 1000),
    "read_data_bare_lf": lambda n: ("read_data", b"\n" * n, 3, 1000),
    "read_data_long_line": lambda n: ("read_data", b"x" * n, 0, 1000),
    "dot_stuff": lambda n: ("dot_stuff", b"\r\n." * (n // 3)),
    "header_end": lambda n: ("header_end", b"a:\r\n" * (n // 4)),
    "parse_headers": lambda n: ("parse_headers", b"a: b\r\n " * (n // 8)),
    "mbox_quote": lambda n: ("mbox_quote", b">" * n + b"From \n"),
    "mbox_unquote": lambda n: ("mbox_unquote", b"\n>>From " * (n // 8)),
    "mbox_scan": lambda n: ("mbox_scan", b"From \n" * (n // 6), 0),
    "to_crlf": lambda n: ("to_crlf", b"\r" * n),
    "imap_tokenize_parens": lambda n: ("imap_tokenize", [b"(" * n], 32),
    "imap_tokenize_closing": lambda n: ("imap_tokenize", [b"a" + b" ()" * (n // 3)], 32),
    "imap_tokenize_quoted": lambda n: ("imap_tokenize", [b'"' + b"\\\\" * (n // 2)], 32),
    "imap_tokenize_section": lambda n: ("imap_tokenize", [b"BODY[" + b"(" * n], 32),
    "imap_literal_at_end": lambda n: ("imap_literal_at_end", b"{" * n + b"1}", 10),
    "imap_quote": lambda n: ("imap_quote", b"a" * n + b"\x00"),
}


def _seconds(impl, name: str, args: list) -> float:
    started = time.perf_counter()
    try:
        getattr(impl, name)(*args)
    except (pc.ParseError, pc.LineTooLong):
        pass
    return time.perf_counter() - started


@pytest.mark.parametrize("case", PATHOLOGICAL)
def test_pathological_inputs_cost_linear_time(case: str) -> None:
    """The worst shape for each function at 25 KB and at 200 KB, in every twin: eight times
    the input may cost up to 24 times the time (allocation and cache effects; a quadratic
    scan costs 64 times; 0.1 s of slack for a shared machine), with the collector off so
    its passes do not count."""
    gc.collect()
    gc.disable()
    try:
        for impl in pc.IMPLS:
            name, *small = PATHOLOGICAL[case](25_000)
            _, *large = PATHOLOGICAL[case](200_000)
            base = min(_seconds(impl, name, small) for _ in range(3))
            big = min(_seconds(impl, name, large) for _ in range(2))
            assert big < 24 * base + 0.1, (impl.__name__, case, base, big)
    finally:
        gc.enable()
