"""The embedded server's tests.  The plugin's own tests run example test files with
``pytester`` (enabled in tests/conftest.py: pytest takes ``pytest_plugins`` only there)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from embedded_helpers import DOMAINS, USERS, plugin_installed

from refmail.embedded import MailServer


@pytest.fixture
def plugin_args() -> list[str]:
    """Arguments that give a pytester run the plugin: none when the entry point does it."""
    return [] if plugin_installed() else ["-p", "refmail.pytest_plugin"]


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A running MailServer with alice and bob in example.test and example.org."""
    with MailServer(users=USERS, domains=DOMAINS) as server:
        yield server
