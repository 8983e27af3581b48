"""SEARCH keys (RFC 3501 6.4.4): parsing and evaluation over handmade messages."""

from __future__ import annotations

import base64
import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmail.imap.arguments import SequenceSet
from refmail.imap.message import decode_header_value
from refmail.imap.protocol import Atom, ParenList, String
from refmail.imap.search import (
    MAX_SEARCH_DEPTH,
    All,
    And,
    BadCharset,
    BodyContains,
    DateKey,
    HasFlag,
    HeaderContains,
    MessageView,
    Not,
    Or,
    Recent,
    SearchContext,
    SearchError,
    SeqSetKey,
    SizeKey,
    TextContains,
    matches,
    needs_message,
    parse_search,
    search,
)

UTC = datetime.UTC
PLUS2 = datetime.timezone(datetime.timedelta(hours=2))


def crlf(text: str, charset: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(charset)


def atoms(text: str) -> list[object]:
    """A search program as the protocol's tokens; "(" and ")" make ParenLists and "quoted"
    words become Strings."""
    stack: list[list[object]] = [[]]
    for word in re.findall(r'"[^"]*"|[()]|[^\s()"]+', text):
        if word == "(":
            stack.append([])
        elif word == ")":
            items = stack.pop()
            stack[-1].append(ParenList(tuple(items)))  # type: ignore[arg-type]
        elif word.startswith('"'):
            stack[-1].append(String(word.strip('"').encode()))
        else:
            stack[-1].append(Atom(word))
    return stack[0]


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("ALL", All()),
        ("answered", HasFlag("\\Answered")),
        ("UNDELETED", Not(HasFlag("\\Deleted"))),
        ("DRAFT UNDRAFT", And((HasFlag("\\Draft"), Not(HasFlag("\\Draft"))))),
        ("FLAGGED UNFLAGGED", And((HasFlag("\\Flagged"), Not(HasFlag("\\Flagged"))))),
        ("SEEN UNSEEN", And((HasFlag("\\Seen"), Not(HasFlag("\\Seen"))))),
        ("UNANSWERED", Not(HasFlag("\\Answered"))),
        ("KEYWORD $Forwarded", HasFlag("$Forwarded")),
        ("UNKEYWORD Junk", Not(HasFlag("Junk"))),
        ("NEW", And((Recent(), Not(HasFlag("\\Seen"))))),
        ("OLD", Not(Recent())),
        ("RECENT", Recent()),
        ('FROM "Smith"', HeaderContains("From", "Smith")),
        ("TO bob CC carol BCC dave", And((HeaderContains("To", "bob"),
                                          HeaderContains("Cc", "carol"),
                                          HeaderContains("Bcc", "dave")))),
        ('SUBJECT "lunch"', HeaderContains("Subject", "lunch")),
        ('HEADER X-Mailer ""', HeaderContains("X-Mailer", "")),
        ('BODY "x" TEXT "y"', And((BodyContains("x"), TextContains("y")))),
        ("BEFORE 1-Feb-1994", DateKey("internal", "before", datetime.date(1994, 2, 1))),
        ('ON "01-Feb-1994"', DateKey("internal", "on", datetime.date(1994, 2, 1))),
        ("SINCE 29-feb-2024", DateKey("internal", "since", datetime.date(2024, 2, 29))),
        ("SENTBEFORE 1-Jan-2000", DateKey("sent", "before", datetime.date(2000, 1, 1))),
        ("SENTON 1-Jan-2000", DateKey("sent", "on", datetime.date(2000, 1, 1))),
        ("SENTSINCE 1-Jan-2000", DateKey("sent", "since", datetime.date(2000, 1, 1))),
        ("LARGER 100 SMALLER 4294967295",
         And((SizeKey("larger", 100), SizeKey("smaller", 4294967295)))),
        ("1:3,5,7:*", SeqSetKey(SequenceSet(((1, 3), (5, 5), (7, None))))),
        ("UID 10:*", SeqSetKey(SequenceSet(((10, None),)), uid=True)),
        ("NOT SEEN", Not(HasFlag("\\Seen"))),
        ("OR SEEN FLAGGED", Or(HasFlag("\\Seen"), HasFlag("\\Flagged"))),
        ("OR (SEEN FLAGGED) NOT (DELETED)",
         Or(And((HasFlag("\\Seen"), HasFlag("\\Flagged"))), Not(HasFlag("\\Deleted")))),
        # RFC 3501 6.4.4's own examples.
        ('FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
         And((HasFlag("\\Flagged"), DateKey("internal", "since", datetime.date(1994, 2, 1)),
              Not(HeaderContains("From", "Smith"))))),
        ('TEXT "string not in mailbox"', TextContains("string not in mailbox")),
    ],
)
def test_parse(program: str, expected: object) -> None:
    assert parse_search(atoms(program)) == expected


def test_parse_plain_python_tokens() -> None:
    """str atoms, bytes strings and Python lists work as well as the protocol's tokens."""
    key = parse_search(["OR", ["SEEN", "FROM", b"smith"], "SUBJECT", b"hi"])
    assert key == Or(And((HasFlag("\\Seen"), HeaderContains("From", "smith"))),
                     HeaderContains("Subject", "hi"))


def test_charset() -> None:
    """RFC 3501 6.4.4: SEARCH CHARSET UTF-8 TEXT {6} and a literal of UTF-8."""
    word = "Gr\u00fc\u00df"
    key = parse_search([Atom("CHARSET"), Atom("UTF-8"), Atom("TEXT"),
                        String(word.encode(), literal=True)])
    assert key == TextContains(word)
    assert parse_search([Atom("TEXT"), String(word.encode())], "UTF-8") == TextContains(word)
    with pytest.raises(SearchError, match="not valid"):
        parse_search([Atom("TEXT"), String(word.encode())])  # US-ASCII by default
    with pytest.raises(BadCharset):
        parse_search(atoms("CHARSET KOI8-R TEXT x"))
    with pytest.raises(SearchError, match="not valid"):
        parse_search([Atom("CHARSET"), Atom("UTF-8"), Atom("BODY"), String(b"\xff\xfe")])


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("", "missing search key"),
        ("FROBNICATE", "unknown search key"),
        ("FROM", "missing FROM string"),
        ("OR SEEN", "missing search key"),
        ("NOT", "missing search key"),
        ("BEFORE 31-Feb-2024", "invalid BEFORE date"),
        ("SINCE 1-Foo-2024", "invalid SINCE date"),
        ("ON 2024-01-01", "invalid ON date"),
        ("LARGER -1", "invalid LARGER size"),
        ("SMALLER 4294967296", "invalid SMALLER size"),
        ("LARGER (1)", "must be an atom"),
        ("UID 0:3", "invalid sequence set"),
        ("UID", "missing UID set"),
        ("1:3:5", "invalid sequence set"),
        ("()", "empty parenthesized"),
        ("HEADER Bad:Name x", "invalid header field name"),
        ("KEYWORD", "missing keyword"),
    ],
)
def test_parse_errors(program: str, reason: str) -> None:
    with pytest.raises(SearchError, match=reason):
        parse_search(atoms(program))


def test_nesting_is_bounded() -> None:
    parse_search(atoms("NOT " * (MAX_SEARCH_DEPTH - 1) + "SEEN"))
    with pytest.raises(SearchError, match="nested too deeply"):
        parse_search(atoms("NOT " * 5000 + "SEEN"))


# ------------------------------------------------------------------------------ evaluation

PLAIN = crlf(
    "From: John Smith <smith@example.org>\n"
    "To: bob@example.com\n"
    "Cc: Carol <carol@example.net>\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from K\u00f6ln\n"
    "Date: Mon, 31 Jan 1994 23:30:00 -0800\n"
    "X-Mailer: handmade\n"
    "\n"
    "Lunch on Tuesday?\n"
)
ENCODED = crlf(
    "From: alice@example.org\n"
    "Subject: report\n"
    "Date: garbage\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Sch=C3=B6ne Gr=C3=BC=C3=9Fe,\n"
    "the numbers are=\n"
    " attached.\n"
    "--b\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    + base64.b64encode("Caf\u00e9 cr\u00e8me".encode("latin-1")).decode()
    + "\n--b\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    + base64.b64encode(b"secret binary needle").decode()
    + "\n--b\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: inner@example.com\n"
    "Subject: =?ISO-8859-1?Q?inner_=E9t=E9?=\n"
    "\n"
    "inner body text\n"
    "--b--\n"
)


class Reader:
    """message_bytes that counts its calls."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.data


def view(data: bytes = PLAIN, *, seq: int = 1, uid: int = 10, flags: tuple[str, ...] = (),
         recent: bool = False,
         internaldate: datetime.datetime = datetime.datetime(1994, 2, 1, 7, 45, tzinfo=UTC),
         ) -> MessageView:
    return MessageView(seq, uid, len(data), frozenset(flags), internaldate, recent,
                       Reader(data))


def check(program: str, message: MessageView, context: SearchContext | None = None) -> bool:
    return matches(parse_search(atoms(program), "UTF-8"), message, context)


def test_flags_never_read_the_message() -> None:
    message = view(flags=("\\Seen", "\\flagged", "$Label1"), recent=True)
    for program, expected in [
        ("ALL", True), ("SEEN", True), ("UNSEEN", False), ("FLAGGED", True),
        ("ANSWERED", False), ("UNANSWERED", True), ("DELETED", False), ("UNDELETED", True),
        ("DRAFT", False), ("UNDRAFT", True), ("KEYWORD $label1", True),
        ("UNKEYWORD $Label1", False), ("KEYWORD Other", False), ("RECENT", True),
        ("NEW", False), ("OLD", False), ("LARGER 10", True), ("SMALLER 10", False),
        ("BEFORE 2-Feb-1994", True), ("ON 1-Feb-1994", True), ("SINCE 2-Feb-1994", False),
        ("1", True), ("UID 10", True), ("UID 11:20", False),
        ("OR SEEN DELETED", True), ("(SEEN DELETED)", False), ("NOT (SEEN DELETED)", True),
    ]:
        assert check(program, message) is expected, program
    assert message.message_bytes.calls == 0  # type: ignore[attr-defined]
    assert not needs_message(parse_search(atoms("OR SEEN (NOT LARGER 5 UID 1:*)")))
    assert needs_message(parse_search(atoms("OR SEEN NOT SENTON 1-Jan-2000")))


def test_new_is_recent_and_unseen() -> None:
    assert check("NEW", view(recent=True))
    assert not check("NEW", view(recent=False))
    assert check("OLD", view(recent=False))


def test_size_comparisons_are_strict() -> None:
    """RFC 3501 6.4.4: LARGER is "larger than", SMALLER "smaller than"."""
    message = view()
    size = len(PLAIN)
    assert check(f"LARGER {size - 1}", message)
    assert not check(f"LARGER {size}", message)
    assert check(f"SMALLER {size + 1}", message)
    assert not check(f"SMALLER {size}", message)


def test_star_in_sequence_sets() -> None:
    context = SearchContext(largest_seq=5, largest_uid=42)
    assert check("5:*", view(seq=5), context)
    assert not check("2:*", view(seq=1), context)
    with pytest.raises(ValueError, match="SearchContext"):
        check("2:*", view(seq=1))
    assert not check("*", view(seq=4), context)
    assert check("UID *", view(uid=42), context)
    assert check("UID 50:*", view(uid=42), context)  # 50:* is 42:50 (RFC 3501 9)
    assert not check("UID 50:*", view(uid=41), context)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ('FROM "smith"', True),
        ('FROM "JOHN SMITH"', True),
        ('FROM "example.org"', True),
        ('FROM "bob"', False),
        ('TO "bob@"', True),
        ('CC "carol"', True),
        ('BCC "x"', False),
        ('SUBJECT "GR\u00dc\u00dfE"', True),  # RFC 2047 decoded, case-insensitive
        ('SUBJECT "k\u00f6ln"', True),  # raw UTF-8 header (RFC 6532)
        ('SUBJECT "=?UTF-8"', False),
        ('HEADER X-Mailer "HAND"', True),
        ('HEADER X-Mailer ""', True),
        ('HEADER X-Other ""', False),
        ('BODY "tuesday"', True),
        ('BODY "Smith"', False),
        ('TEXT "Smith"', True),
        ('TEXT "tuesday"', True),
        ('TEXT "wednesday"', False),
        # Sent date: 31 Jan 1994 in its own zone, although 1 Feb in UTC.
        ("SENTON 31-Jan-1994", True),
        ("SENTBEFORE 1-Feb-1994", True),
        ("SENTSINCE 1-Feb-1994", False),
        ("SENTSINCE 31-Jan-1994", True),
    ],
)
def test_header_body_and_sent_keys(program: str, expected: bool) -> None:
    assert check(program, view(), None) is expected


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ('BODY "sch\u00f6ne gr\u00fc\u00dfe"', True),  # quoted-printable UTF-8
        ('BODY "numbers are attached"', True),  # soft line break joined
        ('BODY "caf\u00e9 CR\u00c8ME"', True),  # base64 ISO-8859-1
        ('BODY "needle"', False),  # application/octet-stream is not text
        ('BODY "inner body"', True),  # the encapsulated message's body
        ('BODY "\u00e9t\u00e9"', True),  # ... and its RFC 2047 header
        ('SUBJECT "\u00e9t\u00e9"', False),  # not the outer subject
        ('TEXT "alice"', True),
        ('BODY "alice"', False),
        ("SENTON 1-Feb-1994", True),  # unparseable Date: falls back to INTERNALDATE
    ],
)
def test_decoded_body_search(program: str, expected: bool) -> None:
    parsed = parse_search(atoms(program), "UTF-8")
    assert matches(parsed, view(ENCODED)) is expected


def test_message_is_read_once_per_evaluation() -> None:
    message = view()
    key = parse_search(atoms('FROM "smith" BODY "lunch" SENTON 31-Jan-1994 TEXT "x-mailer"'))
    assert matches(key, message)
    assert message.message_bytes.calls == 1  # type: ignore[attr-defined]


def test_search_many() -> None:
    views = [view(seq=1, flags=("\\Seen",)), view(ENCODED, seq=2), view(seq=3)]
    found = search(parse_search(atoms('OR SEEN FROM "alice"')), views)
    assert [v.seq for v in found] == [1, 2]


# ------------------------------------------------------------------------------ robustness

header_pieces = st.sampled_from([
    "=?", "?=", "?q?", "?b?", "utf-8", "=FF", "abc", " ", "=?utf-8?q?", "=?utf-8?b?", "w5",
    "==", "\r\n ", "_", "rot13", "=?utf-16?b?", "=?x-unknown?q?", "\u00e9", "Mon, 1 Jan",
    " 99999 ", "+9999", "Feb", ":", "(", ")", "<", ">", "@", ",", ";", '"',
])


@given(st.lists(header_pieces, max_size=12).map("".join), st.binary(max_size=80))
def test_arbitrary_headers_never_break_evaluation(value: str, body: bytes) -> None:
    raw = value.encode("utf-8")
    data = (b"Subject: %s\r\nDate: %s\r\nFrom: %s\r\n"
            b"Content-Type: text/plain; charset=%s\r\n\r\n" % (raw, raw, raw, raw)) + body
    decode_header_value(raw)
    key = parse_search(atoms('OR SUBJECT "x" OR TEXT "y" OR BODY "z" SENTON 1-Jan-2000'))
    matches(key, view(data))
