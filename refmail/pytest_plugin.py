"""pytest plugin (entry point ``pytest11``: ``refmail``): a live refmail server per test.

Fixtures:

- ``mail_server``: a fresh ``refmail.MailServer`` for one test, configured by the
  ``@pytest.mark.mail_server(users=..., domains=..., tls=..., ...)`` marker (any
  ``MailServer`` keyword; on the test, its class or module, the closest winning per keyword)
  over the ini options.
- ``mail_server_session``: one server for the whole run, configured by the ini options only,
  emptied (``MailServer.reset``) before each test that uses it.

ini options (``pytest.ini`` / ``[tool.pytest.ini_options]``): ``refmail_users``
(``alice:secret bob:pw``), ``refmail_domains`` (``example.test example.org``),
``refmail_tls`` (true/false, default true).

Nothing of refmail is imported until a fixture is used, so the plugin costs a test run that
does not use it nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from refmail.embedded import MailServer

MARKER = "mail_server"
USERS_INI = "refmail_users"
DOMAINS_INI = "refmail_domains"
TLS_INI = "refmail_tls"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        USERS_INI,
        type="args",
        default=[],
        help="refmail test users as NAME:PASSWORD words, e.g. 'alice:secret bob:pw'",
    )
    parser.addini(
        DOMAINS_INI,
        type="args",
        default=[],
        help="refmail local mail domains, e.g. 'example.test example.org' (default localhost)",
    )
    parser.addini(
        TLS_INI,
        type="bool",
        default=True,
        help="start the implicit-TLS ports (smtps, pop3s, imaps) too (default true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(users=None, domains=None, tls=None, **options): configure the "
        "mail_server fixture (options: any refmail.MailServer keyword)",
    )


def ini_settings(config: pytest.Config) -> dict[str, Any]:
    """MailServer keywords from the ini options; a malformed user is a usage error."""
    users: dict[str, str] = {}
    for word in config.getini(USERS_INI):
        name, colon, password = word.partition(":")
        if not colon or not name:
            pytest.fail(f"{USERS_INI}: {word!r} is not NAME:PASSWORD", pytrace=False)
        users[name] = password
    settings: dict[str, Any] = {"users": users, "tls": bool(config.getini(TLS_INI))}
    domains = config.getini(DOMAINS_INI)
    if domains:
        settings["domains"] = list(domains)
    return settings


def marker_settings(node: pytest.Item) -> dict[str, Any]:
    """The keywords of every ``mail_server`` marker on the test, its class and its module,
    the closest winning per keyword; positional arguments are refused, so a marker always
    says what it sets."""
    settings: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(MARKER))):
        if marker.args:
            pytest.fail(
                f"@pytest.mark.{MARKER} takes keywords only, e.g. users={{...}}", pytrace=False
            )
        settings.update({key: value for key, value in marker.kwargs.items() if value is not None})
    return settings


def start_server(settings: dict[str, Any], where: str) -> MailServer:
    from refmail.embedded import MailServer

    try:
        server = MailServer(**settings)
    except (TypeError, ValueError) as exc:  # an unknown keyword, a bad value
        pytest.fail(f"refmail mail server from {where}: {exc}", pytrace=False)
    return server.start()


@pytest.fixture
def mail_server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    """A running refmail.MailServer for this test, stopped (and its data removed) after."""
    settings = {**ini_settings(request.config), **marker_settings(request.node)}
    server = start_server(settings, f"@pytest.mark.{MARKER} and ini options")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _refmail_shared_server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    server = start_server(ini_settings(request.config), "ini options")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_server_session(
    request: pytest.FixtureRequest, _refmail_shared_server: MailServer
) -> MailServer:
    """The run's shared refmail.MailServer, emptied before this test (``reset()``): its
    mailboxes, outbound mail and added users are gone, its ports and users stay."""
    if request.node.get_closest_marker(MARKER) is not None and MARKER not in request.fixturenames:
        pytest.fail(
            f"@pytest.mark.{MARKER} configures the mail_server fixture; "
            "mail_server_session is configured by the refmail_* ini options only",
            pytrace=False,
        )
    _refmail_shared_server.reset()
    return _refmail_shared_server
