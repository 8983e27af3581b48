"""The command-line contract of DESIGN.md, run as a user would: ``python -m refmail ...``."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from refmail_testing import ServeProcess, refmail_env


def refmail(*args: str, data: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "refmail", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=refmail_env(),
        cwd=data,
    )


def test_version_names_the_parsing_core(tmp_path: Path) -> None:
    from refmail import parse

    result = subprocess.run(
        [sys.executable, "-m", "refmail", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=refmail_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert f"parsing core: {parse.IMPLEMENTATION}" in result.stdout


def test_user_add_list_passwd_del(tmp_path: Path) -> None:
    added = refmail("user", "add", "Carol", "--password-stdin", data=tmp_path, stdin="pw-1\n")
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "mail" / "carol" / "INBOX").is_file()
    assert refmail("user", "list", data=tmp_path).stdout.split() == ["carol"]
    again = refmail("user", "add", "carol", "--password-stdin", data=tmp_path, stdin="x\n")
    assert again.returncode == 2 and "exists" in again.stderr
    bad = refmail("user", "add", "../etc", "--password-stdin", data=tmp_path, stdin="x\n")
    assert bad.returncode == 2 and not (tmp_path / "etc").exists()
    empty = refmail("user", "add", "dave", "--password-stdin", data=tmp_path, stdin="\n")
    assert empty.returncode == 2
    changed = refmail("user", "passwd", "carol", "--password-stdin", data=tmp_path, stdin="pw-2\n")
    assert changed.returncode == 0, changed.stderr
    from refmail.auth import UserDB

    assert UserDB(tmp_path / "users").verify("carol", "pw-2") == "carol"
    assert refmail("user", "del", "carol", data=tmp_path).returncode == 0
    assert refmail("user", "list", data=tmp_path).stdout.split() == []
    assert (tmp_path / "mail" / "carol" / "INBOX").is_file()  # mail is kept


def test_serve_prints_listeners_then_ready_and_stops_on_sigterm(data_dir: Path) -> None:
    process = ServeProcess(data_dir)
    try:
        assert set(process.addresses) >= {"smtp", "submission", "smtps"}
        assert process.banner[-1] == "refmail ready"
        host, port = process.address("smtp")
        with smtplib.SMTP(host, port, timeout=10) as client:
            assert client.noop()[0] == 250
        # A session open at shutdown gets its goodbye (RFC 5321 3.8: 421).
        client = smtplib.SMTP(host, port, timeout=10)
        client.ehlo("idle.example.net")
        code, out, err = process.stop()
        assert code == 0, err
        assert "refmail stopped" in out
        assert client.getreply()[0] == 421
        client.close()
    finally:
        if process.proc.poll() is None:
            process.kill()


def test_serve_refuses_a_busy_port(data_dir: Path) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port_base = blocker.getsockname()[1] - 25
        if port_base < 1 or port_base + 993 > 65535:
            pytest.skip("the free port found leaves no room for every service")
        (data_dir / "refmail.toml").write_text(f"port_base = {port_base}\n")
        result = subprocess.run(
            [sys.executable, "-m", "refmail", "serve", "--data", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            env=refmail_env(),
            cwd=data_dir,
        )
        assert result.returncode == 1 and "cannot listen" in result.stderr
    finally:
        blocker.close()
