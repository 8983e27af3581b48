"""SORT (RFC 5256 3, RFC 5957) and base subjects (RFC 5256 2.1)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmail.imap.protocol import Atom, ParenList
from refmail.imap.search import MessageView
from refmail.imap.sort import SortCriterion, base_subject, parse_sort_criteria, sort_messages

UTC = datetime.UTC


# RFC 5256 gives the algorithm (2.1, steps 1-7) and its ABNF but no worked examples; each case
# here names the step it exercises.
@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("hello", "hello"),
        ("Re: hello", "hello"),  # (3) subj-refwd
        ("RE: Re: re:hello", "hello"),  # (3) repeated, any case, no space needed
        ("Fwd: hello", "hello"),
        ("Fw: hello", "hello"),
        ("FWD:hello", "hello"),
        ("Re [2]: hello", "hello"),  # (3) subj-refwd with its optional subj-blob
        ("Re[3]:hello", "hello"),
        ("[list] Re: topic", "topic"),  # (3) *subj-blob subj-refwd
        ("[a] [b] Fwd: Re: topic", "topic"),
        ("[PATCH] fix it", "fix it"),  # (4) a blob before a non-empty base
        ("[PATCH]", "[PATCH]"),  # (4) ... but not when nothing would remain
        ("Re: [PATCH]", "[PATCH]"),
        ("Fwd: [list] Re: x", "x"),  # (5) repeat (3) and (4)
        ("hello (fwd)", "hello"),  # (2) subj-trailer
        ("hello (fwd) (FWD)  ", "hello"),  # (2) repeated, whitespace too
        ("[fwd: hello]", "hello"),  # (6) subj-fwd
        ("[Fwd: Re: hello (fwd)]", "hello"),  # (6) then back to (2)
        ("Re: [fwd: Re: hello]", "hello"),
        ("[fwd: [fwd: x]]", "x"),
        ("  multiple   spaces\there  ", "multiple spaces here"),  # (1) whitespace
        ("=?UTF-8?Q?Re=3A_caf=C3=A9?=", "caf\u00e9"),  # (1) RFC 2047 decoded first
        ("Re:", ""),
        ("re: re", "re"),
        ("Response: x", "Response: x"),  # "re" must be followed by ":" (or blob ":")
        ("Fwd x", "Fwd x"),
        ("Re: (fwd)", ""),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base
    assert base_subject(subject.encode()) == base


def test_parse_sort_criteria() -> None:
    criteria = parse_sort_criteria(ParenList((Atom("REVERSE"), Atom("date"), Atom("SUBJECT"))))
    assert criteria == (SortCriterion("DATE", reverse=True), SortCriterion("SUBJECT"))
    assert parse_sort_criteria(["displayfrom"]) == (SortCriterion("DISPLAYFROM"),)
    for bad, reason in [([], "empty"), (["REVERSE"], "precede"), (["FOO"], "unknown"),
                        (["REVERSE", "REVERSE", "DATE"], "REVERSE REVERSE"),
                        ([b"DATE"], "atoms")]:
        with pytest.raises(ValueError, match=reason):
            parse_sort_criteria(bad)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.data


def message(seq: int, *, size: int = 100, arrived: int = 0, **headers: str) -> MessageView:
    text = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    data = (text + "\r\nbody\r\n").encode()
    internal = datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(hours=arrived)
    return MessageView(seq, seq * 10, size, frozenset(), internal, False, Reader(data))


def order(criteria: str, views: list[MessageView]) -> list[int]:
    return sort_messages(parse_sort_criteria(criteria.split()), views)


def test_arrival_and_size_never_read_messages() -> None:
    views = [message(1, size=300, arrived=2), message(2, size=100, arrived=3),
             message(3, size=200, arrived=1), message(4, size=100, arrived=1)]
    assert order("ARRIVAL", views) == [3, 4, 1, 2]
    assert order("SIZE", views) == [2, 4, 3, 1]
    assert order("REVERSE SIZE", views) == [1, 3, 2, 4]  # ties stay in sequence order
    assert order("SIZE REVERSE ARRIVAL", views) == [2, 4, 3, 1]
    assert order("SIZE ARRIVAL", views) == [4, 2, 3, 1]
    assert all(v.message_bytes.calls == 0 for v in views)  # type: ignore[attr-defined]


def test_date_uses_utc_and_falls_back_to_internaldate() -> None:
    """RFC 5256 2.2: the sent date, zones taken into account; INTERNALDATE when the Date:
    header is missing or unparseable."""
    views = [
        message(1, Date="Mon, 1 Jan 2024 10:00:00 +0100"),  # 09:00 UTC
        message(2, Date="Mon, 1 Jan 2024 08:30:00 -0100"),  # 09:30 UTC
        message(3, arrived=5),  # no Date: 05:00 UTC
        message(4, Date="not a date", arrived=9),  # 09:00 UTC, ties with 1
        message(5, Date="Mon, 1 Jan 2024 01:00:00 -0000"),
    ]
    assert order("DATE", views) == [5, 3, 1, 4, 2]
    assert order("REVERSE DATE", views) == [2, 1, 4, 3, 5]


def test_naive_internaldate_is_taken_as_utc() -> None:
    naive = MessageView(1, 1, 1, frozenset(), datetime.datetime(2024, 1, 1, 12), False,
                        Reader(b"\r\n"))
    dated = message(2, Date="Mon, 1 Jan 2024 11:00:00 +0000")
    assert order("DATE", [naive, dated]) == [2, 1]
    assert order("ARRIVAL", [naive, dated]) == [2, 1]


def test_subject_sorts_by_base_subject_case_insensitively() -> None:
    views = [
        message(1, Subject="Re: banana"),
        message(2, Subject="apple"),
        message(3, Subject="[list] Fwd: Apple"),
        message(4),  # no subject: the empty string sorts first
        message(5, Subject="BANANA (fwd)"),
    ]
    assert order("SUBJECT", views) == [4, 2, 3, 1, 5]
    assert order("REVERSE SUBJECT", views) == [1, 5, 2, 3, 4]


def test_address_keys_use_the_first_mailbox() -> None:
    """RFC 5256 3: FROM/TO/CC sort on the addr-mailbox (local part) of the first address."""
    views = [
        message(1, From="Zed <b@z.example>", To="x@example.com", Cc="m@example.com"),
        message(2, From="Amy <C@a.example>", To="Y@example.com, a@example.com"),
        message(3, From="a@zzz.example", To="Team: w@example.com;"),
        message(4),
    ]
    assert order("FROM", views) == [4, 3, 1, 2]
    assert order("TO", views) == [4, 3, 1, 2]
    assert order("CC", views) == [2, 3, 4, 1]
    assert order("REVERSE FROM", views) == [2, 1, 3, 4]


def test_display_keys() -> None:
    """RFC 5957: the display name (decoded), else the address."""
    views = [
        message(1, From="=?UTF-8?Q?=C3=89mile?= <z@example.com>"),
        message(2, From="bob@example.com"),
        message(3, From="Alice <zz@example.com>"),
        message(4, To="carol@example.com"),
    ]
    assert order("DISPLAYFROM", views) == [4, 3, 2, 1]
    assert order("DISPLAYTO", views) == [1, 2, 3, 4]


def test_several_criteria() -> None:
    views = [
        message(1, size=10, Subject="b"),
        message(2, size=20, Subject="a"),
        message(3, size=10, Subject="a"),
        message(4, size=20, Subject="Re: b"),
    ]
    assert order("SUBJECT SIZE", views) == [3, 2, 1, 4]
    assert order("SUBJECT REVERSE SIZE", views) == [2, 3, 4, 1]
    assert order("REVERSE SUBJECT REVERSE SIZE", views) == [4, 1, 2, 3]
    # Each sort reads each message once, whatever the number of criteria.
    assert all(v.message_bytes.calls == 3 for v in views)  # type: ignore[attr-defined]
    assert sort_messages([SortCriterion("SIZE")], []) == []


@given(st.text(max_size=40), st.binary(max_size=60))
def test_arbitrary_subjects_and_headers_sort(subject: str, raw: bytes) -> None:
    base = base_subject(subject)
    assert base == base_subject(base)  # the base subject of a base subject is itself
    header = raw.replace(b"\r", b"").replace(b"\n", b"")
    views = [
        MessageView(n, n, 1, frozenset(), datetime.datetime(2024, 1, 1, tzinfo=UTC), False,
                    Reader(b"Subject: %s\r\nFrom: %s\r\nDate: %s\r\n\r\n" % ((header,) * 3)))
        for n in (1, 2)
    ]
    criteria = parse_sort_criteria(
        ["SUBJECT", "REVERSE", "FROM", "DATE", "DISPLAYFROM", "CC", "DISPLAYTO"]
    )
    assert sort_messages(criteria, views) == [1, 2]
