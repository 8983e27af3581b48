"""POP3 authorization over a real UserDB and store: USER/PASS, AUTH PLAIN (RFC 5034), failures,
plaintext policy (RFC 2595), CAPA (RFC 2449), STLS and UTF8 (RFC 6856)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from pop3_harness import Harness, make_message


def plain(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


# ---------------------------------------------------------------------------- authorization


def test_user_pass_failures_then_close(pop3: Harness) -> None:
    """Failed PASS: -ERR [AUTH] (RFC 3206 4); closed after limits.auth_failures_per_connection."""
    client = pop3.client()
    bad = b"-ERR [AUTH] invalid user name or password\r\n"
    assert client.send(b"USER alice\r\nPASS wrong\r\n") == b"+OK send PASS\r\n" + bad
    assert client.send(b"PASS alice-pw\r\n") == b"-ERR send USER first\r\n"
    assert client.send(b"USER nobody\r\nPASS x\r\n") == b"+OK send PASS\r\n" + bad
    assert not client.session.closing
    reply = client.send(b"USER alice\r\nPASS nope\r\nSTAT\r\n")
    assert reply == (
        b"+OK send PASS\r\n-ERR [AUTH] too many authentication failures, closing connection\r\n"
    )
    assert client.session.closing


def test_auth_plain_initial_response(fed: Harness) -> None:
    """RFC 5034 4 with RFC 4616 PLAIN, initial response on the AUTH line."""
    fed.deliver(make_message(100))
    client = fed.client()
    client.converse(
        [
            (
                f"AUTH PLAIN {plain('alice', 'alice-pw')}\r\n".encode(),
                b"+OK alice's maildrop has 1 messages (100 octets)\r\n",
            ),
            (b"STAT\r\n", b"+OK 1 100\r\n"),
        ]
    )


def test_auth_plain_continuation_cancel_and_bad_base64(fed: Harness) -> None:
    client = fed.client()
    client.converse(
        [
            (b"AUTH\r\n", b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"),
            (b"AUTH CRAM-MD5\r\n", b"-ERR unsupported SASL mechanism 'CRAM-MD5'\r\n"),
            (b"AUTH PLAIN\r\n", b"+ \r\n"),
            (b"*\r\n", b"-ERR authentication cancelled\r\n"),
            (b"AUTH PLAIN\r\n", b"+ \r\n"),
            (b"not base64!\r\n", b"-ERR invalid base64 in SASL response\r\n"),
            (b"AUTH PLAIN %%%%\r\n", b"-ERR invalid base64 in SASL response\r\n"),
            (b"AUTH PLAIN =\r\n", b"-ERR malformed PLAIN response: malformed PLAIN message\r\n"),
            (
                f"AUTH PLAIN {base64.b64encode(b'alice-only').decode()}\r\n".encode(),
                b"-ERR malformed PLAIN response: malformed PLAIN message\r\n",
            ),
            (
                f"AUTH PLAIN {plain('alice', 'alice-pw', authzid='bob')}\r\n".encode(),
                b"-ERR [AUTH] authorization identity differs from authentication identity\r\n",
            ),
            (
                f"AUTH PLAIN {plain('alice', 'bad')}\r\n".encode(),
                b"-ERR [AUTH] invalid user name or password\r\n",
            ),
            (b"AUTH PLAIN\r\n", b"+ \r\n"),
            (
                f"{plain('alice', 'alice-pw', authzid='alice')}\r\n".encode(),
                b"+OK alice's maildrop has 0 messages (0 octets)\r\n",
            ),
            (b"AUTH PLAIN\r\n", b"-ERR AUTH is not allowed after login (TRANSACTION state)\r\n"),
        ]
    )


def test_sasl_response_may_exceed_command_limit(pop3: Harness) -> None:
    """RFC 5034 4: a response longer than 255 octets goes in the continuation."""
    long_password = "p" * 400
    pop3.users.add("carol", long_password)
    client = pop3.client()
    assert client.send(b"AUTH PLAIN\r\n") == b"+ \r\n"
    reply = client.send(f"{plain('carol', long_password)}\r\n".encode())
    assert reply == b"+OK carol's maildrop has 0 messages (0 octets)\r\n"
    over = pop3.client()
    over.send(b"AUTH PLAIN\r\n")
    limit = pop3.config.limits.pop3_command_line
    reply = over.send(b"A" * (limit + 1) + b"\r\nNOOP\r\n")
    assert reply == (
        b"-ERR SASL response too long; authentication cancelled\r\n"
        b"-ERR NOOP is not allowed before login (AUTHORIZATION state)\r\n"
    )


def test_apop_is_refused_with_reason(pop3: Harness) -> None:
    client = pop3.client()
    assert client.send(b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n") == (
        b"-ERR APOP is not supported: use USER/PASS or AUTH PLAIN\r\n"
    )


def test_passwords_never_reach_the_log(pop3: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = pop3.client()
    client.send(b"USER alice\r\nPASS s3cret-wrong\r\n")
    client.send(f"AUTH PLAIN {plain('alice', 'other-s3cret')}\r\n".encode())
    client.send(b"USER alice\r\nPASS alice-pw\r\nQUIT\r\n")
    assert "alice logged in" in caplog.text
    for secret in ("s3cret-wrong", "other-s3cret", "alice-pw", plain("alice", "other-s3cret")):
        assert secret not in caplog.text


# ---------------------------------------------------------------------------- CAPA, STLS, UTF8


def capabilities(reply: bytes) -> list[str]:
    lines = reply.decode().split("\r\n")
    assert lines[0] == "+OK Capability list follows" and lines[-2:] == [".", ""]
    return lines[1:-2]


def test_capa_loopback_before_and_after_login(pop3: Harness) -> None:
    """RFC 2449 5-6, RFC 2595 4 STLS, RFC 3206 AUTH-RESP-CODE, RFC 6856 UTF8."""
    client = pop3.client()
    assert capabilities(client.send(b"CAPA\r\n")) == [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "EXPIRE NEVER",
        "IMPLEMENTATION refmail",
        "USER",
        "SASL PLAIN",
        "STLS",
        "UTF8",
    ]
    client.login()
    after = capabilities(client.send(b"CAPA\r\n"))
    assert "TOP" in after and "UIDL" in after
    assert not {"USER", "SASL PLAIN", "STLS", "UTF8"} & set(after)


def test_plaintext_refused_off_loopback_until_stls(pop3: Harness) -> None:
    """RFC 2595 2.2/4: no USER/PASS or AUTH PLAIN in the clear from another host."""
    client = pop3.client(peer_ip="192.0.2.7")
    caps = capabilities(client.send(b"CAPA\r\n"))
    assert "STLS" in caps and "USER" not in caps and "SASL PLAIN" not in caps
    refused = (
        b"-ERR [AUTH] plaintext authentication disallowed on unencrypted connections: use STLS\r\n"
    )
    assert client.send(b"USER alice\r\n") == refused
    assert client.send(f"AUTH PLAIN {plain('alice', 'alice-pw')}\r\n".encode()) == refused
    assert client.send(b"PASS alice-pw\r\n") == b"-ERR send USER first\r\n"
    # STLS: +OK, then every byte pipelined behind it is dropped (CVE-2011-0411).
    assert client.send(b"STLS\r\nUSER evil\r\nPASS injected\r\n") == (
        b"+OK Begin TLS negotiation\r\n"
    )
    assert client.session.want_tls
    assert client.send(b"NOOP\r\n") == b""  # until the handshake is done
    assert client.session.tls_started() == b""
    assert not client.session.want_tls
    caps = capabilities(client.send(b"CAPA\r\n"))
    assert "STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps
    assert client.send(b"STLS\r\n") == b"-ERR TLS is already active\r\n"
    assert client.send(b"PASS alice-pw\r\n") == b"-ERR send USER first\r\n"
    client.login()


def test_plaintext_allowed_by_config_or_implicit_tls(tmp_path: Path) -> None:
    allowed = Harness(tmp_path / "a", allow_plaintext_auth=True)
    allowed.client(peer_ip="192.0.2.7").login()
    implicit = Harness(tmp_path / "b")
    client = implicit.client(peer_ip="192.0.2.7", tls=True)
    assert "STLS" not in capabilities(client.send(b"CAPA\r\n"))
    assert client.send(b"STLS\r\n") == b"-ERR TLS is already active\r\n"
    client.login()
    allowed.store.close()
    implicit.store.close()


def test_stls_unavailable_and_wrong_state(pop3: Harness) -> None:
    no_tls = pop3.client(service=pop3.make_service(tls_available=False))
    assert "STLS" not in capabilities(no_tls.send(b"CAPA\r\n"))
    assert no_tls.send(b"STLS\r\n") == b"-ERR TLS is not available on this server\r\n"
    client = pop3.client()
    client.login()
    assert client.send(b"STLS\r\n") == (
        b"-ERR STLS is not allowed after login (TRANSACTION state)\r\n"
    )


def test_utf8_command(pop3: Harness) -> None:
    """RFC 6856 3.1: UTF8 in AUTHORIZATION; afterwards UTF-8 arguments are accepted."""
    client = pop3.client()
    assert client.send("USER j\u00fcrgen\r\n".encode()) == (
        b"-ERR non-ASCII argument: send UTF8 first\r\n"
    )
    assert client.send(b"UTF8\r\n") == b"+OK UTF8 enabled\r\n"
    assert client.send("USER j\u00fcrgen\r\n".encode()) == b"+OK send PASS\r\n"
    client.send(b"PASS x\r\n")
    client.login()
    assert client.send(b"UTF8\r\n") == (
        b"-ERR UTF8 is not allowed after login (TRANSACTION state)\r\n"
    )
