"""The POP3 session machine, fed bytes, over a real MailStore and UserDB (RFC 1939 transcripts).

Transcripts run four times (``fed``): the client's bytes whole, line by line, one byte at a
time, and in chunks that carry the start of the next command; the replies must be identical.
"""

from __future__ import annotations

import base64
import gc
import shutil
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pop3_harness import Harness, make_message

from refmail.pop3.session import ALLOWED, HANDLERS, OUTPUT_HIGH_WATER, State
from refmail.store import MailStore

SIGN_OFF = b"+OK refmail POP3 server signing off"


def uidl(harness: Harness, uid: int, user: str = "alice") -> str:
    box = harness.store.mailbox(user, "INBOX")
    return f"{box.uidvalidity:08x}{uid:08x}"


def plain(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


# ---------------------------------------------------------------------------- RFC 1939 examples


def test_every_allowed_verb_has_a_handler() -> None:
    for verbs in ALLOWED.values():
        assert verbs <= set(HANDLERS)
    assert ALLOWED[State.UPDATE] == frozenset()


def test_rfc1939_section_10_example(fed: Harness) -> None:
    """RFC 1939 10, with USER/PASS in place of APOP (not offered)."""
    m1, m2 = make_message(120), make_message(200)
    fed.deliver(m1)
    fed.deliver(m2)
    client = fed.client()
    assert client.greeting == b"+OK refmail POP3 server ready\r\n"
    client.converse(
        [
            (b"USER alice\r\n", b"+OK send PASS\r\n"),
            (b"PASS alice-pw\r\n", b"+OK alice's maildrop has 2 messages (320 octets)\r\n"),
            (b"STAT\r\n", b"+OK 2 320\r\n"),
            (b"LIST\r\n", b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"),
            (b"RETR 1\r\n", b"+OK 120 octets\r\n" + m1 + b".\r\n"),
            (b"DELE 1\r\n", b"+OK message 1 deleted\r\n"),
            (b"RETR 2\r\n", b"+OK 200 octets\r\n" + m2 + b".\r\n"),
            (b"DELE 2\r\n", b"+OK message 2 deleted\r\n"),
            (b"QUIT\r\n", SIGN_OFF + b" (maildrop empty)\r\n"),
        ]
    )
    assert client.session.closing
    assert client.send(b"NOOP\r\n") == b""  # nothing is read after QUIT
    assert fed.inbox_uids() == []


def test_rfc1939_command_examples(fed: Harness) -> None:
    """The examples of RFC 1939 5 (STAT LIST RETR DELE NOOP RSET), 6 (QUIT) and 7 (TOP UIDL)."""
    m1, m2 = make_message(120), make_message(200)
    uid1, uid2 = fed.deliver(m1), fed.deliver(m2)
    u1, u2 = uidl(fed, uid1), uidl(fed, uid2)
    head = m1[: m1.index(b"\r\n\r\n") + 4]
    client = fed.client()
    client.login()
    client.converse(
        [
            (b"STAT\r\n", b"+OK 2 320\r\n"),
            (b"LIST\r\n", b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"),
            (b"LIST 2\r\n", b"+OK 2 200\r\n"),
            (b"LIST 3\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
            (b"UIDL\r\n", f"+OK unique-id listing follows\r\n1 {u1}\r\n2 {u2}\r\n.\r\n".encode()),
            (b"UIDL 2\r\n", f"+OK 2 {u2}\r\n".encode()),
            (b"UIDL 3\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
            (b"TOP 1 0\r\n", b"+OK top of message follows\r\n" + head + b".\r\n"),
            (b"TOP 1 2\r\n", b"+OK top of message follows\r\n" + head + b"x\r\nx\r\n.\r\n"),
            (b"TOP 1 1000\r\n", b"+OK top of message follows\r\n" + m1 + b".\r\n"),
            (b"TOP 100 3\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
            (b"DELE 1\r\n", b"+OK message 1 deleted\r\n"),
            (b"DELE 1\r\n", b"-ERR message 1 already deleted\r\n"),
            (b"RETR 1\r\n", b"-ERR message 1 already deleted\r\n"),
            (b"LIST 1\r\n", b"-ERR message 1 already deleted\r\n"),
            (b"STAT\r\n", b"+OK 1 200\r\n"),
            (b"LIST\r\n", b"+OK 1 messages (200 octets)\r\n2 200\r\n.\r\n"),
            (b"UIDL\r\n", f"+OK unique-id listing follows\r\n2 {u2}\r\n.\r\n".encode()),
            (b"NOOP\r\n", b"+OK\r\n"),
            (b"RSET\r\n", b"+OK maildrop has 2 messages (320 octets)\r\n"),
            (b"STAT\r\n", b"+OK 2 320\r\n"),
            (b"RETR 2\r\n", b"+OK 200 octets\r\n" + m2 + b".\r\n"),
            (b"QUIT\r\n", SIGN_OFF + b" (2 messages left)\r\n"),
        ]
    )
    assert fed.inbox_uids() == [uid1, uid2]


def test_quit_in_authorization_signs_off(fed: Harness) -> None:
    """RFC 1939 6: QUIT in AUTHORIZATION; no UPDATE state."""
    fed.deliver(make_message(100))
    client = fed.client()
    client.converse([(b"USER alice\r\n", b"+OK send PASS\r\n"), (b"QUIT\r\n", SIGN_OFF + b"\r\n")])
    assert client.session.closing
    assert len(fed.inbox_uids()) == 1


def test_empty_maildrop(fed: Harness) -> None:
    client = fed.client()
    client.converse(
        [
            (b"user bob\r\n", b"+OK send PASS\r\n"),
            (b"pass bob-pw\r\n", b"+OK bob's maildrop has 0 messages (0 octets)\r\n"),
            (b"stat\r\n", b"+OK 0 0\r\n"),
            (b"list\r\n", b"+OK 0 messages (0 octets)\r\n.\r\n"),
            (b"uidl\r\n", b"+OK unique-id listing follows\r\n.\r\n"),
            (b"list 1\r\n", b"-ERR no such message, only 0 messages in maildrop\r\n"),
            (b"quit\r\n", SIGN_OFF + b" (maildrop empty)\r\n"),
        ]
    )


def test_pipelined_bare_lf_lines(pop3: Harness) -> None:
    """RFC 2449 6.6 PIPELINING: a burst of commands is answered in order; LF-only tolerated."""
    pop3.deliver(make_message(100))
    client = pop3.client()
    reply = client.send(b"USER alice\nPASS alice-pw\nSTAT\nNOOP\nQUIT\n")
    assert reply.split(b"\r\n")[2:5] == [b"+OK 1 100", b"+OK", SIGN_OFF + b" (1 messages left)"]


# ---------------------------------------------------------------------------- the maildrop


def test_dot_stuffing_and_sizes_before_stuffing(fed: Harness) -> None:
    """RFC 1939 3 and 11: RETR/TOP dot-stuff; LIST/STAT count the octets before stuffing."""
    message = b"Subject: dots\r\n\r\n.\r\n..two\r\n.x\r\nend\r\n"
    fed.deliver(message)
    client = fed.client()
    client.login()
    stuffed = b"Subject: dots\r\n\r\n..\r\n...two\r\n..x\r\nend\r\n.\r\n"
    client.converse(
        [
            (b"LIST 1\r\n", f"+OK 1 {len(message)}\r\n".encode()),
            (b"RETR 1\r\n", f"+OK {len(message)} octets\r\n".encode() + stuffed),
            (b"TOP 1 1\r\n", b"+OK top of message follows\r\nSubject: dots\r\n\r\n..\r\n.\r\n"),
        ]
    )


def test_retr_is_byte_exact(pop3: Harness) -> None:
    message = (
        b"From: a@example.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n"
        b"caf\xc3\xa9 \xff\xfe binary-ish\r\nFrom the start\r\n>From quoted\r\n\r\n\r\n"
    )
    pop3.deliver(message)
    client = pop3.client()
    client.login()
    assert client.send(b"RETR 1\r\n") == f"+OK {len(message)} octets\r\n".encode() + message + (
        b".\r\n"
    )


def test_snapshot_at_login(pop3: Harness) -> None:
    """Mail that arrives during a session shows at the next login, not before."""
    pop3.deliver(make_message(100))
    client = pop3.client()
    client.login()
    pop3.deliver(make_message(150))
    assert client.send(b"STAT\r\n") == b"+OK 1 100\r\n"
    assert client.send(b"RETR 2\r\n") == b"-ERR no such message, only 1 messages in maildrop\r\n"
    assert client.send(b"QUIT\r\n") == SIGN_OFF + b" (1 messages left)\r\n"
    again = pop3.client()
    again.login()
    assert again.send(b"STAT\r\n") == b"+OK 2 250\r\n"


def test_long_pipelined_burst_is_answered_in_slices(pop3: Harness) -> None:
    """RFC 2449 6.6 PIPELINING without buffering every reply: past OUTPUT_HIGH_WATER the
    session calls wake and answers the rest from pending_output, in order."""
    message = make_message(300_000)
    pop3.deliver(message)
    wakes: list[int] = []
    client = pop3.client(wake=lambda: wakes.append(1))
    client.login()
    retr = b"+OK 300000 octets\r\n" + message + b".\r\n"
    first = client.send(b"RETR 1\r\n" * 10 + b"STAT\r\n")
    assert first == retr * 4 and len(first) >= OUTPUT_HIGH_WATER and wakes == [1]
    second = client.session.pending_output()
    assert second == retr * 4 and wakes == [1, 1]
    assert client.session.pending_output() == retr * 2 + b"+OK 1 300000\r\n"
    assert wakes == [1, 1] and client.session.pending_output() == b""


def test_dele_then_quit_removes_durably(pop3: Harness) -> None:
    uids = [pop3.deliver(make_message(100 + i)) for i in range(4)]
    client = pop3.client()
    client.login()
    assert client.send(b"DELE 2\r\nDELE 4\r\n") == (
        b"+OK message 2 deleted\r\n+OK message 4 deleted\r\n"
    )
    # A message arriving mid-session survives the UPDATE state.
    late = pop3.deliver(make_message(300))
    assert client.send(b"QUIT\r\n") == SIGN_OFF + b" (2 messages left)\r\n"
    assert pop3.inbox_uids() == [uids[0], uids[2], late]


def test_connection_lost_deletes_nothing(pop3: Harness) -> None:
    """RFC 1939 6: without QUIT there is no UPDATE state."""
    uids = [pop3.deliver(make_message(100)) for _ in range(2)]
    client = pop3.client()
    client.login()
    assert client.send(b"DELE 1\r\nDELE 2\r\n").count(b"+OK") == 2
    client.session.connection_lost()
    assert pop3.inbox_uids() == uids
    again = pop3.client()
    again.login()  # the claim was released
    assert again.send(b"STAT\r\n") == b"+OK 2 200\r\n"


def test_timeout_and_shutdown_delete_nothing_and_release(pop3: Harness) -> None:
    """RFC 1939 3: autologout does not enter UPDATE and sends no response."""
    pop3.deliver(make_message(100))
    client = pop3.client()
    client.login()
    client.send(b"DELE 1\r\n")
    assert client.session.idle_timeout == pop3.config.limits.pop3_idle_timeout == 600.0
    assert client.session.timed_out() == b""
    assert client.session.closing
    second = pop3.client()
    second.login()
    second.send(b"DELE 1\r\n")
    assert second.session.shutting_down() == b"-ERR [SYS/TEMP] server shutting down\r\n"
    assert len(pop3.inbox_uids()) == 1
    pop3.client().login()


def test_exclusive_access_in_use(pop3: Harness) -> None:
    """RFC 1939 8 exclusive-access lock, RFC 2449 8.1.1 [IN-USE]; released on QUIT."""
    pop3.deliver(make_message(100))
    first = pop3.client()
    first.login()
    second = pop3.client()
    reply = second.send(b"USER alice\r\nPASS alice-pw\r\n")
    assert reply.endswith(b"-ERR [IN-USE] maildrop is already in use by another POP3 session\r\n")
    assert not second.session.closing
    assert second.send(b"STAT\r\n").startswith(b"-ERR STAT is not allowed before login")
    bob = pop3.client()
    bob.login("bob")  # other users are not affected
    plain_second = pop3.client()
    assert plain_second.send(f"AUTH PLAIN {plain('alice', 'alice-pw')}\r\n".encode()).startswith(
        b"-ERR [IN-USE]"
    )
    assert first.send(b"QUIT\r\n").startswith(SIGN_OFF)
    assert second.send(b"USER alice\r\nPASS alice-pw\r\nSTAT\r\n").endswith(b"+OK 1 100\r\n")


def test_claim_of_a_vanished_session_lapses(pop3: Harness) -> None:
    """A session dropped without QUIT or connection_lost (its handler died) holds no claim."""
    client = pop3.client()
    client.login()
    assert "alice" in pop3.service.claims
    del client
    gc.collect()
    assert "alice" not in pop3.service.claims
    pop3.client().login()


def test_maildrop_locked_by_another_program_is_in_use(pop3: Harness) -> None:
    """RFC 2449 8.1.1 [IN-USE] also when the mbox lock is held elsewhere (here: a thread)."""
    pop3.deliver(make_message(100))
    pop3.store.close()
    pop3.store = MailStore(pop3.config.mail_dir, lock_timeout=0.2)
    pop3.service = pop3.make_service(tls_available=True)
    box = pop3.store.mailbox("alice", "INBOX")
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with box.locked():
            taken.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        taken.wait(10)
        client = pop3.client()
        assert client.send(b"USER alice\r\nPASS alice-pw\r\n").endswith(
            b"-ERR [IN-USE] maildrop is locked by another program, try again later\r\n"
        )
    finally:
        done.set()
        holder.join()
    assert client.send(b"USER alice\r\nPASS alice-pw\r\nSTAT\r\n").endswith(b"+OK 1 100\r\n")


def test_uidl_stable_across_restart_and_index_rebuild(pop3: Harness) -> None:
    """RFC 1939 7: a unique-id "persists across sessions"."""
    for size in (100, 200, 300):
        pop3.deliver(make_message(size))
    client = pop3.client()
    client.login()
    before = client.send(b"UIDL\r\n")
    client.send(b"QUIT\r\n")
    ids = [line.split()[1] for line in before.split(b"\r\n")[1:-2]]
    assert len(set(ids)) == 3 and all(len(i) == 16 for i in ids)

    pop3.store.close()
    for index in pop3.config.mail_dir.glob("*/.index"):
        shutil.rmtree(index)
    pop3.restart()
    again = pop3.client()
    again.login()
    assert again.send(b"UIDL\r\n") == before


def test_storage_failure_is_sys_temp_without_internals(
    pop3: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A mailbox file that vanished under the session: -ERR [SYS/TEMP], traceback logged only."""
    pop3.deliver(make_message(100))
    client = pop3.client()
    client.login()
    (pop3.config.mail_dir / "alice" / "INBOX").unlink()
    reply = client.send(b"RETR 1\r\n")
    assert reply.startswith(b"-ERR [SYS/TEMP] ")
    assert reply == b"-ERR [SYS/TEMP] cannot access the maildrop now, try again later\r\n"
    assert client.send(b"NOOP\r\n") == b"+OK\r\n"  # the session goes on
    assert "Traceback" in caplog.text


# ---------------------------------------------------------------------------- bad input


def test_bad_input_each_answered_and_session_goes_on(fed: Harness) -> None:
    fed.deliver(make_message(100))
    fed.deliver(make_message(200))
    client = fed.client()
    not_yet = b"-ERR %s is not allowed before login (AUTHORIZATION state)\r\n"
    long_line = b"NOOP " + b"x" * 300 + b"\r\n"
    script = [
        (b"\r\n", b"-ERR empty command\r\n"),
        (b"HELO x\r\n", b"-ERR unknown command 'HELO'\r\n"),
        (b"STAT\r\n", not_yet % b"STAT"),
        (b"RETR 1\r\n", not_yet % b"RETR"),
        (b"DELE abc\r\n", not_yet % b"DELE"),
        (long_line, b"-ERR command line too long (limit 255 octets, RFC 2449 4)\r\n"),
        (b"NOOP\0\r\n", b"-ERR control characters in command line\r\n"),
        (b"USER\r\n", b"-ERR USER needs an argument\r\n"),
        (b"USER alice\r\n", b"+OK send PASS\r\n"),
        (b"PASS alice-pw\r\n", b"+OK alice's maildrop has 2 messages (300 octets)\r\n"),
        (b"USER alice\r\n", b"-ERR USER is not allowed after login (TRANSACTION state)\r\n"),
        (b"PASS alice-pw\r\n", b"-ERR PASS is not allowed after login (TRANSACTION state)\r\n"),
        (b"RETR\r\n", b"-ERR RETR needs an argument\r\n"),
        (b"RETR 1 2\r\n", b"-ERR RETR takes at most 1 argument(s)\r\n"),
        (b"STAT 1\r\n", b"-ERR STAT takes no arguments\r\n"),
        (b"LIST x\r\n", b"-ERR invalid message number 'x': expected a decimal number\r\n"),
        (b"RETR 0\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
        (b"RETR -1\r\n", b"-ERR invalid message number '-1': expected a decimal number\r\n"),
        (b"DELE 3\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
        (b"TOP 1\r\n", b"-ERR TOP needs 2 arguments\r\n"),
        (b"TOP 1 -1\r\n", b"-ERR invalid line count '-1': expected a decimal number\r\n"),
        (b"UIDL 0\r\n", b"-ERR no such message, only 2 messages in maildrop\r\n"),
        (b"DELE 2\r\n", b"+OK message 2 deleted\r\n"),
        (b"DELE 2\r\n", b"-ERR message 2 already deleted\r\n"),
        (b"TOP 2 0\r\n", b"-ERR message 2 already deleted\r\n"),
        (b"UIDL 2\r\n", b"-ERR message 2 already deleted\r\n"),
        (b"STAT\r\n", b"+OK 1 100\r\n"),
        (b"QUIT\r\n", SIGN_OFF + b" (1 messages left)\r\n"),
    ]
    client.converse(script)
    assert len(fed.inbox_uids()) == 1


def test_command_line_limit_at_255_and_256(pop3: Harness) -> None:
    """RFC 2449 4: 255 octets including CRLF."""
    client = pop3.client()
    at_limit = b"USER " + b"a" * 248 + b"\r\n"
    assert len(at_limit) == 255
    assert client.send(at_limit) == b"+OK send PASS\r\n"
    over = b"USER " + b"a" * 249 + b"\r\n"
    assert client.send(over + b"NOOP\r\n") == (
        b"-ERR command line too long (limit 255 octets, RFC 2449 4)\r\n"
        b"-ERR NOOP is not allowed before login (AUTHORIZATION state)\r\n"
    )
    # A line that never ends is answered once and not buffered.
    assert client.send(b"x" * 1000).startswith(b"-ERR command line too long")
    assert client.send(b"y" * 100_000) == b""
    assert client.session._reader.pending == 0
    assert client.send(b"\r\nQUIT\r\n") == SIGN_OFF + b"\r\n"


commands = st.lists(
    st.tuples(
        st.sampled_from(["STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET", "CAPA"]),
        st.lists(
            st.one_of(st.integers(min_value=-2, max_value=6).map(str), st.sampled_from(["x", ""])),
            max_size=3,
        ),
    ).map(lambda c: " ".join([c[0], *c[1]]).encode() + b"\r\n"),
    max_size=25,
)


def test_transaction_never_fails_internally(pop3: Harness) -> None:
    """Any sequence of TRANSACTION commands with any arguments gets +OK or a -ERR with a
    reason (never [SYS/TEMP]); whole and byte-at-a-time feeding agree."""
    for size in (100, 150, 200, 250):
        pop3.deliver(make_message(size, body_line=b".dot"))

    @settings(max_examples=60, deadline=None)
    @given(script=commands)
    def run(script: list[bytes]) -> None:
        outputs = []
        for mode in ("whole", "bytes"):
            client = pop3.client(mode=mode)
            client.login()
            outputs.append(client.send(b"".join(script)))
            client.session.connection_lost()
        assert outputs[0] == outputs[1]
        assert b"SYS/TEMP" not in outputs[0]
        assert outputs[0].count(b"+OK") + outputs[0].count(b"-ERR") >= len(script)

    run()
