"""Hypothesis strategies for client byte streams: protocol-shaped lines (verbs the sessions
know, arguments that reach their states: a valid login, a local recipient, a literal),
mixed with arbitrary bytes, then cut into chunks at arbitrary points."""

from __future__ import annotations

import base64
import os
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Examples per test: small by default (the suite runs twice in CI), more on request.
EXAMPLES = int(os.environ.get("REFMAIL_FUZZ_EXAMPLES", "40"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PLAIN_ALICE = base64.b64encode(b"\0alice\0alice-pw")
PLAIN_WRONG = base64.b64encode(b"\0alice\0nope")
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"", b"\r", b" \r\n"])
NOISE = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"\x00", b"\xff\xfe", b"\xc3\xa9", b"\x7f", b"\t", b"(", b")", b'"', b"{"]),
)


def lines_of(commands: st.SearchStrategy[bytes], extra: list[bytes]) -> st.SearchStrategy[bytes]:
    """One client line: mostly a command, sometimes a canned line, sometimes noise."""
    return st.one_of(
        st.tuples(commands, ENDINGS).map(b"".join),
        st.tuples(commands, ENDINGS).map(b"".join),
        st.sampled_from(extra),
        st.tuples(NOISE, ENDINGS).map(b"".join),
    )


def command(verbs: list[bytes], words: list[bytes], max_words: int = 4):
    return st.tuples(
        st.sampled_from(verbs),
        st.lists(st.one_of(st.sampled_from(words), NOISE), max_size=max_words),
    ).map(lambda vw: b" ".join([vw[0], *vw[1]]))


def stream(lines: st.SearchStrategy[bytes], max_lines: int = 14) -> st.SearchStrategy[bytes]:
    return st.lists(lines, min_size=1, max_size=max_lines).map(b"".join)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the (sorted, clamped) ``cuts``."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)] or [data]


CUTS = st.lists(st.integers(0, 4000), max_size=10)

# ---------------------------------------------------------------------------- SMTP

# fmt: off
SMTP_VERBS = [
    b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"NOOP", b"QUIT", b"VRFY",
    b"HELP", b"STARTTLS", b"AUTH", b"EXPN", b"ehlo", b"mail", b"XYZZY", b"",
]
# fmt: on
# fmt: off
SMTP_WORDS = [
    b"bar.com", b"[192.0.2.1]", b"FROM:<smith@bar.com>", b"FROM:<>", b"FROM:<alice@example.test>",
    b"FROM: <a@b.c>", b"TO:<alice@example.test>", b"TO:<bob@example.org>", b"TO:<Postmaster>",
    b"TO:<x@elsewhere.net>", b"TO:<nobody@example.test>", b"TO:<@a,@b:alice@example.test>",
    b'TO:<"a b"@example.test>', b"TO:<\xc3\xa9@example.test>", b"SIZE=100", b"SIZE=99999999",
    b"BODY=8BITMIME", b"BODY=7BIT", b"SMTPUTF8", b"AUTH=<>", b"PLAIN", b"LOGIN",
    b"PLAIN " + PLAIN_ALICE, b"PLAIN " + PLAIN_WRONG, b"PLAIN =", b"3", b"0", b"7 LAST",
    b"0 LAST", b"LAST", b"99999999999999999999", b"alice",
]
# fmt: on
# fmt: off
SMTP_EXTRA = [
    b"EHLO bar.com\r\n", b"MAIL FROM:<smith@bar.com>\r\n", b"RCPT TO:<alice@example.test>\r\n",
    b"DATA\r\n", b"Subject: fuzz\r\n", b"\r\n", b".\r\n", b"..dot\r\n", b".\n", b"\r\n.\r\n",
    b"x" * 1001 + b"\r\n", b"BDAT 5 LAST\r\nhello", b"BDAT 3\r\nabc", b"AUTH PLAIN\r\n",
    PLAIN_ALICE + b"\r\n", b"*\r\n", b"AUTH LOGIN\r\n", base64.b64encode(b"alice") + b"\r\n",
    base64.b64encode(b"alice-pw") + b"\r\n", b"\x00\r\n", b"RSET\r\n", b"QUIT\r\n",
]
# fmt: on
SMTP_STREAM = stream(lines_of(command(SMTP_VERBS, SMTP_WORDS, 3), SMTP_EXTRA), 18)

# ---------------------------------------------------------------------------- POP3

# fmt: off
POP3_VERBS = [
    b"USER", b"PASS", b"APOP", b"AUTH", b"STLS", b"UTF8", b"CAPA", b"QUIT", b"STAT", b"LIST",
    b"RETR", b"DELE", b"NOOP", b"RSET", b"TOP", b"UIDL", b"user", b"XTND", b"",
]
# fmt: on
# fmt: off
POP3_WORDS = [
    b"alice", b"bob", b"alice-pw", b"wrong", b"1", b"2", b"3", b"4", b"0", b"-1", b"00001",
    b"99999999999999999999", b"PLAIN", b"PLAIN " + PLAIN_ALICE, b"PLAIN =", b"LOGIN",
    b"\xc3\xa9", b"x",
]
# fmt: on
# fmt: off
POP3_EXTRA = [
    b"USER alice\r\n", b"PASS alice-pw\r\n", b"AUTH PLAIN\r\n", PLAIN_ALICE + b"\r\n", b"*\r\n",
    b"RETR 1\r\n", b"TOP 2 1\r\n", b"DELE 1\r\n", b"UTF8\r\n", b"USER \xc3\xa9\r\n", b"\r\n",
    b"x" * 300 + b"\r\n", b"QUIT\r\n",
]
# fmt: on
POP3_STREAM = stream(lines_of(command(POP3_VERBS, POP3_WORDS, 3), POP3_EXTRA), 18)

# ---------------------------------------------------------------------------- IMAP

# fmt: off
IMAP_VERBS = [
    b"CAPABILITY", b"NOOP", b"LOGOUT", b"ID", b"STARTTLS", b"AUTHENTICATE", b"LOGIN", b"SELECT",
    b"EXAMINE", b"CREATE", b"DELETE", b"RENAME", b"SUBSCRIBE", b"UNSUBSCRIBE", b"LIST", b"LSUB",
    b"STATUS", b"APPEND", b"NAMESPACE", b"ENABLE", b"IDLE", b"CHECK", b"CLOSE", b"UNSELECT",
    b"EXPUNGE", b"SEARCH", b"SORT", b"FETCH", b"STORE", b"COPY", b"MOVE", b"UID FETCH",
    b"UID SEARCH", b"UID STORE", b"UID COPY", b"UID MOVE", b"UID EXPUNGE", b"UID", b"BOGUS",
]
# fmt: on
# fmt: off
IMAP_WORDS = [
    b"alice", b"alice-pw", b"INBOX", b"inbox", b"Sent", b"Work/Projects", b"Work/", b"New",
    b"&AOk-", b"&Jjo", b'""', b'"a b"', b'"\\\\"', b"*", b"%", b"1", b"2:3", b"1:*", b"*:1",
    b"0", b"4294967296", b"2,1", b"ALL", b"FAST", b"FULL", b"(FLAGS UID)",
    b"(BODY[] RFC822.SIZE)", b"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]", b"BODY[1.MIME]",
    b"BODY[TEXT]<0.5>", b"BODY[2]", b"BINARY[1]", b"BODYSTRUCTURE", b"ENVELOPE",
    b"INTERNALDATE", b"+FLAGS", b"-FLAGS.SILENT", b"FLAGS", b"(\\Seen \\Deleted)", b"\\Answered",
    b"(\\Draft)", b"(REVERSE SUBJECT)", b"(ARRIVAL)", b"UTF-8", b"US-ASCII", b"CHARSET",
    b"SUBJECT", b"one", b"OR", b"NOT", b"SINCE", b"1-Jan-2000", b"UNSEEN", b"LARGER", b"100",
    b"HEADER", b"From", b"UID", b"RETURN", b"(MIN MAX COUNT)", b"(MESSAGES UIDNEXT UNSEEN)",
    b"NIL", b"(name x)", b"PLAIN", b"PLAIN " + PLAIN_ALICE, b"CONDSTORE", b"{0}", b"{3+}",
    b"(((", b")", b'"open', b"\"17-Jul-1996 02:44:25 -0700\"",
]
# fmt: on
# fmt: off
IMAP_EXTRA = [
    b"a LOGIN alice alice-pw\r\n", b"b SELECT INBOX\r\n", b"c FETCH 1:* (FLAGS BODY[])\r\n",
    b"d APPEND INBOX {11+}\r\nSubject: x\r\n\r\n", b"e APPEND Sent (\\Seen) {5}\r\nhello\r\n",
    b"f IDLE\r\n", b"DONE\r\n", b"g AUTHENTICATE PLAIN\r\n", PLAIN_ALICE + b"\r\n", b"*\r\n",
    b"h STORE 1 +FLAGS (\\Deleted)\r\n", b"i EXPUNGE\r\n", b"j LOGIN {5}\r\nalice {8}\r\n",
    b"alice-pw\r\n", b"k SEARCH TEXT {3+}\r\none\r\n", b"l APPEND INBOX {99999999}\r\n",
    b"m APPEND INBOX {99999999+}\r\n", b"\r\n", b"x" * 300 + b"\r\n", b"z LOGOUT\r\n",
]
# fmt: on
TAGS = st.sampled_from([b"a", b"A1", b"t.2", b"*", b"+", b"", b"x\xff"])
IMAP_COMMAND = st.tuples(TAGS, command(IMAP_VERBS, IMAP_WORDS, 5)).map(b" ".join)
IMAP_STREAM = stream(lines_of(IMAP_COMMAND, IMAP_EXTRA), 14)

# ---------------------------------------------------------------------------- comparing runs

_VARYING = [
    re.compile(rb"id=[0-9A-F]+"),  # SMTP queue/message ids
    re.compile(rb"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"),  # INTERNALDATE of APPEND
    re.compile(rb"<\d+\.[0-9A-F]+@[^>]*>"),  # Message-ID made at delivery
    re.compile(rb"; [A-Z][a-z]{2}, \d+ [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}"),  # Received
]


def normalized(output: bytes) -> bytes:
    """Output with what differs between two runs of one script (ids, times) blanked."""
    for pattern in _VARYING:
        output = pattern.sub(b"#", output)
    return output


# ---------------------------------------------------------------------------- large junk

#: Octets of junk fed after each prologue, in reads of ``JUNK_READ`` (server.py's RECV_SIZE).
JUNK_SIZE = 256 * 1024
JUNK_READ = 65536


def junk(kind: str) -> bytes:
    """Large input of one shape: one endless line, a flood of empty lines (smaller: each gets
    a reply), random octets, or commands announcing literals over and over."""
    import random

    if kind == "endless-line":
        return b"x" * JUNK_SIZE
    if kind == "empty-lines":
        return b"\r\n" * 4096
    if kind == "random":
        return random.Random(1939).randbytes(JUNK_SIZE)
    if kind == "literal-markers":
        return b"a APPEND INBOX {4000+}\r\n" * 4096
    if kind == "dots":
        return b".\n.\r.\r\n..\r\n\r\n" * 2048
    raise ValueError(kind)


JUNK_KINDS = ["endless-line", "empty-lines", "random", "literal-markers", "dots"]


def reads(data: bytes, size: int = JUNK_READ) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
