"""Login policy (LOGINDISABLED until TLS), STARTTLS, failure limits, secrets kept out of logs,
errors turned into replies, and the connection contract (timeouts, shutdown)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from .conftest import REMOTE, Env

#: Every test here runs with commands sent whole and one byte at a time.
pytestmark = pytest.mark.parametrize("feed", ["whole", "bytewise"])


def test_plaintext_login_refused_off_loopback_until_tls(env: Env) -> None:
    client = env.session(REMOTE)
    caps = client.cmd("a CAPABILITY")[0].split()
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps
    assert client.cmd("b LOGIN alice alice-pw") == [
        "b NO [PRIVACYREQUIRED] plaintext login refused, use STARTTLS"
    ]
    # refused before the literal is requested: no "+" goes out
    assert client.cmd("c LOGIN {5}") == [
        "c NO [PRIVACYREQUIRED] plaintext login refused, use STARTTLS"
    ]
    assert client.cmd("d AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlLXB3")[0].startswith(
        "d NO [PRIVACYREQUIRED]"
    )
    # STARTTLS, with a LOGIN pipelined behind it (CVE-2011-0411): the LOGIN is dropped
    reply = client.send(b"e STARTTLS\r\nf LOGIN alice alice-pw\r\n")
    assert reply == b"e OK begin TLS negotiation now\r\n"
    assert client.session.want_tls
    assert client.session.tls_started() == b""
    assert not client.session.want_tls
    caps = client.cmd("g CAPABILITY")[0].split()
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert client.cmd("h STARTTLS") == ["h BAD TLS is already active"]
    client.login()


def test_config_may_allow_plaintext(make_env) -> None:
    env = make_env()
    env.service.config = dataclasses.replace(env.config, allow_plaintext_auth=True)
    client = env.session(REMOTE)
    client.login()


def test_starttls_unavailable(env: Env) -> None:
    env.service.tls_available = False
    client = env.session(REMOTE)
    assert "STARTTLS" not in client.cmd("a CAPABILITY")[0].split()
    assert client.cmd("b STARTTLS") == ["b NO TLS is not available"]


def test_too_many_failures_close_the_connection(env: Env) -> None:
    client = env.session()
    assert client.cmd("a LOGIN alice x") == ["a NO [AUTHENTICATIONFAILED] invalid credentials"]
    assert client.cmd("b LOGIN alice y")[0].startswith("b NO")
    assert client.cmd("c LOGIN alice z") == [
        "c NO [AUTHENTICATIONFAILED] invalid credentials",
        "* BYE too many authentication failures",
    ]
    assert client.session.closing


def test_passwords_never_reach_the_log(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = env.session()
    client.cmd("a LOGIN alice wrong-secret-1")
    client.cmd("b AUTHENTICATE PLAIN AGFsaWNlAHdyb25nLXNlY3JldC0y")  # wrong-secret-2
    client.login()
    text = caplog.text
    assert "wrong-secret" not in text and "alice-pw" not in text
    assert "d3JvbmctwNlY3JldC0y" not in text


def test_internal_errors_are_logged_not_sent(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = env.session()
    client.login()

    def broken(user: str) -> list[str]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(env.store, "list_mailboxes", broken)
    reply = client.cmd('a LIST "" *')
    assert reply == ["a NO [SERVERBUG] internal server error"]
    assert "secret internal detail" in caplog.text  # the traceback is in the log
    assert client.cmd("b NOOP") == ["b OK NOOP completed"]


def test_unknown_and_malformed_commands_get_bad_and_the_session_goes_on(make_env) -> None:
    env = make_env(imap_command_line=100)
    client = env.session()
    assert client.cmd("a FROB") == ["a BAD unknown command FROB"]
    assert client.cmd("b LOGIN") == ["b BAD missing user name"]
    assert client.cmd("c LOGIN a b c") == ["c BAD too many arguments"]
    assert client.cmd("* NOOP") == ["* BAD invalid tag"]
    assert client.cmd("d NOOP " + "x" * 200) == ["d BAD [TOOBIG] command line too long"]
    assert client.cmd('e LOGIN "unterminated') == ["e BAD unterminated quoted string"]
    assert client.cmd("f LOGIN {-100}") == ["f BAD invalid literal"]
    assert client.cmd("g NOOP") == ["g OK NOOP completed"]


def test_literal_limits_in_the_session(make_env) -> None:
    env = make_env(imap_literal_size=50)
    client = env.session()
    client.login()
    assert client.cmd("a APPEND INBOX {51}") == ["a NO [TOOBIG] literal too big"]
    assert client.cmd("b NOOP") == ["b OK NOOP completed"]
    assert client.cmd("c APPEND INBOX {51+}") == [
        "c BAD [TOOBIG] literal too big",
        "* BYE closing the connection",
    ]
    assert client.session.closing


def test_timeouts_and_shutdown(env: Env) -> None:
    client = env.session()
    assert client.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert client.session.idle_timeout == 180.0
    client.login()
    assert client.session.idle_timeout == 1800.0  # RFC 3501 5.4
    assert client.session.timed_out().startswith(b"* BYE ")
    assert client.session.closing
    other = env.session()
    other.login()
    other.select()
    assert other.session.shutting_down() == b"* BYE server shutting down\r\n"
    assert other.session.selected is None
    third = env.session()
    third.session.connection_lost()
    assert third.session.closing
