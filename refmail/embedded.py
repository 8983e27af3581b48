"""refmail as a throwaway mail server inside a test process (``refmail.MailServer``).

``with MailServer(users={"alice": "pw"}, domains=["example.test"]) as server:`` runs every
protocol on free loopback ports in background threads over a temporary data directory, and
stops and removes it on exit.  The server is the real one (``refmail.server.Server``), with
the policies a test needs:

- Relaying is off: nothing ever leaves the process.  Mail an authenticated client submits for
  a foreign address is captured in ``server.outbound`` instead of being queued for delivery.
  Unauthenticated clients still get ``550 5.7.1 relay access denied`` for foreign recipients,
  as from the real server: never an open relay, even on loopback.
- ``accept_all_recipients=True`` makes a catch-all server (GreenMail's habit): any recipient
  from anyone is accepted; local users' mail goes to their INBOX, the rest to ``outbound``.
- Passwords are hashed with a toy scrypt cost (``auth.TEST_SCRYPT_N``) and failed logins are
  not slowed down: fine for a server that lives for one test, wrong for anything else.
- One self-signed certificate per cache directory (default: a private directory under the
  system's temp dir) is made once and shared by every server; ``cert_path`` is the file a
  client should trust.

See docs/embedding.md for the pytest plugin (``refmail.pytest_plugin``) and examples.
"""

from __future__ import annotations

import dataclasses
import email.policy
import fcntl
import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from refmail.auth import TEST_SCRYPT_N
from refmail.config import IMPLICIT_TLS, STANDARD_PORTS, Config, Limits, MTAConfig, TLSConfig
from refmail.delivery import LocalDelivery, strip_headers
from refmail.errors import NoSuchMailbox
from refmail.mta.scheduler import Scheduler
from refmail.mta.spool import Spool
from refmail.server import Server
from refmail.store import MailStore
from refmail.store.names import INBOX, SEPARATOR
from refmail.tls import SELF_SIGNED_DAYS, generate_self_signed

log = logging.getLogger(__name__)

DEFAULT_HOSTNAME = "localhost"
DEFAULT_DOMAINS = ("localhost",)
LOOPBACK = "127.0.0.1"
#: A host name for the certificate, and a directory name in the certificate cache.
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?\Z")
#: The services of ``tls=False``: plaintext ports only (STARTTLS is still offered on them).
PLAIN_SERVICES = tuple(s for s in STANDARD_PORTS if s not in IMPLICIT_TLS)
#: The shared test certificate is made anew this many days before it would expire.
CERT_RENEW_DAYS = 1
#: A tmpfs on Linux: the temporary data directories go there when it is writable.
SHARED_MEMORY_DIR = "/dev/shm"
#: Seconds ``wait_for_messages`` and ``wait_for_outbound`` wait unless told otherwise.
DEFAULT_WAIT = 5.0
#: What marks a captured (foreign) recipient among local user names in a catch-all server:
#: a NUL cannot occur in a user name (``auth.USER_NAME``) nor in an SMTP address.
CAPTURED = "\0captured:"
#: Messages are handed out with LF line endings, as Python code expects them.
PARSER = BytesParser(policy=email.policy.default)


def parse_message(raw: bytes) -> EmailMessage:
    """``raw`` (CRLF or LF) as an ``EmailMessage`` with the modern ``email.policy.default``."""
    message = PARSER.parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)
    return message


def to_wire(message: EmailMessage | Message | bytes | str) -> bytes:
    """A message as the store takes it from SMTP or APPEND: bytes with CRLF line endings."""
    if isinstance(message, Message):
        data = message.as_bytes(policy=email.policy.SMTP)
    elif isinstance(message, str):
        data = message.encode("utf-8")
    else:
        data = bytes(message)
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def scratch_dir() -> str | None:
    """Where temporary data directories go: ``/dev/shm`` (tmpfs) when usable, else the
    system's temp dir.  The store fsyncs every file and directory it makes, as a mail server
    must; on tmpfs an fsync costs nothing, on a disk each costs milliseconds, and a throwaway
    server needs none of that durability."""
    shm = Path(SHARED_MEMORY_DIR)
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


def default_cert_cache() -> Path:
    """``$TMPDIR/refmail-embedded-UID``: one test certificate per user of the machine."""
    return Path(tempfile.gettempdir()) / f"refmail-embedded-{os.getuid()}"


def shared_certificate(hostname: str, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``hostname`` (and localhost, 127.0.0.1), made
    once per cache directory and reused by every later server, in any process: generating
    one costs more than starting a server.  A file lock makes concurrent first starts
    (pytest-xdist workers) wait for one generation instead of writing over each other."""
    if not HOSTNAME.match(hostname) or ".." in hostname:
        raise ValueError(f"not a host name: {hostname!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cert_cache()
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = cache.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{cache}: certificate cache must be private to this user")
    directory = cache / hostname
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if _fresh(cert_path) and key_path.exists():
        return cert_path, key_path  # the common case: no lock, no parsing, no cryptography
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (_fresh(cert_path) and key_path.exists()):  # nobody made it while we waited
            directory.mkdir(mode=0o700, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as scratch:
                new_cert, new_key = Path(scratch, "cert.pem"), Path(scratch, "key.pem")
                generate_self_signed(hostname, new_cert, new_key)
                # Key first, then the certificate: a reader that sees the new certificate
                # (the lock-free check above) finds its key in place.
                os.replace(new_key, key_path)
                os.replace(new_cert, cert_path)
            log.info("made the test certificate %s for %s", cert_path, hostname)
    return cert_path, key_path


def _fresh(cert_path: Path) -> bool:
    """True while the cached certificate is at least a day from expiring.  Its file's mtime is
    when it was made (valid ``SELF_SIGNED_DAYS`` from then): reading the age from the file
    system spares each start from parsing it (and from importing ``cryptography``)."""
    try:
        made = cert_path.stat().st_mtime
    except FileNotFoundError:
        return False
    return time.time() < made + (SELF_SIGNED_DAYS - CERT_RENEW_DAYS) * 86400


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message the server would have relayed: the SMTP envelope and the content as it
    would have left (with refmail's ``Received:`` field on top)."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return parse_message(self.raw)


class Outbox:
    """The captured outbound mail, in arrival order; waiters are woken by each capture."""

    def __init__(self) -> None:
        self._messages: list[OutboundMessage] = []
        self._changed = threading.Condition()

    def add(self, message: OutboundMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def snapshot(self) -> list[OutboundMessage]:
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float) -> list[OutboundMessage]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._messages)} outbound message(s) after {timeout:g} s, "
                    f"waited for {count}"
                )
            return list(self._messages)


class OutboundCapture:
    """Stands in for the MTA scheduler (``start``/``stop``/``wake``/``flush``): each message
    the spool accepts is moved into the outbox at once, in the SMTP session's thread, before
    the client hears 250, so it is there as soon as ``sendmail`` returns."""

    def __init__(self, spool: Spool, outbox: Outbox) -> None:
        self.spool = spool
        self.outbox = outbox

    def start(self) -> None:
        for envelope in self.spool.list():  # left by an earlier run over the same data dir
            self.wake(envelope["id"])

    def stop(self, timeout: float = 0.0) -> None:
        """Nothing runs in the background."""

    def flush(self) -> None:
        self.start()

    def wake(self, queue_id: str | None = None) -> None:
        if queue_id is None:
            return
        try:
            envelope = self.spool.load(queue_id)
            raw = self.spool.message(queue_id)
        except (KeyError, ValueError, OSError):
            log.exception("could not capture queued message %s", queue_id)
            return
        recipients = tuple(r["address"] for r in envelope["recipients"])
        self.outbox.add(OutboundMessage(envelope["sender"], recipients, raw))
        try:
            self.spool.delete(queue_id)
        except (KeyError, OSError):  # captured all the same; the client must still get 250
            log.exception("could not remove captured message %s from the queue", queue_id)
        log.info("captured %s from <%s> for %s", queue_id, envelope["sender"], recipients)


class CatchAllDelivery(LocalDelivery):
    """Local delivery that accepts every address (``accept_all_recipients``): local users as
    usual; any other address resolves to a capture marker, and ``deliver`` hands those copies
    to the outbox instead of the store.  Nothing is relayed."""

    def __init__(self, store: MailStore, users: Any, config: Config, outbox: Outbox) -> None:
        super().__init__(store, users, config)
        self.outbox = outbox

    def resolve(self, address: str) -> str | None:
        user = super().resolve(address)
        return user if user is not None else CAPTURED + address

    def deliver(
        self,
        message: bytes,
        users: Iterable[str],
        *,
        return_path: str,
        received: bytes,
    ) -> list[tuple[str, int]]:
        wanted = list(dict.fromkeys(users))
        local = [u for u in wanted if not u.startswith(CAPTURED)]
        captured = tuple(u[len(CAPTURED) :] for u in wanted if u.startswith(CAPTURED))
        if captured:
            self.outbox.add(OutboundMessage(return_path, captured, received + message))
        return super().deliver(message, local, return_path=return_path, received=received)


class MailServer:
    """A complete refmail server for tests: SMTP, submission, POP3, IMAP (and with ``tls``
    SMTPS, POP3S, IMAPS) on free ports of 127.0.0.1.

    ``users``: name -> password.  ``domains``: the local mail domains (``alice@D`` for each).
    ``data_dir``: where the mail lives (kept afterwards); default a temporary directory that
    ``stop()`` removes.  ``relay=True`` starts the real MTA scheduler (with ``routes``,
    ``{"example.org": "127.0.0.1:2525"}``) instead of capturing outbound mail.
    ``config_overrides``: other ``Config`` fields, e.g. ``{"vrfy": True}``; ``limits``: other
    ``Limits`` fields.  ``password_cost``: scrypt N for the users' hashes (tests only).
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        domains: Iterable[str] = DEFAULT_DOMAINS,
        *,
        tls: bool = True,
        data_dir: str | os.PathLike[str] | None = None,
        hostname: str = DEFAULT_HOSTNAME,
        accept_all_recipients: bool = False,
        relay: bool = False,
        routes: Mapping[str, str] | None = None,
        limits: Mapping[str, Any] | None = None,
        config_overrides: Mapping[str, Any] | None = None,
        cert_cache: str | os.PathLike[str] | None = None,
        password_cost: int = TEST_SCRYPT_N,
    ) -> None:
        if isinstance(domains, str):
            raise TypeError("domains must be a list of domain names, not one string")
        if accept_all_recipients and relay:
            raise ValueError("accept_all_recipients with relay=True would be an open relay")
        self.domains: tuple[str, ...] = tuple(d.lower().rstrip(".") for d in domains)
        if not self.domains:
            raise ValueError("a mail server needs at least one local domain")
        self.users: dict[str, str] = {name.lower(): pw for name, pw in (users or {}).items()}
        self.tls = tls
        self.hostname = hostname
        self.accept_all_recipients = accept_all_recipients
        self.relay = relay
        self.routes = dict(routes or {})
        self.password_cost = password_cost
        self._limits = dict(limits or {})
        self._overrides = dict(config_overrides or {})
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._cert_cache = Path(cert_cache) if cert_cache is not None else None
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        self._outbox = Outbox()
        self._initial_users = dict(self.users)
        self.server: Server | None = None

    # ------------------------------------------------------------------ lifecycle

    def _config(self, data_dir: Path) -> Config:
        services = tuple(STANDARD_PORTS) if self.tls else PLAIN_SERVICES
        cert, key = shared_certificate(self.hostname, self._cert_cache)
        # Config() directly, not load_config(): no refmail.toml is read and the hostname is
        # never looked up (socket.getfqdn can take seconds without DNS).
        config = Config(
            data_dir=data_dir,
            listen=LOOPBACK,
            ports={service: 0 for service in services},
            services=services,
            hostname=self.hostname,
            domains=self.domains,
            # Failed logins are answered at once: a test of a wrong password need not wait.
            limits=dataclasses.replace(Limits(auth_failure_delay=0.0), **self._limits),
            tls=TLSConfig(cert=cert, key=key),
            mta=MTAConfig(routes=self.routes, retry=(1, 2, 5, 10)),
        )
        return dataclasses.replace(config, **self._overrides)

    def start(self) -> MailServer:
        """Bind every port and serve in daemon threads; returns once clients can connect."""
        if self.server is not None:
            raise RuntimeError("this MailServer is already running")
        if self._given_data_dir is not None:
            data_dir = self._given_data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._temp_dir = tempfile.TemporaryDirectory(
                prefix="refmail-", dir=scratch_dir(), ignore_cleanup_errors=True
            )
            data_dir = Path(self._temp_dir.name)
        try:
            outbox = self._outbox
            server = Server(
                self._config(data_dir),
                make_delivery=(
                    functools.partial(CatchAllDelivery, outbox=outbox)
                    if self.accept_all_recipients
                    else LocalDelivery
                ),
                make_outbound=(
                    Scheduler
                    if self.relay
                    else lambda config, spool, delivery: OutboundCapture(spool, outbox)
                ),
            )
            for name, password in self.users.items():
                if not server.users.exists(name):
                    server.users.add(name, password, cost=self.password_cost)
                server.store.ensure_user(name)
            server.start()
        except BaseException:
            self._remove_temp_dir()
            raise
        self.server = server
        return self

    def stop(self) -> None:
        """Close every listener, say goodbye to live sessions, write back mailbox state and
        remove the temporary data directory.  Safe to call twice."""
        server, self.server = self.server, None
        try:
            if server is not None:
                server.stop()
        finally:
            self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"smtp={self.smtp_port}" if self.server is not None else "stopped"
        return f"<MailServer {state} domains={list(self.domains)}>"

    @property
    def running(self) -> Server:
        """The underlying ``refmail.server.Server``; RuntimeError when not started."""
        if self.server is None:
            raise RuntimeError("the MailServer is not running: use start() or a with block")
        return self.server

    # ------------------------------------------------------------------ addresses

    host = LOOPBACK

    def port(self, service: str) -> int:
        """The port of ``service`` (a key of ``config.STANDARD_PORTS``)."""
        server = self.running
        if service not in server.listeners:
            hint = " (MailServer(tls=True) starts it)" if service in IMPLICIT_TLS else ""
            raise RuntimeError(f"{service} is not running{hint}")
        return server.address(service)[1]

    smtp_port = property(lambda self: self.port("smtp"), doc="SMTP (MX), STARTTLS offered.")
    submission_port = property(lambda self: self.port("submission"), doc="AUTH required.")
    smtps_port = property(lambda self: self.port("smtps"), doc="Implicit TLS submission.")
    pop3_port = property(lambda self: self.port("pop3"), doc="POP3, STLS offered.")
    pop3s_port = property(lambda self: self.port("pop3s"), doc="POP3 over implicit TLS.")
    imap_port = property(lambda self: self.port("imap"), doc="IMAP, STARTTLS offered.")
    imaps_port = property(lambda self: self.port("imaps"), doc="IMAP over implicit TLS.")

    @property
    def cert_path(self) -> Path:
        """The server's certificate: ``ssl.create_default_context(cafile=server.cert_path)``."""
        return self.running.cert_path

    @property
    def data_dir(self) -> Path:
        return self.running.config.data_dir

    def address(self, user: str) -> str:
        """``user@`` the first local domain."""
        return f"{user}@{self.domains[0]}"

    # ------------------------------------------------------------------ users and mail

    def add_user(self, name: str, password: str) -> None:
        """A new user, able to log in and receive mail at once (AuthError if invalid)."""
        server = self.running
        server.users.add(name, password, cost=self.password_cost)
        server.store.ensure_user(name.lower())
        self.users[name.lower()] = password

    def messages(self, user: str, mailbox: str = INBOX) -> list[EmailMessage]:
        """The messages in ``user``'s ``mailbox``, oldest first, as the server stores them
        (with the ``Return-Path:`` and ``Received:`` fields delivery added)."""
        box = self.running.store.mailbox(user.lower(), mailbox)
        return [parse_message(box.read(info.uid)) for info in box.messages()]

    def wait_for_messages(
        self, user: str, count: int = 1, *, timeout: float = DEFAULT_WAIT, mailbox: str = INBOX
    ) -> list[EmailMessage]:
        """Block until ``mailbox`` holds at least ``count`` messages and return them all
        (TimeoutError after ``timeout`` seconds).  Woken by the mailbox's own change
        notifications, so it returns as soon as the delivery is durable, without polling."""
        box = self.running.store.mailbox(user.lower(), mailbox)
        changed = threading.Event()

        def on_change(kind: str, uids: tuple[int, ...]) -> None:
            changed.set()

        deadline = time.monotonic() + timeout
        box.add_listener(on_change)
        try:
            while True:
                changed.clear()  # before counting: a delivery after the count sets it again
                have = len(box.messages())
                if have >= count:
                    return self.messages(user, mailbox)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not changed.wait(remaining):
                    raise TimeoutError(
                        f"{user}/{mailbox} has {have} message(s) after {timeout:g} s, "
                        f"waited for {count}"
                    )
        finally:
            box.remove_listener(on_change)

    def deliver(
        self,
        user: str,
        message: EmailMessage | Message | bytes | str,
        *,
        mailbox: str = INBOX,
        sender: str = "MAILER-DAEMON",
        flags: Iterable[str] = (),
    ) -> int:
        """Put ``message`` straight into ``user``'s ``mailbox`` (made if missing), as IMAP
        APPEND would: no SMTP, no trace fields; ``flags`` like ``["\\\\Seen"]``.  Returns
        its UID."""
        store = self.running.store
        user = user.lower()
        store.ensure_user(user)
        try:
            store.mailbox(user, mailbox)
        except NoSuchMailbox:
            store.create_mailbox(user, mailbox)
        # As at delivery and APPEND: a message must not bring its own UID or flags.
        data = strip_headers(to_wire(message))
        return store.deliver(user, data, mailbox=mailbox, sender=sender, flags=flags)

    @property
    def outbound(self) -> list[OutboundMessage]:
        """What the MTA would have relayed (``relay=False``), oldest first."""
        return self._outbox.snapshot()

    def wait_for_outbound(
        self, count: int = 1, *, timeout: float = DEFAULT_WAIT
    ) -> list[OutboundMessage]:
        """Block until ``count`` outbound messages were captured; TimeoutError otherwise."""
        return self._outbox.wait_for(count, timeout)

    def reset(self) -> None:
        """Back to the state after ``start()``: every mailbox of every user emptied (other
        mailboxes than INBOX deleted), users added since removed, outbound mail forgotten,
        the outbound queue emptied.  Live IMAP sessions see the EXPUNGEs."""
        server = self.running
        for name in server.users.names():
            if name not in self._initial_users:
                server.users.delete(name)
                self.users.pop(name, None)
        for name in self._initial_users:
            if not server.users.exists(name):
                server.users.add(name, self._initial_users[name], cost=self.password_cost)
            self.users[name] = self._initial_users[name]
        root = server.store.root
        for user_dir in sorted(root.iterdir()) if root.is_dir() else ():
            user = user_dir.name
            for name in server.store.list_mailboxes(user):
                box = server.store.mailbox(user, name)
                box.expunge(info.uid for info in box.messages())
                if name != INBOX:
                    server.store.delete_mailbox(user, name)
            # The folders that held them (DELETE keeps parents), children before parents.
            folders = server.store.list_folders(user)
            for name in sorted(folders, key=lambda n: -n.count(SEPARATOR)):
                server.store.delete_mailbox(user, name)
        for envelope in server.spool.list():
            server.spool.delete(envelope["id"])
        self._outbox.clear()
