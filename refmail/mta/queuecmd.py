"""``python -m refmail queue list|flush|delete ID``: the outbound queue of a running server.

The command runs in its own process.  ``list`` and ``delete`` work on the spool directory
directly (every spool change is one atomic rename, and the scheduler treats a message that
vanished as deleted).  ``flush`` signals the server: it holds ``DATA/refmail.pid`` under an
exclusive ``flock`` for as long as it runs (``PidFile``), and ``flush`` sends it SIGUSR1,
on which the server calls ``Scheduler.flush()``.  Because the lock dies with the process, a
stale pid file (a crash, a reused pid) is recognised and never signalled.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from refmail.config import Config
from refmail.mta.spool import QUEUE_ID, Spool

PID_FILE = "refmail.pid"
#: The signal ``queue flush`` sends (the lead wires it to ``Scheduler.flush``).
FLUSH_SIGNAL = signal.SIGUSR1


class ServerRunning(Exception):
    """Another server already holds the pid file of this data directory."""


class PidFile:
    """``DATA/refmail.pid``, locked for the life of the server (one server per data dir)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / PID_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Lock and write our pid; ServerRunning when another live server holds it."""
        f = open(self.path, "a+")  # noqa: SIM115 - held open until release()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ServerRunning(f"{self.path}: a server is already running") from None
            raise
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def running_server_pid(data_dir: Path) -> int | None:
    """The pid of the server running on ``data_dir``, or None when none is (stale file)."""
    path = Path(data_dir) / PID_FILE
    try:
        f = open(path)  # noqa: SIM115
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            text = f.read().strip()  # locked: a live server holds it
            return int(text) if text.isdigit() else None
        return None  # we got the lock: nobody holds it, the file is stale


def add_arguments(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``queue list|flush|delete ID`` to the top-level subparsers ``commands``;
    ``parents`` carries ``--data``/``--config``."""
    queue = commands.add_parser("queue", help="show and drive the outbound queue")
    sub = queue.add_subparsers(dest="queue_command", required=True)
    sub.add_parser("list", parents=parents, help="list queued messages")
    sub.add_parser("flush", parents=parents, help="retry every queued message now")
    delete = sub.add_parser("delete", parents=parents, help="remove a message from the queue")
    delete.add_argument("id", help="queue id, as `queue list` shows it")


def _when(timestamp: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(timestamp)))
    except (TypeError, ValueError):
        return "?"


def format_entry(envelope: dict[str, Any]) -> list[str]:
    """``queue list`` lines for one message, as ``postqueue -p`` shows them."""
    sender = envelope.get("sender") or "MAILER-DAEMON"
    lines = [
        f"{envelope.get('id', '?')}  {envelope.get('size', '?'):>9}  "
        f"{_when(envelope.get('first_queued'))}  <{sender}>"
    ]
    attempts = envelope.get("attempts", 0)
    lines.append(f"    attempts {attempts}, next {_when(envelope.get('next_attempt'))}")
    for rcpt in envelope.get("recipients", []):
        state = rcpt.get("state", "?")
        error = f"  ({rcpt['last_error']})" if rcpt.get("last_error") else ""
        lines.append(f"    {state:<9} <{rcpt.get('address', '?')}>{error}")
    return lines


def run(args: argparse.Namespace, config: Config) -> int:
    """Run ``queue list|flush|delete``; prints to stdout/stderr; returns the exit status."""
    spool = Spool(config.queue_dir)
    command = args.queue_command
    if command == "list":
        entries = spool.list()
        for envelope in entries:
            print("\n".join(format_entry(envelope)))
        pending = sum(
            1 for e in entries for r in e.get("recipients", []) if r.get("state") == "pending"
        )
        print(f"{len(entries)} message(s) queued, {pending} recipient(s) pending")
        return 0
    if command == "flush":
        pid = running_server_pid(config.data_dir)
        if pid is None:
            print(
                f"refmail: no server is running on {config.data_dir}; "
                "the queue is retried when it starts",
                file=sys.stderr,
            )
            return 1
        os.kill(pid, FLUSH_SIGNAL)
        print(f"asked the server (pid {pid}) to retry {len(spool.list())} queued message(s)")
        return 0
    if command == "delete":
        queue_id = args.id.strip().upper()
        if not QUEUE_ID.match(queue_id):
            print(f"refmail: {args.id!r} is not a queue id", file=sys.stderr)
            return 2
        try:
            spool.delete(queue_id)
        except KeyError:
            print(f"refmail: {queue_id} is not in the queue", file=sys.stderr)
            return 1
        print(f"deleted {queue_id}")
        return 0
    print(f"refmail: unknown queue command {command!r}", file=sys.stderr)
    return 2
