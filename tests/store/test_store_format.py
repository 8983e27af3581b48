"""The mbox entry format: From lines, internal headers, quoting, the message as served."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refmail.parse import header_end, mbox_scan
from refmail.store.mboxfmt import (
    build_entry,
    from_line,
    internal_headers,
    parse_entry,
    parse_from_date,
    served_header,
    split_entry,
)
from refmail.store.model import normalize_flags

DATE = datetime(2026, 1, 5, 7, 8, 9, tzinfo=UTC)


def entry_for(message: bytes, **kw: object) -> bytes:
    args = {"sender": "a@b.c", "date": DATE, "uid": 7, "flags": (), "old": False, "base": None}
    args.update(kw)
    return build_entry(message, **args)  # type: ignore[arg-type]


def test_from_line_is_asctime_utc() -> None:
    assert (
        from_line("alice@example.org", DATE) == b"From alice@example.org Mon Jan  5 07:08:09 2026\n"
    )
    assert from_line("", DATE).startswith(b"From MAILER-DAEMON ")
    assert from_line("<>", DATE).startswith(b"From MAILER-DAEMON ")
    # A sender cannot break the From line or smuggle a line ending into the mbox.
    assert from_line("a b\nFrom x", DATE) == b"From a_b_From_x Mon Jan  5 07:08:09 2026\n"


@pytest.mark.parametrize(
    "line",
    [
        b"From MAILER-DAEMON Mon Jan  5 07:08:09 2026\n",
        b"From a@b Mon Jan 5 07:08:09 2026",
        b"From a@b Mon Jan  5 07:08:09 UTC 2026\n",
        b"From a@b Mon Jan  5 07:08:09 +0000 2026 remote from x\n",
    ],
)
def test_from_date_parses_common_writers(line: bytes) -> None:
    assert parse_from_date(line) == DATE


def test_from_date_garbage_is_none() -> None:
    assert parse_from_date(b"From a@b yesterday\n") is None
    assert parse_from_date(b"From a@b Mon Foo  5 07:08:09 2026\n") is None


def test_internal_headers_as_dovecot_writes_them() -> None:
    flags = {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "b", "a"}
    assert internal_headers(3, flags, True, (1700000000, 4)) == (
        b"X-IMAPbase: 1700000000 0000000004\nX-UID: 3\nStatus: RO\nX-Status: AFTD\n"
        b"X-Keywords: a b\n"
    )
    assert internal_headers(3, (), False, None) == b"X-UID: 3\n"


def test_entry_round_trip_serves_the_message_byte_exact() -> None:
    message = b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nend\r\n"
    raw = entry_for(message)
    assert b"\n>From here\n>>From there\n>>>From far\n" in raw
    assert b"\r" not in raw  # LF on disk
    assert raw.endswith(b"end\n\n")  # the separator line
    parts = split_entry(raw)
    assert parts.served() == message
    parsed = parse_entry(raw)
    assert parsed.size == len(message)
    assert parsed.uid == 7
    assert parsed.internaldate == DATE
    assert served_header(raw[: parsed.header_length]) == b"Subject: x\r\n\r\n"


def test_incoming_internal_headers_are_stripped() -> None:
    message = (
        b"X-UID: 1\r\nSubject: s\r\nStatus: RO\r\nX-Status: D\r\nX-Keywords: evil\r\n"
        b"X-IMAPbase: 1 2\r\nx-imap: 1 2\r\n\tcontinued\r\nTo: t\r\n\r\nbody\r\n"
    )
    raw = entry_for(message, uid=42)
    parsed = parse_entry(raw)
    assert parsed.uid == 42
    assert parsed.flags == frozenset()
    assert parsed.base is None
    assert split_entry(raw).served() == b"Subject: s\r\nTo: t\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"Subject: header only\r\n",
        b"Subject: no final newline",
        b"\r\nbody without header\r\n",
        b"Subject: blank at end\r\n\r\nbody\r\n\r\n",
        b"From nobody\r\nSubject: starts with From\r\n\r\nx\r\n",
    ],
)
def test_odd_messages_have_consistent_size_and_header(message: bytes) -> None:
    raw = entry_for(message)
    parsed = parse_entry(raw)
    served = split_entry(raw).served()
    assert parsed.size == len(served)
    header = served_header(raw[: parsed.header_length])
    assert served.startswith(header)
    assert parsed.uid == 7


def test_rebuild_keeps_message_and_replaces_internal_headers() -> None:
    raw = entry_for(b"Subject: x\r\n\r\nbody\r\n", flags={"\\Seen"})
    rebuilt = build_entry(split_entry(raw), uid=7, flags={"\\Deleted", "kw"}, old=True, base=(5, 8))
    parsed = parse_entry(rebuilt)
    assert parsed.flags == {"\\Deleted", "kw"}
    assert parsed.old
    assert parsed.base == (5, 8)
    assert split_entry(rebuilt).served() == split_entry(raw).served()
    assert rebuilt.splitlines()[0] == raw.splitlines()[0]


def test_bad_x_uid_counts_as_missing() -> None:
    for bad in (b"0", b"-3", b"abc", b"99999999999", b"4294967296"):
        raw = b"From a Mon Jan  5 07:08:09 2026\nX-UID: " + bad + b"\n\nbody\n\n"
        assert parse_entry(raw).uid is None


def test_flags_are_normalized_and_checked() -> None:
    assert normalize_flags(["\\SEEN", "\\recent", "$Label1"]) == {"\\Seen", "$Label1"}
    for bad in ("\\Bogus", "two words", "", "par(en", "caf\u00e9"):
        with pytest.raises(ValueError):
            normalize_flags([bad])


_HEADER_LINES = st.sampled_from(
    [b"Subject: s", b"From: a@b.c", b"To: x@y.z", b"X-Thing: v", b"\tfolded", b"Received: r"]
)
_BODY_LINES = st.one_of(
    st.sampled_from([b"From x", b">From x", b">>From x", b"From", b"", b".", b"From  y"]),
    st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b),
)


@given(
    headers=st.lists(_HEADER_LINES, max_size=5),
    body=st.lists(_BODY_LINES, max_size=8),
    uid=st.integers(1, 2**32 - 1),
    flags=st.sets(st.sampled_from(["\\Seen", "\\Deleted", "\\Draft", "kw", "$Label"])),
    first=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_any_crlf_message_round_trips(headers, body, uid, flags, first) -> None:
    message = b"".join(h + b"\r\n" for h in headers) + b"\r\n" + b"".join(b + b"\r\n" for b in body)
    raw = entry_for(message, uid=uid, flags=flags, old=first, base=(9, uid + 1) if first else None)
    parsed = parse_entry(raw)
    assert split_entry(raw).served() == message
    assert parsed.size == len(message)
    assert (parsed.uid, parsed.flags, parsed.old) == (uid, flags, first)
    assert served_header(raw[: parsed.header_length]) == message[: header_end(message)]
    # Every entry boundary is found by the scanner even when bodies hold From lines.
    assert mbox_scan(raw + raw, 0) == [0, len(raw)]
