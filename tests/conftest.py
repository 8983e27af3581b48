"""Shared fixtures: a live refmail server on 127.0.0.1 with ephemeral ports and a temporary
data directory, with users alice and bob and the domains example.test and example.org."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from refmail.auth import UserDB
from refmail.config import STANDARD_PORTS, Config, load_config
from refmail.server import Server

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
DOMAINS = ("example.test", "example.org")
HOSTNAME = "mx.example.test"


def make_config(data_dir: Path, **overrides: object) -> Config:
    """A test configuration: every port ephemeral, fast auth-failure delays."""
    limits = overrides.pop("limits", None)
    config = load_config(
        data_dir=data_dir,
        hostname=HOSTNAME,
        domains=DOMAINS,
        ports={service: 0 for service in STANDARD_PORTS},
        **overrides,
    )
    limit_overrides = {"auth_failure_delay": 0.01, **(limits or {})}
    return dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limit_overrides))


def add_users(data_dir: Path, users: dict[str, str] = USERS) -> None:
    db = UserDB(data_dir / "users")
    for name, password in users.items():
        db.add(name, password)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    add_users(path)
    return path


@pytest.fixture
def make_server(data_dir: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(**config_overrides)`` -> a started Server; all are stopped afterwards.

    ``limits={"recipients": 2}`` overrides single limits; other keywords are Config fields.
    """
    started: list[Server] = []

    def start(**overrides: object) -> Server:
        server = Server(make_config(data_dir, **overrides))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


# ---------------------------------------------------------------- the real command, in a process

PACKAGE_ROOT = Path(__import__("refmail").__file__).resolve().parent.parent


def refmail_env() -> dict[str, str]:
    """The environment for ``python -m refmail`` in a child: the same refmail these tests
    import (installed or source tree), whatever the child's working directory."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


class ServeProcess:
    """``python -m refmail serve`` in a child process, every port ephemeral (from refmail.toml),
    with the listener addresses read from what it prints before ``refmail ready``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        import subprocess
        import sys

        (data_dir / "refmail.toml").write_text(
            f'hostname = "{HOSTNAME}"\ndomains = {list(DOMAINS)!r}\n'.replace("'", '"')
            + "[ports]\n"
            + "".join(f"{service} = 0\n" for service in STANDARD_PORTS)
            + "[limits]\nauth_failure_delay = 0.01\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refmail", "serve", "--data", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=data_dir,
            env=refmail_env(),
        )
        self.addresses: dict[str, tuple[str, int]] = {}
        self.banner: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.strip() == "refmail ready":
                break
            name, _, rest = line.partition(" ")
            if name in STANDARD_PORTS:
                host, _, port = rest.split()[0].rpartition(":")
                self.addresses[name] = (host.strip("[]"), int(port))
        else:
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"refmail serve did not get ready:\n{err}")

    def address(self, service: str) -> tuple[str, int]:
        return self.addresses[service]

    def stop(self, timeout: float = 20.0) -> tuple[int, str, str]:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def serve_process(data_dir: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``serve_process(*extra_args)`` -> a running ServeProcess; killed afterwards if still up."""
    started: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        process = ServeProcess(data_dir, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.kill()
