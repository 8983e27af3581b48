"""next_line: line splitting with a length limit (RFC 5321 4.5.3.1.4-6, RFC 1939, RFC 3501)."""

from __future__ import annotations

import pytest

from refmail._parse_errors import LineTooLong, ParseError


def split_lines(impl, stream: bytes, chunk_size: int, max_len: int) -> tuple[list[bytes], bytes]:
    """Drive next_line as a receive buffer does: remember where the last search stopped."""
    buf = b""
    lines = []
    start = 0
    searched = 0
    for pos in range(0, len(stream), chunk_size):
        buf += stream[pos : pos + chunk_size]
        while True:
            end = impl.next_line(buf, start, searched, max_len)
            if end < 0:
                searched = len(buf)
                break
            lines.append(buf[start:end])
            start = searched = end
    return lines, buf[start:]


def test_finds_the_end_of_a_crlf_line(parse_impl) -> None:
    assert parse_impl.next_line(b"EHLO x\r\nQUIT\r\n", 0, 0, 512) == 8
    assert parse_impl.next_line(b"EHLO x\r\nQUIT\r\n", 8, 8, 512) == 14


def test_lf_alone_ends_a_line(parse_impl) -> None:
    assert parse_impl.next_line(b"NOOP\nQUIT\n", 0, 0, 512) == 5


def test_incomplete_line_gives_minus_one(parse_impl) -> None:
    assert parse_impl.next_line(b"EHLO x\r", 0, 0, 512) == -1
    assert parse_impl.next_line(b"", 0, 0, 512) == -1
    assert parse_impl.next_line(b"abc\n", 4, 4, 512) == -1


def test_search_from_skips_bytes_already_searched(parse_impl) -> None:
    # An LF before search_from is not looked at: the caller vouches there was none.
    assert parse_impl.next_line(b"ab\ncd\n", 0, 3, 512) == 6
    # search_from before start is treated as start.
    assert parse_impl.next_line(b"ab\ncd\n", 3, 0, 512) == 6


def test_line_at_the_limit_passes_and_one_more_byte_fails(parse_impl) -> None:
    limit = 512  # RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF
    at_limit = b"A" * (limit - 2) + b"\r\n"
    assert parse_impl.next_line(at_limit, 0, 0, limit) == limit
    with pytest.raises(LineTooLong):
        parse_impl.next_line(b"A" + at_limit, 0, 0, limit)


def test_incomplete_line_at_the_limit_waits_and_past_it_fails(parse_impl) -> None:
    assert parse_impl.next_line(b"A" * 10, 0, 0, 10) == -1
    with pytest.raises(LineTooLong):
        parse_impl.next_line(b"A" * 11, 0, 0, 10)
    # Measured from start, not from the beginning of the buffer.
    assert parse_impl.next_line(b"x\n" + b"A" * 10, 2, 2, 10) == -1


def test_line_too_long_is_a_parse_error(parse_impl) -> None:
    with pytest.raises(ParseError, match="too long"):
        parse_impl.next_line(b"A" * 100 + b"\n", 0, 0, 50)


def test_bad_start_is_a_programming_error(parse_impl) -> None:
    with pytest.raises(ValueError):
        parse_impl.next_line(b"abc", 4, 4, 10)
    with pytest.raises(ValueError):
        parse_impl.next_line(b"abc", -1, 0, 10)


STREAM = b"EHLO client.example\r\nMAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\r\nDATA\r\nQUIT"


@pytest.mark.parametrize("chunk_size", [len(STREAM), 1, 2, 7])
def test_whole_bytewise_and_chunked_agree(parse_impl, chunk_size: int) -> None:
    lines, rest = split_lines(parse_impl, STREAM, chunk_size, 512)
    assert lines == [
        b"EHLO client.example\r\n",
        b"MAIL FROM:<a@b.c>\n",
        b"RCPT TO:<d@e.f>\r\n",
        b"DATA\r\n",
    ]
    assert rest == b"QUIT"


def test_trailing_bytes_do_not_change_the_lines(parse_impl) -> None:
    whole, _ = split_lines(parse_impl, STREAM, len(STREAM), 512)
    more, rest = split_lines(parse_impl, STREAM + b"\r\nNOOP", 1, 512)
    assert more == whole + [b"QUIT\r\n"]
    assert rest == b"NOOP"


def test_dribbled_long_line_fails_once_it_passes_the_limit(parse_impl) -> None:
    with pytest.raises(LineTooLong):
        split_lines(parse_impl, b"A" * 600, 1, 512)
    lines, rest = split_lines(parse_impl, b"A" * 512, 1, 512)
    assert lines == [] and rest == b"A" * 512
