"""The IMAP session machine (refmail/imap/) fuzzed with hypothesis over a real mail store, in
every state and byte-level (``tests/imap/test_session_fuzz.py`` fuzzes selected-state commands
made of whole words): any stream, cut anywhere, with literals, IDLE and AUTHENTICATE
continuations, gets no internal error, each read answered in bounded time, the buffers under
``imap_command_line``/``imap_literal_size`` (``refmail_fuzz.drive``); large junk in every state
too."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from refmail_fuzz import SERVICES, connection, drive
from session_fuzz_strategies import (
    CUTS,
    FUZZ_SETTINGS,
    IMAP_STREAM,
    JUNK_KINDS,
    chunked,
    junk,
    normalized,
    reads,
)

LOGIN = b"L LOGIN alice alice-pw\r\n"
SELECT = LOGIN + b"S SELECT INBOX\r\n"


@FUZZ_SETTINGS
@given(
    data=IMAP_STREAM,
    prologue=st.sampled_from([b"", LOGIN, SELECT]),
    cuts=CUTS,
    service=st.sampled_from(SERVICES["imap"]),
    remote=st.booleans(),
)
def test_any_stream_gets_only_imap_replies(worlds, data, prologue, cuts, service, remote) -> None:
    with worlds.world("imap") as world:
        drive(world, chunked(prologue + data, cuts), conn=connection(service, remote=remote))


@FUZZ_SETTINGS
@given(data=IMAP_STREAM, prologue=st.sampled_from([b"", LOGIN, SELECT]))
def test_whole_and_bytewise_feeding_agree(worlds, data, prologue) -> None:
    """A command is its bytes, however they are cut (RFC 3501 2.2: the server reads lines and
    literals, not reads)."""
    assume(b"STARTTLS" not in data.upper())  # bytes after it are dropped only when pipelined
    data = prologue + data
    outputs = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        with worlds.world("imap") as world:
            outputs.append(normalized(drive(world, chunks).output))
    assert outputs[0] == outputs[1]


PROLOGUES = {
    "not-authenticated": b"",
    "authenticated": LOGIN,
    "selected": SELECT,
    "literal-sync": SELECT + b"A APPEND INBOX {6000}\r\n",
    "literal-plus": SELECT + b"A APPEND INBOX {6000+}\r\n",
    "literal-refused": SELECT + b"A APPEND INBOX {90000000+}\r\n",
    "idle": SELECT + b"I IDLE\r\n",
    "authenticate": b"A AUTHENTICATE PLAIN\r\n",
    "login-literal": b"A LOGIN {5}\r\n",
}


@pytest.mark.parametrize("kind", JUNK_KINDS)
@pytest.mark.parametrize("state", PROLOGUES)
def test_large_junk_in_every_state_is_bounded(worlds, state: str, kind: str) -> None:
    with worlds.world("imap") as world:
        transcript = drive(world, [PROLOGUES[state], *reads(junk(kind)), b"\r\nZ LOGOUT\r\n"])
    assert transcript.output.startswith(b"* OK ")
