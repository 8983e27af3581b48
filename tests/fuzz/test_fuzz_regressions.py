"""Inputs the fuzzers found that broke a session, each replayed as a test (the same input is
in ``fuzz/corpus/``, so the atheris targets start from it too)."""

from __future__ import annotations

from refmail import parse
from refmail.smtp.protocol import MAX_TEXT_LINE, MessageContent, SMTPProtocol


def test_smtp_endless_data_line_keeps_the_buffer_bounded() -> None:
    """An over-long DATA line arriving faster than one 1000-octet piece per read must not
    pile up: read_data passes on one piece per call, so the reader calls it until less than a
    line is left (RFC 5321 4.5.3.1.6).  Found by the hypothesis session fuzzer: 64 KiB reads
    of a line without LF left 63 KiB more buffered after each read."""
    proto = SMTPProtocol(message_size=10_000_000)
    proto.start_data()
    for _ in range(20):
        proto.receive_data(b"x" * 65536)
        assert proto.next_event() is None
        assert proto.buffered <= MAX_TEXT_LINE
    proto.receive_data(b"\r\n.\r\n")
    event = proto.next_event()
    assert isinstance(event, MessageContent)
    assert event.size == 20 * 65536 + 2
    assert event.flags & parse.DATA_LONG_LINE
    assert event.content == b"x" * (20 * 65536) + b"\r\n"
