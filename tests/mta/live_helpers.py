"""Live MTA tests' helpers: a refmail instance in its own process with a refmail.toml written
for it (``Instance``), submission with smtplib, and waiting with a deadline.

An instance is ``python -m refmail serve --config FILE`` via ``ServeProcess``; its stderr (the
log) is drained by a thread so a chatty server never blocks on a full pipe, and is shown
when a test fails.  Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mta_helpers import inbox
from refmail_testing import ServeProcess, refmail_env

from refmail.auth import UserDB
from refmail.config import STANDARD_PORTS
from refmail.mta.spool import Spool

#: Seconds-scale retries: a message is retried 1 s, then every 2 s, after a failure.
FAST_RETRY = (1, 2)


def toml_value(value: Any) -> str:
    """The few TOML values these configs use: bool, int, str, list, inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def write_config(
    path: Path,
    *,
    hostname: str,
    domains: tuple[str, ...],
    ports: Mapping[str, int] | None = None,
    mta: Mapping[str, Any] | None = None,
    **top: Any,
) -> None:
    """A refmail.toml: every port ephemeral unless given, fast auth-failure delays."""
    lines = [f"hostname = {toml_value(hostname)}", f"domains = {toml_value(domains)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in top.items()]
    lines.append("[ports]")
    all_ports = {service: 0 for service in STANDARD_PORTS} | dict(ports or {})
    lines += [f"{service} = {port}" for service, port in all_ports.items()]
    lines += ["[limits]", "auth_failure_delay = 0.01", "[mta]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in (mta or {}).items()]
    path.write_text("\n".join(lines) + "\n")


class Instance:
    """One refmail server process over ``data_dir``; ``start()`` again after ``stop()``."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        hostname: str,
        domains: tuple[str, ...],
        users: Mapping[str, str],
    ) -> None:
        self.name = name
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True)
        self.config_file = root / f"{name}.toml"
        self.hostname = hostname
        self.domains = domains
        db = UserDB(self.data_dir / "users")
        for user, password in users.items():
            db.add(user, password)
        self.passwords = dict(users)
        self.process: ServeProcess | None = None
        self.log: list[str] = []
        self._drain: threading.Thread | None = None

    def start(
        self,
        *,
        ports: Mapping[str, int] | None = None,
        mta: Mapping[str, Any] | None = None,
        **top: Any,
    ) -> Instance:
        write_config(
            self.config_file,
            hostname=self.hostname,
            domains=self.domains,
            ports=ports,
            mta={"retry": list(FAST_RETRY), **(mta or {})},
            **top,
        )
        self.process = ServeProcess(self.data_dir, "--config", str(self.config_file))
        stderr = self.process.proc.stderr
        assert stderr is not None
        self._drain = threading.Thread(target=self._collect, args=(stderr,), daemon=True)
        self._drain.start()
        return self

    def _collect(self, stream: Any) -> None:
        for line in stream:
            self.log.append(line.rstrip("\n"))

    def address(self, service: str) -> tuple[str, int]:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.address(service)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Stop the process with ``signum`` (SIGTERM: clean shutdown; SIGKILL: a crash)."""
        assert self.process is not None
        proc, self.process = self.process.proc, None
        if proc.poll() is None:
            proc.send_signal(signum)
        status = proc.wait(timeout=30)
        if self._drain is not None:
            self._drain.join(timeout=5)
        assert proc.stdout is not None
        proc.stdout.close()
        return status

    def close(self) -> None:
        if self.process is not None:
            self.stop(signal.SIGKILL)

    def inbox(self, user: str) -> list[Any]:
        return inbox(self.data_dir, user)

    def queued(self) -> list[dict[str, Any]]:
        """The envelopes in the outbound spool, read from disk."""
        return Spool(self.data_dir / "queue").list()

    def submit(
        self,
        user: str,
        sender: str,
        recipients: list[str],
        subject: str,
        body: str = "Hello.\r\n",
    ) -> None:
        """Submit over loopback (plaintext AUTH is allowed there, DESIGN.md)."""
        message = (
            f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@{self.hostname}>\r\n\r\n{body}"
        ).encode()
        with smtplib.SMTP(*self.address("submission"), timeout=10) as smtp:
            smtp.login(user, self.passwords[user])
            refused = smtp.sendmail(sender, recipients, message)
        assert refused == {}, refused

    def ua(self, command: str, user: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
        """``python -m refmail send|inbox|read`` as ``user`` against this instance, in a
        child process; STARTTLS is verified against the instance's certificate."""
        smtp_host, smtp_port = self.address("submission")
        imap_host, imap_port = self.address("imap")
        argv = [
            command,
            *("--smtp", f"{smtp_host}:{smtp_port}", "--imap", f"{imap_host}:{imap_port}"),
            *("--data", str(self.data_dir), "--user", user, *args),
        ]
        done = subprocess.run(
            [sys.executable, "-m", "refmail", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=refmail_env() | {"REFMAIL_PASSWORD": self.passwords[user]},
        )
        return done.returncode, done.stdout, done.stderr

    def describe(self) -> str:
        return f"--- {self.name} log ---\n" + "\n".join(self.log[-60:])


def wait_for(
    condition: Callable[[], object], timeout: float = 20.0, why: Callable[[], str] = str
) -> None:
    """Poll ``condition`` until true; fail with ``why()`` (e.g. the servers' logs) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s\n{why()}")
        time.sleep(0.1)
