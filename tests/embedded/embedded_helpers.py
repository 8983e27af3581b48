"""Helpers of the embedded server's tests (imported by name; conftest is not importable by
name when the whole suite runs)."""

from __future__ import annotations

from importlib.metadata import entry_points

#: Quick users for the API tests (hashed with the embedded server's test cost).
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
DOMAINS = ("example.test", "example.org")


def plugin_installed() -> bool:
    """True when refmail is installed with its ``pytest11`` entry point, so every pytest
    run (pytester's too) loads the plugin by itself."""
    return any(ep.value == "refmail.pytest_plugin" for ep in entry_points(group="pytest11"))
