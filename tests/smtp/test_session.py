"""Transcript tests of the SMTP session machine (no sockets): RFC 5321 Appendix D and the
protocol's corners, with a real MailStore, UserDB and Spool on disk."""

from __future__ import annotations

import base64
import logging

import pytest
from smtp_transcript import HOW, codes, feed, header_names, normalized, replies, script

from refmail.delivery import LocalDelivery

BODY = script("Subject: test", "", "Blah blah blah...", "..etc. etc. etc.")


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# ---------------------------------------------------------------- RFC 5321 Appendix D


@pytest.mark.parametrize("how", HOW)
def test_d1_typical_transaction(make_world, how):
    """D.1: one message to two of three recipients (one unknown)."""
    world = make_world()
    session = world.session()
    data = script(
        "EHLO bar.com",
        "MAIL FROM:<Smith@bar.com>",
        "RCPT TO:<Jones@foo.com>",
        "RCPT TO:<Green@foo.com>",
        "RCPT TO:<Brown@foo.com>",
        "DATA",
        BODY + b".\r\n",
        "QUIT",
    )
    out = feed(session, data, how)
    assert codes(out) == [220, 250, 250, 250, 550, 250, 354, 250, 221]
    assert out.startswith(b"220 mx.foo.com ")
    assert b"250-PIPELINING\r\n" in out and b"250-SIZE 36700160\r\n" in out
    assert "550 5.1.1" in replies(out)[4]
    assert session.closing
    for user in ("jones", "brown"):
        (message,) = world.inbox(user)
        assert message.startswith(b"Return-Path: <Smith@bar.com>\r\nReceived: from bar.com ")
        assert message.endswith(b"\r\n\r\nBlah blah blah...\r\n.etc. etc. etc.\r\n")
        assert b"with ESMTP id " in message
    assert world.inbox("alice") == []
    # the whole, dribbled and trailing-bytes runs give the same replies
    assert normalized(out) == normalized(feed(make_world().session(), data, "whole"))


@pytest.mark.parametrize("how", HOW)
def test_d2_aborted_transaction(world, how):
    """D.2: RSET aborts; nothing is delivered."""
    data = script(
        "EHLO bar.com",
        "MAIL FROM:<Smith@bar.com>",
        "RCPT TO:<Jones@foo.com>",
        "RCPT TO:<Green@foo.com>",
        "RSET",
        "QUIT",
    )
    out = feed(world.session(), data, how)
    assert codes(out) == [220, 250, 250, 250, 550, 250, 221]
    assert world.inbox("jones") == []


@pytest.mark.parametrize("how", HOW)
def test_d3_relay_refused_without_auth(world, how):
    """D.3: a relay for a foreign domain; unauthenticated we are never an open relay."""
    data = script(
        "EHLO bar.com",
        "MAIL FROM:<JQP@bar.com>",
        "RCPT TO:<Jones@XYZ.COM>",
        "DATA",
        "QUIT",
    )
    out = feed(world.session(), data, how)
    assert codes(out) == [220, 250, 250, 550, 554, 221]
    assert replies(out)[3].startswith("550 5.7.1")
    assert world.spool.list() == []


@pytest.mark.parametrize("how", HOW)
def test_d3_relay_queued_when_authenticated(make_world, how):
    world = make_world()
    data = script(
        "EHLO bar.com",
        f"AUTH PLAIN {plain('alice', 'alice-pw')}",
        "MAIL FROM:<alice@foo.com>",
        "RCPT TO:<Jones@XYZ.COM>",
        "RCPT TO:<jones@foo.com>",
        "DATA",
        BODY + b".\r\n",
        "QUIT",
    )
    out = feed(world.session(), data, how)
    assert codes(out) == [220, 250, 235, 250, 250, 250, 354, 250, 221]
    (queued,) = world.spool.list()
    assert queued["sender"] == "alice@foo.com"
    assert [(r["address"], r["state"]) for r in queued["recipients"]] == [
        ("Jones@XYZ.COM", "pending")
    ]
    assert queued["attempts"] == 0 and queued["last_error"] is None
    message = world.spool.message(queued["id"])
    assert message.startswith(b"Received: from bar.com ([127.0.0.1])")
    assert b"with ESMTPA id" in message
    assert message.endswith(b"Blah blah blah...\r\n.etc. etc. etc.\r\n")
    (local,) = world.inbox("jones")
    assert local.startswith(b"Return-Path: <alice@foo.com>\r\n")


@pytest.mark.parametrize("how", HOW)
def test_d4_verify_and_send(make_world, how):
    """D.4: VRFY (enabled by config), then a transaction."""
    world = make_world(vrfy=True)
    data = script(
        "EHLO bar.com",
        "VRFY admin.mrc",
        "VRFY Crispin",
        "MAIL FROM:<EAK@bar.com>",
        "RCPT TO:<Admin.MRC@foo.com>",
        "DATA",
        BODY + b".\r\n",
        "QUIT",
    )
    out = feed(world.session(), data, how)
    assert codes(out) == [220, 250, 250, 550, 250, 250, 354, 250, 221]
    assert replies(out)[2] == "250 2.1.5 <admin.mrc@foo.com>"
    assert len(world.inbox("admin.mrc")) == 1


def test_vrfy_disabled_answers_252(world):
    out = feed(world.session(), script("EHLO bar.com", "VRFY jones", "VRFY"))
    assert codes(out) == [220, 250, 252, 501]


# ---------------------------------------------------------------- command lines


def test_command_line_limit_n_and_n_plus_one(world):
    n = world.config.limits.smtp_command_line
    ok = "NOOP " + "x" * (n - 7)
    too_long = "NOOP " + "x" * (n - 6)
    out = feed(world.session(), script("EHLO bar.com", ok, too_long, "NOOP"))
    assert codes(out) == [220, 250, 250, 500, 250]
    assert replies(out)[3] == "500 5.5.2 line too long"


def test_nul_in_command(world):
    out = feed(world.session(), script("EHLO bar.com", b"MAIL FROM:<a\0@b.c>\r\n", b"NO\0OP\r\n"))
    assert codes(out)[2:] == [500, 500]


def test_unknown_and_unimplemented_verbs(world):
    out = feed(world.session(), script("FOO", "EXPN staff", "TURN"))
    assert codes(out) == [220, 500, 502, 502]


def test_bare_lf_commands_and_data(world):
    """Bare LF ends a command line; in DATA it is normalized, and only CRLF.CRLF ends it."""
    data = (
        b"EHLO bar.com\nMAIL FROM:<a@bar.com>\nRCPT TO:<jones@foo.com>\nDATA\n"
        b"Subject: lf\n\nline one\n.\nstill content\r\n.\r\nQUIT\n"
    )
    out = feed(world.session(), data)
    assert codes(out) == [220, 250, 250, 250, 354, 250, 221]
    (message,) = world.inbox("jones")
    assert message.endswith(b"Subject: lf\r\n\r\nline one\r\n\r\nstill content\r\n")


def test_commands_after_quit_are_ignored(world):
    session = world.session()
    out = feed(session, script("QUIT", "NOOP"))
    assert codes(out) == [220, 221]
    assert session.closing
    assert session.receive_data(b"NOOP\r\n") == b""


# ---------------------------------------------------------------- sequence errors (RFC 5321 4.1.4)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["MAIL FROM:<a@bar.com>"], [503]),  # before EHLO
        (["EHLO bar.com", "RCPT TO:<jones@foo.com>"], [250, 503]),
        (["EHLO bar.com", "MAIL FROM:<a@bar.com>", "DATA"], [250, 250, 503]),
        (["EHLO bar.com", "DATA"], [250, 503]),
        (["EHLO bar.com", "MAIL FROM:<a@b.com>", "MAIL FROM:<a@b.com>"], [250, 250, 503]),
        (
            ["EHLO bar.com", "MAIL FROM:<a@b.com>", "RCPT TO:<x@foo.com>", "DATA"],
            [250, 250, 550, 554],
        ),
        (["EHLO bar.com", "MAIL FROM:<a@b.com>", "BDAT 3 LAST", b"abc"], [250, 250, 503]),
        (["EHLO", "HELO"], [501, 501]),
        (["EHLO bar.com", "RSET extra", "DATA extra"], [250, 501, 501]),
    ],
)
def test_sequence_and_syntax_errors(world, lines, expected):
    out = feed(world.session(), script(*lines))
    assert codes(out) == [220, *expected]


def test_mail_null_reverse_path(world):
    out = feed(
        world.session(),
        script("EHLO bar.com", "MAIL FROM:<>", "RCPT TO:<jones@foo.com>", "DATA", BODY + b".\r\n"),
    )
    assert codes(out) == [220, 250, 250, 250, 354, 250]
    (message,) = world.inbox("jones")
    assert message.startswith(b"Return-Path: <>\r\n")


@pytest.mark.parametrize(
    "command",
    [
        "MAIL FROM:a@bar.com",
        "MAIL FROM:<a@bar.com",
        "MAIL TO:<a@bar.com>",
        "MAIL FROM:<@bar.com>",
        "MAIL FROM:<a b@bar.com>",
        "MAIL FROM:<a@bar.com> SIZE=big",
        "MAIL FROM:<a@bar.com> BODY=BINARYMIME",
        "MAIL FROM:<a@bar.com> SMTPUTF8=yes",
    ],
)
def test_malformed_mail(world, command):
    out = feed(world.session(), script("EHLO bar.com", command, "MAIL FROM:<ok@bar.com>"))
    assert codes(out) == [220, 250, 501, 250]


def test_unknown_parameters_555(world):
    out = feed(
        world.session(),
        script(
            "EHLO bar.com",
            "MAIL FROM:<a@bar.com> RET=FULL",
            "MAIL FROM:<a@bar.com>",
            "RCPT TO:<jones@foo.com> NOTIFY=NEVER",
        ),
    )
    assert codes(out) == [220, 250, 555, 250, 555]


def test_helo_session_takes_no_parameters(world):
    out = feed(world.session(), script("HELO bar.com", "MAIL FROM:<a@bar.com> BODY=8BITMIME"))
    assert codes(out) == [220, 250, 555]
    assert b"250 mx.foo.com greets bar.com\r\n" in out


# ---------------------------------------------------------------- content rules


def transaction(mail: str = "MAIL FROM:<a@bar.com>", rcpt: str = "jones@foo.com") -> bytes:
    return script("EHLO bar.com", mail, f"RCPT TO:<{rcpt}>", "DATA")


def test_8bit_without_8bitmime_accepted_as_sent(world):
    """As Postfix and Exim: undeclared 8-bit content is kept byte-exact, not refused."""
    body = "Subject: é\r\n\r\nnaïve\r\n.\r\n".encode()
    out = feed(world.session(), transaction() + body + script("NOOP"))
    assert codes(out)[-2:] == [250, 250]
    (message,) = world.inbox("jones")
    assert message.endswith("Subject: é\r\n\r\nnaïve\r\n".encode())


def test_8bit_with_8bitmime_accepted(world):
    body = "Subject: é\r\n\r\nnaïve\r\n.\r\n".encode()
    out = feed(world.session(), transaction("MAIL FROM:<a@bar.com> BODY=8BITMIME") + body)
    assert codes(out)[-1] == 250
    (message,) = world.inbox("jones")
    assert message.endswith("naïve\r\n".encode())


def test_nul_in_data_rejected(world):
    out = feed(world.session(), transaction() + b"a\0b\r\n.\r\n")
    assert replies(out)[-1].startswith("554 5.6.0")
    assert world.inbox("jones") == []


def test_long_text_line_rejected_after_terminator(world):
    n = world.config.limits.smtp_text_line
    ok = b"x" * (n - 2) + b"\r\n"
    out = feed(world.session(), transaction() + ok + b".\r\n")
    assert codes(out)[-1] == 250
    out = feed(world.session(), transaction() + b"x" * (n - 1) + b"\r\n.\r\n" + script("NOOP"))
    assert replies(out)[-2].startswith("554 5.6.0")
    assert codes(out)[-1] == 250
    assert len(world.inbox("jones")) == 1


def test_size_parameter_over_limit(make_world):
    world = make_world(limits={"message_size": 1000})
    out = feed(world.session(), script("EHLO bar.com", "MAIL FROM:<a@bar.com> SIZE=1001"))
    assert replies(out)[-1].startswith("552 5.3.4")
    out = feed(world.session(), script("EHLO bar.com", "MAIL FROM:<a@bar.com> SIZE=1000"))
    assert codes(out)[-1] == 250
    assert b"250-SIZE 1000\r\n" in out


def test_message_over_limit_read_to_end(make_world):
    world = make_world(limits={"message_size": 1000})
    big = b"y" * 98 + b"\r\n"
    out = feed(world.session(), transaction() + big * 11 + b".\r\n" + script("NOOP"))
    assert replies(out)[-2].startswith("552 5.3.4")
    assert codes(out)[-1] == 250  # the content was not taken for commands
    out = feed(world.session(), transaction() + big * 10 + b".\r\n")
    assert codes(out)[-1] == 250
    assert len(world.inbox("jones")) == 1


def test_recipient_limit(make_world):
    world = make_world(limits={"recipients": 2})
    out = feed(
        world.session(),
        script(
            "EHLO bar.com",
            "MAIL FROM:<a@bar.com>",
            "RCPT TO:<jones@foo.com>",
            "RCPT TO:<brown@foo.com>",
            "RCPT TO:<jones@foo.com>",  # a repeat is not a new recipient
            "RCPT TO:<alice@foo.com>",
        ),
    )
    assert codes(out) == [220, 250, 250, 250, 250, 250, 452]
    assert replies(out)[-1].startswith("452 4.5.3")


def test_same_user_twice_gets_one_copy(world):
    out = feed(
        world.session(),
        script(
            "EHLO bar.com",
            "MAIL FROM:<a@bar.com>",
            "RCPT TO:<jones@foo.com>",
            "RCPT TO:<JONES@Example.Test>",
            "DATA",
            BODY + b".\r\n",
        ),
    )
    assert codes(out)[-1] == 250
    (message,) = world.inbox("jones")
    assert b"\tfor <" not in message  # two recipients: no "for" clause naming one


def test_sender_headers_cannot_choose_uid_or_return_path(world):
    body = script("Return-Path: <forged@evil>", "X-UID: 99999", "Status: RO", "Subject: x", "")
    feed(world.session(), transaction() + body + b"body\r\n.\r\n")
    (message,) = world.inbox("jones")
    assert b"forged@evil" not in message and b"99999" not in message
    assert header_names(message).count("Return-Path") == 1


# ---------------------------------------------------------------- relay rules


@pytest.mark.parametrize(
    "rcpt",
    [
        "x@xyz.com",
        "jones@foo.com@xyz.com",
        "@relay.example,@other.example:x@xyz.com",
        "jones%xyz.com@foo.com",
        "jones!xyz.com@foo.com",
        "jones@[127.0.0.1]",
        "jones@[IPv6:::1]",
        "jones@foo.com.evil.example",
    ],
)
def test_relay_denied(world, rcpt):
    out = feed(
        world.session(), script("EHLO bar.com", "MAIL FROM:<a@bar.com>", f"RCPT TO:<{rcpt}>")
    )
    assert codes(out)[-1] in (550, 501)
    assert not replies(out)[-1].startswith("250")
    if codes(out)[-1] == 550:
        assert replies(out)[-1].startswith("550 5.7.1")


@pytest.mark.parametrize(
    "rcpt", ["postmaster", "Postmaster", "postmaster@foo.com", "POSTMASTER@example.test"]
)
def test_postmaster_accepted(world, rcpt):
    out = feed(world.session(), transaction(rcpt=rcpt) + BODY + b".\r\n")
    assert codes(out)[-2:] == [354, 250]
    assert len(world.inbox("alice")) == 1  # the first user


def test_postmaster_configured(make_world):
    world = make_world(postmaster="brown")
    feed(world.session(), transaction(rcpt="postmaster") + BODY + b".\r\n")
    assert len(world.inbox("brown")) == 1


def test_smtputf8_addresses(world):
    no = feed(world.session(), script("EHLO bar.com", "MAIL FROM:<jörg@bar.com>"))
    assert replies(no)[-1].startswith("553 5.6.7")
    yes = feed(
        world.session(),
        script(
            "EHLO bar.com", "MAIL FROM:<jörg@bar.com> SMTPUTF8", "RCPT TO:<jones@foo.com>", "DATA"
        )
        + "Subject: grüße\r\n\r\nhallo\r\n.\r\n".encode(),
    )
    assert codes(yes)[-1] == 250
    (message,) = world.inbox("jones")
    assert "Return-Path: <jörg@bar.com>".encode() in message and b"with UTF8SMTP" in message


# ---------------------------------------------------------------- submission and AUTH


def test_submission_requires_auth(world):
    session = world.session("submission")
    out = feed(
        session,
        script(
            "EHLO bar.com",
            "MAIL FROM:<alice@foo.com>",
            f"AUTH PLAIN {plain('alice', 'alice-pw')}",
            "MAIL FROM:<alice@foo.com>",
        ),
    )
    assert codes(out) == [220, 250, 530, 235, 250]
    assert replies(out)[2].startswith("530 5.7.0")


def test_auth_plain_without_initial_response(world):
    session = world.session()
    out = feed(session, script("EHLO bar.com", "AUTH PLAIN", plain("Alice", "alice-pw")))
    assert out.endswith(b"334 \r\n235 2.7.0 authentication successful\r\n")
    assert session.user == "alice"


def test_auth_login(world):
    session = world.session()
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    out = feed(session, script("EHLO bar.com", "AUTH LOGIN", b64("alice"), b64("alice-pw")))
    assert b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 " in out
    session = world.session()
    out = feed(session, script("EHLO bar.com", f"AUTH LOGIN {b64('alice')}", b64("alice-pw")))
    assert codes(out)[-2:] == [334, 235]


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["AUTH PLAIN", "*"], "501 5.0.0"),
        (["AUTH LOGIN", "*"], "501 5.0.0"),
        (["AUTH PLAIN", "!!not base64!!"], "501 5.5.2"),
        (["AUTH PLAIN %%%"], "501 5.5.2"),
        (["AUTH PLAIN " + base64.b64encode(b"no-nuls").decode()], "501 5.5.2"),
        (["AUTH CRAM-MD5"], "504 5.5.4"),
        (["AUTH"], "501 5.5.4"),
        (["AUTH PLAIN " + plain("alice", "wrong")], "535 5.7.8"),
        (["AUTH PLAIN " + plain("nobody", "x")], "535 5.7.8"),
    ],
)
def test_auth_errors(world, lines, expected):
    session = world.session()
    out = feed(session, script("EHLO bar.com", *lines, "NOOP"))
    assert replies(out)[-2].startswith(expected)
    assert codes(out)[-1] == 250  # the session goes on
    assert session.user is None


def test_auth_failures_close_with_421(make_world):
    world = make_world(limits={"auth_failures_per_connection": 2})
    session = world.session()
    bad = f"AUTH PLAIN {plain('alice', 'nope')}"
    out = feed(session, script("EHLO bar.com", bad, bad, "NOOP"))
    assert codes(out) == [220, 250, 535, 535, 421]
    assert session.closing


def test_auth_sequence_rules(world):
    good = f"AUTH PLAIN {plain('alice', 'alice-pw')}"
    out = feed(world.session(), script("HELO bar.com", good))
    assert codes(out)[-1] == 503  # AUTH is an ESMTP extension
    out = feed(world.session(), script("EHLO bar.com", "MAIL FROM:<a@bar.com>", good))
    assert codes(out)[-1] == 503  # not during a transaction
    out = feed(world.session(), script("EHLO bar.com", good, good))
    assert codes(out)[-2:] == [235, 503]


def test_plaintext_auth_needs_encryption_off_loopback(make_world):
    world = make_world()
    good = f"AUTH PLAIN {plain('alice', 'alice-pw')}"
    out = feed(world.session(peer="192.0.2.7"), script("EHLO bar.com", good))
    assert replies(out)[-1].startswith("538 5.7.11")
    out = feed(world.session(peer="192.0.2.7", tls=True), script("EHLO bar.com", good))
    assert codes(out)[-1] == 235
    allowed = make_world(allow_plaintext_auth=True)
    out = feed(allowed.session(peer="192.0.2.7"), script("EHLO bar.com", good))
    assert codes(out)[-1] == 235


def test_password_never_logged(world, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "alice-pw"
    b64 = base64.b64encode(secret.encode()).decode()
    feed(
        world.session(),
        script(
            "EHLO bar.com",
            f"AUTH PLAIN {plain('alice', secret)}",
            "RSET",
        ),
    )
    feed(world.session(), script("EHLO bar.com", "AUTH LOGIN", "YWxpY2U=", b64))
    feed(world.session(), script("EHLO bar.com", f"AUTH PLAIN {plain('alice', 'wrong-pw')}"))
    text = caplog.text
    assert "authenticated as alice" in text
    for leaked in (secret, b64, plain("alice", secret), "wrong-pw", plain("alice", "wrong-pw")):
        assert leaked not in text


# ---------------------------------------------------------------- STARTTLS (RFC 3207)


def test_starttls_discards_pipelined_bytes(world):
    session = world.session(peer="192.0.2.7")
    out = feed(session, script("EHLO bar.com", "STARTTLS", "MAIL FROM:<evil@bar.com>"))
    assert codes(out) == [220, 250, 220]
    assert b"250-STARTTLS\r\n" in out
    assert session.want_tls
    assert session.receive_data(b"RSET\r\n") == b""  # nothing is read until TLS is up
    assert session.tls_started() == b""
    assert not session.want_tls
    out = session.receive_data(script("MAIL FROM:<a@bar.com>", "EHLO bar.com", "STARTTLS"))
    assert codes(out) == [503, 250, 503]  # EHLO again first; STARTTLS only once
    assert b"STARTTLS" not in out.split(b"\r\n503")[1].split(b"250 HELP")[0]
    good = f"AUTH PLAIN {plain('alice', 'alice-pw')}"
    assert codes(session.receive_data(script(good))) == [235]
    # with TLS up, the Received field says ESMTPSA
    session.receive_data(transaction(mail="MAIL FROM:<alice@foo.com>").split(b"\r\n", 1)[1])
    session.receive_data(BODY + b".\r\n")
    (message,) = world.inbox("jones")
    assert b"with ESMTPSA id" in message


def test_starttls_not_offered_on_implicit_tls(world):
    session = world.session("smtps", tls=True)
    out = feed(session, script("EHLO bar.com", "STARTTLS"))
    assert b"STARTTLS\r\n" not in out.split(b"\r\n503")[0]
    assert codes(out)[-1] == 503


# ---------------------------------------------------------------- BDAT (RFC 3030)


@pytest.mark.parametrize("how", HOW)
def test_bdat_transaction(make_world, how):
    world = make_world()
    part1 = b"Subject: chunks\r\n\r\n"
    part2 = b"QUIT\r\n.\r\nbody\r\n"
    data = script(
        "EHLO bar.com",
        "MAIL FROM:<a@bar.com>",
        "RCPT TO:<jones@foo.com>",
        f"BDAT {len(part1)}",
        part1,
        f"BDAT {len(part2)} LAST",
        part2,
        "QUIT",
    )
    out = feed(world.session(), data, how)
    assert codes(out) == [220, 250, 250, 250, 250, 250, 221]
    (message,) = world.inbox("jones")
    assert message.endswith(part1 + part2)


def test_bdat_errors_consume_the_chunk(make_world):
    world = make_world(limits={"message_size": 10})
    out = feed(
        world.session(),
        script(
            "EHLO bar.com",
            "BDAT 6",
            b"NOOP\r\n",
            "MAIL FROM:<a@bar.com>",
            "RCPT TO:<jones@foo.com>",
            "BDAT 11 LAST",
            b"QUIT\r\nQUIT\r\n"[:11],
            "RCPT TO:<jones@foo.com>",
            "BDAT x",
        ),
    )
    assert codes(out) == [220, 250, 503, 250, 250, 552, 503, 501]
    assert world.inbox("jones") == []


def test_bdat_then_data_refused(world):
    out = feed(
        world.session(),
        script(
            "EHLO bar.com",
            "MAIL FROM:<a@b.com>",
            "RCPT TO:<jones@foo.com>",
            "BDAT 2",
            b"ab",
            "DATA",
        ),
    )
    assert codes(out) == [220, 250, 250, 250, 250, 503]


# ---------------------------------------------------------------- connection events


def test_data_without_terminator_then_connection_lost(world):
    feed(world.session(), transaction() + BODY + b".\r\n")
    before = world.inbox("jones")
    session = world.session()
    out = feed(session, transaction() + b"Subject: cut\r\n\r\nhalf a message\r\n")
    assert codes(out)[-1] == 354
    session.connection_lost()
    assert world.inbox("jones") == before
    mbox = world.config.mail_dir / "jones" / "INBOX"
    assert b"half a message" not in mbox.read_bytes()


def test_client_vanishes_mid_pipeline(world):
    session = world.session()
    session.start()
    out = session.receive_data(
        script("EHLO bar.com", "MAIL FROM:<a@bar.com>", "RCPT TO:<jones@foo.com>", "DATA")
        + b"Subject: gone\r\n\r\npartial"
    )
    assert codes(out) == [250, 250, 250, 354]
    session.connection_lost()
    assert world.inbox("jones") == []


def test_timeout_and_shutdown_say_421(world):
    session = world.session()
    assert session.idle_timeout == world.config.limits.smtp_idle_timeout
    assert session.timed_out().startswith(b"421 4.4.2 ")
    assert session.closing
    session = world.session()
    assert session.shutting_down().startswith(b"421 4.3.2 ")
    assert session.closing


def test_helo_name_cannot_inject_headers(world):
    feed(
        world.session(),
        script("EHLO evil(\x01)\x7f[x]", "MAIL FROM:<a@bar.com>", "RCPT TO:<jones@foo.com>", "DATA")
        + BODY
        + b".\r\n",
    )
    (message,) = world.inbox("jones")
    assert b"\r\nReceived: from evil????[x] ([127.0.0.1])\r\n\tby mx.foo.com " in message


# ---------------------------------------------------------------- failures become replies


class BrokenDelivery(LocalDelivery):
    """Fault injection: delivery that fails with an internal error."""

    def deliver(self, *args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")


def test_unexpected_error_is_451_without_internals(make_world, caplog):
    world = make_world(delivery_class=BrokenDelivery)
    out = feed(world.session(), transaction() + BODY + b".\r\n" + script("NOOP"))
    assert replies(out)[-2] == "451 4.3.0 local error in processing"
    assert b"secret" not in out
    assert codes(out)[-1] == 250
    assert "secret internals" in caplog.text  # the traceback goes to the log


def test_storage_failure_is_451(world):
    (world.config.mail_dir).mkdir(parents=True, exist_ok=True)
    (world.config.mail_dir / "brown").write_text("not a directory")
    out = feed(world.session(), transaction(rcpt="brown@foo.com") + BODY + b".\r\n")
    assert codes(out)[-1] in (451, 452)
    assert replies(out)[-1].startswith("451 4.3.0") or replies(out)[-1].startswith("452 4.3.1")


def test_overlong_auth_response_ends_the_exchange(world):
    session = world.session()
    out = feed(session, script("EHLO bar.com", "AUTH PLAIN", "A" * 13000, "NOOP"))
    assert codes(out) == [220, 250, 334, 500, 250]
    assert replies(out)[3].startswith("500 5.5.6")
