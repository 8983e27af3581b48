"""RFC 3501's sample session (section 8) and command examples (section 6), against a real
MailStore and UserDB; each transcript is fed whole, byte by byte, and with trailing bytes."""

from __future__ import annotations

import re

import pytest

from .conftest import Env, message

#: Every test here runs with commands sent whole and one byte at a time.
pytestmark = pytest.mark.parametrize("feed", ["whole", "bytewise"])


def lines_of(reply: bytes) -> list[str]:
    return reply.decode("utf-8", "replace").split("\r\n")[:-1]


def flags_in(line: str) -> set[str]:
    match = re.search(r"FLAGS \(([^)]*)\)", line)
    assert match, line
    return set(match.group(1).split())


# ------------------------------------------------------------------ RFC 3501 section 8


def setup_sample(env: Env) -> None:
    """18 messages: 1-16 seen and already claimed as \\Recent by an earlier session,
    17 and 18 new (so "* 2 RECENT" and "[UNSEEN 17]" as in the sample)."""
    for n in range(1, 17):
        env.deliver("alice", f"message {n}")
    box = env.store.mailbox("alice", "INBOX")
    box.set_flags({info.uid: frozenset({"\\Seen"}) for info in box.messages()})
    earlier = env.session()
    earlier.login()
    earlier.select()
    earlier.cmd("x LOGOUT")
    for n in (17, 18):
        env.deliver("alice", f"message {n}")


def test_rfc3501_section8_sample_session(transcript) -> None:
    replies = transcript(
        setup_sample,
        [
            b"a001 login alice alice-pw\r\n",
            b"a002 select inbox\r\n",
            b"a003 fetch 12 full\r\n",
            b"a004 fetch 12 body[header]\r\n",
            b"a005 store 12 +flags \\deleted\r\n",
            b"a006 logout\r\n",
        ],
    )
    login, select, full, header, store, logout = map(lines_of, replies)
    assert login[-1].startswith("a001 OK")
    assert "* 18 EXISTS" in select
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in select
    assert "* 2 RECENT" in select
    assert "* OK [UNSEEN 17] first unseen message" in select
    assert any(re.fullmatch(r"\* OK \[UIDVALIDITY (\d+|V)\] .*", line) for line in select)
    assert select[-1] == "a002 OK [READ-WRITE] SELECT completed"
    assert len(full) == 2
    assert re.match(
        r'\* 12 FETCH \(FLAGS \(\\Seen\) INTERNALDATE "17-Jul-1996 09:44:25 \+0000" '
        r'RFC822\.SIZE \d+ ENVELOPE \("Wed, 17 Jul 1996 02:23:25 -0700" "message 12" '
        r'\(\("Bob Example" NIL "bob" "example\.org"\)\) .* BODY \("TEXT" "PLAIN" .*\)\)$',
        full[0],
    )
    assert full[1] == "a003 OK FETCH completed"
    data = replies[3]
    size = int(re.match(rb"\* 12 FETCH \(BODY\[HEADER\] \{(\d+)\}\r\n", data).group(1))
    head_start = data.index(b"}\r\n") + 3
    assert data[head_start : head_start + size].endswith(b"\r\n\r\n")
    assert b"Subject: message 12\r\n" in data[head_start : head_start + size]
    assert header[-1] == "a004 OK FETCH completed"
    assert store[0].startswith("* 12 FETCH (FLAGS (")
    assert flags_in(store[0]) == {"\\Seen", "\\Deleted"}
    assert store[-1] == "a005 OK STORE completed"
    assert logout[0].startswith("* BYE")
    assert logout[1] == "a006 OK LOGOUT completed"


# ------------------------------------------------------------------ RFC 3501 6.1 and 6.2


def test_capability_noop_logout(transcript) -> None:
    replies = transcript(
        lambda env: None,
        [b"abcd CAPABILITY\r\n", b"a002 NOOP\r\n", b"A023 LOGOUT\r\n"],
    )
    capability, noop, logout = map(lines_of, replies)
    assert capability[0].startswith("* CAPABILITY IMAP4rev1 ")
    assert "STARTTLS" in capability[0].split() and "AUTH=PLAIN" in capability[0].split()
    assert capability[1] == "abcd OK CAPABILITY completed"
    assert noop == ["a002 OK NOOP completed"]
    assert logout[0].startswith("* BYE") and logout[1] == "A023 OK LOGOUT completed"


def test_login_with_literals(transcript) -> None:
    replies = transcript(
        lambda env: None,
        [b"a1 LOGIN {5}\r\n", b"alice {8}\r\n", b"alice-pw\r\n", b"a2 NOOP\r\n"],
    )
    assert replies[0] == b"+ ready for literal data\r\n"
    assert replies[1] == b"+ ready for literal data\r\n"
    assert lines_of(replies[2])[-1].startswith("a1 OK [CAPABILITY IMAP4rev1")
    assert "STARTTLS" not in replies[2].decode()


def test_authenticate_plain_with_continuation_and_initial_response(env: Env) -> None:
    client = env.session()
    assert client.send(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    reply = client.cmd("AGFsaWNlAGFsaWNlLXB3")  # \0alice\0alice-pw
    assert reply[-1].startswith("a OK [CAPABILITY")
    other = env.session()
    reply = other.cmd("b AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlLXB3")
    assert reply[-1].startswith("b OK")
    third = env.session()
    third.send(b"c AUTHENTICATE PLAIN\r\n")
    assert third.cmd("*") == ["c BAD authentication cancelled"]
    assert third.cmd("d AUTHENTICATE PLAIN !!!")[-1].startswith("d BAD invalid SASL")
    assert third.cmd("e AUTHENTICATE CRAM-MD5") == [
        "e NO [CANNOT] unsupported authentication mechanism"
    ]
    assert third.cmd("f NOOP") == ["f OK NOOP completed"]


def test_login_failure_then_success(env: Env) -> None:
    client = env.session()
    assert client.cmd("a LOGIN alice wrong") == ["a NO [AUTHENTICATIONFAILED] invalid credentials"]
    assert client.cmd("b SELECT INBOX") == ["b BAD SELECT not valid in the not authenticated state"]
    client.login()
    assert client.cmd("c LOGIN alice alice-pw") == [
        "c BAD LOGIN not valid in the authenticated state"
    ]


# ------------------------------------------------------------------ RFC 3501 6.3


def test_select_examine_and_a_failed_select_deselects(env: Env) -> None:
    env.deliver("alice", "one")
    client = env.session()
    client.login()
    reply = client.cmd("A142 SELECT INBOX")
    assert "* 1 EXISTS" in reply and "* 1 RECENT" in reply
    assert (
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
        "flags permitted" in reply
    )
    assert any(line.startswith("* OK [UIDNEXT 2]") for line in reply)
    reply = client.cmd("A932 EXAMINE inbox")
    assert "* 0 RECENT" in reply  # the first SELECT took \\Recent (RFC 3501 2.3.2)
    assert "* OK [PERMANENTFLAGS ()] flags permitted" in reply
    assert reply[-1] == "A932 OK [READ-ONLY] EXAMINE completed"
    assert client.cmd("a STORE 1 +FLAGS \\Seen")[-1].startswith("a NO [READ-ONLY]")
    assert client.cmd("b SELECT nosuch") == ["b NO [NONEXISTENT] no such mailbox"]
    assert client.cmd("c FETCH 1 FLAGS") == ["c BAD FETCH not valid in the authenticated state"]


def test_create_delete_rename_examples(env: Env) -> None:
    """RFC 3501 6.3.3 - 6.3.5, within what an mbox store allows (a mailbox file cannot
    also hold mailboxes, so a parent is always \\Noselect)."""
    client = env.session()
    client.login()
    assert client.cmd("A003 CREATE owatagusiam/") == ["A003 OK CREATE completed"]
    assert client.cmd("A004 CREATE owatagusiam/blurdybloop") == ["A004 OK CREATE completed"]
    assert client.cmd("A005 CREATE blurdybloop")[-1] == "A005 OK CREATE completed"
    assert client.cmd("A006 CREATE blurdybloop") == [
        "A006 NO [ALREADYEXISTS] mailbox already exists"
    ]
    assert client.cmd("A007 CREATE inbox") == ["A007 NO [ALREADYEXISTS] INBOX always exists"]
    reply = client.cmd('A682 LIST "" *')
    assert '* LIST (\\HasNoChildren) "/" "blurdybloop"' in reply
    assert '* LIST (\\Noselect \\HasChildren) "/" "owatagusiam"' in reply
    assert '* LIST (\\HasNoChildren) "/" "owatagusiam/blurdybloop"' in reply
    assert client.cmd("A683 DELETE blurdybloop") == ["A683 OK DELETE completed"]
    assert client.cmd("A684 DELETE owatagusiam")[0].startswith("A684 NO")
    assert client.cmd("A685 DELETE owatagusiam/blurdybloop") == ["A685 OK DELETE completed"]
    # RFC 3501 6.3.4's example: the parent is still there, \Noselect, and may now go
    reply = client.cmd('A686 LIST "" owatagusiam*')
    assert reply == [
        '* LIST (\\Noselect \\HasNoChildren) "/" "owatagusiam"',
        "A686 OK LIST completed",
    ]
    assert client.cmd("A687 DELETE owatagusiam") == ["A687 OK DELETE completed"]
    assert client.cmd('A688 LIST "" owatagusiam*') == ["A688 OK LIST completed"]
    assert client.cmd("A686 DELETE INBOX") == ["A686 NO [CANNOT] INBOX cannot be deleted"]
    client.cmd("A700 CREATE foo/bar")
    client.cmd("A701 CREATE blurdybloop")
    assert client.cmd("A683 RENAME blurdybloop sarasoop") == ["A683 OK RENAME completed"]
    assert client.cmd("A684 RENAME foo zowie") == ["A684 OK RENAME completed"]
    reply = client.cmd('A685 LIST "" *')
    names = [line.rsplit(" ", 1)[1] for line in reply[:-1]]
    assert '"sarasoop"' in names and '"zowie/bar"' in names and '"foo/bar"' not in names
    assert client.cmd("A686 RENAME nosuch other")[0].startswith("A686 NO [NONEXISTENT]")
    assert client.cmd("A687 RENAME sarasoop zowie") == [
        "A687 NO [ALREADYEXISTS] mailbox already exists"
    ]
    assert client.cmd("A688 RENAME zowie zowie/deeper") == [
        "A688 NO [CANNOT] a mailbox cannot be moved below itself"
    ]
    assert client.cmd("A689 RENAME zowie sarasoop/x") == [
        "A689 NO [CANNOT] sarasoop holds messages, not mailboxes (mbox)"
    ]
    assert client.cmd("A690 CREATE sarasoop/x") == [
        "A690 NO [CANNOT] sarasoop holds messages, not mailboxes (mbox)"
    ]


def test_create_with_trailing_delimiter_makes_a_noselect_folder(env: Env) -> None:
    """RFC 3501 6.3.3: ``CREATE foo/`` declares that foo will hold mailboxes; in the mbox
    layout that is a directory, listed \\Noselect from now on (also to later sessions)."""
    client = env.session()
    client.login()
    assert client.cmd("a CREATE Lists/") == ["a OK CREATE completed"]
    assert client.cmd('b LIST "" Lists*') == [
        '* LIST (\\Noselect \\HasNoChildren) "/" "Lists"',
        "b OK LIST completed",
    ]
    assert client.cmd("c SELECT Lists") == ["c NO [NONEXISTENT] no such mailbox"]
    assert client.cmd("d CREATE Lists/")[0].startswith("d NO [ALREADYEXISTS]")
    assert client.cmd("e CREATE Lists")[0].startswith("e NO [ALREADYEXISTS]")
    assert client.cmd("f CREATE Lists/python") == ["f OK CREATE completed"]
    later = env.session()
    later.login()
    assert later.cmd('g LIST "" Lists*') == [
        '* LIST (\\Noselect \\HasChildren) "/" "Lists"',
        '* LIST (\\HasNoChildren) "/" "Lists/python"',
        "g OK LIST completed",
    ]
    assert later.cmd("h DELETE Lists") == [
        "h NO [CANNOT] mailbox has inferior hierarchical names"
    ]
    assert later.cmd("i RENAME Lists Groups") == ["i OK RENAME completed"]
    assert '* LIST (\\Noselect \\HasChildren) "/" "Groups"' in later.cmd('j LIST "" %')
    assert later.cmd("k CREATE Groups/python/sub/") == [
        "k NO [CANNOT] Groups/python holds messages, not mailboxes (mbox)"
    ]


def test_rename_inbox_moves_its_messages(env: Env) -> None:
    env.deliver("alice", "one")
    env.deliver("alice", "two")
    client = env.session()
    client.login()
    assert client.cmd("a RENAME INBOX old-mail") == ["a OK RENAME completed"]
    assert client.cmd("b STATUS INBOX (MESSAGES)")[0] == '* STATUS "INBOX" (MESSAGES 0)'
    assert client.cmd("c STATUS old-mail (MESSAGES)")[0] == '* STATUS "old-mail" (MESSAGES 2)'


def test_first_login_makes_special_use_mailboxes(env: Env) -> None:
    client = env.session()
    client.login("bob")
    reply = client.cmd('a LIST "" %')
    assert reply == [
        '* LIST (\\NoInferiors) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        "a OK LIST completed",
    ]
    assert client.cmd('b LIST (SPECIAL-USE) "" *')[0] == (
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"'
    )
    assert len(client.cmd('c LIST "" * RETURN (SPECIAL-USE)')) == 7
    assert client.cmd("d DELETE Junk") == ["d OK DELETE completed"]
    again = env.session()
    again.login("bob")
    assert not any("Junk" in line for line in again.cmd('e LIST "" *'))


def test_list_patterns_and_reference(env: Env) -> None:
    client = env.session()
    client.login()
    for name in ("Work/Projects/a", "Work/Old", "Worker"):
        assert client.cmd(f"c CREATE {name}")[-1] == "c OK CREATE completed"
    assert client.cmd('A101 LIST "" ""') == ['* LIST (\\Noselect) "/" ""', "A101 OK LIST completed"]
    assert client.cmd('A102 LIST Work/Projects ""')[0] == '* LIST (\\Noselect) "/" "Work/"'
    reply = client.cmd('a LIST "" Work/%')
    assert reply == [
        '* LIST (\\HasNoChildren) "/" "Work/Old"',
        '* LIST (\\Noselect \\HasChildren) "/" "Work/Projects"',
        "a OK LIST completed",
    ]
    assert client.cmd("b LIST Work/ *")[:-1] == [
        '* LIST (\\HasNoChildren) "/" "Work/Old"',
        '* LIST (\\Noselect \\HasChildren) "/" "Work/Projects"',
        '* LIST (\\HasNoChildren) "/" "Work/Projects/a"',
    ]
    assert client.cmd('c LIST "" inbox')[0] == '* LIST (\\NoInferiors) "/" "INBOX"'
    assert client.cmd('d LIST "" Wor%')[:-1] == [
        '* LIST (\\Noselect \\HasChildren) "/" "Work"',
        '* LIST (\\HasNoChildren) "/" "Worker"',
    ]


def test_international_mailbox_names_are_modified_utf7(env: Env) -> None:
    client = env.session()
    client.login()
    assert client.cmd("a CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-")[-1] == "a OK CREATE completed"
    assert "~peter/mail/台北/日本語" in env.store.list_mailboxes("alice")
    reply = client.cmd('b LIST "" ~peter/mail/*')
    assert '* LIST (\\HasNoChildren) "/" "~peter/mail/&U,BTFw-/&ZeVnLIqe-"' in reply
    assert client.cmd("c CREATE &Jjo!")[0].startswith("c BAD invalid modified UTF-7")


def test_subscribe_unsubscribe_lsub(env: Env) -> None:
    client = env.session()
    client.login()
    client.cmd("a CREATE #news/comp/mail/mime")
    assert client.cmd("A002 SUBSCRIBE #news/comp/mail/mime") == ["A002 OK SUBSCRIBE completed"]
    assert client.cmd('A003 LSUB "#news/" "comp/mail/*"') == [
        '* LSUB (\\HasNoChildren) "/" "#news/comp/mail/mime"',
        "A003 OK LSUB completed",
    ]
    assert client.cmd('A004 LSUB "#news/" comp/%') == [
        '* LSUB (\\Noselect) "/" "#news/comp/mail"',
        "A004 OK LSUB completed",
    ]
    assert client.cmd("A005 UNSUBSCRIBE #news/comp/mail/mime") == ["A005 OK UNSUBSCRIBE completed"]
    assert client.cmd('A006 LSUB "#news/" *') == ["A006 OK LSUB completed"]


def test_status(env: Env) -> None:
    env.deliver("alice", "one")
    env.deliver("alice", "two")
    client = env.session()
    client.login()
    reply = client.cmd("A042 STATUS INBOX (UIDNEXT MESSAGES RECENT UNSEEN UIDVALIDITY)")
    assert re.fullmatch(
        r'\* STATUS "INBOX" \(UIDNEXT 3 MESSAGES 2 RECENT 2 UNSEEN 2 UIDVALIDITY \d+\)', reply[0]
    )
    assert client.cmd("b STATUS INBOX (BOGUS)")[0].startswith("b BAD STATUS items")
    assert client.cmd("c STATUS nosuch (MESSAGES)") == ["c NO [NONEXISTENT] no such mailbox"]


def test_append_example(env: Env) -> None:
    client = env.session()
    client.login()
    body = message("afternoon meeting", "Hello Joe, do you think we can meet at 3:30?\r\n")
    line = b'A003 APPEND saved-messages (\\Seen) "07-Feb-1994 21:52:25 -0800" {%d}\r\n' % len(body)
    assert client.send(line) == b"+ ready for literal data\r\n"
    assert lines_of(client.send(body + b"\r\n")) == ["A003 NO [TRYCREATE] no such mailbox"]
    client.cmd("a CREATE saved-messages")
    client.send(line)
    reply = lines_of(client.send(body + b"\r\n"))
    assert re.fullmatch(r"A003 OK \[APPENDUID \d+ 1\] APPEND completed", reply[0])
    client.select("saved-messages")
    reply = client.cmd("b FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)")
    assert 'INTERNALDATE "08-Feb-1994 05:52:25 +0000"' in reply[0]
    assert f"RFC822.SIZE {len(body)}" in reply[0]
    assert flags_in(reply[0]) == {"\\Seen", "\\Recent"}
    data = client.send(b"c FETCH 1 BODY.PEEK[]\r\n")
    assert body in data


def test_append_refusals(make_env) -> None:
    env = make_env(message_size=100)
    client = env.session()
    assert client.cmd("a APPEND INBOX {5}") == ["a BAD command unknown or not valid in this state"]
    client.login()
    assert client.cmd("b APPEND INBOX {101}") == ["b NO [TOOBIG] message too big"]
    assert client.cmd("c APPEND INBOX (\\Bogus) {1+}\r\nx") == [
        "c BAD unknown system flag '\\\\Bogus'"
    ]
    assert client.cmd('d APPEND INBOX "not a date" {1+}\r\nx') == ["d BAD invalid date-time"]
    assert client.cmd("e APPEND INBOX hello") == ["e BAD the message must be a literal"]
    assert client.cmd("f NOOP") == ["f OK NOOP completed"]


def test_namespace_id_enable(env: Env) -> None:
    client = env.session()
    assert client.cmd('a ID ("name" "sodr" "version" "19.34")')[0] == (
        '* ID ("name" "refmail" "vendor" "refmail")'
    )
    assert client.cmd('b ID ("name")') == ["b BAD ID takes up to 30 field-value pairs"]
    client.login()
    assert client.cmd("c NAMESPACE") == [
        '* NAMESPACE (("" "/")) NIL NIL',
        "c OK NAMESPACE completed",
    ]
    assert client.cmd("d ENABLE CONDSTORE") == ["* ENABLED", "d OK ENABLE completed"]
    client.select()
    assert client.cmd("e ENABLE CONDSTORE") == ["e BAD ENABLE not valid in the selected state"]
