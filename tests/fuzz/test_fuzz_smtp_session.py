"""The SMTP session machine (refmail/smtp/) fuzzed with hypothesis over a real mail store: any
byte stream, cut anywhere, gets only SMTP replies, no internal error, each read answered in
bounded time with bounded buffers (``refmail_fuzz.drive``); large junk in every state leaves
the session holding no more than its limits allow."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from refmail_fuzz import SERVICES, connection, drive
from session_fuzz_strategies import (
    CUTS,
    FUZZ_SETTINGS,
    JUNK_KINDS,
    PLAIN_ALICE,
    SMTP_STREAM,
    chunked,
    junk,
    normalized,
    reads,
)


@FUZZ_SETTINGS
@given(
    data=SMTP_STREAM,
    cuts=CUTS,
    service=st.sampled_from(SERVICES["smtp"]),
    remote=st.booleans(),
)
def test_any_stream_gets_only_smtp_replies(worlds, data, cuts, service, remote) -> None:
    with worlds.world("smtp") as world:
        drive(world, chunked(data, cuts), conn=connection(service, remote=remote))


@FUZZ_SETTINGS
@given(data=SMTP_STREAM)
def test_whole_and_bytewise_feeding_agree(worlds, data) -> None:
    """RFC 2920 3: pipelined commands are answered as if sent one by one."""
    assume(b"STARTTLS" not in data.upper())  # bytes after it are dropped only when pipelined
    outputs = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        with worlds.world("smtp") as world:
            outputs.append(normalized(drive(world, chunks).output))
    assert outputs[0] == outputs[1]


TRANSACTION = b"EHLO bar.com\r\nMAIL FROM:<smith@bar.com>\r\nRCPT TO:<alice@example.test>\r\n"
PROLOGUES = {
    "greeting": b"",
    "ehlo": b"EHLO bar.com\r\n",
    "data": TRANSACTION + b"DATA\r\n",
    "bdat-kept": TRANSACTION + b"BDAT 6000\r\n",
    "bdat-discarded": TRANSACTION + b"BDAT 900000\r\n",
    "auth-response": b"EHLO bar.com\r\nAUTH PLAIN\r\n",
    "authenticated": b"EHLO bar.com\r\nAUTH PLAIN " + PLAIN_ALICE + b"\r\n",
}


@pytest.mark.parametrize("kind", JUNK_KINDS)
@pytest.mark.parametrize("state", PROLOGUES)
def test_large_junk_in_every_state_is_bounded(worlds, state: str, kind: str) -> None:
    with worlds.world("smtp") as world:
        transcript = drive(world, [PROLOGUES[state], *reads(junk(kind)), b"\r\n.\r\nQUIT\r\n"])
    assert transcript.output.startswith(b"220 ")
