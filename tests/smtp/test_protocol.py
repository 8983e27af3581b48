"""The sans-IO SMTP framing: each input whole, one byte at a time, and with trailing bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refmail import parse
from refmail.errors import SMTPError
from refmail.smtp.protocol import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    AuthResponse,
    BadCommandLine,
    Chunk,
    Command,
    CommandTooLong,
    MessageContent,
    Mode,
    SMTPProtocol,
    format_reply,
    parse_bdat,
    parse_mail_from,
    parse_rcpt_to,
)

SIZE = 10_000


def events(data: bytes, how: str, *, setup=None) -> list:
    """Feed ``data`` ``how`` ("whole", "bytewise", "halves") and collect events; a command
    ``DATA`` switches to DATA mode and ``BDAT n`` to chunk mode, as the session does."""
    proto = SMTPProtocol(message_size=SIZE)
    if setup:
        setup(proto)
    if how == "whole":
        pieces = [data]
    elif how == "bytewise":
        pieces = [data[i : i + 1] for i in range(len(data))]
    else:
        pieces = [data[: len(data) // 2], data[len(data) // 2 :]]
    found = []
    for piece in pieces:
        proto.receive_data(piece)
        while (event := proto.next_event()) is not None:
            found.append(event)
            if isinstance(event, Command) and event.verb == "DATA":
                proto.start_data()
            elif isinstance(event, Command) and event.verb == "BDAT":
                proto.start_bdat(int(event.arg.split()[0]), keep=True)
    return found


HOW = ["whole", "bytewise", "halves"]


@pytest.mark.parametrize("how", HOW)
def test_commands_crlf_and_bare_lf(how):
    got = events(b"EHLO a.example\r\nmail FROM:<x@y>\nNOOP\r\n", how)
    assert got == [
        Command("EHLO", b"a.example"),
        Command("MAIL", b"FROM:<x@y>"),
        Command("NOOP", b""),
    ]


@pytest.mark.parametrize("how", HOW)
def test_trailing_partial_line_waits(how):
    got = events(b"NOOP\r\nRSE", how)
    assert got == [Command("NOOP", b"")]


@pytest.mark.parametrize("how", HOW)
def test_command_line_limit_n_and_n_plus_one(how):
    ok = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(ok) == MAX_COMMAND_LINE
    long = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 6) + b"\r\n"
    got = events(ok + long + b"QUIT\r\n", how)
    assert got[0] == Command("NOOP", b"x" * (MAX_COMMAND_LINE - 7))
    assert got[1] == CommandTooLong(MAX_COMMAND_LINE)
    assert got[2:] == [Command("QUIT", b"")]


@pytest.mark.parametrize("how", HOW)
def test_endless_line_is_discarded_until_lf(how):
    got = events(b"X" * (MAX_AUTH_LINE * 2) + b"\r\nQUIT\r\n", how)
    assert got == [CommandTooLong(MAX_COMMAND_LINE), Command("QUIT", b"")]


def test_buffer_is_bounded_while_discarding():
    proto = SMTPProtocol(message_size=SIZE)
    for _ in range(100):
        proto.receive_data(b"Y" * 10_000)
        while proto.next_event() is not None:
            pass
        assert proto.buffered <= MAX_AUTH_LINE


@pytest.mark.parametrize("how", HOW)
def test_auth_line_may_exceed_command_limit(how):
    arg = b"PLAIN " + b"A" * 1000
    got = events(b"AUTH " + arg + b"\r\n", how)
    assert got == [Command("AUTH", arg)]


@pytest.mark.parametrize("line", [b"\r\n", b"NO\0OP\r\n", b"123 abc\r\n"])
def test_bad_command_lines(line):
    (event,) = events(line, "whole")
    assert isinstance(event, BadCommandLine)


@pytest.mark.parametrize("how", HOW)
def test_data_unstuffed_and_terminated(how):
    data = b"DATA\r\nSubject: x\r\n\r\n..leading dot\r\nbare\nend\r\n.\r\nQUIT\r\n"
    got = events(data, how)
    assert got[0] == Command("DATA", b"")
    message = got[1]
    assert isinstance(message, MessageContent)
    assert message.content == b"Subject: x\r\n\r\n.leading dot\r\nbare\r\nend\r\n"
    assert message.flags & parse.DATA_BARE_LF
    assert not message.oversize
    assert got[2:] == [Command("QUIT", b"")]


@pytest.mark.parametrize("how", HOW)
def test_data_smuggling_terminators_are_content(how):
    data = b"DATA\r\na\n.\nb\r\n.\nc\r\n.\r\n"
    got = events(data, how)
    assert len(got) == 2  # ".\n" and "\n.\r\n" did not end it: they are content, unstuffed
    assert got[1].content == b"a\r\n\r\nb\r\n\r\nc\r\n"


@pytest.mark.parametrize("how", HOW)
def test_data_oversize_read_to_end(how):
    body = (b"y" * 98 + b"\r\n") * 200  # 20_000 octets > SIZE
    got = events(b"DATA\r\n" + body + b".\r\nNOOP\r\n", how)
    assert got[1] == MessageContent(b"", len(body), 0, True)
    assert got[2] == Command("NOOP", b"")


@pytest.mark.parametrize("how", HOW)
def test_data_flags(how):
    body = b"\xc3\xa9t\xc3\xa9\r\nnul\0\r\n" + b"z" * 1200 + b"\r\n.\r\n"
    got = events(b"DATA\r\n" + body, how)
    flags = got[1].flags
    assert flags & parse.DATA_8BIT and flags & parse.DATA_NUL and flags & parse.DATA_LONG_LINE


@pytest.mark.parametrize("how", HOW)
def test_bdat_reads_by_count(how):
    got = events(b"BDAT 6\r\nQUIT\r\nBDAT 0 LAST\r\nNOOP\r\n", how)
    assert got == [
        Command("BDAT", b"6"),
        Chunk(b"QUIT\r\n", 6, True),  # chunk octets are never commands
        Command("BDAT", b"0 LAST"),
        Chunk(b"", 0, True),
        Command("NOOP", b""),
    ]


def test_bdat_discard_keeps_nothing():
    proto = SMTPProtocol(message_size=SIZE)
    proto.start_bdat(5, keep=False)
    proto.receive_data(b"abcdeNOOP\r\n")
    assert proto.next_event() == Chunk(b"", 5, False)
    assert proto.next_event() == Command("NOOP", b"")


def test_auth_response_mode():
    proto = SMTPProtocol(message_size=SIZE)
    proto.receive_data(b"dXNlcg==\r\n*\r\n")
    proto.expect_auth_response()
    assert proto.next_event() == AuthResponse(b"dXNlcg==")
    assert proto.mode is Mode.COMMAND
    proto.expect_auth_response()
    assert proto.next_event() == AuthResponse(b"*")


def test_discard_buffered():
    proto = SMTPProtocol(message_size=SIZE)
    proto.receive_data(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
    assert proto.next_event() == Command("STARTTLS", b"")
    assert proto.discard_buffered() == len(b"MAIL FROM:<evil@x>\r\n")
    assert proto.next_event() is None


def test_format_reply():
    assert format_reply(250, "OK", "2.0.0") == b"250 2.0.0 OK\r\n"
    assert format_reply(250, ["a", "b", "c"]) == b"250-a\r\n250-b\r\n250 c\r\n"
    assert format_reply(214, ["x", "y"], "2.0.0") == b"214-2.0.0 x\r\n214 2.0.0 y\r\n"
    assert format_reply(550, "evil\r\n250 ok", "5.1.1") == b"550 5.1.1 evil??250 ok\r\n"
    assert len(format_reply(500, "x" * 2000)) == 512


def test_parse_mail_and_rcpt():
    mail = parse_mail_from(b"FROM:<a@b.example> SIZE=100 body=8bitmime SMTPUTF8")
    assert mail.path == b"a@b.example"
    assert dict(mail.params) == {"SIZE": "100", "BODY": "8bitmime", "SMTPUTF8": None}
    assert parse_mail_from(b"FROM:<>").path == b""
    assert parse_rcpt_to(b"TO:<Postmaster>").path.lower() == b"postmaster"
    for bad in (b"FROM:a@b", b"FROM:<a@b", b"TO:<a@b>", b"FROM:<a@b> SIZE=1 SIZE=2"):
        with pytest.raises(SMTPError) as info:
            parse_mail_from(bad)
        assert info.value.code == 501
    with pytest.raises(SMTPError):
        parse_rcpt_to(b"TO:<>")


def test_parse_bdat():
    assert parse_bdat(b"100 LAST").last and parse_bdat(b"100").size == 100
    for bad in (b"", b"x", b"-1", b"10 FIRST", b"1 LAST more"):
        with pytest.raises(SMTPError):
            parse_bdat(bad)


TRANSCRIPT = (
    b"EHLO a.example\r\nMAIL FROM:<x@y.example> BODY=8BITMIME\nRCPT TO:<b@c.example>\r\n"
    b"DATA\r\nSubject: s\r\n\r\n..dot\r\nbare\n.\nmore\r\n.\r\n"
    b"BDAT 9\r\nDATA\r\n.\r\nBDAT 0 LAST\r\n" + b"N" * 600 + b"\r\nNO\0OP\r\nQUIT\r\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=12))
def test_any_split_gives_the_same_events(cuts):
    """h11's reader property: however the bytes are chunked, the events are the same."""
    expected = events(TRANSCRIPT, "whole")
    proto = SMTPProtocol(message_size=SIZE)
    bounds = [0, *sorted(cuts), len(TRANSCRIPT)]
    found = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        proto.receive_data(TRANSCRIPT[lo:hi])
        while (event := proto.next_event()) is not None:
            found.append(event)
            if isinstance(event, Command) and event.verb == "DATA":
                proto.start_data()
            elif isinstance(event, Command) and event.verb == "BDAT":
                proto.start_bdat(int(event.arg.split()[0]), keep=True)
    assert found == expected
    assert [type(e).__name__ for e in expected] == [
        "Command", "Command", "Command", "Command", "MessageContent",
        "Command", "Chunk", "Command", "Chunk", "CommandTooLong", "BadCommandLine", "Command",
    ]  # fmt: skip
