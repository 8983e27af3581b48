"""Inputs the fuzzers found that broke a session, each replayed as a test (the same input is
in ``fuzz/corpus/``, so the atheris targets start from it too)."""

from __future__ import annotations

from pathlib import Path

import parse_contracts
import pytest
import refmail_fuzz
from refmail_fuzz import drive, split_for_feeding

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


# ---------------------------------------------------------------------------- the corpus

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"
SESSION_SEEDS = sorted(CORPUS.glob("*_session/*"))
PARSE_SEEDS = sorted(CORPUS.glob("parse_*/*"))


@pytest.mark.parametrize("seed", SESSION_SEEDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_session_corpus_replays_clean(worlds, seed: Path) -> None:
    """Every seed and crash reproducer of the atheris session targets, as the target feeds it
    and in every other chunking, passes the checks (refmail_fuzz.drive)."""
    data = seed.read_bytes()
    protocol = seed.parent.name.removesuffix("_session")
    for mode in range(7):
        with worlds.world(protocol) as world:
            drive(world, split_for_feeding(data, mode))
    refmail_fuzz.atheris_target(protocol)(data)


@pytest.mark.parametrize("seed", PARSE_SEEDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parse_corpus_replays_clean(seed: Path) -> None:
    check = {
        "parse_smtp": parse_contracts.check_smtp_input,
        "parse_imap": parse_contracts.check_imap_input,
        "parse_message": parse_contracts.check_message_input,
    }[seed.parent.name]
    check(seed.read_bytes())


def test_the_corpus_has_seeds_for_every_target() -> None:
    targets = {p.stem.removeprefix("fuzz_") for p in CORPUS.parent.glob("fuzz_*.py")}
    assert targets == {p.name for p in CORPUS.iterdir()}
    assert all(any((CORPUS / t).iterdir()) for t in targets)
