"""What the fuzzers share: real sessions over a real mail store, driven as server.py drives
them, and the checks every fuzzed input must pass.

Used by the atheris targets beside this file (``python fuzz/fuzz_X.py``) and by the
hypothesis tests in ``tests/fuzz/`` (which put this directory on ``sys.path``).

A world is a data directory copied from a template (users alice/bob, a few messages in
alice's INBOX, a Sent mailbox and a folder), on tmpfs when there is one, so every input
starts from the same state and a crash replays.  ``drive`` feeds a session chunk by chunk
and, after each chunk, does what the connection handler does (TLS upgrade on ``want_tls``,
``pending_output`` after a ``wake``).  It raises ``FuzzFailure`` when:

- a session lets an exception out (the Session contract: every fault becomes a reply);
- a session logged an error (sessions catch everything and answer 451 / -ERR [SYS/TEMP] /
  NO [SERVERBUG], so the log is where a bug shows), or an SMTP session wrote a line that is
  not a reply or its 451 (POP3 and IMAP echo client text at line starts, so no such check);
- one feed took longer than ``FEED_SECONDS`` (a hang, or work out of proportion to the input);
- what the session holds from the client (unread bytes, a message being received, a
  command's literals) exceeds the limits it was configured with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from refmail.auth import TEST_SCRYPT_N, Authenticator, UserDB
from refmail.config import Config, Limits
from refmail.connection import ConnectionInfo
from refmail.delivery import LocalDelivery
from refmail.imap.session import IMAPService
from refmail.mta.spool import Spool
from refmail.pop3.session import POP3Service
from refmail.smtp.protocol import MAX_AUTH_LINE, Mode
from refmail.smtp.session import SMTPService
from refmail.store import MailStore

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
DOMAINS = ("example.test", "example.org")
HOSTNAME = "mx.example.test"
#: Limits small enough that fuzzed input of a few KB reaches every one of them.
LIMITS = Limits(
    message_size=8192,
    recipients=4,
    auth_failures_per_connection=3,
    auth_failure_delay=0.0,
    pop3_command_line=1024,
    imap_command_line=2048,
    imap_literal_size=8192,
)
#: The most a feed may carry (server.py's RECV_SIZE): DATA content is judged after each read.
JUNK_READ = 65536
#: Wall-clock bound of one feed (one chunk and what the handler does after it).  Generous:
#: a feed takes milliseconds, but the machine is shared and the first SELECT builds an index.
FEED_SECONDS = float(os.environ.get("REFMAIL_FUZZ_FEED_SECONDS", "5"))
#: After this many pending_output/tls_started rounds for one chunk the session is looping.
MAX_SETTLE_ROUNDS = 10_000
#: The SMTP reply of an internal error (smtp/session.py); POP3 and IMAP echo client text at
#: line starts (tags, message bodies), so for them the error log is the only reliable sign.
SMTP_INTERNAL_REPLY = b"451 4.3.0 local error in processing"
#: Services each protocol's sessions are made for (implicit TLS ones say ``tls``).
SERVICES = {
    "smtp": ("smtp", "submission", "smtps"),
    "pop3": ("pop3", "pop3s"),
    "imap": ("imap", "imaps"),
}

MESSAGES = [
    b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: one\r\n"
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700\r\nMessage-ID: <1@example.org>\r\n\r\nHello.\r\n",
    b"From: bob@example.org\r\nSubject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n.dot line\r\n--b\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAEC\r\n--b--\r\n",
    b"Subject: three\r\n\r\nFrom the start\r\n>From quoted\r\n\r\n",
]


class FuzzFailure(AssertionError):
    """An input broke one of the module docstring's rules."""


class FeedTimeout(BaseException):
    """A feed ran past ``FEED_SECONDS``.  Not an ``Exception``: the sessions' catch-all
    handlers must not swallow it and go on looping."""


# ---------------------------------------------------------------------------- worlds


def scratch_dir() -> Path:
    """A fresh directory on tmpfs when there is one (fsync is free there)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="refmail-fuzz-", dir=base))


def make_template(root: Path) -> Path:
    """The data directory every world starts from."""
    config = Config(data_dir=root, hostname=HOSTNAME, domains=DOMAINS)
    users = UserDB(config.users_file)
    for name, password in USERS.items():
        users.add(name, password, cost=TEST_SCRYPT_N)
    store = MailStore(config.mail_dir)
    for user in USERS:
        store.ensure_user(user)
    for n, message in enumerate(MESSAGES):
        store.deliver("alice", message, flags=["\\Seen"] if n == 0 else [])
    store.create_mailbox("alice", "Sent")
    store.create_mailbox("alice", "Work/Projects")
    store.deliver("alice", MESSAGES[0], mailbox="Sent")
    store.close()
    return root


class World:
    """One protocol's service over a copy of the template."""

    def __init__(self, template: Path, root: Path, protocol: str, limits: Limits = LIMITS):
        shutil.copytree(template, root)
        self.root = root
        self.protocol = protocol
        self.config = Config(data_dir=root, hostname=HOSTNAME, domains=DOMAINS, limits=limits)
        self.limits = limits
        self.users = UserDB(self.config.users_file)
        self.store = MailStore(self.config.mail_dir, lock_timeout=1.0)
        self.auth = Authenticator(self.users, failure_delay=0.0)
        self.service: Any
        if protocol == "smtp":
            self.service = SMTPService(
                self.config,
                auth=self.auth,
                delivery=LocalDelivery(self.store, self.users, self.config),
                spool=Spool(self.config.queue_dir),
                tls_available=True,
            )
        elif protocol == "pop3":
            self.service = POP3Service(
                self.config, auth=self.auth, store=self.store, tls_available=True
            )
        elif protocol == "imap":
            self.service = IMAPService(
                self.config, auth=self.auth, store=self.store, tls_available=True
            )
        else:
            raise ValueError(protocol)

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Worlds:
    """Makes worlds from one template; ``with worlds.world("imap") as w: ...``."""

    def __init__(self) -> None:
        self.base = scratch_dir()
        self.template = make_template(self.base / "template")
        self._count = 0

    @contextlib.contextmanager
    def world(self, protocol: str, limits: Limits = LIMITS) -> Iterator[World]:
        self._count += 1
        world = World(self.template, self.base / f"w{self._count}", protocol, limits)
        try:
            yield world
        finally:
            world.close()

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def connection(service: str, *, remote: bool = False) -> ConnectionInfo:
    """A connection to ``service`` from loopback or (``remote``) from the LAN, where
    plaintext passwords are refused before TLS."""
    peer = "192.0.2.7" if remote else "127.0.0.1"
    return ConnectionInfo(peer, 40000, "127.0.0.1", 1, service, service.endswith("s"))


# ---------------------------------------------------------------------------- checks


class InternalErrorLog(logging.Handler):
    """Collects ERROR records from refmail's loggers (``log.exception`` of a caught bug)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def internal_errors_fail() -> Iterator[InternalErrorLog]:
    """Raise ``FuzzFailure`` at the end of the block when refmail logged an error."""
    handler = InternalErrorLog()
    logger = logging.getLogger("refmail")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.records:
        record = handler.records[0]
        detail = ""
        if record.exc_info:
            import traceback

            detail = "".join(traceback.format_exception(*record.exc_info))
        raise FuzzFailure(f"refmail logged an error: {record.getMessage()}\n{detail}")


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the block with ``FeedTimeout`` once it has used ``seconds`` of CPU time (a
    busy loop in Python code; SIGVTALRM, so pytest-timeout's SIGALRM is left alone), and fail
    it afterwards when it took longer than ``seconds`` of wall-clock time."""
    started = time.monotonic()
    use_timer = hasattr(signal, "setitimer") and _main_thread()

    def expired(signum: int, frame: object) -> None:
        raise FeedTimeout(f"a feed used over {seconds} s of CPU time")

    if use_timer:
        previous = signal.signal(signal.SIGVTALRM, expired)
        signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        if use_timer:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            signal.signal(signal.SIGVTALRM, previous)
    elapsed = time.monotonic() - started
    if elapsed > seconds:
        raise FeedTimeout(f"a feed took {elapsed:.2f} s (bound {seconds} s)")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def held_bytes(protocol: str, session: Any) -> dict[str, tuple[int, int]]:
    """What a session holds from its client, each with the bound its limits set."""
    limits = session.limits if protocol != "pop3" else session._limits
    if protocol == "smtp":
        proto = session._proto
        envelope = session.envelope
        kept = sum(map(len, proto._parts))
        chunks = sum(map(len, envelope.chunks)) if envelope is not None else 0
        recipients = len(envelope.recipients) if envelope is not None else 0
        return {
            # an incomplete line: up to the AUTH line limit, or a DATA text line
            "unread": (proto.buffered, max(MAX_AUTH_LINE, limits.smtp_text_line)),
            # DATA content kept: the size limit plus the last lines read (checked after them)
            "data": (kept if proto.mode is Mode.DATA else 0, limits.message_size + JUNK_READ),
            # BDAT chunks kept, in the envelope and the one being read
            "bdat": (chunks + (kept if proto.mode is Mode.BDAT else 0), limits.message_size),
            "recipients": (recipients, limits.recipients),
        }
    if protocol == "pop3":
        return {"unread": (session._reader.pending, limits.pop3_command_line)}
    proto = session.protocol
    parts = sum(map(len, proto._parts))
    return {
        # an incomplete line, or the literal being read
        "unread": (proto.buffered, max(limits.imap_command_line, limits.imap_literal_size)),
        # the command being assembled: its lines and its literals
        "command": (parts, limits.imap_command_line + limits.imap_literal_size),
        "output": (sum(map(len, session._out)), 0),
    }


def check_held(protocol: str, session: Any) -> None:
    for name, (held, bound) in held_bytes(protocol, session).items():
        if held > bound:
            raise FuzzFailure(f"{protocol} session holds {held} > {bound} ({name})")


def check_output(protocol: str, output: bytes) -> None:
    if protocol == "smtp":  # every SMTP line is a reply: 3 digits, then SP or "-"
        for line in output.split(b"\r\n")[:-1]:
            if line.startswith(SMTP_INTERNAL_REPLY):
                raise FuzzFailure(f"smtp: internal error reply: {output[-300:]!r}")
            if not (len(line) >= 4 and line[:3].isdigit() and line[3:4] in b" -"):
                raise FuzzFailure(f"smtp: not a reply line: {line[:200]!r}")
        if not output.endswith(b"\r\n"):
            raise FuzzFailure(f"smtp: output not ending in CRLF: {output[-200:]!r}")


# ---------------------------------------------------------------------------- driving


@dataclasses.dataclass
class Transcript:
    output: bytes
    closed: bool


def drive(
    world: World,
    chunks: Iterable[bytes],
    *,
    conn: ConnectionInfo | None = None,
    feed_seconds: float = FEED_SECONDS,
) -> Transcript:
    """Feed ``chunks`` to a new session of ``world`` as server.py would; check every rule."""
    woken: list[int] = []
    conn = conn or connection(SERVICES[world.protocol][0])
    session = world.service.new_session(conn, lambda: woken.append(1))
    out: list[bytes] = []
    with internal_errors_fail():
        try:
            out.append(session.start())
            for chunk in chunks:
                if session.closing:
                    break
                with time_bound(feed_seconds):
                    out.append(session.receive_data(chunk))
                    _settle(session, woken, out)
                check_held(world.protocol, session)
        finally:
            session.connection_lost()
    output = b"".join(out)
    check_output(world.protocol, output)
    return Transcript(output, session.closing)


def _settle(session: Any, woken: list[int], out: list[bytes]) -> None:
    """The handler's work after a write: upgrade to TLS, answer a wake-up."""
    for _ in range(MAX_SETTLE_ROUNDS):
        if session.closing:
            return
        if session.want_tls:
            out.append(session.tls_started())  # as if the handshake succeeded
        elif woken:
            woken.clear()
            out.append(session.pending_output())
        else:
            return
    raise FuzzFailure("the session keeps asking for the handler (wake or TLS) without end")


# ---------------------------------------------------------------------------- chunking


def split_for_feeding(data: bytes, mode: int) -> list[bytes]:
    """``data`` cut into chunks: 0 whole, 1 per line, 2 one byte at a time, else fixed
    sizes (3, 7, 64, 4096 octets).  The atheris targets pick ``mode`` from the input's length
    so every input is replayable from its bytes alone."""
    mode %= 7
    if mode == 0 or not data:
        return [data]
    if mode == 1:
        return data.splitlines(keepends=True)
    size = (1, 3, 7, 64, 4096)[mode - 2]
    if size == 1 and len(data) > 4096:  # keep one input's cost in milliseconds
        size = 64
    return [data[i : i + size] for i in range(0, len(data), size)]


def atheris_target(protocol: str) -> Callable[[bytes], None]:
    """The ``TestOneInput`` of a session target: the input is the client's byte stream."""
    worlds = Worlds()
    import atexit

    atexit.register(worlds.close)

    def test_one_input(data: bytes) -> None:
        services = SERVICES[protocol]
        with worlds.world(protocol) as world:
            conn = connection(services[len(data) % len(services)], remote=len(data) % 5 == 4)
            drive(world, split_for_feeding(data, len(data)), conn=conn)

    return test_one_input
