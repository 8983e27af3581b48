"""User-agent fixture: ``ua(server, *argv, password=..., stdin=...)`` runs a UA command the
way ``python -m refmail`` would, against a live server, and returns (status, stdout, stderr)."""

from __future__ import annotations

import io

import pytest
from ua_helpers import UA, endpoints, parse_args

from refmail.server import Server
from refmail.ua import cli


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
