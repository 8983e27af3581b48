"""Nothing acknowledged is lost: SMTP says 250 only after the message is fsynced into the mbox,
so a SIGKILL right after the 250 (or at any moment while mail flows) loses nothing accepted and
leaves every mbox readable and complete."""

from __future__ import annotations

import mailbox
import random
import smtplib
import threading
from pathlib import Path

from refmail_testing import ServeProcess

from refmail.store import MailStore


def message(tag: str) -> str:
    return (
        f"From: sender@example.net\r\nSubject: {tag}\r\n\r\nbody of {tag}\r\n"
        + ("x" * 70 + "\r\n") * 50
    )


def subjects_in_inbox(data_dir: Path, user: str) -> list[str]:
    """Read the INBOX twice, with refmail's store and with Python's mailbox.mbox: both must
    see the same, whole messages."""
    box = MailStore(data_dir / "mail").mailbox(user, "INBOX")
    ours = []
    for info in box.messages():
        text = box.read(info.uid).decode()
        subject = text.split("Subject: ", 1)[1].split("\r\n", 1)[0]
        assert text.endswith("x" * 70 + "\r\n"), f"partial message {subject}"
        ours.append(subject)
    theirs = [m["Subject"] for m in mailbox.mbox(data_dir / "mail" / user / "INBOX")]
    assert ours == theirs
    return ours


def test_sigkill_right_after_250_keeps_the_message(data_dir: Path) -> None:
    process = ServeProcess(data_dir)
    try:
        host, port = process.address("smtp")
        with smtplib.SMTP(host, port, timeout=20) as client:
            client.sendmail("sender@example.net", ["alice@example.test"], message("kept-1"))
            process.proc.kill()  # no QUIT, no shutdown: the 250 alone must be enough
    except smtplib.SMTPServerDisconnected:
        pass
    finally:
        if process.proc.poll() is None:
            process.kill()
        process.proc.wait(10)
    assert subjects_in_inbox(data_dir, "alice") == ["kept-1"]


def send_until_stopped(
    address: tuple[str, int], stop: threading.Event, prefix: str, acknowledged: list[str]
) -> None:
    """Send messages on one connection until ``stop``; record each one the server acked."""
    try:
        with smtplib.SMTP(*address, timeout=20) as client:
            for n in range(200):
                if stop.is_set():
                    break
                tag = f"{prefix}-{n}"
                client.sendmail("s@example.net", ["alice@example.org"], message(tag))
                acknowledged.append(tag)
    except (smtplib.SMTPException, OSError):
        pass  # the kill interrupts whatever was in flight


def test_sigkill_while_mail_flows_loses_nothing_acknowledged(data_dir: Path) -> None:
    rng = random.Random(20261127)
    acknowledged: list[str] = []
    for round_number in range(3):
        process = ServeProcess(data_dir)
        stop = threading.Event()

        workers = [
            threading.Thread(
                target=send_until_stopped,
                args=(process.address("smtp"), stop, f"r{round_number}-w{w}", acknowledged),
            )
            for w in range(3)
        ]
        for w in workers:
            w.start()
        stop.wait(rng.uniform(0.2, 1.0))
        process.proc.kill()
        process.proc.wait(10)
        stop.set()
        for w in workers:
            w.join(30)
        stored = subjects_in_inbox(data_dir, "alice")
        assert len(stored) == len(set(stored)), "a message was stored twice"
        missing = set(acknowledged) - set(stored)
        assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    assert acknowledged, "no message was acknowledged at all"
