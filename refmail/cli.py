"""``python -m refmail``: the command-line front (DESIGN.md, "Listeners and the command-line
contract").  The only module that reads argv and the environment (but REFMAIL_NO_EXTENSIONS,
read by parse.py at import)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import select
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from refmail import __version__
from refmail.auth import UserDB
from refmail.config import STANDARD_PORTS, Config, ConfigError, load_config
from refmail.errors import AuthError
from refmail.mta import queuecmd
from refmail.ua import cli as ua_cli

log = logging.getLogger(__name__)


def _route(text: str) -> tuple[str, str]:
    domain, sep, hop = text.partition("=")
    if not sep or not domain or ":" not in hop:
        raise argparse.ArgumentTypeError(f"expected DOMAIN=HOST:PORT, not {text!r}")
    return domain.lower(), hop


def build_parser() -> argparse.ArgumentParser:
    from refmail import parse

    parser = argparse.ArgumentParser(
        prog="refmail", description="refmail: an SMTP, POP3 and IMAP mail server over mbox files"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"refmail {__version__} (parsing core: {parse.IMPLEMENTATION})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", type=Path, help="data directory (default ./refmail-data)")
    data.add_argument("--config", type=Path, help="config file (default DATA/refmail.toml)")

    serve = commands.add_parser("serve", parents=[data], help="run SMTP, POP3 and IMAP")
    serve.add_argument("--listen", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--port-base", type=int, help="each port is N + its standard port (default 10000)"
    )
    serve.add_argument("--hostname", help="this server's name (default: the host's FQDN)")
    serve.add_argument(
        "--domain", action="append", dest="domains", help="a local mail domain (repeatable)"
    )
    serve.add_argument(
        "--route", action="append", type=_route, help="DOMAIN=HOST:PORT next hop (repeatable)"
    )
    serve.add_argument("--smarthost", help="HOST:PORT relay for all foreign mail")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    for name, text in (("add", "add a user"), ("passwd", "set a user's password")):
        p = user_commands.add_parser(name, parents=[data], help=text)
        p.add_argument("name")
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = user_commands.add_parser("del", parents=[data], help="delete a user (mail is kept)")
    p.add_argument("name")
    user_commands.add_parser("list", parents=[data], help="list users")
    queuecmd.add_arguments(commands, parents=[data])
    ua_cli.add_arguments(commands)
    return parser


def _config(args: argparse.Namespace, **overrides: object) -> Config:
    return load_config(data_dir=args.data, config_file=args.config, **overrides)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise AuthError("the passwords differ")
    if not password:
        raise AuthError("empty password")
    return password


def cmd_user(args: argparse.Namespace) -> int:
    from refmail.store import MailStore

    config = _config(args)
    users = UserDB(config.users_file)
    if args.user_command == "list":
        for name in users.names():
            print(name)
    elif args.user_command == "add":
        users.add(args.name, _read_password(args))
        MailStore(config.mail_dir).ensure_user(args.name.lower())
        print(f"added {args.name.lower()}; mail goes to {config.mail_dir / args.name.lower()}")
    elif args.user_command == "passwd":
        users.set_password(args.name, _read_password(args))
    elif args.user_command == "del":
        users.delete(args.name)
        print(f"deleted {args.name.lower()}; their mail stays in {config.mail_dir}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _config(
        args,
        listen=args.listen,
        port_base=args.port_base,
        hostname=args.hostname,
        domains=args.domains,
        routes=dict(args.route or ()),
        smarthost=args.smarthost,
    )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    pidfile = queuecmd.PidFile(config.data_dir)
    try:
        pidfile.acquire()
    except queuecmd.ServerRunning as exc:
        print(f"refmail: {exc}", file=sys.stderr)
        return 1
    try:
        return _serve(config, pidfile)
    finally:
        pidfile.release()


def _serve(config: Config, pidfile: queuecmd.PidFile) -> int:
    from refmail.server import Server

    server = Server(config)
    try:
        server.start()
    except OSError as exc:
        print(f"refmail: cannot listen: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(queuecmd.FLUSH_SIGNAL, lambda signum, frame: server.scheduler.flush())

    def on_hangup(signum: int, frame: object) -> None:
        """SIGHUP: reload the TLS certificate (a renewal), keeping every open session."""
        try:
            server.reload_tls()
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.error("TLS certificate reload failed, keeping the old one: %s", exc)

    signal.signal(signal.SIGHUP, on_hangup)
    for service in config.services:
        host, port = server.address(service)
        shown = f"[{host}]" if ":" in host else host
        print(f"{service:<10} {shown}:{port}  (standard port {STANDARD_PORTS[service]})")
    print(f"domains    {' '.join(config.local_domains)}")
    print(f"data       {config.data_dir.resolve()}")
    if not server.users.names():
        print("no users yet: add one with `python -m refmail user add NAME`")
    print("refmail ready", flush=True)
    _wait_for_signals(stop)
    log.info("shutting down")
    server.stop()
    print("refmail stopped", flush=True)
    return 0


def _wait_for_signals(stop: threading.Event) -> None:
    """Sleep until a handler sets ``stop``, running every signal's handler at once.

    A process signal is delivered to any thread that does not block it; when a server
    thread takes it, a main thread blocked in ``stop.wait()`` is not interrupted and the
    Python handler waited for the next wake-up (SIGHUP, SIGUSR1 or even SIGTERM could lie
    unhandled for an hour).  The wakeup fd is written by the C-level handler whichever thread
    runs it, so ``select`` returns and the main thread runs the Python handler."""
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    previous = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    try:
        while not stop.is_set():
            select.select([wake_r], [], [], 1.0)
            try:
                while wake_r.recv(512):
                    pass
            except BlockingIOError:
                pass
    finally:
        signal.set_wakeup_fd(previous)
        wake_r.close()
        wake_w.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "user":
            return cmd_user(args)
        if args.command == "queue":
            return queuecmd.run(args, _config(args))
        if args.command in ("send", "inbox", "read"):
            return ua_cli.run(args, password=os.environ.get("REFMAIL_PASSWORD"))
    except (ConfigError, AuthError) as exc:
        print(f"refmail: {exc}", file=sys.stderr)
        return 2
    return 2
