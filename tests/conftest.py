"""Shared fixtures: a live refmail server on 127.0.0.1 with ephemeral ports and a temporary
data directory, with users alice and bob and the domains example.test and example.org."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from refmail_testing import DOMAINS, HOSTNAME, USERS, ServeProcess

from refmail.auth import UserDB
from refmail.config import STANDARD_PORTS, Config, load_config
from refmail.server import Server

#: The plugin tests (tests/embedded) run example test files in pytester; pytest accepts
#: ``pytest_plugins`` only in the top-level conftest.
pytest_plugins = ["pytester"]


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
