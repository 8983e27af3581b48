"""The embedded server's tests.  The plugin's own tests run example test files with
``pytester``; it is enabled here in ``pytest_configure`` rather than by ``pytest_plugins``,
which pytest refuses in a conftest below the top level when the whole suite runs."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest

from refmail.embedded import MailServer

#: Quick users for the API tests (hashed with the embedded server's test cost).
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
DOMAINS = ("example.test", "example.org")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


def plugin_installed() -> bool:
    """True when refmail is installed with its ``pytest11`` entry point, so every pytest
    run (pytester's too) loads the plugin by itself."""
    return any(ep.value == "refmail.pytest_plugin" for ep in entry_points(group="pytest11"))


@pytest.fixture
def plugin_args() -> list[str]:
    """Arguments that give a pytester run the plugin: none when the entry point does it."""
    return [] if plugin_installed() else ["-p", "refmail.pytest_plugin"]


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A running MailServer with alice and bob in example.test and example.org."""
    with MailServer(users=USERS, domains=DOMAINS) as server:
        yield server
