"""The user agent as a user runs it: ``python -m refmail send|inbox|read`` in child processes
against ``python -m refmail serve`` in another, over 127.0.0.1 with STARTTLS verified against
the server's certificate (``--data``) and the password from ``REFMAIL_PASSWORD``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from refmail_testing import ServeProcess, refmail_env


def refmail(
    *argv: str, password: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = refmail_env() | {"REFMAIL_PASSWORD": password}
    return subprocess.run(
        [sys.executable, "-m", "refmail", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def connection(server: ServeProcess, data_dir: Path, user: str) -> list[str]:
    smtp_host, smtp_port = server.address("submission")
    imap_host, imap_port = server.address("imap")
    return [
        "--smtp",
        f"{smtp_host}:{smtp_port}",
        "--imap",
        f"{imap_host}:{imap_port}",
        "--data",
        str(data_dir),
        "--user",
        user,
    ]


def test_send_inbox_read_as_processes(
    data_dir: Path, serve_process: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    server = serve_process()
    notes = tmp_path / "notes.txt"
    notes.write_text("line one\nline two\n")
    sent = refmail(
        "send",
        *connection(server, data_dir, "alice"),
        "--to",
        "bob@example.test",
        "--subject",
        "Grüße",
        "--attach",
        str(notes),
        password="alice-pw",
        stdin="Hello Bob,\n.\nsee the notes.\n",
    )
    assert sent.returncode == 0, sent.stderr
    assert "sent <" in sent.stdout and "bob@example.test" in sent.stdout
    listing = refmail("inbox", *connection(server, data_dir, "bob"), password="bob-pw")
    assert listing.returncode == 0, listing.stderr
    first, summary = listing.stdout.splitlines()
    assert summary == "INBOX: 1 message(s)"
    number, flags, *rest = first.split()
    assert (number, flags) == ("1", "N") and "Grüße" in rest
    # The default envelope sender is alice@ the server's name, a local domain of its own.
    assert "alice@mx.example.test" in first
    shown = refmail("read", "1", *connection(server, data_dir, "bob"), password="bob-pw")
    assert shown.returncode == 0, shown.stderr
    assert "Subject: Grüße" in shown.stdout
    assert "Hello Bob,\n.\nsee the notes." in shown.stdout
    assert "[attachment 1: notes.txt (text/plain" in shown.stdout
    again = refmail("inbox", *connection(server, data_dir, "bob"), password="bob-pw")
    assert again.stdout.splitlines()[0].split()[1] == "-"  # seen now


def test_errors_are_one_line_and_exit_1(
    data_dir: Path, serve_process: Callable[..., ServeProcess]
) -> None:
    server = serve_process()
    wrong = refmail("inbox", *connection(server, data_dir, "bob"), password="nope")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.startswith("refmail: ") and len(wrong.stderr.splitlines()) == 1
    missing = refmail("read", "3", *connection(server, data_dir, "bob"), password="bob-pw")
    assert missing.returncode == 1 and "refmail: " in missing.stderr
    # The submission policy reaches the user as the server's reply.
    spoofed = refmail(
        "send",
        *connection(server, data_dir, "alice"),
        "--from",
        "bob@example.test",
        "--to",
        "bob@example.test",
        password="alice-pw",
        stdin="x\n",
    )
    assert spoofed.returncode == 1 and "553" in spoofed.stderr and "5.7.1" in spoofed.stderr
    assert server.proc.poll() is None
