"""refmail.MailServer: send with smtplib, read with imaplib and poplib, over 127.0.0.1."""

from __future__ import annotations

import email.policy
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from embedded_helpers import DOMAINS, USERS

import refmail
from refmail.auth import TEST_SCRYPT_N, hash_password, verify_password
from refmail.embedded import MailServer, shared_certificate
from refmail.tls import SELF_SIGNED_DAYS

ROOT = Path(__file__).resolve().parents[2]


def make_message(subject: str, to: str = "alice@example.test", body: str = "hello\n"):
    message = EmailMessage()
    message["From"] = "app@sender.test"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def test_exported_lazily_from_the_package() -> None:
    assert refmail.MailServer is MailServer
    with pytest.raises(AttributeError):
        refmail.NoSuchThing  # noqa: B018


def test_import_refmail_stays_cheap() -> None:
    """``refmail.MailServer`` is a lazy attribute: importing the package loads no server."""
    code = "import sys, refmail; print(sorted(m for m in sys.modules if m.startswith('refmail')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "['refmail']"


def test_smtp_to_imap_and_pop3(mail: MailServer) -> None:
    with smtplib.SMTP(mail.host, mail.smtp_port) as client:
        client.send_message(make_message("first"))
    with imaplib.IMAP4(mail.host, mail.imap_port) as imap:
        imap.login("alice", "alice-pw")
        imap.select("INBOX")
        status, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert status == "OK"
        assert b"Subject: first" in data[0][1]
    pop = poplib.POP3(mail.host, mail.pop3_port)
    try:
        pop.user("alice")
        pop.pass_("alice-pw")
        count, _size = pop.stat()
        assert count == 1
        lines = pop.retr(1)[1]
        assert b"Subject: first" in lines
    finally:
        pop.quit()
    [stored] = mail.messages("alice")
    assert stored["Subject"] == "first"
    assert stored.get_content() == "hello\n"
    assert stored["Return-Path"] == "<app@sender.test>"
    assert "by localhost (refmail)" in stored["Received"]


def test_every_domain_is_local(mail: MailServer) -> None:
    assert mail.domains == DOMAINS
    with smtplib.SMTP(mail.host, mail.smtp_port) as client:
        client.sendmail("x@sender.test", ["bob@example.org"], b"Subject: org\r\n\r\nhi\r\n")
    assert [m["Subject"] for m in mail.messages("bob")] == ["org"]
    assert mail.address("bob") == "bob@example.test"


def test_tls_ports_trust_cert_path(mail: MailServer) -> None:
    context = ssl.create_default_context(cafile=mail.cert_path)
    with smtplib.SMTP_SSL(mail.host, mail.smtps_port, context=context) as client:
        client.login("alice", "alice-pw")
        client.sendmail("alice@example.test", ["bob@example.test"], b"Subject: s\r\n\r\nx\r\n")
    with smtplib.SMTP(mail.host, mail.submission_port) as client:
        client.starttls(context=context)
        client.login("bob", "bob-pw")
    with imaplib.IMAP4_SSL(mail.host, mail.imaps_port, ssl_context=context) as imap:
        imap.login("bob", "bob-pw")
        assert imap.select("INBOX") == ("OK", [b"1"])
    pop = poplib.POP3_SSL(mail.host, mail.pop3s_port, context=context)
    try:
        pop.user("bob")
        pop.pass_("bob-pw")
        assert pop.stat()[0] == 1
    finally:
        pop.quit()


def test_foreign_recipient_refused_without_auth(mail: MailServer) -> None:
    """Never an open relay, even on loopback (RFC 5321 3.6.2)."""
    with smtplib.SMTP(mail.host, mail.smtp_port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            client.sendmail("x@sender.test", ["z@foreign.test"], b"Subject: x\r\n\r\nx\r\n")
    assert caught.value.recipients["z@foreign.test"][0] == 550
    assert mail.outbound == []


def test_authenticated_foreign_mail_is_captured(mail: MailServer) -> None:
    with smtplib.SMTP(mail.host, mail.submission_port) as client:
        client.login("alice", "alice-pw")
        client.sendmail(
            "alice@example.test",
            ["z@foreign.test", "bob@example.test"],
            b"Subject: mixed\r\n\r\nx\r\n",
        )
    [captured] = mail.outbound  # there as soon as sendmail returned
    assert captured.sender == "alice@example.test"
    assert captured.recipients == ("z@foreign.test",)
    assert captured.message["Subject"] == "mixed"
    assert captured.raw.startswith(b"Received: ")
    assert [m["Subject"] for m in mail.messages("bob")] == ["mixed"]
    assert mail.running.spool.list() == []  # captured, not queued


def test_catch_all_accepts_any_recipient() -> None:
    with MailServer(users=USERS, domains=DOMAINS, accept_all_recipients=True) as mail:
        with smtplib.SMTP(mail.host, mail.smtp_port) as client:
            client.sendmail(
                "noreply@app.test",
                ["someone@gmail.test", "alice@example.test", "nobody@example.test"],
                make_message("reset").as_bytes(),
            )
        [captured] = mail.outbound
        assert captured.recipients == ("someone@gmail.test", "nobody@example.test")
        assert captured.message["Subject"] == "reset"
        assert [m["Subject"] for m in mail.messages("alice")] == ["reset"]


def test_catch_all_and_relay_is_refused() -> None:
    with pytest.raises(ValueError, match="open relay"):
        MailServer(accept_all_recipients=True, relay=True)


def test_wait_for_messages_from_a_background_sender(mail: MailServer) -> None:
    def send_later() -> None:
        time.sleep(0.2)
        for n in range(3):
            with smtplib.SMTP(mail.host, mail.smtp_port) as client:
                client.send_message(make_message(f"bg {n}"))

    sender = threading.Thread(target=send_later)
    started = time.monotonic()
    sender.start()
    messages = mail.wait_for_messages("alice", 3, timeout=10)
    took = time.monotonic() - started
    sender.join()
    assert [m["Subject"] for m in messages] == ["bg 0", "bg 1", "bg 2"]
    assert took < 5


def test_wait_for_messages_wakes_on_delivery(mail: MailServer) -> None:
    """Woken by the mailbox's listener the moment the message is stored, not by a poll."""
    delivered_at: list[float] = []

    def deliver() -> None:
        mail.deliver("bob", make_message("now"))
        delivered_at.append(time.monotonic())

    timer = threading.Timer(0.3, deliver)
    timer.start()
    [message] = mail.wait_for_messages("bob", 1, timeout=10)
    woke_at = time.monotonic()
    timer.join()
    assert message["Subject"] == "now"
    assert woke_at - delivered_at[0] < 0.25


def test_wait_for_messages_times_out(mail: MailServer) -> None:
    mail.deliver("alice", make_message("only one"))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="1 message"):
        mail.wait_for_messages("alice", 2, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2


def test_wait_for_outbound(mail: MailServer) -> None:
    def submit() -> None:
        time.sleep(0.1)
        with smtplib.SMTP(mail.host, mail.submission_port) as client:
            client.login("bob", "bob-pw")
            client.sendmail("bob@example.test", ["far@away.test"], b"Subject: o\r\n\r\nx\r\n")

    thread = threading.Thread(target=submit)
    thread.start()
    [captured] = mail.wait_for_outbound(1, timeout=10)
    thread.join()
    assert captured.recipients == ("far@away.test",)
    with pytest.raises(TimeoutError):
        mail.wait_for_outbound(2, timeout=0.1)


def test_deliver_seeds_a_mailbox_for_imap(mail: MailServer) -> None:
    uid = mail.deliver("bob", make_message("seeded"), mailbox="Archive/2024", flags=["\\Seen"])
    mail.deliver("bob", "Subject: plain\nX-UID: 999\nStatus: RO\n\ntext\n")
    assert uid == 1
    with imaplib.IMAP4(mail.host, mail.imap_port) as imap:
        imap.login("bob", "bob-pw")
        imap.select('"Archive/2024"', readonly=True)
        _status, data = imap.uid("FETCH", "1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"\\Seen" in data[0][0]
        assert b"Subject: seeded" in data[0][1]
        imap.select("INBOX", readonly=True)
        _status, data = imap.fetch("1", "(UID FLAGS)")
        assert b"UID 1 " in data[0] and b"\\Seen" not in data[0]  # its X-UID/Status dropped
    [plain] = mail.messages("bob")
    assert plain.get_content() == "text\n"


def test_add_user(mail: MailServer) -> None:
    mail.add_user("Carol", "carol-pw")
    assert mail.users["carol"] == "carol-pw"
    assert mail.messages("carol") == []
    with smtplib.SMTP(mail.host, mail.submission_port) as client:
        client.login("carol", "carol-pw")
        client.sendmail("carol@example.test", ["alice@example.test"], b"Subject: c\r\n\r\n.\r\n")
    assert len(mail.messages("alice")) == 1
    with smtplib.SMTP(mail.host, mail.smtp_port) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("carol", "wrong")


def test_reset_empties_everything(mail: MailServer) -> None:
    mail.add_user("dave", "dave-pw")
    mail.deliver("alice", make_message("a"))
    mail.deliver("alice", make_message("b"), mailbox="Work/Projects")
    mail.running.store.create_folder("alice", "Empty/Folder")
    mail.deliver("dave", make_message("d"))
    with smtplib.SMTP(mail.host, mail.submission_port) as client:
        client.login("bob", "bob-pw")
        client.sendmail("bob@example.test", ["far@away.test"], b"Subject: o\r\n\r\nx\r\n")
    with imaplib.IMAP4(mail.host, mail.imap_port) as imap:
        imap.login("alice", "alice-pw")
        imap.select("INBOX")
        mail.reset()
        assert imap.noop()[0] == "OK"
        assert imap.untagged_responses.get("EXPUNGE") == [b"1"]
    assert mail.messages("alice") == []
    assert mail.running.store.list_mailboxes("alice") == ["INBOX"]
    assert mail.running.store.list_folders("alice") == []
    assert mail.outbound == []
    assert "dave" not in mail.users and not mail.running.users.exists("dave")
    assert sorted(mail.users) == ["alice", "bob"]


def test_two_servers_do_not_interfere() -> None:
    with MailServer(users={"alice": "one"}) as first, MailServer(users={"alice": "two"}) as second:
        assert {first.smtp_port, first.imap_port}.isdisjoint({second.smtp_port, second.imap_port})
        assert first.data_dir != second.data_dir
        with smtplib.SMTP(first.host, first.smtp_port) as client:
            client.sendmail("x@a.test", ["alice@localhost"], b"Subject: to first\r\n\r\n1\r\n")
        with smtplib.SMTP(second.host, second.submission_port) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice", "one")
        with smtplib.SMTP(second.host, second.submission_port) as client:
            client.login("alice", "two")
            client.sendmail("alice@localhost", ["x@out.test"], b"Subject: out\r\n\r\n2\r\n")
        assert [m["Subject"] for m in first.messages("alice")] == ["to first"]
        assert second.messages("alice") == []
        assert first.outbound == [] and len(second.outbound) == 1
        first.reset()
        assert len(second.outbound) == 1


def test_stop_closes_ports_and_removes_the_temporary_directory() -> None:
    server = MailServer(users=USERS).start()
    port, data_dir = server.smtp_port, server.data_dir
    assert data_dir.is_dir()
    server.stop()
    server.stop()  # twice is fine
    assert not data_dir.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="not running"):
        server.messages("alice")


def test_given_data_directory_is_kept_and_reused(tmp_path: Path) -> None:
    with MailServer(users={"alice": "pw"}, data_dir=tmp_path / "data") as server:
        server.deliver("alice", make_message("kept"))
    assert (tmp_path / "data" / "mail" / "alice" / "INBOX").is_file()
    with MailServer(users={"alice": "pw"}, data_dir=tmp_path / "data") as server:
        assert [m["Subject"] for m in server.messages("alice")] == ["kept"]


def test_without_tls_only_plain_ports() -> None:
    with MailServer(users=USERS, tls=False) as server:
        assert server.smtp_port and server.submission_port and server.pop3_port
        with pytest.raises(RuntimeError, match="tls=True"):
            server.imaps_port  # noqa: B018


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="list"):
        MailServer(domains="example.test")
    with pytest.raises(ValueError, match="domain"):
        MailServer(domains=[])
    with pytest.raises(RuntimeError, match="already running"):
        with MailServer() as server:
            server.start()


def test_start_twice_refused_and_repr() -> None:
    server = MailServer(domains=["Example.TEST."])
    assert server.domains == ("example.test",)
    assert "stopped" in repr(server)
    with server:
        assert f"smtp={server.smtp_port}" in repr(server)


def test_limits_and_config_overrides() -> None:
    with MailServer(users=USERS, limits={"recipients": 1}, config_overrides={"vrfy": True}) as s:
        with smtplib.SMTP(s.host, s.smtp_port) as client:
            assert client.verify("alice@localhost")[0] == 250
            client.ehlo()
            client.mail("x@a.test")
            assert client.rcpt("alice@localhost")[0] == 250
            assert client.rcpt("bob@localhost")[0] == 452


def test_certificate_is_made_once_per_cache(tmp_path: Path) -> None:
    cache = tmp_path / "certs"
    first = shared_certificate("localhost", cache)
    stamp = first[0].stat().st_mtime_ns
    with MailServer(cert_cache=cache) as server:
        assert server.cert_path == first[0]
    assert shared_certificate("localhost", cache) == first
    assert first[0].stat().st_mtime_ns == stamp
    context = ssl.create_default_context(cafile=first[0])
    assert context.cert_store_stats()["x509_ca"] == 1


def test_certificate_renewed_before_it_expires(tmp_path: Path) -> None:
    cache = tmp_path / "certs"
    cert, key = shared_certificate("localhost", cache)
    old = cert.read_bytes()
    made = time.time() - (SELF_SIGNED_DAYS - 0.5) * 86400  # half a day left
    os.utime(cert, (made, made))
    assert shared_certificate("localhost", cache) == (cert, key)
    assert cert.read_bytes() != old
    context = ssl.create_default_context()
    context.load_cert_chain(cert, key)  # the new key matches the new certificate
    assert sorted(p.name for p in cache.iterdir()) == [".lock", "localhost"]


def test_certificate_cache_must_be_private(tmp_path: Path) -> None:
    cache = tmp_path / "open"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    with pytest.raises(PermissionError):
        shared_certificate("localhost", cache)
    with pytest.raises(ValueError):
        shared_certificate("../etc", tmp_path / "certs")


def test_test_cost_hashes_verify() -> None:
    hashed = hash_password("pw", cost=TEST_SCRYPT_N)
    assert hashed.startswith(f"{{SCRYPT}}{TEST_SCRYPT_N}$")
    assert verify_password("pw", hashed) and not verify_password("px", hashed)
    with pytest.raises(ValueError):
        hash_password("pw", cost=1000)


def test_messages_are_modern_email_messages(mail: MailServer) -> None:
    message = make_message("ünïcode", body="Grüße\n")
    with smtplib.SMTP(mail.host, mail.smtp_port) as client:
        client.send_message(message)
    [stored] = mail.messages("alice")
    assert isinstance(stored, EmailMessage) and stored.policy == email.policy.default
    assert stored["Subject"] == "ünïcode"
    assert stored.get_content() == "Grüße\n"


def test_relay_true_sends_through_the_real_mta() -> None:
    """``relay=True`` runs the real scheduler: mail for example.org, routed to a second test
    server, arrives there; nothing is captured."""
    with MailServer(users={"bob": "pw"}, domains=["example.org"]) as remote:
        route = {"example.org": f"127.0.0.1:{remote.smtp_port}"}
        with MailServer(users=USERS, domains=DOMAINS[:1], relay=True, routes=route) as local:
            with smtplib.SMTP(local.host, local.submission_port) as client:
                client.login("alice", "alice-pw")
                client.sendmail("alice@example.test", ["bob@example.org"], b"Subject: far\r\n\r\n")
            [arrived] = remote.wait_for_messages("bob", 1, timeout=20)
            assert arrived["Subject"] == "far"
            assert local.outbound == []
