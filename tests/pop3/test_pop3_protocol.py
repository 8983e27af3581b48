"""The POP3 wire format without a session: framing, command grammar, reply bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmail.errors import POP3Error
from refmail.parse import LineTooLong
from refmail.pop3.protocol import (
    KNOWN_VERBS,
    MAX_COMMAND_LINE,
    Apop,
    Auth,
    LineReader,
    MessageCommand,
    Pass,
    ScanCommand,
    Simple,
    Top,
    User,
    err,
    multiline,
    ok,
    parse_command,
)

STREAM = b"USER alice\r\nPASS a b  c\r\nSTAT\nLIST 1\r\n"
LINES = [b"USER alice\r\n", b"PASS a b  c\r\n", b"STAT\n", b"LIST 1\r\n"]


def drain(reader: LineReader, max_len: int = MAX_COMMAND_LINE) -> list[bytes]:
    found = []
    while (line := reader.next_line(max_len)) is not None:
        found.append(line)
    return found


def test_reader_whole() -> None:
    reader = LineReader()
    reader.feed(STREAM)
    assert drain(reader) == LINES
    assert reader.pending == 0


def test_reader_one_byte_at_a_time() -> None:
    reader = LineReader()
    found = []
    for i in range(len(STREAM)):
        reader.feed(STREAM[i : i + 1])
        found += drain(reader)
    assert found == LINES


def test_reader_trailing_bytes_stay_buffered() -> None:
    reader = LineReader()
    reader.feed(STREAM + b"RETR")
    assert drain(reader) == LINES
    assert reader.pending == 4
    reader.feed(b" 2\r\n")
    assert drain(reader) == [b"RETR 2\r\n"]


def test_reader_limit_at_n_and_n_plus_one() -> None:
    exact = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(exact) == MAX_COMMAND_LINE
    reader = LineReader()
    reader.feed(exact)
    assert drain(reader) == [exact]

    reader.feed(b"NOOP " + b"x" * (MAX_COMMAND_LINE - 6) + b"\r\nSTAT\r\n")
    with pytest.raises(LineTooLong):
        reader.next_line(MAX_COMMAND_LINE)
    assert drain(reader) == [b"STAT\r\n"]  # the rest of the long line was skipped


def test_reader_reports_long_line_before_its_end_arrives() -> None:
    reader = LineReader()
    reader.feed(b"x" * MAX_COMMAND_LINE)
    assert reader.next_line(MAX_COMMAND_LINE) is None  # could still end in time
    reader.feed(b"x")
    with pytest.raises(LineTooLong):
        reader.next_line(MAX_COMMAND_LINE)
    reader.feed(b"x" * 10_000)  # skipped without being kept
    assert reader.next_line(MAX_COMMAND_LINE) is None
    assert reader.pending == 0
    reader.feed(b"yyy\r\nNOOP\r\n")
    assert drain(reader) == [b"NOOP\r\n"]


def test_reader_discard_drops_everything() -> None:
    reader = LineReader()
    reader.feed(b"STLS\r\nUSER evil\r\nPA")
    assert reader.next_line(MAX_COMMAND_LINE) == b"STLS\r\n"
    assert reader.discard() == len(b"USER evil\r\nPA")
    assert reader.next_line(MAX_COMMAND_LINE) is None


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"STAT\r\n", Simple("STAT")),
        (b"stat\r\n", Simple("STAT")),
        (b"noop\n", Simple("NOOP")),
        (b"CAPA\r\n", Simple("CAPA")),
        (b"utf8\r\n", Simple("UTF8")),
        (b"USER mrose\r\n", User("mrose")),
        (b"PASS secret\r\n", Pass("secret")),
        (b"PASS with  two spaces \r\n", Pass("with  two spaces ")),
        (b"PASS p\xc3\xa4ss\r\n", Pass("p\u00e4ss")),
        (b"APOP mrose c4c9334bac560ecc979e58\r\n", Apop("mrose", "c4c9334bac560ecc979e58")),
        (b"AUTH\r\n", Auth(None, None)),
        (b"AUTH plain\r\n", Auth("PLAIN", None)),
        (b"AUTH PLAIN AGFsaWNlAGFsaWNlLXB3\r\n", Auth("PLAIN", "AGFsaWNlAGFsaWNlLXB3")),
        (b"RETR 1\r\n", MessageCommand("RETR", 1)),
        (b"DELE 007\r\n", MessageCommand("DELE", 7)),
        (b"LIST\r\n", ScanCommand("LIST", None)),
        (b"LIST 2\r\n", ScanCommand("LIST", 2)),
        (b"UIDL  3\r\n", ScanCommand("UIDL", 3)),
        (b"TOP 1 10\r\n", Top(1, 10)),
        (b"TOP 1 0\r\n", Top(1, 0)),
    ],
)
def test_parse_command(line: bytes, command: object) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\r\n", "empty command"),
        (b"XYZZY\r\n", "unknown command 'XYZZY'"),
        (b"HELO there\r\n", "unknown command 'HELO'"),
        (b"ST\r\n", "unknown command 'ST'"),
        (b"8BIT\r\n", "unknown command '8BIT'"),
        (b"STAT 1\r\n", "STAT takes no arguments"),
        (b"QUIT now\r\n", "QUIT takes no arguments"),
        (b"RETR\r\n", "RETR needs an argument"),
        (b"RETR 1 2\r\n", "RETR takes at most 1 argument(s)"),
        (b"RETR abc\r\n", "invalid message number 'abc'"),
        (b"RETR -1\r\n", "invalid message number '-1'"),
        (b"RETR +1\r\n", "invalid message number '+1'"),
        (b"RETR 1.5\r\n", "invalid message number '1.5'"),
        (b"DELE 99999999999999999999999\r\n", "out of range"),
        (b"LIST 1 2\r\n", "LIST takes at most 1 argument(s)"),
        (b"TOP 1\r\n", "TOP needs 2 arguments"),
        (b"TOP 1 x\r\n", "invalid line count 'x'"),
        (b"TOP 1 -5\r\n", "invalid line count '-5'"),
        (b"USER\r\n", "USER needs an argument"),
        (b"USER a b\r\n", "USER takes at most 1 argument(s)"),
        (b"PASS\r\n", "PASS needs an argument"),
        (b"PASS \r\n", "PASS needs an argument"),
        (b"AUTH PLAIN a b\r\n", "AUTH takes at most 2 argument(s)"),
        (b"USER \xc3\xa4\r\n", "send UTF8 first"),
        (b"USER \xff\r\n", "not UTF-8"),
        (b"NOOP\0\r\n", "control characters"),
        (b"STAT\tx\r\n", "control characters"),
    ],
)
def test_parse_command_rejects(line: bytes, reason: str) -> None:
    with pytest.raises(POP3Error) as info:
        parse_command(line)
    assert reason in info.value.text


def test_utf8_mode_allows_utf8_arguments() -> None:
    assert parse_command("USER j\u00fcrgen\r\n".encode(), utf8=True) == User("j\u00fcrgen")


def test_secrets_are_redacted_in_repr() -> None:
    assert "hunter2" not in repr(Pass("hunter2"))
    assert "AGFsaWNl" not in repr(Auth("PLAIN", "AGFsaWNlAGFsaWNlLXB3"))


def test_replies() -> None:
    assert ok() == b"+OK\r\n"
    assert ok("2 320") == b"+OK 2 320\r\n"
    assert err("no such message") == b"-ERR no such message\r\n"
    assert err("maildrop busy", "IN-USE") == b"-ERR [IN-USE] maildrop busy\r\n"


def test_multiline_dot_stuffs_and_terminates() -> None:
    body = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend"
    assert multiline("5 octets", body) == (
        b"+OK 5 octets\r\nSubject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n"
    )
    assert multiline("empty", b"") == b"+OK empty\r\n.\r\n"


# ---------------------------------------------------------------------------- properties

any_stream = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\r\n", b"\n", b"STAT", b"RETR 1", b"x" * 300, b"\r", b"\0"]),
    ),
    max_size=20,
).map(b"".join)


@given(stream=any_stream, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_reader_chunking_never_changes_the_lines(stream: bytes, cuts: list[int]) -> None:
    """Any split of the stream gives the same lines and the same long-line reports."""

    def run(chunks: list[bytes]) -> list[bytes | None]:
        reader, events = LineReader(), []
        for chunk in chunks:
            reader.feed(chunk)
            while True:
                try:
                    line = reader.next_line(MAX_COMMAND_LINE)
                except LineTooLong:
                    events.append(None)
                    continue
                if line is None:
                    break
                events.append(line)
        return events

    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    whole = run([stream])
    assert run(pieces) == whole
    assert run([stream[i : i + 1] for i in range(len(stream))]) == whole
    assert all(line is None or len(line) <= MAX_COMMAND_LINE for line in whole)


@given(line=st.binary(max_size=300))
def test_parse_command_answers_any_bytes(line: bytes) -> None:
    """Every line is a command or a POP3Error with a reason; nothing else escapes."""
    try:
        command = parse_command(line)
    except POP3Error as exc:
        assert exc.text and "\r" not in exc.text and "\n" not in exc.text
    else:
        assert command.verb in KNOWN_VERBS
