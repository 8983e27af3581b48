"""Real mail clients (Debian packages isync, fetchmail, mutt) against the live server.

Each test runs the client binary as a child process with a private HOME, pointed at the
``make_server()`` fixture's ephemeral ports, and checks the result on both sides: the client's
local files and the server's mailboxes (through imaplib or the store).  A test skips, saying
which package to install, when its binary is missing:
``apt-get install -y --no-install-recommends isync fetchmail mutt``.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

#: Each client run gets this long; they finish in well under a second on loopback.
CLIENT_TIMEOUT = 60
#: Debian package of each binary, for the skip reason.
PACKAGES = {"mbsync": "isync", "fetchmail": "fetchmail", "mutt": "mutt"}


def require(binary: str) -> str:
    """The binary's path, or skip the test naming the package that provides it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (apt-get install -y {PACKAGES[binary]})")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def run_client(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_client([argv...], input=None, ok=True)``: run with HOME set to ``home`` and no
    inherited client configuration; a failure (when ``ok``) shows the client's output."""

    def run(
        argv: list[str], *, input: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "HOME": str(home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
        if ok:
            assert result.returncode == 0, (
                f"{argv[0]} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def mbsync() -> str:
    return require("mbsync")


@pytest.fixture
def fetchmail() -> str:
    return require("fetchmail")


@pytest.fixture
def mutt() -> str:
    return require("mutt")


def _send_mail(server, to: str, subject: str, body: str = "hello") -> None:
    host, port = server.address("smtp")
    message = (
        f"From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.sendmail("bob@example.org", [to], message.encode())


@pytest.fixture
def send_mail() -> Callable[..., None]:
    """``send_mail(server, to, subject, body="hello")``: deliver a message through the
    server's SMTP listener, as any sender would."""
    return _send_mail
