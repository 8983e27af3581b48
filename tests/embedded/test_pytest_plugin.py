"""The pytest plugin, run the way its users run it: example test files under ``pytester``,
checked by their pass/fail counts."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
from embedded_helpers import plugin_installed

ROOT = Path(__file__).resolve().parents[2]


#: Plugins the example runs do without: hypothesis's setup alone costs a second per run.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, plugin_args: list[str], *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*plugin_args, *QUIET, *args)


def entry_points_declared() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["entry-points"]["pytest11"]


def test_entry_point_is_declared() -> None:
    assert entry_points_declared() == {"refmail": "refmail.pytest_plugin"}


def test_plugin_loads_by_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an install does, without installing: a dist-info directory whose
    entry_points.txt holds pyproject's pytest11 table, on the child's sys.path; the child
    pytest gets no ``-p``, so only the entry point can give it the fixture."""
    if plugin_installed():
        site = None
    else:
        site = pytester.mkdir("site")
        dist_info = site / "refmail_probe-0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: refmail-probe\n")
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points_declared().items())
        (dist_info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
        paths = [str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    pytester.makepyfile("def test_it(mail_server):\n    assert mail_server.smtp_port\n")
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)
    assert site is None or "refmail" in result.stdout.str()  # listed among the plugins


def test_mail_server_fixture_with_marker(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    pytester.makepyfile(
        """
        import imaplib
        import smtplib

        import pytest

        pytestmark = pytest.mark.mail_server(users={"alice": "pw"}, domains=["example.test"])

        def test_receive(mail_server):
            with smtplib.SMTP(mail_server.host, mail_server.smtp_port) as client:
                message = b"Subject: hi\\r\\n\\r\\nx\\r\\n"
                client.sendmail("a@b.test", ["alice@example.test"], message)
            [message] = mail_server.messages("alice")
            assert message["Subject"] == "hi"
            with imaplib.IMAP4(mail_server.host, mail_server.imap_port) as imap:
                imap.login("alice", "pw")
                assert imap.select("INBOX") == ("OK", [b"1"])

        def test_fresh_server_each_test(mail_server):
            assert mail_server.messages("alice") == []
            assert mail_server.domains == ("example.test",)

        @pytest.mark.mail_server(users={"bob": "pw"}, tls=False)
        def test_function_marker_wins(mail_server):
            assert set(mail_server.users) == {"bob"}
            assert mail_server.domains == ("example.test",)  # from the module's marker
            with pytest.raises(RuntimeError):
                mail_server.imaps_port

        def test_failing_on_purpose(mail_server):
            assert mail_server.messages("alice"), "no mail"
        """
    )
    result = run(pytester, plugin_args, "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_failing_on_purpose FAILED*", "*no mail*"])


def test_ini_options(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    pytester.makeini(
        """
        [pytest]
        refmail_users = alice:secret bob:pw2
        refmail_domains = example.org
        refmail_tls = false
        """
    )
    pytester.makepyfile(
        """
        import smtplib

        import pytest

        def test_configured(mail_server):
            assert mail_server.users == {"alice": "secret", "bob": "pw2"}
            assert mail_server.domains == ("example.org",)
            with pytest.raises(RuntimeError):
                mail_server.smtps_port
            with smtplib.SMTP(mail_server.host, mail_server.submission_port) as client:
                client.login("bob", "pw2")

        @pytest.mark.mail_server(tls=True)
        def test_marker_over_ini(mail_server):
            assert mail_server.smtps_port
            assert mail_server.domains == ("example.org",)
        """
    )
    run(pytester, plugin_args).assert_outcomes(passed=2)


def test_session_server_is_shared_and_emptied(
    pytester: pytest.Pytester, plugin_args: list[str]
) -> None:
    pytester.makeini("[pytest]\nrefmail_users = alice:pw\n")
    pytester.makepyfile(
        """
        import smtplib

        PORTS = []

        def send(server, subject):
            with smtplib.SMTP(server.host, server.smtp_port) as client:
                client.sendmail("a@b.test", ["alice@localhost"], f"Subject: {subject}\\r\\n\\r\\n")

        def test_one(mail_server_session):
            PORTS.append(mail_server_session.smtp_port)
            send(mail_server_session, "one")
            mail_server_session.deliver("alice", "Subject: kept?\\n\\n", mailbox="Archive")
            mail_server_session.add_user("temp", "pw")
            assert len(mail_server_session.messages("alice")) == 1

        def test_two(mail_server_session):
            PORTS.append(mail_server_session.smtp_port)
            assert mail_server_session.messages("alice") == []
            assert mail_server_session.running.store.list_mailboxes("alice") == ["INBOX"]
            assert "temp" not in mail_server_session.users
            send(mail_server_session, "two")
            assert [m["Subject"] for m in mail_server_session.messages("alice")] == ["two"]

        def test_same_server():
            assert len(PORTS) == 2 and PORTS[0] == PORTS[1]
        """
    )
    run(pytester, plugin_args, "-p", "no:randomly").assert_outcomes(passed=3)


def test_marker_on_session_fixture_is_an_error(
    pytester: pytest.Pytester, plugin_args: list[str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mail_server(users={"x": "y"})
        def test_misconfigured(mail_server_session):
            pass
        """
    )
    result = run(pytester, plugin_args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*configured by the refmail_* ini options only*"])


def test_bad_marker_is_reported(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mail_server(users={}, colour="blue")
        def test_unknown_keyword(mail_server):
            pass

        @pytest.mark.mail_server({"alice": "pw"})
        def test_positional(mail_server):
            pass

        @pytest.mark.mail_server(domains="example.test")
        def test_one_string_domain(mail_server):
            pass
        """
    )
    result = run(pytester, plugin_args)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*unexpected keyword argument 'colour'*",
            "*keywords only*",
            "*domains must be a list*",
        ]
    )


def test_bad_ini_user_is_reported(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    pytester.makeini("[pytest]\nrefmail_users = alice\n")
    pytester.makepyfile("def test_it(mail_server):\n    pass\n")
    result = run(pytester, plugin_args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*refmail_users: 'alice' is not NAME:PASSWORD*"])


def test_marker_is_registered(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    result = run(pytester, plugin_args, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.mail_server(*"])
    pytester.makepyfile(
        "import pytest\n@pytest.mark.mail_server(tls=False)\ndef test_x():\n    pass\n"
    )
    run(pytester, plugin_args, "--strict-markers").assert_outcomes(passed=1)


def doc_files() -> dict[str, str]:
    """The code blocks of docs/embedding.md that start with ``# file: NAME``."""
    text = (ROOT / "docs" / "embedding.md").read_text("utf-8")
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", text, re.S)
    return dict(blocks)


def test_documented_examples_pass(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    """The examples in docs/embedding.md, run as written (Flask is only needed for them)."""
    pytest.importorskip("flask")
    files = doc_files()
    assert {"shop.py", "test_shop.py", "unread.py", "test_unread.py"} <= set(files)
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source, "utf-8")
    pytester.syspathinsert()
    run(pytester, plugin_args).assert_outcomes(passed=4)
