"""The POP3 session machine (refmail/pop3/) fuzzed with hypothesis over a real mail store: any
byte stream, cut anywhere, in either state, gets +OK/-ERR replies and no internal error, each
read answered in bounded time with the line buffer under its limit (``refmail_fuzz.drive``);
large junk in every state leaves no more buffered than one command line."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from refmail_fuzz import SERVICES, connection, drive
from session_fuzz_strategies import (
    CUTS,
    FUZZ_SETTINGS,
    JUNK_KINDS,
    POP3_STREAM,
    chunked,
    junk,
    normalized,
    reads,
)

LOGIN = b"USER alice\r\nPASS alice-pw\r\n"


@FUZZ_SETTINGS
@given(
    data=POP3_STREAM,
    logged_in=st.booleans(),
    cuts=CUTS,
    service=st.sampled_from(SERVICES["pop3"]),
    remote=st.booleans(),
)
def test_any_stream_gets_only_pop3_replies(worlds, data, logged_in, cuts, service, remote) -> None:
    with worlds.world("pop3") as world:
        chunks = chunked((LOGIN if logged_in else b"") + data, cuts)
        drive(world, chunks, conn=connection(service, remote=remote))


@FUZZ_SETTINGS
@given(data=POP3_STREAM, logged_in=st.booleans())
def test_whole_and_bytewise_feeding_agree(worlds, data, logged_in) -> None:
    """RFC 2449 6.6 (PIPELINING): a burst is answered as its commands one by one."""
    assume(b"STLS" not in data.upper())  # bytes after it are dropped only when pipelined
    data = (LOGIN if logged_in else b"") + data
    outputs = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        with worlds.world("pop3") as world:
            outputs.append(normalized(drive(world, chunks).output))
    assert outputs[0] == outputs[1]


PROLOGUES = {
    "authorization": b"",
    "user-given": b"USER alice\r\n",
    "transaction": LOGIN,
    "sasl-response": b"AUTH PLAIN\r\n",
}


@pytest.mark.parametrize("kind", JUNK_KINDS)
@pytest.mark.parametrize("state", PROLOGUES)
def test_large_junk_in_every_state_is_bounded(worlds, state: str, kind: str) -> None:
    with worlds.world("pop3") as world:
        transcript = drive(world, [PROLOGUES[state], *reads(junk(kind)), b"\r\nQUIT\r\n"])
    assert transcript.output.startswith(b"+OK ")
