"""read_data (RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1.6) and dot_stuff (RFC 5321 4.5.2, RFC 1939 3).

The reader tests follow h11's: each stream is fed whole, one byte at a time, in odd-sized
chunks and with trailing bytes, and every way must give the same content, flags and rest.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

MAX_LINE = 1000  # RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF


def receive(
    impl: ModuleType, stream: bytes, chunk_size: int, max_line: int = MAX_LINE
) -> tuple[bytes, int, bool, bytes]:
    """Feed ``stream`` in chunks as the SMTP session does -> (content, flags, done, rest)."""
    buf = b""
    out = []
    flags = 0
    state = impl.DATA_INITIAL
    pos = 0
    while pos < len(stream):
        buf += stream[pos : pos + chunk_size]
        pos += chunk_size
        while True:
            data, consumed, done, state, seen = impl.read_data(buf, state, max_line)
            out.append(data)
            flags |= seen
            buf = buf[consumed:]
            if done:
                return b"".join(out), flags, True, buf + stream[pos:]
            if consumed == 0:
                break
    return b"".join(out), flags, False, buf


def all_ways(impl: ModuleType, stream: bytes, max_line: int = MAX_LINE):
    """The result of feeding ``stream`` whole, which must equal every other way of feeding it."""
    whole = receive(impl, stream, max(len(stream), 1), max_line)
    for chunk_size in (1, 2, 3, 7, 64):
        assert receive(impl, stream, chunk_size, max_line) == whole, chunk_size
    content, flags, done, rest = whole
    if done:
        # Trailing bytes (the next pipelined command) are neither consumed nor change anything.
        trailing = receive(impl, stream + b"QUIT\r\n", 1, max_line)
        assert trailing == (content, flags, True, rest + b"QUIT\r\n")
    return whole


def test_constants_are_distinct_bits(parse_impl) -> None:
    bits = [
        parse_impl.DATA_AT_LINE_START,
        parse_impl.DATA_PREV_CRLF,
        parse_impl.DATA_BARE_LF,
        parse_impl.DATA_8BIT,
        parse_impl.DATA_LONG_LINE,
        parse_impl.DATA_NUL,
    ]
    assert all(bit > 0 and bit & (bit - 1) == 0 for bit in bits)
    assert len(set(bits)) == len(bits)
    assert parse_impl.DATA_INITIAL == parse_impl.DATA_AT_LINE_START | parse_impl.DATA_PREV_CRLF


def test_message_and_terminator(parse_impl) -> None:
    stream = b"Subject: hi\r\n\r\nHello.\r\n.\r\n"
    result = parse_impl.read_data(stream, parse_impl.DATA_INITIAL, MAX_LINE)
    content = b"Subject: hi\r\n\r\nHello.\r\n"
    assert result == (content, len(stream), True, parse_impl.DATA_INITIAL, 0)
    assert all_ways(parse_impl, stream) == (content, 0, True, b"")


def test_empty_message(parse_impl) -> None:
    assert parse_impl.read_data(b".\r\n", parse_impl.DATA_INITIAL, MAX_LINE) == (
        b"",
        3,
        True,
        parse_impl.DATA_INITIAL,
        0,
    )
    assert all_ways(parse_impl, b".\r\nQUIT\r\n") == (b"", 0, True, b"QUIT\r\n")


def test_empty_input_consumes_nothing(parse_impl) -> None:
    state = parse_impl.DATA_INITIAL
    assert parse_impl.read_data(b"", state, MAX_LINE) == (b"", 0, False, state, 0)


def test_incomplete_line_is_left_for_later(parse_impl) -> None:
    state = parse_impl.DATA_INITIAL
    assert parse_impl.read_data(b"abc\r\nde", state, MAX_LINE) == (b"abc\r\n", 5, False, state, 0)
    assert parse_impl.read_data(b".\r", state, MAX_LINE) == (b"", 0, False, state, 0)


def test_nothing_after_the_terminator_is_consumed(parse_impl) -> None:
    stream = b"a\r\n.\r\nMAIL FROM:<x@y>\r\n"
    out, consumed, done, _, _ = parse_impl.read_data(stream, parse_impl.DATA_INITIAL, MAX_LINE)
    assert (out, consumed, done) == (b"a\r\n", 6, True)


@pytest.mark.parametrize(
    ("stream", "content"),
    [
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b".a\r\n.\r\n", b"a\r\n"),
        (b"x\r\n..y\r\n.z\r\nw.\r\n.\r\n", b"x\r\n.y\r\nz\r\nw.\r\n"),
        (b"a\r\n. \r\n.\r\n", b"a\r\n \r\n"),
    ],
)
def test_dot_unstuffing(parse_impl, stream: bytes, content: bytes) -> None:
    assert all_ways(parse_impl, stream) == (content, 0, True, b"")


@pytest.mark.parametrize(
    ("stream", "content"),
    [
        # "." LF is content, never the end (SMTP smuggling, CVE-2023-51764 and friends).
        (b"a\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n", b"a\r\n\r\nMAIL FROM:<evil@x>\r\n"),
        # "." CRLF after a bare-LF line is content too.
        (b"a\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n", b"a\r\n\r\nMAIL FROM:<evil@x>\r\n"),
        (b"a\n.\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b".\nb\r\n.\r\n", b"\r\nb\r\n"),
    ],
)
def test_smuggling_cases_are_content(parse_impl, stream: bytes, content: bytes) -> None:
    assert all_ways(parse_impl, stream) == (content, parse_impl.DATA_BARE_LF, True, b"")


def test_bare_cr_dot_is_content(parse_impl) -> None:
    stream = b"a\r.\r\nb\r\n.\r\n"
    assert all_ways(parse_impl, stream) == (b"a\r.\r\nb\r\n", 0, True, b"")


def test_smuggled_terminator_without_real_end_is_not_done(parse_impl) -> None:
    content, flags, done, rest = all_ways(parse_impl, b"a\n.\r\nb\r\n")
    assert (content, done, rest) == (b"a\r\n\r\nb\r\n", False, b"")
    assert flags == parse_impl.DATA_BARE_LF


def test_bare_lf_lines_become_crlf(parse_impl) -> None:
    assert all_ways(parse_impl, b"a\nb\r\nc\n\r\n.\r\n") == (
        b"a\r\nb\r\nc\r\n\r\n",
        parse_impl.DATA_BARE_LF,
        True,
        b"",
    )


def test_terminator_split_across_chunks(parse_impl) -> None:
    state = parse_impl.DATA_INITIAL
    out, consumed, done, state, _ = parse_impl.read_data(b"body\r\n.", state, MAX_LINE)
    assert (out, consumed, done) == (b"body\r\n", 6, False)
    out, consumed, done, state, _ = parse_impl.read_data(b".\r", state, MAX_LINE)
    assert (out, consumed, done) == (b"", 0, False)
    out, consumed, done, state, _ = parse_impl.read_data(b".\r\n", state, MAX_LINE)
    assert (out, consumed, done, state) == (b"", 3, True, parse_impl.DATA_INITIAL)


def test_state_after_a_bare_lf_line_refuses_the_terminator(parse_impl) -> None:
    out, consumed, done, state, flags = parse_impl.read_data(
        b"a\n", parse_impl.DATA_INITIAL, MAX_LINE
    )
    assert state == parse_impl.DATA_AT_LINE_START
    out, consumed, done, state, flags = parse_impl.read_data(b".\r\n", state, MAX_LINE)
    assert (out, consumed, done) == (b"\r\n", 3, False)
    assert state == parse_impl.DATA_INITIAL


def test_flags_8bit_and_nul(parse_impl) -> None:
    eight = all_ways(parse_impl, "caf\u00e9\r\n.\r\n".encode())
    assert eight[1] == parse_impl.DATA_8BIT
    nul = all_ways(parse_impl, b"a\x00b\r\n.\r\n")
    assert nul == (b"a\x00b\r\n", parse_impl.DATA_NUL, True, b"")


def test_line_at_the_limit_is_not_flagged_one_more_is(parse_impl) -> None:
    limit = 20
    at_limit = b"x" * (limit - 2) + b"\r\n"
    assert all_ways(parse_impl, at_limit + b".\r\n", limit) == (at_limit, 0, True, b"")
    over = b"x" + at_limit
    assert all_ways(parse_impl, over + b".\r\n", limit) == (
        over,
        parse_impl.DATA_LONG_LINE,
        True,
        b"",
    )


def test_endless_line_is_consumed_in_pieces(parse_impl) -> None:
    state = parse_impl.DATA_INITIAL
    out, consumed, done, state, flags = parse_impl.read_data(b".abcdefghij", state, 5)
    assert (out, consumed, done, state) == (b"abcd", 5, False, 0)
    assert flags == parse_impl.DATA_LONG_LINE
    # Mid-line: a leading "." is content and no terminator is possible.
    out, consumed, done, state, flags = parse_impl.read_data(b".\r\nxyz", state, 5)
    assert (out, consumed, done) == (b".\r\n", 3, False)
    assert state == parse_impl.DATA_INITIAL


def test_long_line_whole_or_dribbled_gives_the_same_content(parse_impl) -> None:
    stream = b"short\r\n" + b".." + b"y" * 50 + b"\r\n" + b"z" * 33 + b"\nend\r\n.\r\n"
    content, flags, done, rest = all_ways(parse_impl, stream, 16)
    assert content == b"short\r\n." + b"y" * 50 + b"\r\n" + b"z" * 33 + b"\r\nend\r\n"
    assert flags == parse_impl.DATA_LONG_LINE | parse_impl.DATA_BARE_LF
    assert done and rest == b""


def test_unknown_state_bits_are_ignored(parse_impl) -> None:
    assert parse_impl.read_data(b".\r\n", 0xFF, MAX_LINE)[2] is True


def test_bad_max_line(parse_impl) -> None:
    with pytest.raises(ValueError):
        parse_impl.read_data(b"a\r\n", parse_impl.DATA_INITIAL, 2)


STREAM_BYTES = st.lists(
    st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b".\r\n", b"\xc3\xa9", b"\x00", b"From "]),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=STREAM_BYTES, max_line=st.integers(3, 12), chunk=st.integers(1, 9))
def test_chunking_never_changes_the_result(parse_impl, stream, max_line, chunk) -> None:
    whole = receive(parse_impl, stream, max(len(stream), 1), max_line)
    assert receive(parse_impl, stream, chunk, max_line) == whole


# ---------------------------------------------------------------------------- dot_stuff


@pytest.mark.parametrize(
    ("data", "stuffed"),
    [
        (b"", b""),
        (b"a\r\n", b"a\r\n"),
        (b".\r\n", b"..\r\n"),
        (b".a\r\n..b\r\nc.\r\n.", b"..a\r\n...b\r\nc.\r\n.."),
        (b"x\r\n.\r\ny", b"x\r\n..\r\ny"),
    ],
)
def test_dot_stuff(parse_impl, data: bytes, stuffed: bytes) -> None:
    assert parse_impl.dot_stuff(data) == stuffed


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"\xff", b"a.b"])))
def test_dot_stuff_then_read_data_round_trips(parse_impl, lines) -> None:
    message = b"".join(line + b"\r\n" for line in lines)
    stream = parse_impl.dot_stuff(message) + b".\r\n"
    content, _, done, rest = receive(parse_impl, stream, max(len(stream), 1))
    assert (content, done, rest) == (message, True, b"")


def test_many_bare_lf_lines_grow_the_output(parse_impl) -> None:
    lf_text = b"".join(b"line %d\n" % number for number in range(5000)) + b"..dot\n\n"
    stream = lf_text + b"end\r\n.\r\n"
    expected = lf_text.replace(b"\n", b"\r\n").replace(b"\r\n..dot", b"\r\n.dot") + b"end\r\n"
    assert all_ways(parse_impl, stream) == (expected, parse_impl.DATA_BARE_LF, True, b"")
    # Only bare LFs: every byte of output beyond the input is a CR.
    out, consumed, done, _, _ = parse_impl.read_data(b"\n" * 100_000, 3, MAX_LINE)
    assert (out, consumed, done) == (b"\r\n" * 100_000, 100_000, False)
