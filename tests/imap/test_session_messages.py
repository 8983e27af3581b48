"""RFC 3501 6.4 command examples (CHECK, CLOSE, EXPUNGE, SEARCH, FETCH, STORE, COPY, UID)
and the extensions on the selected state: UNSELECT, UIDPLUS, MOVE, SORT."""

from __future__ import annotations

import re

import pytest

from .conftest import Client, Env

#: Every test here runs with commands sent whole and one byte at a time.
pytestmark = pytest.mark.parametrize("feed", ["whole", "bytewise"])


def flags_in(line: str) -> set[str]:
    match = re.search(r"FLAGS \(([^)]*)\)", line)
    assert match, line
    return set(match.group(1).split())


@pytest.fixture
def eleven(env: Env) -> Client:
    """Alice's INBOX with 11 messages, selected."""
    for n in range(1, 12):
        env.deliver("alice", f"message {n}", body=f"Body number {n}.\r\n")
    client = env.session()
    client.login()
    client.select()
    return client


def test_expunge_example(eleven: Client) -> None:
    """RFC 3501 6.4.3: messages 3, 4, 7 and 11 had \\Deleted set."""
    assert eleven.cmd("a STORE 3:4,7,11 +FLAGS.SILENT (\\Deleted)") == ["a OK STORE completed"]
    assert eleven.cmd("A202 EXPUNGE") == [
        "* 3 EXPUNGE",
        "* 3 EXPUNGE",
        "* 5 EXPUNGE",
        "* 8 EXPUNGE",
        "A202 OK EXPUNGE completed",
    ]
    assert eleven.cmd("b SEARCH ALL") == ["* SEARCH 1 2 3 4 5 6 7", "b OK SEARCH completed"]


def test_uid_expunge_only_touches_the_named_uids(eleven: Client) -> None:
    eleven.cmd("a STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert eleven.cmd("b UID EXPUNGE 2:5") == [
        "* 2 EXPUNGE",
        "* 2 EXPUNGE",
        "b OK EXPUNGE completed",
    ]
    assert eleven.cmd("c UID SEARCH DELETED") == ["* SEARCH 1", "c OK SEARCH completed"]


def test_check_close_unselect(env: Env, eleven: Client) -> None:
    assert eleven.cmd("FXXZ CHECK") == ["FXXZ OK CHECK completed"]
    eleven.cmd("a STORE 1 +FLAGS (\\Deleted)")
    assert eleven.cmd("A341 CLOSE") == ["A341 OK CLOSE completed"]
    assert len(env.store.mailbox("alice", "INBOX").messages()) == 10
    assert eleven.cmd("b NOOP") == ["b OK NOOP completed"]
    assert eleven.cmd("c FETCH 1 FLAGS") == ["c BAD FETCH not valid in the authenticated state"]
    eleven.select()
    eleven.cmd("d STORE 1 +FLAGS (\\Deleted)")
    assert eleven.cmd("e UNSELECT") == ["e OK UNSELECT completed"]
    assert len(env.store.mailbox("alice", "INBOX").messages()) == 10


def test_close_after_examine_does_not_expunge(env: Env, eleven: Client) -> None:
    eleven.cmd("a STORE 1 +FLAGS (\\Deleted)")
    eleven.cmd("b EXAMINE INBOX")
    assert eleven.cmd("c EXPUNGE")[0].startswith("c NO [READ-ONLY]")
    assert eleven.cmd("d CLOSE") == ["d OK CLOSE completed"]
    assert len(env.store.mailbox("alice", "INBOX").messages()) == 11


def test_search_examples(env: Env, eleven: Client) -> None:
    eleven.cmd("a STORE 2,5 +FLAGS (\\Flagged)")
    assert eleven.cmd('A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == [
        "* SEARCH 2 5",
        "A282 OK SEARCH completed",
    ]
    assert eleven.cmd('A283 SEARCH TEXT "string not in mailbox"') == [
        "* SEARCH",
        "A283 OK SEARCH completed",
    ]
    eleven.send(b"A284 SEARCH CHARSET UTF-8 TEXT {10}\r\n")
    assert eleven.cmd("number 10.") == ["* SEARCH 10", "A284 OK SEARCH completed"]
    assert eleven.cmd("b SEARCH CHARSET KOI8-R ALL") == [
        "b NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset"
    ]
    assert eleven.cmd("c SEARCH BOGUS")[0].startswith("c BAD")
    assert eleven.cmd("d UID SEARCH 3:5 SUBJECT message") == [
        "* SEARCH 3 4 5",
        "d OK SEARCH completed",
    ]


def test_fetch_examples(eleven: Client) -> None:
    reply = eleven.send(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n")
    assert reply.count(b"FETCH (FLAGS (") == 3
    assert b'BODY[HEADER.FIELDS ("DATE" "FROM")] {' in reply
    assert b"From: Bob Example <bob@example.org>\r\nDate: Wed, 17 Jul 1996" in reply
    assert b"Subject" not in reply
    assert reply.endswith(b"A654 OK FETCH completed\r\n")
    # BODY[...] (not PEEK) set \Seen, reported in the same response
    reply = eleven.cmd("b FETCH 2 FLAGS")
    assert "\\Seen" in flags_in(reply[0])
    reply = eleven.cmd("c FETCH 3 ALL")
    assert reply[0].startswith("* 3 FETCH (FLAGS (")
    assert "INTERNALDATE" in reply[0] and "RFC822.SIZE" in reply[0] and "ENVELOPE (" in reply[0]
    reply = eleven.send(b"d FETCH 5 (BODY.PEEK[TEXT]<0.4> RFC822.SIZE)\r\n")
    assert reply.startswith(b'* 5 FETCH (BODY[TEXT]<0> "Body" RFC822.SIZE ')
    assert b"\\Seen" not in eleven.send(b"e FETCH 5 FLAGS\r\n")
    reply = eleven.send(b"f FETCH 6 (RFC822.HEADER RFC822.TEXT)\r\n")
    assert b"RFC822.HEADER {" in reply and b"RFC822.TEXT {16}\r\nBody number 6.\r\n" in reply
    assert b"FLAGS (\\Seen" in reply
    reply = eleven.send(b"g FETCH 7 (BODYSTRUCTURE BODY)\r\n")
    assert reply.startswith(b'* 7 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN"')


def test_fetch_errors(eleven: Client) -> None:
    assert eleven.cmd("a FETCH 12 FLAGS") == ["a BAD invalid message sequence number"]
    assert eleven.cmd("b FETCH 1 BOGUS") == ["b BAD unknown fetch attribute BOGUS"]
    assert eleven.cmd("c FETCH 1 (FLAGS") == ["c BAD unterminated list"]
    assert eleven.cmd("d FETCH 1 BODY[99.TEXT.X]")[0].startswith("d BAD")
    assert eleven.cmd("e FETCH x FLAGS") == ["e BAD invalid sequence set"]
    assert eleven.cmd("f FETCH 1 ()") == ["f BAD empty fetch attribute list"]
    assert eleven.cmd("g FETCH 1 FAST")[-1] == "g OK FETCH completed"


def test_store_examples(eleven: Client) -> None:
    reply = eleven.cmd("A003 STORE 2:4 +FLAGS (\\Deleted)")
    assert [line.split(" FETCH")[0] for line in reply[:-1]] == ["* 2", "* 3", "* 4"]
    assert all("\\Deleted" in flags_in(line) for line in reply[:-1])
    assert reply[-1] == "A003 OK STORE completed"
    reply = eleven.cmd("b STORE 2 FLAGS (\\Seen $Label1)")
    assert flags_in(reply[0]) == {"\\Seen", "$Label1", "\\Recent"}
    reply = eleven.cmd("c STORE 2 -FLAGS \\Seen")
    assert flags_in(reply[0]) == {"$Label1", "\\Recent"}
    reply = eleven.cmd("d UID STORE 3 +FLAGS.SILENT \\Answered")
    assert reply == ["d OK STORE completed"]
    reply = eleven.cmd("e UID STORE 4 +FLAGS (\\Flagged)")
    assert reply[0].endswith("UID 4)")
    assert eleven.cmd("f STORE 1 +FLAGS (\\Recent)")[-1] == "f OK STORE completed"
    assert eleven.cmd("g STORE 1 +FLAGS (\\Bogus)")[0].startswith("g BAD unknown system flag")
    assert eleven.cmd("h STORE 1 REPLACE (\\Seen)")[0].startswith("h BAD STORE takes")


def test_copy_example_with_copyuid(env: Env, eleven: Client) -> None:
    assert eleven.cmd("A003 COPY 2:4 MEETING") == ["A003 NO [TRYCREATE] no such mailbox"]
    eleven.cmd("a CREATE MEETING")
    reply = eleven.cmd("A004 COPY 2:4 MEETING")
    assert re.fullmatch(r"A004 OK \[COPYUID \d+ 2:4 1:3\] COPY completed", reply[0])
    assert len(env.store.mailbox("alice", "MEETING").messages()) == 3
    reply = eleven.cmd("b UID COPY 9,11,10 MEETING")
    assert re.fullmatch(r"b OK \[COPYUID \d+ 9:11 4:6\] COPY completed", reply[0])
    assert eleven.cmd("c UID COPY 100:200 MEETING") == ["c OK COPY completed"]


def test_move(env: Env, eleven: Client) -> None:
    reply = eleven.cmd("a MOVE 2:3 Trash")
    assert re.fullmatch(r"\* OK \[COPYUID \d+ 2:3 1:2\] moved", reply[0])
    assert reply[1:] == ["* 2 EXPUNGE", "* 2 EXPUNGE", "a OK MOVE completed"]
    reply = eleven.cmd("b UID MOVE 11 Trash")
    assert reply[1:] == ["* 9 EXPUNGE", "b OK MOVE completed"]
    assert [i.uid for i in env.store.mailbox("alice", "Trash").messages()] == [1, 2, 3]
    assert eleven.cmd("c MOVE 1 nosuch") == ["c NO [TRYCREATE] no such mailbox"]


def test_sort(eleven: Client) -> None:
    # equal ARRIVAL keys keep mailbox order whatever REVERSE says (RFC 5256 3)
    assert eleven.cmd("a SORT (REVERSE ARRIVAL) US-ASCII ALL")[0] == (
        "* SORT 1 2 3 4 5 6 7 8 9 10 11"
    )
    assert eleven.cmd("a SORT (REVERSE SUBJECT) US-ASCII ALL")[0] == (
        "* SORT 9 8 7 6 5 4 3 2 11 10 1"
    )
    assert eleven.cmd("b UID SORT (SUBJECT) UTF-8 1:3")[0] == "* SORT 1 2 3"
    assert eleven.cmd("c SORT (BOGUS) UTF-8 ALL")[0].startswith("c BAD")


def test_uid_fetch_example(eleven: Client) -> None:
    reply = eleven.cmd("A999 UID FETCH 4:7 FLAGS")
    assert [line.split(" (")[0] for line in reply[:-1]] == [
        "* 4 FETCH",
        "* 5 FETCH",
        "* 6 FETCH",
        "* 7 FETCH",
    ]
    assert all(re.search(r"UID \d", line) for line in reply[:-1])
    assert eleven.cmd("b UID FETCH 500:* UID") == ["* 11 FETCH (UID 11)", "b OK FETCH completed"]
    assert eleven.cmd("c UID CAPABILITY") == ["c BAD unknown command UID CAPABILITY"]


def test_esearch(eleven: Client) -> None:
    """RFC 4731 3.1 and its examples."""
    eleven.cmd("a STORE 2,5,6 +FLAGS.SILENT (\\Flagged)")
    assert eleven.cmd("A282 SEARCH RETURN (MIN COUNT) FLAGGED") == [
        '* ESEARCH (TAG "A282") MIN 2 COUNT 3',
        "A282 OK SEARCH completed",
    ]
    assert eleven.cmd("A283 SEARCH RETURN () FLAGGED")[0] == '* ESEARCH (TAG "A283") ALL 2,5:6'
    assert eleven.cmd("A284 UID SEARCH RETURN (MAX ALL COUNT) DELETED")[0] == (
        '* ESEARCH (TAG "A284") UID COUNT 0'
    )
    assert eleven.cmd("A285 SEARCH RETURN (SAVE) ALL")[0].startswith("A285 BAD RETURN options")


def test_big_fetch_is_streamed_in_slices(env: Env) -> None:
    """FETCH output is made as the client reads it: one slice per turn, then wake-ups; a
    command pipelined behind it waits for it (STYLE.md 11)."""
    from refmail.imap.session import OUTPUT_SLICE

    body = ("x" * 99 + "\r\n") * 6000  # 600 kB
    for n in range(3):
        env.deliver("alice", f"big {n}", body=body)
    client = env.session()
    client.login()
    client.select()
    env.wakes.clear()
    first = client.send(b"a FETCH 1:* BODY.PEEK[]\r\nb NOOP\r\n", bytewise=False)
    assert OUTPUT_SLICE <= len(first) < 2 * OUTPUT_SLICE
    assert b"a OK" not in first and b"b OK" not in first
    assert env.wakes
    rest = b""
    for _ in range(10):
        more = client.session.pending_output()
        if not more:
            break
        rest += more
    everything = first + rest
    assert everything.count(b" FETCH (BODY[] {") == 3
    assert everything.endswith(b"a OK FETCH completed\r\nb OK NOOP completed\r\n")
