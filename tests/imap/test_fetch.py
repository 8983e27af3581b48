"""FETCH data items (RFC 3501 6.4.5, 7.4.2): ENVELOPE, BODY/BODYSTRUCTURE, BODY[section]."""

from __future__ import annotations

import datetime
import email
import email.policy
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmail.imap import fetch
from refmail.imap.fetch import FetchSpec, apply_partial, bodystructure, envelope, section
from refmail.imap.message import MAX_MIME_DEPTH, MAX_MIME_PARTS, parse_message
from refmail.imap.protocol import Command, String, parse_command


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def text_body(size: int, lines: int, final_newline: bool) -> bytes:
    """``lines`` lines of 'x' totalling ``size`` octets with their CRLFs (the last one without
    a CRLF when ``final_newline`` is False, as a body part before its delimiter is)."""
    endings = 2 * (lines if final_newline else lines - 1)
    content = size - endings
    base, extra = divmod(content, lines)
    rows = [b"x" * (base + (1 if i < extra else 0)) for i in range(lines)]
    out = b"\r\n".join(rows) + (b"\r\n" if final_newline else b"")
    assert len(out) == size
    return out


# ------------------------------------------------------------------------------ RFC 3501 examples

RFC_HEADER = crlf(
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
    "From: Terry Gray <gray@cac.washington.edu>\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\n"
    "To: imap@cac.washington.edu\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
)
RFC_MESSAGE = RFC_HEADER + text_body(3028, 92, final_newline=True)


def test_rfc3501_envelope_example() -> None:
    """RFC 3501 7.4.2, the FETCH response example."""
    assert envelope(RFC_MESSAGE) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_rfc3501_body_example() -> None:
    """RFC 3501 7.4.2: BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)."""
    assert bodystructure(RFC_MESSAGE, extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )
    assert bodystructure(RFC_MESSAGE) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'
    )


def test_rfc3501_multipart_bodystructure_example() -> None:
    """RFC 3501 7.4.2, the BODYSTRUCTURE example: two text parts, the second base64."""
    part1 = text_body(1152, 23, final_newline=False)
    part2 = text_body(4554, 73, final_newline=False)
    message = (
        crlf("From: a@b.example\nMIME-Version: 1.0\n"
             'Content-Type: MULTIPART/MIXED; BOUNDARY="--=_b"\n\n'
             "----=_b\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\n")
        + part1
        + crlf("\n----=_b\n"
               'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME="cc.diff"\n'
               "Content-ID: <960723163407.20117h@cac.washington.edu>\n"
               "Content-Description: Compiler diff\n"
               "Content-Transfer-Encoding: BASE64\n\n")
        + part2
        + crlf("\n----=_b--\n")
    )
    assert bodystructure(message, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")'
    )


def test_rfc3501_header_fields_example() -> None:
    """RFC 3501 6.4.5 FETCH example: BODY[HEADER.FIELDS (DATE FROM)]."""
    spec = FetchSpec(text="HEADER.FIELDS", fields=("DATE", "FROM"))
    assert section(RFC_MESSAGE, spec) == crlf(
        "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
        "From: Terry Gray <gray@cac.washington.edu>\n\n"
    )
    assert fetch.format_section_name(spec) == b'BODY[HEADER.FIELDS ("DATE" "FROM")]'


def test_internaldate_format() -> None:
    """RFC 3501 7.4.2 example INTERNALDATE "17-Jul-1996 02:44:25 -0700"."""
    zone = datetime.timezone(-datetime.timedelta(hours=7))
    moment = datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=zone)
    assert fetch.internaldate(moment) == b'"17-Jul-1996 02:44:25 -0700"'
    east = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    assert fetch.internaldate(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=east)) == (
        b'"02-Jan-2024 03:04:05 +0530"'
    )
    with pytest.raises(ValueError, match="timezone"):
        fetch.internaldate(datetime.datetime(2024, 1, 2))


# ------------------------------------------------------------------------------ a corpus

PLAIN = crlf(
    "Return-Path: <alice@example.org>\n"
    "From: Alice <alice@example.org>\n"
    "To: bob@example.com\n"
    "Subject: lunch\n"
    "Date: Mon, 3 Jun 2024 12:00:00 +0200\n"
    "Message-ID: <1@example.org>\n"
    "\n"
    "Shall we?\n"
    "-- \n"
    "Alice\n"
)

# Pieces of a multipart/mixed message with an alternative, an attachment and a forwarded
# message, kept apart so every section's exact bytes are known independently of the parser.
OUTER_HEADER = crlf(
    "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\n"
    "To: Team: ann@example.com, \"Bob B.\" <bob@example.com>;, carol@example.net\n"
    "Subject: =?UTF-8?B?w5xiZXJzaWNodA==?= report\n"
    "Date: Tue, 4 Jun 2024 09:30:00 +0000\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed;\n"
    ' boundary="outer"\n'
    "Content-Language: de, en\n"
    "\n"
)
ALT_MIME = crlf('Content-Type: multipart/alternative; boundary="alt"\n\n')
PLAIN_MIME = crlf(
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
)
PLAIN_BODY = crlf("Gr=C3=BC=C3=9Fe aus K=C3=B6ln,\nder Bericht ist angeh=C3=A4ngt.")
HTML_MIME = crlf("Content-Type: text/html; charset=\"utf-8\"\n\n")
HTML_BODY = crlf("<p>Gr\u00fc\u00dfe aus K\u00f6ln</p>")
ALT_BODY = (
    crlf("--alt\n") + PLAIN_MIME + PLAIN_BODY + crlf("\n--alt\n") + HTML_MIME + HTML_BODY
    + crlf("\n--alt--\n")
)
PDF_MIME = crlf(
    "Content-Type: application/pdf; name=\"r.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment;\n"
    " filename*0*=utf-8''%E2%82%AC; filename*1=\"uro report.pdf\"\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Location: http://example.de/r.pdf\n"
    "Content-Language: de\n\n"
)
PDF_BODY = crlf(
    "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0Zp\nbHRlci9GbGF0ZURlY29kZT4+"
)
INNER_HEADER = crlf(
    "From: Dave <dave@example.com>\n"
    "Subject: the original\n"
    "Date: Sun, 2 Jun 2024 08:00:00 -0500\n"
    "Message-ID: <orig@example.com>\n"
    "Content-Type: multipart/alternative; boundary=\"in\"\n\n"
)
INNER_PART1_MIME = crlf("Content-Type: text/plain\n\n")
INNER_PART1_BODY = crlf("original text\nsecond line")
INNER_PART2_MIME = crlf("Content-Type: text/enriched\n\n")
INNER_PART2_BODY = crlf("<bold>original</bold>")
INNER_BODY = (
    crlf("--in\n") + INNER_PART1_MIME + INNER_PART1_BODY + crlf("\n--in\n") + INNER_PART2_MIME
    + INNER_PART2_BODY + crlf("\n--in--")
)
INNER_MESSAGE = INNER_HEADER + INNER_BODY
FWD_MIME = crlf("Content-Type: message/rfc822\nContent-Description: forwarded\n\n")
MIXED = (
    OUTER_HEADER
    + crlf("This is a MIME message.\n--outer\n") + ALT_MIME + ALT_BODY
    + crlf("\n--outer\n") + PDF_MIME + PDF_BODY
    + crlf("\n--outer\n") + FWD_MIME + INNER_MESSAGE
    + crlf("\n--outer--\nepilogue\n")
)
MIXED_BODY = MIXED[len(OUTER_HEADER):]


def spec(part: tuple[int, ...] = (), text: str | None = None, *fields: str) -> FetchSpec:
    return FetchSpec(part, text, tuple(fields))


@pytest.mark.parametrize(
    ("spec_", "expected"),
    [
        (spec(), MIXED),
        (spec((), "HEADER"), OUTER_HEADER),
        (spec((), "TEXT"), MIXED_BODY),
        (spec((1,)), ALT_BODY),
        (spec((1,), "MIME"), ALT_MIME),
        (spec((1, 1)), PLAIN_BODY),
        (spec((1, 1), "MIME"), PLAIN_MIME),
        (spec((1, 2)), HTML_BODY),
        (spec((1, 2), "MIME"), HTML_MIME),
        (spec((2,)), PDF_BODY),
        (spec((2,), "MIME"), PDF_MIME),
        (spec((3,)), INNER_MESSAGE),
        (spec((3,), "MIME"), FWD_MIME),
        (spec((3,), "HEADER"), INNER_HEADER),
        (spec((3,), "TEXT"), INNER_BODY),
        (spec((3, 1)), INNER_PART1_BODY),
        (spec((3, 1), "MIME"), INNER_PART1_MIME),
        (spec((3, 2)), INNER_PART2_BODY),
        (spec((3,), "HEADER.FIELDS", "subject", "FROM"), crlf(
            "From: Dave <dave@example.com>\nSubject: the original\n\n")),
        (spec((3,), "HEADER.FIELDS.NOT", "Subject", "From", "Date", "Message-ID"), crlf(
            "Content-Type: multipart/alternative; boundary=\"in\"\n\n")),
        (spec((), "HEADER.FIELDS", "content-type"), crlf(
            "Content-Type: multipart/mixed;\n boundary=\"outer\"\n\n")),
        (spec((), "HEADER.FIELDS", "X-Absent"), b"\r\n"),
        # Missing parts are empty, not errors.
        (spec((4,)), b""),
        (spec((1, 3)), b""),
        (spec((2, 1)), b""),
        (spec((3, 3)), b""),
        (spec((1, 1, 1)), b""),
        # HEADER/TEXT only address message/rfc822 parts.
        (spec((1,), "HEADER"), b""),
        (spec((2,), "TEXT"), b""),
    ],
    ids=repr,
)
def test_sections_are_the_exact_byte_ranges(spec_: FetchSpec, expected: bytes) -> None:
    assert section(MIXED, spec_) == expected


def test_non_multipart_part_one_is_the_body() -> None:
    """RFC 3501 6.4.5: a non-multipart message has only part 1, its body."""
    header, _, body = PLAIN.partition(b"\r\n\r\n")
    assert section(PLAIN, spec((1,))) == body
    assert section(PLAIN, spec((), "TEXT")) == body
    assert section(PLAIN, spec((1,), "MIME")) == header + b"\r\n\r\n"
    assert section(PLAIN, spec((2,))) == b""
    assert section(PLAIN, spec((1, 1))) == b""
    assert section(PLAIN, spec((1,), "HEADER")) == b""


def test_message_rfc822_top_level() -> None:
    """A message whose own type is message/rfc822: part 1 is the message it holds."""
    message = crlf("From: a@x.example\nContent-Type: message/rfc822\n\n") + INNER_MESSAGE
    assert section(message, spec((1,))) == INNER_MESSAGE
    assert section(message, spec((1,), "HEADER")) == INNER_HEADER
    assert section(message, spec((1, 2))) == INNER_PART2_BODY
    structure = bodystructure(message, extensible=False)
    assert structure.startswith(b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d (' % len(INNER_MESSAGE))


def test_sections_match_the_email_package() -> None:
    """Every leaf's section equals the payload the stdlib parser finds for it."""
    stdlib = email.message_from_bytes(MIXED, policy=email.policy.compat32)
    leaves = [p for p in stdlib.walk() if not p.is_multipart()]
    ours = [(1, 1), (1, 2), (2,), (3, 1), (3, 2)]
    assert len(leaves) == len(ours)
    for leaf, path in zip(leaves, ours, strict=True):
        charset = leaf.get_content_charset() or "ascii"
        expected = leaf.get_payload(decode=False).encode(charset, "surrogateescape")
        assert section(MIXED, spec(path)).replace(b"\r\n", b"\n") == expected.replace(
            b"\r\n", b"\n"
        )


def test_partial() -> None:
    """RFC 3501 6.4.5 <origin.count>."""
    data = b"0123456789"
    assert apply_partial(data, None) == data
    assert apply_partial(data, (0, 3)) == b"012"
    assert apply_partial(data, (8, 5)) == b"89"
    assert apply_partial(data, (10, 1)) == b""
    assert apply_partial(data, (99, 1)) == b""
    item = fetch.body_item(PLAIN, FetchSpec((), "TEXT", (), (0, 5)))
    assert item == b'BODY[TEXT]<0> "Shall"'
    body = PLAIN.partition(b"\r\n\r\n")[2]
    assert fetch.body_item(PLAIN, FetchSpec((1,))) == b"BODY[1] {%d}\r\n%s" % (len(body), body)


def test_envelope_of_the_corpus() -> None:
    """Raw (undecoded) header values, group syntax, defaults for sender and reply-to."""
    assert envelope(MIXED) == (
        b'(NIL "=?UTF-8?B?w5xiZXJzaWNodA==?= report" '.replace(
            b"NIL", b'"Tue, 4 Jun 2024 09:30:00 +0000"', 1)
        + b'(("=?UTF-8?Q?J=C3=B6rg?=" NIL "joerg" "example.de")) ' * 3
        + b'((NIL NIL "Team" NIL)(NIL NIL "ann" "example.com")("Bob B." NIL "bob" "example.com")'
        b'(NIL NIL NIL NIL)(NIL NIL "carol" "example.net")) NIL NIL NIL NIL)'
    )


def test_envelope_missing_headers_and_oddities() -> None:
    message = crlf(
        "Subject: say \"hi\"\n"
        "Sender: Secretary <sec@example.com>\n"
        "Reply-To:\n"
        "Cc: undisclosed-recipients:;\n"
        "Bcc: <@relay.example,@other.example:boss@example.com> (The Boss)\n"
        "In-Reply-To: <x@y>\n"
        "\n"
        "body\n"
    )
    assert envelope(message) == (
        b'(NIL {8}\r\nsay "hi" NIL (("Secretary" NIL "sec" "example.com")) NIL NIL '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'((NIL "@relay.example,@other.example" "boss" "example.com")) "<x@y>" NIL)'
    )
    assert envelope(b"\r\nno header at all\r\n") == b"(" + b" ".join([b"NIL"] * 10) + b")"


def test_envelope_folded_and_8bit_headers() -> None:
    message = crlf("Subject: a long\n\tfolded subject\nFrom: J\u00fcrgen <j@example.de>\n\nx\n")
    out = envelope(message)
    assert b'"a long\tfolded subject"' in out
    name = "J\u00fcrgen".encode()
    assert b"(({%d}\r\n%s NIL " % (len(name), name) in out


def test_bodystructure_extension_data() -> None:
    structure = bodystructure(MIXED)
    assert structure == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" %d 2 NIL NIL NIL NIL)'
        % len(PLAIN_BODY)
        + b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" %d 1 NIL NIL NIL NIL)'
        % len(HTML_BODY)
        + b' "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)'
        + b'("APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" %d '
        % len(PDF_BODY)
        + b'"Q2hlY2sgSW50ZWdyaXR5IQ==" '
        + b'("ATTACHMENT" ("FILENAME*" "utf-8\'\'%E2%82%ACuro%20report.pdf"))'
        + b' "de" "http://example.de/r.pdf")'
        + b'("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" %d ' % len(INNER_MESSAGE)
        + envelope(INNER_MESSAGE)
        + b' (("TEXT" "PLAIN" NIL NIL NIL "7BIT" %d 2 NIL NIL NIL NIL)' % len(INNER_PART1_BODY)
        + b'("TEXT" "ENRICHED" NIL NIL NIL "7BIT" %d 1 NIL NIL NIL NIL)' % len(INNER_PART2_BODY)
        + b' "ALTERNATIVE" ("BOUNDARY" "in") NIL NIL NIL)'
        + b" %d NIL NIL NIL NIL)" % (INNER_MESSAGE.count(b"\n") + 1)  # last line: no CRLF
        + b' "MIXED" ("BOUNDARY" "outer") NIL ("de" "en") NIL)'
    )
    # BODY is BODYSTRUCTURE without extension data.
    body = bodystructure(MIXED, extensible=False)
    assert b"ATTACHMENT" not in body and b"BOUNDARY" not in body
    assert body.endswith(b' "MIXED")')


def test_parse_once_fetch_many() -> None:
    parsed = parse_message(MIXED)
    assert envelope(parsed) == envelope(MIXED)
    assert bodystructure(parsed) == bodystructure(MIXED)
    assert section(parsed, spec((3, 1))) == INNER_PART1_BODY


def test_odd_mime() -> None:
    """No boundary, a boundary that never occurs, no close delimiter, no blank line."""
    no_boundary = crlf("Content-Type: multipart/mixed\n\nhello\n")
    assert bodystructure(no_boundary, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7 1)'
    )
    never = crlf("Content-Type: multipart/mixed; boundary=zz\n\nhello\n")
    assert bodystructure(never, False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")'
    )
    unclosed = crlf("Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nabc\n")
    assert section(unclosed, spec((1,))) == b"abc\r\n"
    header_only = crlf("Subject: x\nFrom: a@b")
    assert section(header_only, spec((), "HEADER")) == header_only
    # RFC 3501 6.4.5: no blank line "in the case of a message which has no body and no blank
    # line".
    assert section(header_only, spec((), "HEADER.FIELDS", "SUBJECT")) == b"Subject: x\r\n"
    assert section(header_only + b"\r\n", spec((), "HEADER.FIELDS", "FROM")) == b"From: a@b\r\n"
    assert section(header_only, spec((), "TEXT")) == b""
    bad_type = crlf("Content-Type: garbage\n\nx")
    assert bodystructure(bad_type, False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1)'
    )
    digest = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n"
    )
    assert bodystructure(digest, False).startswith(b'(("MESSAGE" "RFC822" NIL NIL NIL "7BIT"')
    assert section(digest, spec((1,), "HEADER")) == b"Subject: one\r\n\r\n"


def test_8bit_boundary() -> None:
    """A boundary of raw 8-bit bytes (not valid UTF-8) still splits the body."""
    message = (b"Content-Type: multipart/mixed; boundary=\xff\xfe\r\n\r\n"
               b"--\xff\xfe\r\n\r\none\r\n--\xff\xfe\r\n\r\ntwo\r\n--\xff\xfe--\r\n")
    assert section(message, spec((1,))) == b"one"
    assert section(message, spec((2,))) == b"two"
    assert b'("BOUNDARY" {2}\r\n\xff\xfe)' in bodystructure(message)


def test_mime_bomb_is_bounded_and_quick() -> None:
    """10,000 nested multiparts: the structure stops at MAX_MIME_DEPTH, in well under a second
    or two."""
    depth = 10_000
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    bomb = b"From: x@y.example\r\n" + opening + b"Content-Type: text/plain\r\n\r\nhi" + closing
    started = time.monotonic()
    structure = bodystructure(bomb)
    elapsed = time.monotonic() - started
    assert elapsed < 5
    assert structure.count(b'"MIXED"') == MAX_MIME_DEPTH
    assert b'"APPLICATION" "OCTET-STREAM"' in structure
    assert len(structure) < 20_000
    assert section(bomb, spec((1,) * 5, "MIME")).startswith(b"Content-Type: multipart/mixed")


def test_wide_message_is_bounded() -> None:
    parts = MAX_MIME_PARTS + 500
    wide = b"Content-Type: multipart/mixed; boundary=w\r\n\r\n" + b"--w\r\n\r\nx\r\n" * parts
    parsed = parse_message(wide + b"--w--\r\n")
    assert len(parsed.root.children) < MAX_MIME_PARTS


# ------------------------------------------------------------------------------ FetchSpec


@pytest.mark.parametrize(
    ("att", "expected", "name"),
    [
        ("BODY[]", FetchSpec(), b"BODY[]"),
        ("BODY.PEEK[]", FetchSpec(peek=True), b"BODY[]"),
        ("body[text]", FetchSpec(text="TEXT"), b"BODY[TEXT]"),
        ("BODY[1.2.MIME]", FetchSpec((1, 2), "MIME"), b"BODY[1.2.MIME]"),
        (
            'BODY.PEEK[1.2.HEADER.FIELDS (A "B")]<0.10>',
            FetchSpec((1, 2), "HEADER.FIELDS", ("A", "B"), (0, 10), peek=True),
            b'BODY[1.2.HEADER.FIELDS ("A" "B")]<0>',
        ),
        (
            "BODY[HEADER.FIELDS.NOT (Received X-Spam)]<5.7>",
            FetchSpec((), "HEADER.FIELDS.NOT", ("Received", "X-Spam"), (5, 7)),
            b'BODY[HEADER.FIELDS.NOT ("Received" "X-Spam")]<5>',
        ),
    ],
)
def test_fetch_att_parsing_and_names(att: str, expected: FetchSpec, name: bytes) -> None:
    parsed = fetch.parse_fetch_att(att)
    assert parsed == expected
    assert fetch.format_section_name(parsed) == name


def test_section_name_escapes_odd_field_names() -> None:
    """Field names with ``"`` or ``\\`` stay quoted strings, escaped (RFC 3501 9 quoted)."""
    spec_ = FetchSpec((), "HEADER.FIELDS", ('a"b', "c\\d"))
    assert fetch.format_section_name(spec_) == b'BODY[HEADER.FIELDS ("a\\"b" "c\\\\d")]'


@pytest.mark.parametrize(
    "att",
    ["BODY[MIME]", "BODY[0]", "BODY[1.]", "BODY[1..2]", "BODY[HEADER.FIELDS]",
     "BODY[HEADER.FIELDS ()]", "BODY[TEXT (A)]", "BODY[FOO]", "BODY[]<1.0>", "BODY[]<1>",
     "BODY[1.TEXT.HEADER]", "BODY[HEADER.FIELDS (A:B)]", "RFC822", "BODY[HEADER.FIELDS (A"],
)
def test_bad_fetch_atts(att: str) -> None:
    with pytest.raises(ValueError):
        fetch.parse_fetch_att(att)


# ------------------------------------------------------------------------------ quoting


def parse_back(wire: bytes) -> bytes | None:
    """An independent reading of an nstring (RFC 3501 4.3, 4.5)."""
    if wire == b"NIL":
        return None
    if wire.startswith(b"{"):
        size, _, rest = wire[1:].partition(b"}\r\n")
        assert len(rest) == int(size)
        return rest
    assert wire[0:1] == b'"' and wire[-1:] == b'"'
    return wire[1:-1]


@given(st.binary(max_size=300))
def test_quoting_round_trip(value: bytes) -> None:
    wire = fetch.imap_string(value)
    assert parse_back(wire) == value
    # The protocol's own tokenizer reads it back too.
    if wire.startswith(b"{"):
        head, _, literal = wire.partition(b"\r\n")
        command = parse_command([b"a1 X " + head, literal, b""])
    else:
        command = parse_command([b"a1 X " + wire])
    assert isinstance(command, Command)
    assert command.args == (String(value, literal=wire.startswith(b"{")),)


def test_quoting_rules() -> None:
    assert fetch.imap_string(None) == b"NIL"
    assert fetch.imap_string("") == b'""'
    assert fetch.imap_string("plain text") == b'"plain text"'
    for awkward in ('a"b', "a\\b", "a\rb", "a\nb", "a\0b", "caf\u00e9"):
        data = awkward.encode()
        assert fetch.imap_string(awkward) == b"{%d}\r\n%s" % (len(data), data)


# ------------------------------------------------------------------------------ properties


def read_sexp(data: bytes, pos: int = 0) -> tuple[object, int]:
    """An independent reader of FETCH response values: NIL, numbers, quoted strings,
    literals and parenthesized lists (RFC 3501 4)."""
    if data.startswith(b"(", pos):
        items: list[object] = []
        pos += 1
        while not data.startswith(b")", pos):
            if items:
                if data.startswith(b" ", pos):
                    pos += 1
                else:
                    assert data.startswith(b"(", pos), (data[pos:pos + 20], pos)
            item, pos = read_sexp(data, pos)
            items.append(item)
        return items, pos + 1
    if data.startswith(b"NIL", pos):
        return None, pos + 3
    if data.startswith(b'"', pos):
        end = data.index(b'"', pos + 1)
        return data[pos + 1 : end], end + 1
    if data.startswith(b"{", pos):
        close = data.index(b"}\r\n", pos)
        size = int(data[pos + 1 : close])
        start = close + 3
        return data[start : start + size], start + size
    end = pos
    while end < len(data) and data[end : end + 1].isdigit():
        end += 1
    assert end > pos, (data[pos : pos + 20], pos)
    return int(data[pos:end]), end


def read_whole(data: bytes) -> object:
    value, end = read_sexp(data)
    assert end == len(data)
    return value


LEAF_HEADERS = [
    b"",
    b"Content-Type: text/plain; charset=utf-8\r\n",
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n",
    b'Content-Type: image/png; name="a b.png"\r\nContent-Disposition: inline\r\n',
]
# Bodies never hold "-", so they cannot hold a delimiter by accident.
bodies = st.binary(max_size=60).map(lambda b: b.replace(b"-", b"_"))


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0) -> tuple[object, ...]:
    if depth < 3 and draw(st.booleans()):
        boundary = b"b%d_%d" % (depth, draw(st.integers(0, 99)))
        children = draw(st.lists(mime_trees(depth + 1), min_size=1, max_size=3))
        return ("multipart", boundary, children, draw(bodies), draw(bodies))
    return ("leaf", draw(st.sampled_from(LEAF_HEADERS)), draw(bodies))


def build(node: tuple, path: tuple[int, ...], found: list) -> bytes:  # type: ignore[type-arg]
    """Serialize a tree, recording (path, MIME header, body) of every part as built."""
    if node[0] == "leaf":
        _, header, body = node
        found.append((path, header + b"\r\n", body))
        return header + b"\r\n" + body
    _, boundary, children, preamble, epilogue = node
    header = b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % boundary
    body = preamble + b"\r\n" if preamble else b""
    for number, child in enumerate(children, 1):
        body += b"--" + boundary + b"\r\n" + build(child, (*path, number), found) + b"\r\n"
    body += b"--" + boundary + b"--" + (b"\r\n" + epilogue if epilogue else b"")
    found.append((path, header, body))
    return header + body


@given(mime_trees())
def test_generated_messages_give_their_own_byte_ranges(tree: tuple) -> None:  # type: ignore[type-arg]
    found: list[tuple[tuple[int, ...], bytes, bytes]] = []
    entity = build(tree, (), found)
    message = b"From: gen@example.com\r\nSubject: generated\r\n" + entity
    for path, mime, body in found:
        if not path:  # the message itself
            assert section(message, spec((), "TEXT")) == body
            continue
        assert section(message, spec(path)) == body, path
        assert section(message, spec(path, "MIME")) == mime, path
    if tree[0] == "leaf":
        assert section(message, spec((1,))) == tree[2]
    structure = read_whole(bodystructure(message))
    assert count_leaves(structure) == count_leaves_of_tree(tree)
    read_whole(bodystructure(message, extensible=False))
    read_whole(envelope(message))


def count_leaves(structure: object) -> int:
    """Leaves of a parsed BODYSTRUCTURE: a multipart's items start with its bodies (lists)."""
    assert isinstance(structure, list)
    if not isinstance(structure[0], list):
        return 1
    return sum(count_leaves(item) for item in structure if isinstance(item, list)
               and item and (isinstance(item[0], list) or isinstance(item[0], bytes)
                             and isinstance(item[1], bytes) and len(item) >= 7))


def count_leaves_of_tree(tree: tuple) -> int:  # type: ignore[type-arg]
    if tree[0] == "leaf":
        return 1
    return sum(count_leaves_of_tree(child) for child in tree[2])


@given(st.binary(max_size=400), st.lists(st.integers(1, 4), max_size=3),
       st.sampled_from([None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS"]))
def test_arbitrary_bytes_never_break_the_parser(
    data: bytes, path: list[int], text: str | None
) -> None:
    read_whole(bodystructure(data))
    read_whole(bodystructure(data, extensible=False))
    read_whole(envelope(data))
    if text == "MIME" and not path:
        return
    fields = ("Subject",) if text == "HEADER.FIELDS" else ()
    result = section(data, FetchSpec(tuple(path), text, fields))
    if text != "HEADER.FIELDS":
        assert result in data


mime_pieces = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=", b"Content-Type: message/rfc822",
    b"Content-Type: multipart/digest; boundary=", b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename*0*=", b"b", b"\xff", b"--", b"\r\n", b"\n",
    b"\r\n\r\n", b" ", b":", b";", b'"', b"(", b"=?utf-8?q?x?=", b"From: <a@b>", b"x",
])


@given(st.lists(mime_pieces, max_size=40).map(b"".join),
       st.lists(st.integers(1, 3), max_size=3))
def test_mime_like_bytes_never_break_the_parser(data: bytes, path: list[int]) -> None:
    read_whole(bodystructure(data))
    read_whole(envelope(data))
    for text in (None, "MIME", "HEADER", "TEXT"):
        if path or text != "MIME":
            assert section(data, FetchSpec(tuple(path), text)) in data
