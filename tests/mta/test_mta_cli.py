"""``python -m refmail serve --route ...`` with ``queue list|flush|delete`` from another
process, as an administrator would use them; the next hop is a test receiver on 127.0.0.1.

These run once ``refmail/cli.py`` wires the queue commands and the scheduler (see the MTA
report); until then they are skipped, never silently passed."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mta_receiver import Behaviour, Receiver
from refmail_testing import refmail_env

from refmail.cli import build_parser


def _queue_wired() -> bool:
    try:
        build_parser().parse_args(["queue", "list"])
    except SystemExit:
        return False
    return True


pytestmark = pytest.mark.skipif(not _queue_wired(), reason="cli.py has no `queue` command yet")


def queue(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refmail", "queue", *argv, "--data", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env=refmail_env(),
    )


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def submit(address: tuple[str, int], rcpt: str) -> None:
    with smtplib.SMTP(*address, timeout=10) as smtp:
        smtp.login("alice", "alice-pw")  # loopback: plaintext AUTH is allowed
        smtp.sendmail("alice@example.test", [rcpt], b"Subject: queued\r\n\r\nhello\r\n")


def test_queue_list_flush_delete(
    data_dir: Path, serve_process: Callable[..., object], receiver: Callable[..., Receiver]
) -> None:
    r = receiver(Behaviour(rcpt=lambda address: (451, "4.2.0 not now")))
    proc = serve_process("--route", f"remote.test={r.hostport}")
    submit(proc.address("submission"), "carol@remote.test")  # type: ignore[attr-defined]
    wait_for(lambda: len(r.sessions) >= 1)  # tried at once (the spool wakes the scheduler)
    wait_for(lambda: "attempts 1" in queue(data_dir, "list").stdout)
    listing = queue(data_dir, "list")
    assert listing.returncode == 0
    assert "<alice@example.test>" in listing.stdout and "pending" in listing.stdout
    assert "4.2.0 not now" in listing.stdout
    r.behaviour.rcpt = lambda address: (250, "2.1.5 ok")
    flushed = queue(data_dir, "flush")
    assert flushed.returncode == 0, flushed.stderr
    wait_for(lambda: len(r.messages) == 1)
    wait_for(lambda: "0 message(s) queued" in queue(data_dir, "list").stdout)
    r.behaviour.rcpt = lambda address: (451, "4.2.0 not now")
    submit(proc.address("submission"), "dave@remote.test")  # type: ignore[attr-defined]
    wait_for(lambda: "attempts 1" in queue(data_dir, "list").stdout)
    queue_id = queue(data_dir, "list").stdout.split()[0]
    deleted = queue(data_dir, "delete", queue_id)
    assert deleted.returncode == 0 and queue_id in deleted.stdout
    assert "0 message(s) queued" in queue(data_dir, "list").stdout
    assert queue(data_dir, "delete", queue_id).returncode == 1


def test_flush_without_a_server(data_dir: Path) -> None:
    result = queue(data_dir, "flush")
    assert result.returncode == 1 and "no server is running" in result.stderr
