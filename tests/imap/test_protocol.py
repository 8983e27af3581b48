"""The IMAP protocol machine and tokenizer, fed bytes: whole, one byte at a time, and with
trailing bytes, which must all give the same events."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refmail.errors import IMAPError
from refmail.imap.arguments import (
    Arguments,
    SequenceSet,
    format_date_time,
    parse_date,
    parse_date_time,
)
from refmail.imap.protocol import (
    MAX_NESTING_DEPTH,
    Atom,
    Command,
    IMAPProtocol,
    LiteralRequest,
    Malformed,
    ParenList,
    RawLine,
    String,
    continuation,
    status_response,
    tagged,
)

MAX_LINE = 200
MAX_LITERAL = 1000


def events_of(chunks: list[bytes], *, accept: bool = True) -> list[object]:
    """Feed chunks, answering every LiteralRequest; collect every event."""
    machine = IMAPProtocol(max_line=MAX_LINE, max_literal=MAX_LITERAL)
    out: list[object] = []
    for chunk in chunks:
        machine.receive_data(chunk)
        while (event := machine.next_event()) is not None:
            out.append(event)
            if isinstance(event, LiteralRequest):
                machine.accept_literal() if accept else machine.reject_literal()
    return out


def three_ways(data: bytes, **kw: bool) -> list[object]:
    whole = events_of([data], **kw)
    bytewise = events_of([data[i : i + 1] for i in range(len(data))], **kw)
    assert bytewise == whole
    # trailing bytes: a partial next command must not change what came before
    trailing = events_of([data + b"t9 NO"], **kw)
    assert trailing == whole
    return whole


def commands(data: bytes) -> list[Command]:
    return [e for e in three_ways(data) if isinstance(e, Command)]


# ------------------------------------------------------------------ tokens


def test_simple_command() -> None:
    assert commands(b"a001 NOOP\r\n") == [Command("a001", "NOOP", ())]


def test_verb_is_upper_cased_and_bare_lf_is_tolerated() -> None:
    assert commands(b"a1 noop\n") == [Command("a1", "NOOP", ())]


def test_atoms_quoted_strings_and_lists() -> None:
    (cmd,) = commands(b'A1 STORE 2:4,7 +FLAGS.SILENT (\\Deleted $Label "x y")\r\n')
    assert cmd.name == "STORE"
    assert cmd.args == (
        Atom("2:4,7"),
        Atom("+FLAGS.SILENT"),
        ParenList((Atom("\\Deleted"), Atom("$Label"), String(b"x y"))),
    )


def test_quoted_escapes() -> None:
    (cmd,) = commands(b'a LOGIN "ali\\"ce" "back\\\\slash"\r\n')
    assert cmd.args == (String(b'ali"ce'), String(b"back\\slash"))


def test_invalid_escape_is_bad() -> None:
    (event,) = three_ways(b'a LOGIN "a\\x" b\r\n')
    assert event == Malformed("a", "invalid escape in quoted string")


def test_unterminated_quote_is_bad_and_the_session_goes_on() -> None:
    events = three_ways(b'a1 LOGIN "alice\r\na2 NOOP\r\n')
    assert events == [
        Malformed("a1", "unterminated quoted string"),
        Command("a2", "NOOP", ()),
    ]


def test_fetch_section_keeps_spaces_and_parens() -> None:
    (cmd,) = commands(b"a FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>)\r\n")
    assert cmd.args[1] == ParenList(
        (Atom("UID"), Atom("BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>"))
    )


def test_brackets_in_mailbox_names_are_astring_chars() -> None:
    (cmd,) = commands(b"a SELECT [Gmail]/Sent\r\n")
    assert cmd.args == (Atom("[Gmail]/Sent"),)


def test_uid_prefix() -> None:
    (cmd,) = commands(b"a UID fetch 1:* FLAGS\r\n")
    assert cmd == Command("a", "FETCH", (Atom("1:*"), Atom("FLAGS")), uid=True)


def test_empty_lines_are_ignored() -> None:
    assert commands(b"\r\n\r\na NOOP\r\n") == [Command("a", "NOOP", ())]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"+a NOOP\r\n", "invalid tag"),
        (b"a* NOOP\r\n", "invalid tag"),
        (b"a\r\n", "missing or invalid command name"),
        (b"a 123\r\n", "missing or invalid command name"),
        (b"a UID\r\n", "UID needs a command"),
        (b"a LIST (\r\n", "unterminated list"),
        (b"a LIST )\r\n", "unexpected ')'"),
        (b"a LIST x\x01y\r\n", "control character in command"),
        (b"a LIST \xc3\xa9\r\n", "8-bit data in atom"),
        (b"a FETCH 1 BODY[TEXT\r\n", "unterminated section"),
        (b"a FETCH 1 BODY[\xff]\r\n", "invalid character in section"),
    ],
)
def test_malformed_commands(line: bytes, reason: str) -> None:
    (event,) = three_ways(line)
    assert isinstance(event, Malformed)
    assert event.text == reason
    assert not event.close


def test_nesting_depth_is_bounded() -> None:
    ok = b"(" * MAX_NESTING_DEPTH + b")" * MAX_NESTING_DEPTH
    (cmd,) = commands(b"a X " + ok + b"\r\n")
    assert isinstance(cmd.args[0], ParenList)
    deep = b"(" * (MAX_NESTING_DEPTH + 1) + b")" * (MAX_NESTING_DEPTH + 1)
    (event,) = three_ways(b"a X " + deep + b"\r\n")
    assert event == Malformed("a", "lists nested too deeply")


def test_huge_nesting_within_the_line_limit_does_not_recurse() -> None:
    machine = IMAPProtocol(max_line=100_000, max_literal=10)
    machine.receive_data(b"a X " + b"(" * 50_000 + b"\r\n")
    event = machine.next_event()
    assert event == Malformed("a", "lists nested too deeply")


# ------------------------------------------------------------------ literals


def test_synchronizing_literal() -> None:
    events = three_ways(b"a1 LOGIN {5}\r\nalice {8}\r\nalice-pw\r\n")
    assert events == [
        LiteralRequest("a1", "LOGIN", 5, synchronizing=True),
        LiteralRequest("a1", "LOGIN", 8, synchronizing=True),
        Command("a1", "LOGIN", (String(b"alice", literal=True), String(b"alice-pw", True))),
    ]


def test_non_synchronizing_literal_plus() -> None:
    events = three_ways(b"a APPEND INBOX {12+}\r\nhello\r\nworld\r\n")
    assert events[0] == LiteralRequest("a", "APPEND", 12, synchronizing=False)
    assert events[1] == Command("a", "APPEND", (Atom("INBOX"), String(b"hello\r\nworld", True)))


def test_literal_may_hold_anything() -> None:
    data = b"a1 \r\n\x00{3}\r\n)"
    events = three_ways(b"a APPEND INBOX {%d}\r\n%s\r\n" % (len(data), data))
    assert events[-1] == Command("a", "APPEND", (Atom("INBOX"), String(data, True)))


def test_literal_at_the_limit_and_past_it() -> None:
    events = three_ways(b"a APPEND INBOX {%d}\r\n" % MAX_LITERAL + b"x" * MAX_LITERAL + b"\r\n")
    assert isinstance(events[-1], Command)
    events = three_ways(b"a APPEND INBOX {%d}\r\nb NOOP\r\n" % (MAX_LITERAL + 1))
    assert events == [
        Malformed("a", "literal too big", "TOOBIG", kind="NO"),
        Command("b", "NOOP", ()),
    ]


def test_huge_literal_count_is_refused_without_allocating() -> None:
    events = three_ways(b"a APPEND INBOX {99999999999}\r\nb NOOP\r\n")
    assert events == [
        Malformed("a", "literal too big", "TOOBIG", kind="NO"),
        Command("b", "NOOP", ()),
    ]
    events = three_ways(b"a APPEND INBOX {" + b"9" * 150 + b"}\r\nb NOOP\r\n")
    assert events[0] == Malformed("a", "literal too big", "TOOBIG", kind="NO")


def test_huge_non_synchronizing_literal_closes_the_connection() -> None:
    """RFC 7888 4: its octets are already on the way and would be read as commands."""
    events = three_ways(b"a APPEND INBOX {99999999+}\r\nxxxx\r\n")
    assert events == [Malformed("a", "literal too big", "TOOBIG", close=True)]


def test_negative_literal_is_a_syntax_error() -> None:
    events = three_ways(b"a LOGIN {-100}\r\nb NOOP\r\n")
    assert events == [Malformed("a", "invalid literal"), Command("b", "NOOP", ())]


def test_literal_not_at_end_of_line() -> None:
    (event,) = three_ways(b"a LOGIN {5} x\r\n")
    assert event == Malformed("a", "invalid literal")


def test_rejected_synchronizing_literal_drops_the_command() -> None:
    events = three_ways(b"a APPEND INBOX {5}\r\nb NOOP\r\n", accept=False)
    assert events == [LiteralRequest("a", "APPEND", 5, True), Command("b", "NOOP", ())]


def test_rejected_non_synchronizing_literal_is_skipped() -> None:
    events = three_ways(b"a APPEND INBOX {5+}\r\nb NOO (x) {3+}\r\nabc\r\nc NOOP\r\n", accept=False)
    assert events == [LiteralRequest("a", "APPEND", 5, False), Command("c", "NOOP", ())]


# ------------------------------------------------------------------ line limits


def test_line_at_the_limit_and_one_past() -> None:
    prefix = b"a NOOP "
    at_limit = prefix + b"x" * (MAX_LINE - len(prefix) - 2) + b"\r\n"
    assert len(at_limit) == MAX_LINE
    (cmd,) = commands(at_limit)
    assert cmd.tag == "a"
    past = prefix + b"x" * (MAX_LINE - len(prefix) - 1) + b"\r\n"
    events = three_ways(past + b"b NOOP\r\n")
    assert events == [
        Malformed("a", "command line too long", "TOOBIG"),
        Command("b", "NOOP", ()),
    ]


def test_endless_line_is_answered_once_and_discarded() -> None:
    machine = IMAPProtocol(max_line=MAX_LINE, max_literal=MAX_LITERAL)
    machine.receive_data(b"a NOOP " + b"x" * (MAX_LINE * 3))
    assert machine.next_event() == Malformed("a", "command line too long", "TOOBIG")
    for _ in range(100):
        machine.receive_data(b"x" * 1000)
        assert machine.next_event() is None
        assert machine.buffered < 20  # nothing of the discarded line is kept
    machine.receive_data(b"\r\nb NOOP\r\n")
    assert machine.next_event() == Command("b", "NOOP", ())


def test_literal_text_counts_toward_the_command_limit() -> None:
    line = b"a LOGIN {3}\r\n"
    rest = b"abc " + b"y" * (MAX_LINE - len(line)) + b"\r\n"
    events = three_ways(line + rest + b"b NOOP\r\n")
    assert events[1] == Malformed("a", "command line too long", "TOOBIG")
    assert events[2] == Command("b", "NOOP", ())


# ------------------------------------------------------------------ raw lines, STARTTLS


def test_expect_line_returns_the_next_line_raw() -> None:
    machine = IMAPProtocol(max_line=MAX_LINE, max_literal=MAX_LITERAL)
    machine.receive_data(b"a AUTHENTICATE PLAIN\r\nAGFsaWNl\r\n")
    assert machine.next_event() == Command("a", "AUTHENTICATE", (Atom("PLAIN"),))
    machine.expect_line()
    assert machine.next_event() == RawLine(b"AGFsaWNl")
    assert machine.next_event() is None


def test_discard_buffer_drops_pipelined_bytes() -> None:
    """CVE-2011-0411: nothing sent before TLS may be taken as sent over it."""
    machine = IMAPProtocol(max_line=MAX_LINE, max_literal=MAX_LITERAL)
    machine.receive_data(b"a STARTTLS\r\nb LOGIN alice pw\r\n")
    assert machine.next_event() == Command("a", "STARTTLS", ())
    machine.discard_buffer()
    assert machine.next_event() is None
    machine.receive_data(b"c NOOP\r\n")
    assert machine.next_event() == Command("c", "NOOP", ())


# ------------------------------------------------------------------ arguments


def test_sequence_sets() -> None:
    seqs = SequenceSet.parse("1:3,5,7:*")
    assert list(seqs.numbers(9)) == [1, 2, 3, 5, 7, 8, 9]
    assert list(SequenceSet.parse("4:2").numbers(10)) == [2, 3, 4]
    assert list(SequenceSet.parse("*").numbers(6)) == [6]
    assert SequenceSet.parse("3,3,1:2").resolve(5) == [(3, 3), (3, 3), (1, 2)]
    assert SequenceSet.parse("1:*").uses_star()


@pytest.mark.parametrize("text", ["", "0", "1:", ":2", "1,,2", "a", "4294967296", "01", "1:-2"])
def test_bad_sequence_sets(text: str) -> None:
    with pytest.raises(IMAPError) as info:
        SequenceSet.parse(text)
    assert info.value.kind == "BAD"


def test_arguments_cursor() -> None:
    args = Arguments((Atom("INBOX"), String(b"x"), ParenList((Atom("A"),)), Atom("42")))
    assert args.astring() == b"INBOX"
    assert args.text() == "x"
    assert args.paren_list() == (Atom("A"),)
    assert args.number() == 42
    args.end()
    with pytest.raises(IMAPError, match="missing"):
        args.atom("mailbox")
    with pytest.raises(IMAPError, match="too many"):
        Arguments((Atom("x"),)).end()
    with pytest.raises(IMAPError, match="must be an atom"):
        Arguments((String(b"x"),)).atom("item")
    assert Arguments((Atom("NIL"),)).nstring() is None


def test_dates() -> None:
    assert parse_date("1-Feb-1994") == datetime.date(1994, 2, 1)
    moment = parse_date_time("17-Jul-1996 02:44:25 -0700")
    assert moment.utcoffset() == datetime.timedelta(hours=-7)
    assert format_date_time(moment) == '"17-Jul-1996 02:44:25 -0700"'
    assert parse_date_time(" 7-Jul-1996 02:44:25 +0000").day == 7
    for bad in ("31-Feb-1994", "1-Foo-1994", "1994-02-01"):
        with pytest.raises(IMAPError):
            parse_date(bad)
    with pytest.raises(IMAPError):
        parse_date_time("17-Jul-1996 25:44:25 -0700")


# ------------------------------------------------------------------ responses


def test_response_formatting() -> None:
    assert tagged("a1", "OK", "done") == b"a1 OK done\r\n"
    assert tagged("a1", "NO", "no\r\nsuch", "TRYCREATE") == b"a1 NO [TRYCREATE] no  such\r\n"
    assert status_response("BYE", "bye") == b"* BYE bye\r\n"
    assert continuation("go") == b"+ go\r\n"


# ------------------------------------------------------------------ fuzzing

IMAP_ALPHABET = b' ()[]{}<>"\\*%+-.:,0123456789aAbBLODYNIPSTUX\r\n\x00\x7f\xc3'


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(IMAP_ALPHABET)), max_size=300).map(bytes))
def test_any_input_gives_events_not_exceptions(data: bytes) -> None:
    """A fuzz target beside the parser (as Dovecot keeps one): arbitrary bytes never raise,
    and the events do not depend on how the bytes were split."""
    whole = events_of([data])
    assert events_of([data[i : i + 1] for i in range(len(data))]) == whole
    for event in whole:
        assert isinstance(event, (Command, Malformed, LiteralRequest))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    events_of([data])
    events_of([data], accept=False)
