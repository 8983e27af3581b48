"""mboxrd quoting, From-line scanning (against mailbox.mbox) and CRLF sizes."""

from __future__ import annotations

import email.message
import mailbox
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

FROM_LINE = b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (b"", b""),
        (b"a", b"a\n"),
        (b"a\r\n", b"a\n"),
        (b"a\n", b"a\n"),
        (b"a\r\nb\r\n\r\n", b"a\nb\n\n"),
        (b"From x\r\n", b">From x\n"),
        (b"a\r\nFrom x\r\n>From y\r\n>>From z", b"a\n>From x\n>>From y\n>>>From z\n"),
        # Only "From " at the start of a line counts.
        (b"a From x\nFrom\nFromx\n>From\n From x\n", b"a From x\nFrom\nFromx\n>From\n From x\n"),
        # A lone CR is content; a CR before CRLF is too.
        (b"a\rb\r\r\n", b"a\rb\r\n"),
        (b"a\r", b"a\r\n"),
    ],
)
def test_mbox_quote(parse_impl, message: bytes, body: bytes) -> None:
    assert parse_impl.mbox_quote(message) == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", b""),
        (b">From x\n", b"From x\n"),
        (b">>From x\n>x\n>From\nFrom y\n", b">From x\n>x\n>From\nFrom y\n"),
        (b"a\n>>>From z", b"a\n>>From z"),
    ],
)
def test_mbox_unquote(parse_impl, body: bytes, message: bytes) -> None:
    assert parse_impl.mbox_unquote(body) == message


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([b"From ", b">", b"a", b"\n", b"\r\n", b"\r", b"F", b"\xe9"]), max_size=30
    ).map(b"".join)
)
def test_quote_unquote_round_trip(parse_impl, text: bytes) -> None:
    expected = text.replace(b"\r\n", b"\n")
    if expected and not expected.endswith(b"\n"):
        expected += b"\n"
    body = parse_impl.mbox_quote(text)
    assert parse_impl.mbox_unquote(body) == expected
    # Quoted, no line of the body begins a new message.
    assert parse_impl.mbox_scan(body, 0) == []


@settings(max_examples=200, deadline=None)
@given(text=st.binary(max_size=60))
def test_quote_unquote_round_trip_on_any_bytes(parse_impl, text: bytes) -> None:
    lf_text = text.replace(b"\r\n", b"\n")
    if lf_text and not lf_text.endswith(b"\n"):
        lf_text += b"\n"
    assert parse_impl.mbox_unquote(parse_impl.mbox_quote(text)) == lf_text


def test_mbox_scan(parse_impl) -> None:
    data = b"From a\nx\nFrom b\n>From c\n\nFrom d"
    assert parse_impl.mbox_scan(data, 0) == [0, 9, 25]
    assert parse_impl.mbox_scan(data, 1) == [9, 25]
    assert parse_impl.mbox_scan(data, 9) == [9, 25]
    assert parse_impl.mbox_scan(data, len(data)) == []
    assert parse_impl.mbox_scan(data, len(data) + 5) == []
    assert parse_impl.mbox_scan(b"", 0) == []
    assert parse_impl.mbox_scan(b"From", 0) == []
    with pytest.raises(ValueError):
        parse_impl.mbox_scan(data, -1)


BODIES = [
    "hello\n",
    "From me\n>From you\n>>From them\nlast",
    "",
    "caf\u00e9 From here\n\nFrom\nFrom \n",
    "a\n" * 50,
]


def stdlib_mbox(path: Path) -> mailbox.mbox:
    box = mailbox.mbox(path)
    for number, text in enumerate(BODIES):
        message = email.message.Message()
        message["Subject"] = f"message {number}"
        message.set_payload(text.encode(), "utf-8")
        box.add(message)
    box.flush()
    return box


def test_mbox_scan_agrees_with_mailbox_mbox(parse_impl, tmp_path: Path) -> None:
    box = stdlib_mbox(tmp_path / "box")
    data = (tmp_path / "box").read_bytes()
    offsets = parse_impl.mbox_scan(data, 0)
    keys = box.keys()
    assert len(offsets) == len(keys)
    for key, start, end in zip(keys, offsets, offsets[1:] + [len(data)], strict=True):
        stored = box.get_bytes(key, from_=True)
        # Each message is followed by the one blank separator line mailbox.mbox writes.
        assert data[start:end] == stored + b"\n"
    box.close()


def test_mailbox_mbox_reads_what_mbox_quote_writes(parse_impl, tmp_path: Path) -> None:
    messages = [f"Subject: {number}\r\n\r\n{text}".encode() for number, text in enumerate(BODIES)]
    path = tmp_path / "box"
    path.write_bytes(b"".join(FROM_LINE + parse_impl.mbox_quote(m) + b"\n" for m in messages))
    data = path.read_bytes()
    offsets = parse_impl.mbox_scan(data, 0)
    box = mailbox.mbox(path)
    assert len(box) == len(offsets) == len(messages)
    for key, message in zip(box.keys(), messages, strict=True):
        # mailbox.mbox drops the separator; mboxrd unquoting gives the message back.
        stored = box.get_bytes(key)
        expected = message.replace(b"\r\n", b"\n")
        if not expected.endswith(b"\n"):
            expected += b"\n"
        assert parse_impl.mbox_unquote(stored) == expected
    box.close()


@pytest.mark.parametrize(
    ("data", "crlf"),
    [
        (b"", b""),
        (b"a", b"a"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb\n", b"a\r\nb\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r\r\n\r", b"\r\r\n\r"),
        (b"\r\n\n\r\n", b"\r\n\r\n\r\n"),
    ],
)
def test_to_crlf_and_crlf_size(parse_impl, data: bytes, crlf: bytes) -> None:
    assert parse_impl.to_crlf(data) == crlf
    assert parse_impl.crlf_size(data) == len(crlf)


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n"]), max_size=30).map(b"".join))
def test_crlf_size_is_the_size_of_to_crlf(parse_impl, data: bytes) -> None:
    crlf = parse_impl.to_crlf(data)
    assert parse_impl.crlf_size(data) == len(crlf)
    assert crlf.count(b"\n") == crlf.count(b"\r\n")
    assert crlf.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")


INTERNAL = (b"x-uid", b"status", b"x-keywords")


@pytest.mark.parametrize(
    ("fields", "own", "named"),
    [
        (b"", b"", b""),
        (b"Subject: a\nX-UID: 7\nStatus: RO\n", b"Subject: a\n", b"X-UID: 7\nStatus: RO\n"),
        # a folded field moves whole; names match case-insensitively, spaces before ':' too
        (b"x-keywords: a\n b\r\nFrom: c\r\n", b"From: c\r\n", b"x-keywords: a\n b\r\n"),
        (b"STATUS \t: O\nTo: d", b"To: d", b"STATUS \t: O\n"),
        # lines without a name stay with the message, as does a leading continuation
        (b" lead\nno colon\n: empty\nX-UID:1\n", b" lead\nno colon\n: empty\n", b"X-UID:1\n"),
        (b"X-UIDX: 1\nX-UI: 2\n", b"X-UIDX: 1\nX-UI: 2\n", b""),
    ],
)
def test_split_header_fields(parse_impl, fields: bytes, own: bytes, named: bytes) -> None:
    assert parse_impl.split_header_fields(fields, INTERNAL) == (own, named)


@pytest.mark.parametrize("names", [[b"x-uid"], (b"x-uid", "status"), (1,)])
def test_split_header_fields_names_checked(parse_impl, names: object) -> None:
    with pytest.raises(TypeError, match="tuple of bytes"):
        parse_impl.split_header_fields(b"X-UID: 1\n", names)
