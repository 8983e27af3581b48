"""Submission policy over loopback with smtplib: whose envelope senders an authenticated user
may use (RFC 6409 6.1, ``restrict_senders``), and a Received field that hides the submitting
client (``hide_client_ip``, RFC 5321 7.6)."""

from __future__ import annotations

import email
import email.policy
import smtplib
from pathlib import Path

import pytest

from refmail.config import MTAConfig
from refmail.mta.spool import MESSAGE_SUFFIX
from refmail.server import Server

BODY = b"Subject: policy\r\n\r\nhello\r\n"


def inbox(server: Server, user: str) -> list[bytes]:
    server.store.ensure_user(user)
    box = server.store.mailbox(user, "INBOX")
    return [box.read(info.uid) for info in box.messages()]


def submission(server: Server, user: str = "alice", *, helo: str | None = None) -> smtplib.SMTP:
    """A logged-in submission session (plaintext AUTH is allowed on loopback)."""
    client = smtplib.SMTP(*server.address("submission"), local_hostname=helo, timeout=10)
    client.login(user, f"{user}-pw")
    return client


@pytest.mark.parametrize(
    "sender",
    ["alice@example.test", "alice@example.org", "Alice@EXAMPLE.TEST", "alice@mx.example.test", ""],
)
def test_own_addresses_and_the_null_sender_are_accepted(server: Server, sender: str) -> None:
    with submission(server) as client:
        code, reply = client.mail(sender)
        assert code == 250, reply
        assert client.rcpt("bob@example.test")[0] == 250
        assert client.data(BODY)[0] == 250
    (message,) = inbox(server, "bob")
    assert message.startswith(f"Return-Path: <{sender}>\r\n".encode())


@pytest.mark.parametrize(
    "sender",
    [
        "bob@example.test",  # another local user
        "alice@elsewhere.test",  # the right name at a foreign domain
        "nobody@example.test",  # no such user
        "alice%elsewhere.test@example.test",  # a relay-hack local part is never alice's
    ],
)
def test_other_senders_are_refused_553(server: Server, sender: str) -> None:
    with submission(server) as client:
        code, reply = client.mail(sender)
        assert code == 553 and reply.startswith(b"5.7.1"), reply
        assert b"not owned by alice" in reply
        # The transaction did not start; a proper sender still can.
        assert client.rcpt("bob@example.test")[0] == 503
        assert client.mail("alice@example.test")[0] == 250
    assert inbox(server, "bob") == []


def test_policy_applies_to_an_authenticated_session_on_port_25(server: Server) -> None:
    with smtplib.SMTP(*server.address("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.mail("bob@example.test")[0] == 250  # unauthenticated MX: anyone's mail
        client.rset()
        client.login("alice", "alice-pw")
        assert client.mail("bob@example.test")[0] == 553


def test_postmaster_address_belongs_to_the_postmaster_user(make_server) -> None:
    server = make_server(postmaster="bob")
    with submission(server, "bob") as client:
        assert client.mail("postmaster@example.org")[0] == 250
    with submission(server, "alice") as client:
        assert client.mail("postmaster@example.org")[0] == 553


def test_restrict_senders_off_allows_any_sender(make_server) -> None:
    server = make_server(restrict_senders=False)
    with submission(server) as client:
        refused = client.sendmail("bob@example.test", ["bob@example.test"], BODY)
        assert refused == {}
    (message,) = inbox(server, "bob")
    assert message.startswith(b"Return-Path: <bob@example.test>\r\n")


def received_of(message: bytes) -> str:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    return str(parsed["Received"])


def test_received_shows_the_client_by_default(server: Server) -> None:
    with submission(server, helo="secret-laptop.home") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], BODY)
    (message,) = inbox(server, "bob")
    received = received_of(message)
    assert "from secret-laptop.home ([127.0.0.1])" in received
    assert "with ESMTPA" in received


def test_hide_client_ip_for_submissions(make_server, data_dir: Path) -> None:
    # A closed port as next hop: relayed mail stays queued, so its spooled copy can be read.
    server = make_server(hide_client_ip=True, mta=MTAConfig(routes={"remote.test": "127.0.0.1:1"}))
    with submission(server, helo="secret-laptop.home") as client:
        client.sendmail("alice@example.test", ["bob@example.test", "carol@remote.test"], BODY)
    (message,) = inbox(server, "bob")
    (queued,) = (data_dir / "queue").glob("*" + MESSAGE_SUFFIX)
    for copy in (message, queued.read_bytes()):
        head = copy[: copy.index(b"\r\n\r\n")]
        assert b"127.0.0.1" not in head and b"secret-laptop" not in head
        received = received_of(copy)
        assert received.startswith("by mx.example.test (refmail) with ESMTPA id ")
    # Mail from other servers keeps its full trace (RFC 5321 4.4).
    with smtplib.SMTP(*server.address("smtp"), local_hostname="mx.other.test", timeout=10) as mx:
        mx.sendmail("someone@other.test", ["bob@example.test"], BODY)
    assert "from mx.other.test ([127.0.0.1])" in received_of(inbox(server, "bob")[1])


def test_policy_settings_from_refmail_toml(tmp_path: Path) -> None:
    from refmail.config import Config, load_config

    assert Config().restrict_senders is True and Config().hide_client_ip is False
    (tmp_path / "refmail.toml").write_text("restrict_senders = false\nhide_client_ip = true\n")
    config = load_config(data_dir=tmp_path)
    assert config.restrict_senders is False and config.hide_client_ip is True
