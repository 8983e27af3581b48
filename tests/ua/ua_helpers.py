"""User-agent test helpers: the argument parser as ``python -m refmail`` builds it, and the
endpoint flags for a live server (used by the ``ua`` fixture in conftest.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

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
