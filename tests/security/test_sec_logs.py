"""Passwords never reach the logs (STYLE.md 14): every login path of the three protocols, right
and wrong, with the whole package logging at DEBUG; neither the password nor any base64 form
a SASL exchange carries appears in what was captured."""

from __future__ import annotations

import base64
import imaplib
import logging
import poplib
import smtplib

import pytest

from refmail.auth import TEST_SCRYPT_N, UserDB

PASSWORD = "Xyzzy-S3cret-Pa55"
WRONG = "Plugh-Wr0ng-Guess"


def forms(secret: str) -> list[str]:
    """The secret and the encodings a client sends it in."""
    raw = secret.encode()
    out = {secret, base64.b64encode(raw).decode()}
    for authzid in ("", "carol"):
        plain = f"{authzid}\0carol\0{secret}".encode()
        out.add(base64.b64encode(plain).decode())
    return sorted(out)


@pytest.fixture
def logged_server(make_server, data_dir, caplog):
    UserDB(data_dir / "users").add("carol", PASSWORD, cost=TEST_SCRYPT_N)
    caplog.set_level(logging.DEBUG)
    return make_server()


def every_login(server) -> None:
    host, port = server.address("submission")
    for password in (WRONG, PASSWORD):
        for mechanism in ("PLAIN", "LOGIN"):
            with smtplib.SMTP(host, port, timeout=10) as smtp:
                smtp.ehlo()
                smtp.user, smtp.password = "carol", password
                try:
                    smtp.auth(
                        mechanism,
                        getattr(smtp, f"auth_{mechanism.lower()}"),
                        initial_response_ok=mechanism == "PLAIN",
                    )
                except smtplib.SMTPAuthenticationError:
                    assert password == WRONG
    for password in (WRONG, PASSWORD):
        for way in ("user", "sasl"):
            pop = poplib.POP3(*server.address("pop3"), timeout=10)
            try:
                if way == "sasl":
                    plain = base64.b64encode(f"\0carol\0{password}".encode()).decode()
                    pop._shortcmd(f"AUTH PLAIN {plain}")
                else:
                    pop.user("carol")
                    pop.pass_(password)
            except poplib.error_proto:
                pass
            finally:
                pop.close()
    for password in (WRONG, PASSWORD):
        imap = imaplib.IMAP4(*server.address("imap"), timeout=10)
        try:
            imap.login("carol", password)
        except imaplib.IMAP4.error:
            pass
        imap.shutdown()
        imap = imaplib.IMAP4(*server.address("imap"), timeout=10)
        try:
            imap.authenticate("PLAIN", lambda _, pw=password: f"\0carol\0{pw}".encode())
        except imaplib.IMAP4.error:
            pass
        imap.shutdown()


def test_passwords_are_absent_from_debug_logs(logged_server, caplog) -> None:
    every_login(logged_server)
    text = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "carol" in text  # the logins were logged (the capture works) ...
    assert any(r.levelno == logging.DEBUG and r.name.startswith("refmail") for r in caplog.records)
    assert "authentication failed" in text
    for secret in (PASSWORD, WRONG):
        for form in forms(secret):
            assert form not in text, f"{form!r} in the logs"  # ... but no secret
