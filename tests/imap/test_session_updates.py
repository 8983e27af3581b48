"""Several sessions on one mailbox: untagged EXISTS / RECENT / FETCH / EXPUNGE only where
RFC 3501 7.4.1 allows, \\Recent in exactly one session, IDLE woken without polling."""

from __future__ import annotations

import re

import pytest

from .conftest import Client, Env

#: Every test here runs with commands sent whole and one byte at a time.
pytestmark = pytest.mark.parametrize("feed", ["whole", "bytewise"])


def two_sessions(env: Env, count: int = 3) -> tuple[Client, Client]:
    for n in range(1, count + 1):
        env.deliver("alice", f"message {n}")
    first, second = env.session(), env.session()
    for client in (first, second):
        client.login()
        client.select()
    return first, second


def test_recent_belongs_to_the_first_session(env: Env) -> None:
    env.deliver("alice", "one")
    first, second = env.session(), env.session()
    first.login()
    second.login()
    assert "* 1 RECENT" in first.select()
    assert "* 0 RECENT" in second.select()
    env.deliver("alice", "two")
    assert second.cmd("a NOOP") == ["* 2 EXISTS", "* 1 RECENT", "a OK NOOP completed"]
    assert first.cmd("b NOOP") == ["* 2 EXISTS", "* 1 RECENT", "b OK NOOP completed"]
    assert "\\Recent" in second.cmd("c FETCH 2 FLAGS")[0]
    assert "\\Recent" not in first.cmd("d FETCH 2 FLAGS")[0]
    third = env.session()
    third.login()
    assert "* 0 RECENT" in third.cmd("e EXAMINE INBOX")


def test_examine_and_status_leave_recent_alone(env: Env) -> None:
    env.deliver("alice", "one")
    looker, selector = env.session(), env.session()
    looker.login()
    selector.login()
    assert "* 1 RECENT" in looker.cmd("a EXAMINE INBOX")
    assert looker.cmd("b STATUS INBOX (RECENT)")[0] == '* STATUS "INBOX" (RECENT 1)'
    assert "* 1 RECENT" in selector.select()


def test_exists_reaches_other_sessions_after_any_command(env: Env) -> None:
    first, second = two_sessions(env)
    first.send(b"a APPEND INBOX {5+}\r\nhello\r\n")
    reply = second.cmd("b FETCH 1 (FLAGS)")  # EXISTS may be sent during FETCH
    assert "* 4 EXISTS" in reply
    assert reply[-1] == "b OK FETCH completed"


def test_expunge_waits_for_a_command_that_allows_it(env: Env) -> None:
    first, second = two_sessions(env)
    first.cmd("a STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert first.cmd("b EXPUNGE") == ["* 2 EXPUNGE", "b OK EXPUNGE completed"]
    # second still numbers 1, 2, 3: no EXPUNGE during FETCH, STORE or SEARCH (RFC 3501 7.4.1)
    reply = second.cmd("c FETCH 1:3 UID")
    assert "* 1 FETCH (UID 1)" in reply and "* 3 FETCH (UID 3)" in reply
    assert not any(line.endswith(" EXPUNGE") for line in reply)
    assert reply[-1] == "c NO [EXPUNGEISSUED] some of the messages were expunged"
    reply = second.cmd("d SEARCH ALL")
    assert reply == ["* SEARCH 1 3", "d OK SEARCH completed"]  # sequence numbers kept
    reply = second.cmd("e STORE 3 +FLAGS (\\Flagged)")
    assert reply[0].startswith("* 3 FETCH (FLAGS (")
    assert not any("EXPUNGE" in line for line in reply)
    assert second.cmd("f NOOP") == ["* 2 EXPUNGE", "f OK NOOP completed"]
    assert second.cmd("g FETCH 2 UID")[0] == "* 2 FETCH (UID 3)"


def test_uid_commands_may_carry_expunge(env: Env) -> None:
    first, second = two_sessions(env)
    first.cmd("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    first.cmd("b EXPUNGE")
    reply = second.cmd("c UID FETCH 1:* UID")
    assert reply == [
        "* 1 EXPUNGE",
        "* 1 FETCH (UID 2)",
        "* 2 FETCH (UID 3)",
        "c OK FETCH completed",
    ]


def test_flag_changes_reach_other_sessions(env: Env) -> None:
    first, second = two_sessions(env)
    first.cmd("a STORE 3 +FLAGS (\\Answered)")
    reply = second.cmd("b NOOP")
    assert re.fullmatch(r"\* 3 FETCH \(FLAGS \(\\Answered\)\)", reply[0])
    assert second.cmd("c NOOP") == ["c OK NOOP completed"]  # told once


def test_idle_is_woken_by_a_delivery(env: Env) -> None:
    first, second = two_sessions(env, count=1)
    assert second.send(b"i1 IDLE\r\n") == b"+ idling\r\n"
    assert second.session.pending_output() == b""
    env.wakes.clear()
    env.deliver("alice", "news")
    assert env.wakes, "the store's listener did not wake the connection"
    # the first session to hear of the message gets \Recent: here the idling one
    assert second.session.pending_output() == b"* 2 EXISTS\r\n* 1 RECENT\r\n"
    first.cmd("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    first.cmd("b EXPUNGE")
    assert second.session.pending_output() == b"* 1 EXPUNGE\r\n"
    assert second.cmd("DONE") == ["i1 OK IDLE terminated"]
    env.wakes.clear()
    env.deliver("alice", "later")
    assert not env.wakes  # not idling: updates wait for the next command
    assert second.session.pending_output() == b""
    assert second.cmd("c NOOP")[0] == "* 2 EXISTS"


def test_idle_in_the_authenticated_state_and_bad_continuation(env: Env) -> None:
    client = env.session()
    client.login()
    assert client.send(b"a IDLE\r\n") == b"+ idling\r\n"
    assert client.cmd("NOT DONE") == ["a BAD expected DONE"]
    assert client.cmd("b NOOP") == ["b OK NOOP completed"]


def test_mailbox_deleted_by_another_session(env: Env) -> None:
    client, other = env.session(), env.session()
    client.login()
    other.login()
    client.cmd("a CREATE Work")
    env.deliver("alice", "x", mailbox="Work")
    client.select("Work")
    assert other.cmd("b DELETE Work") == ["b OK DELETE completed"]
    reply = client.cmd("c NOOP")
    assert reply[0].startswith("* BYE")
    assert client.session.closing


def test_idle_on_a_mailbox_deleted_elsewhere_says_bye(env: Env) -> None:
    client, other = env.session(), env.session()
    client.login()
    other.login()
    client.cmd("a CREATE Work")
    client.select("Work")
    client.send(b"b IDLE\r\n")
    other.cmd("c DELETE Work")
    env.deliver("alice", "poke")  # any wake-up makes the idler look
    client.session.selected.mark_stale()
    assert client.session.pending_output().startswith(b"* BYE ")
    assert client.session.closing


def test_append_and_copy_into_the_selected_mailbox_report_exists(env: Env) -> None:
    """RFC 3501 6.3.11: the server SHOULD send EXISTS when APPEND targets the selected
    mailbox; the same holds for COPY onto itself."""
    client = env.session()
    client.login()
    client.select()
    reply = client.cmd("a APPEND INBOX {5+}\r\nhello")
    assert reply[:2] == ["* 1 EXISTS", "* 1 RECENT"]
    assert re.fullmatch(r"a OK \[APPENDUID \d+ 1\] APPEND completed", reply[2])
    reply = client.cmd("b COPY 1 INBOX")
    assert reply[:2] == ["* 2 EXISTS", "* 2 RECENT"]
