"""Reports (RFC 3464 / RFC 6522) parsed back with the stdlib, and ``queue list|flush|delete``."""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import signal
import threading

import pytest
from mta_helpers import World, message

from refmail.mta import dsn, queuecmd


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def report(original: bytes, *statuses: dsn.RecipientStatus) -> bytes:
    return dsn.build_report(
        hostname="mx.example.test",
        sender="alice@example.test",
        original=original,
        arrival=1_700_000_000.0,
        recipients=statuses,
        now=1_700_000_100.0,
    )


FAILED = dsn.RecipientStatus(
    address="bad@remote.test",
    action="failed",
    status="5.1.1",
    diagnostic="smtp; 550 5.1.1 no such user",
    remote_mta="127.0.0.1:2525",
    last_attempt=1_700_000_050.0,
)


def test_report_structure() -> None:
    raw = report(message("subject one", body="BODY-NOT-INCLUDED\r\n"), FAILED)
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    human, status, headers = msg.iter_parts()
    assert human.get_content_type() == "text/plain"
    assert "bad@remote.test" in human.get_content()
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Arrival-Date"]
    assert per_rcpt["Final-Recipient"] == "rfc822; bad@remote.test"
    assert per_rcpt["Remote-MTA"] == "dns; 127.0.0.1"
    assert per_rcpt["Last-Attempt-Date"]
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: subject one" in headers.get_payload(decode=True)
    assert b"BODY-NOT-INCLUDED" not in raw


def test_report_with_8bit_original_headers_stays_7bit() -> None:
    original = "From: a@example.test\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()
    raw = report(original, FAILED)
    assert raw.isascii()
    headers = list(parse(raw).iter_parts())[2]
    assert "Grüße".encode() in headers.get_payload(decode=True)


def test_diagnostic_cannot_inject_fields() -> None:
    evil = dsn.RecipientStatus(
        address="x@remote.test",
        action="failed",
        status="5.0.0",
        diagnostic="smtp; 550 oops\r\nFinal-Recipient: rfc822; victim@example.test",
    )
    per_rcpt = parse(report(message(), evil)).get_payload()[1].get_payload()[1]
    assert per_rcpt.get_all("Final-Recipient") == ["rfc822; x@remote.test"]


def test_no_report_for_null_sender(world: World) -> None:
    with pytest.raises(ValueError):
        dsn.send_report(
            b"x", "", delivery=world.delivery, spool=world.spool, hostname="mx.example.test"
        )


# ---------------------------------------------------------------- queue list|flush|delete


def run(world: World, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    queuecmd.add_arguments(commands, parents=[])
    return queuecmd.run(parser.parse_args(["queue", *argv]), world.config)


def test_list_and_delete(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    assert run(world, "list") == 0
    out = capsys.readouterr().out
    assert queue_id in out and "<alice@example.test>" in out and "pending" in out
    assert "1 message(s) queued, 1 recipient(s) pending" in out
    assert run(world, "delete", queue_id.lower()) == 0
    assert world.spool.list() == []
    assert run(world, "delete", queue_id) == 1
    assert run(world, "delete", "../../etc/passwd") == 2
    assert "not a queue id" in capsys.readouterr().err


def test_flush_without_server(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(world, "flush") == 1
    assert "no server is running" in capsys.readouterr().err
    (world.data_dir / "refmail.pid").write_text("1\n")  # stale: nobody holds the lock
    assert queuecmd.running_server_pid(world.data_dir) is None
    assert run(world, "flush") == 1


def test_flush_signals_the_server(world: World) -> None:
    """The server's pid file is locked; ``flush`` sends SIGUSR1, wired to Scheduler.flush."""
    scheduler = world.scheduler()
    flushed = threading.Event()
    scheduler.flush = flushed.set  # type: ignore[method-assign]
    previous = signal.signal(queuecmd.FLUSH_SIGNAL, lambda signum, frame: scheduler.flush())
    try:
        with queuecmd.PidFile(world.data_dir):
            assert queuecmd.running_server_pid(world.data_dir) == os.getpid()
            with pytest.raises(queuecmd.ServerRunning):
                queuecmd.PidFile(world.data_dir).acquire()
            assert run(world, "flush") == 0
            assert flushed.wait(5)
        assert not (world.data_dir / "refmail.pid").exists()
    finally:
        signal.signal(queuecmd.FLUSH_SIGNAL, previous)
