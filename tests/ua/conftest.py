"""User-agent fixtures: ``ua(server, *argv, password=..., stdin=...)`` runs a UA command the
way ``python -m refmail`` would, against a live server, and returns (status, stdout, stderr)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import pytest

from refmail.server import Server
from refmail.ua import cli

UA = Callable[..., tuple[int, str, str]]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="refmail")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_arguments(commands)
    return parser.parse_args(argv)


def endpoints(server: Server) -> list[str]:
    smtp_host, smtp_port = server.address("submission")
    imap_host, imap_port = server.address("imap")
    return ["--smtp", f"{smtp_host}:{smtp_port}", "--imap", f"{imap_host}:{imap_port}"]


@pytest.fixture
def ua(capsys: pytest.CaptureFixture[str]) -> UA:
    def run(
        server: Server, *argv: str, password: str = "alice-pw", stdin: str = "", user: str = "alice"
    ) -> tuple[int, str, str]:
        args = parse_args([argv[0], *endpoints(server), "--user", user, *argv[1:]])
        out = io.StringIO()
        capsys.readouterr()
        status = cli.run(args, password, stdin=io.StringIO(stdin), stdout=out)
        return status, out.getvalue(), capsys.readouterr().err

    return run
