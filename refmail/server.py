"""Listeners: one ``socketserver.ThreadingTCPServer`` per port, one generic connection handler.

The handler knows sockets, TLS, timeouts and shutdown, and nothing of any protocol's grammar:
it feeds what it reads to a sans-IO session (``refmail.connection.Session``) and writes what
the session returns.  A session that wants to talk without being asked (IMAP IDLE) calls the
``wake`` function it was given; the handler's loop is woken through a socketpair, so no thread
ever polls and only the connection's own thread writes to its socket.
"""

from __future__ import annotations

import logging
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from refmail.auth import Authenticator, UserDB
from refmail.config import IMPLICIT_TLS, Config
from refmail.connection import ConnectionInfo, Session, SessionFactory
from refmail.delivery import LocalDelivery
from refmail.imap.session import IMAPService
from refmail.mta.scheduler import Scheduler
from refmail.mta.spool import Spool
from refmail.pop3.session import POP3Service
from refmail.smtp.session import SMTPService
from refmail.store import MailStore
from refmail.tls import certificate_paths, server_context

log = logging.getLogger(__name__)

#: Seconds a client may take for the TLS handshake, and to take our writes.
TLS_HANDSHAKE_TIMEOUT = 30.0
WRITE_TIMEOUT = 120.0
RECV_SIZE = 65536
#: Slowloris: the idle timer restarts when the client's input makes the session answer, or
#: after this many octets of input without an answer (a large DATA or literal going on), not
#: at every byte; a client dribbling a line it never finishes is timed out like a silent one.
MIN_PROGRESS_OCTETS = 512

#: What a client hears when a connection limit is reached, before the session exists.
#: SMTP: RFC 5321 3.8 (421 and close); POP3: RFC 3206 [SYS/TEMP]; IMAP: RFC 3501 7.1.5 BYE.
BUSY_REPLIES = {
    "smtp": b"421 4.7.0 Too many connections, try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
    "imap": b"* BYE Too many connections, try again later\r\n",
}
PROTOCOL_OF = {
    "smtp": "smtp",
    "submission": "smtp",
    "smtps": "smtp",
    "pop3": "pop3",
    "pop3s": "pop3",
    "imap": "imap",
    "imaps": "imap",
}


class OutboundQueue(Protocol):
    """What the server needs of the relay scheduler (refmail.mta.scheduler.Scheduler)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def wake(self, queue_id: str | None = None) -> None: ...

    def flush(self) -> None: ...


class ConnectionLimiter:
    """Counts live connections in all and per client address (DESIGN.md, "Concurrency")."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self._lock = threading.Lock()
        self._by_ip: Counter[str] = Counter()
        self._count = 0

    def acquire(self, ip: str) -> bool:
        with self._lock:
            if self._count >= self.total or self._by_ip[ip] >= self.per_ip:
                return False
            self._count += 1
            self._by_ip[ip] += 1
            return True

    def release(self, ip: str) -> None:
        with self._lock:
            self._count -= 1
            self._by_ip[ip] -= 1
            if self._by_ip[ip] <= 0:
                del self._by_ip[ip]


class HeldWakes:
    """Wake-ups that a connection's own thread causes while it handles its client's input
    are sent once its reply is written; those from any other thread (the MTA, the embedding
    API, shutdown) are sent at once.

    The client that made a change (an APPEND, an SMTP delivery) so hears its reply before
    the sessions the change wakes compete with its thread for the interpreter: 500 IDLE
    sessions woken one by one held an APPEND's reply back about 50 ms.  What is held is
    only what this connection's input caused, for as long as its reply takes to write."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def holding(self) -> Iterator[None]:
        held: dict[ConnectionHandler, None] = {}  # insertion-ordered, each handler once
        self._local.held = held
        try:
            yield
        finally:
            self._local.held = None
            for handler in held:
                handler.wake_now()

    def wake(self, handler: ConnectionHandler) -> None:
        held = getattr(self._local, "held", None)
        if held is None:
            handler.wake_now()
        else:
            held[handler] = None


class Listener(socketserver.ThreadingTCPServer):
    """One listening port; its handlers share the server's limiter and shutdown flag."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        service: str,
        factory: SessionFactory,
        ssl_context: ssl.SSLContext | None,
        limiter: ConnectionLimiter,
        stopping: threading.Event,
        wakes: HeldWakes,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.service = service
        self.factory = factory
        self.ssl_context = ssl_context
        self.limiter = limiter
        self.stopping = stopping
        self.wakes = wakes
        self.handlers: set[ConnectionHandler] = set()
        self.handlers_lock = threading.Lock()
        self._stop_requested = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, ConnectionHandler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """socketserver's accept loop, woken at once by ``shutdown()`` through a socketpair
        instead of polling every ``poll_interval`` (which made every stop cost half a second)."""
        self._loop_done.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stop_requested:
                    ready = selector.select()
                    if self._stop_requested:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        # BaseServer's own accept-and-dispatch step (not in typeshed).
                        self._handle_request_noblock()  # type: ignore[attr-defined]
                    self.service_actions()
        finally:
            self._loop_done.set()

    def shutdown(self) -> None:
        """Stop the accept loop and wait for it (safe before, during or after serving)."""
        self._stop_requested = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        self._loop_done.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def wake_all(self) -> None:
        with self.handlers_lock:
            handlers = list(self.handlers)
        for handler in handlers:
            handler.wake_now()  # shutdown is never held back (HeldWakes)


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Drives one session over one connection (``setup`` / ``handle`` / ``finish``)."""

    server: Listener
    request: socket.socket

    def setup(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sock: socket.socket = self.request
        self.peer_ip = self.client_address[0]
        self.admitted = self.server.limiter.acquire(self.peer_ip)
        with self.server.handlers_lock:
            self.server.handlers.add(self)

    def finish(self) -> None:
        with self.server.handlers_lock:
            self.server.handlers.discard(self)
        if self.admitted:
            self.server.limiter.release(self.peer_ip)
        for s in (self._wake_r, self._wake_w):
            s.close()

    def wake(self) -> None:
        """Called from any thread: make the loop call ``pending_output`` (``HeldWakes``)."""
        self.server.wakes.wake(self)

    def wake_now(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the connection is closing

    def _write(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)

    def handle(self) -> None:
        service = self.server.service
        if not self.admitted:
            log.warning("%s: connection limit reached, refusing %s", service, self.peer_ip)
            try:
                self.sock.settimeout(5)
                self.sock.sendall(BUSY_REPLIES[PROTOCOL_OF[service]])
            except OSError:
                pass
            return
        try:
            if service in IMPLICIT_TLS:
                self.sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
                assert self.server.ssl_context is not None
                self.sock = self.server.ssl_context.wrap_socket(self.sock, server_side=True)
            local = self.sock.getsockname()
            conn = ConnectionInfo(
                peer_ip=self.peer_ip,
                peer_port=self.client_address[1],
                local_ip=local[0],
                local_port=local[1],
                service=service,
                tls=service in IMPLICIT_TLS,
            )
            session = self.server.factory(conn, self.wake)
        except (OSError, ssl.SSLError) as exc:
            log.debug("%s: connection from %s failed: %s", service, self.peer_ip, exc)
            return
        try:
            self.sock.settimeout(WRITE_TIMEOUT)
            self._write(session.start())
            self._run(session)
        except (OSError, ssl.SSLError) as exc:
            log.debug("%s: connection from %s ended: %s", service, self.peer_ip, exc)
        except Exception:
            log.exception("%s: connection handler failed", service)
        finally:
            # Whatever ended the connection (QUIT, EOF, a socket error, a timeout, shutdown),
            # the session hears of it once, so it can free what it holds (a POP3 maildrop
            # claim, IMAP listeners) and drop an unfinished transaction.
            session.connection_lost()

    def _send(self, session: Session, output: bytes, selector: selectors.BaseSelector) -> bool:
        """Write ``output``, then act on the session's flags: upgrade to TLS when it asked
        (re-registering the new socket), and say whether the connection goes on."""
        self._write(output)
        if session.want_tls:
            assert self.server.ssl_context is not None
            selector.unregister(self.sock)
            self.sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
            self.sock = self.server.ssl_context.wrap_socket(self.sock, server_side=True)
            self.sock.settimeout(WRITE_TIMEOUT)
            selector.register(self.sock, selectors.EVENT_READ, "client")
            self._write(session.tls_started())
        return not session.closing

    def _run(self, session: Session) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            selector.register(self.sock, selectors.EVENT_READ, "client")
            progress_at, unanswered = time.monotonic(), 0
            while not session.closing:
                if self.server.stopping.is_set():
                    self._write(session.shutting_down())
                    return
                pending_tls = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
                wait = progress_at + session.idle_timeout - time.monotonic()
                events = [] if pending_tls or wait <= 0 else selector.select(wait)
                if not pending_tls and not events:
                    self._write(session.timed_out())
                    return
                if pending_tls or any(k.data == "client" for k, _ in events):
                    data = self.sock.recv(RECV_SIZE)
                    if not data:
                        return
                    with self.server.wakes.holding():
                        reply = session.receive_data(data)
                        unanswered += len(data)
                        if reply or unanswered >= MIN_PROGRESS_OCTETS:
                            progress_at, unanswered = time.monotonic(), 0
                        if not self._send(session, reply, selector):
                            return
                if any(k.data == "wake" for k, _ in events):
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    progress_at = time.monotonic()
                    if not self._send(session, session.pending_output(), selector):
                        return


class Server:
    """Everything ``refmail serve`` runs: the stores, auth, and one listener per service.

    ``start()`` binds every port (port 0 means any free port: ``address(service)`` tells which)
    and serves them in daemon threads; ``stop()`` closes the listeners, tells every live session
    its protocol's goodbye (421 / -ERR / BYE) after the command it is handling completes, and
    writes back pending mailbox changes.
    """

    def __init__(
        self,
        config: Config,
        *,
        make_delivery: Callable[[MailStore, UserDB, Config], LocalDelivery] = LocalDelivery,
        make_outbound: Callable[[Config, Spool, LocalDelivery], OutboundQueue] = Scheduler,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``make_delivery`` and ``make_outbound`` let an embedding replace local delivery
        and the relay scheduler (refmail.embedded captures outbound mail instead of sending
        it); ``ssl_context`` lets several servers share one certificate context."""
        self.config = config
        self.stopping = threading.Event()
        self.wakes = HeldWakes()
        self.users = UserDB(config.users_file)
        self.auth = Authenticator(
            self.users,
            failure_delay=config.limits.auth_failure_delay,
            lockout_after=config.limits.auth_lockout_failures,
            lockout_seconds=config.limits.auth_lockout_seconds,
        )
        self.store = MailStore(config.mail_dir)
        self.delivery = make_delivery(self.store, self.users, config)
        self.spool = Spool(config.queue_dir)
        self.scheduler = make_outbound(config, self.spool, self.delivery)
        self.spool.on_enqueue = self.scheduler.wake
        self.limiter = ConnectionLimiter(
            config.limits.max_connections, config.limits.max_connections_per_ip
        )
        self.ssl_context = ssl_context if ssl_context is not None else server_context(config)
        self.listeners: dict[str, Listener] = {}
        self._threads: list[threading.Thread] = []
        self._factories = self._make_factories()

    @property
    def cert_path(self) -> Path:
        return certificate_paths(self.config)[0]

    def _make_factories(self) -> dict[str, SessionFactory]:
        tls = self.ssl_context is not None
        factories: dict[str, SessionFactory] = {}
        smtp = SMTPService(
            self.config,
            auth=self.auth,
            delivery=self.delivery,
            spool=self.spool,
            tls_available=tls,
        )
        for name in ("smtp", "submission", "smtps"):
            factories[name] = smtp.new_session
        for protocol, builder in (("pop3", self._pop3), ("imap", self._imap)):
            wanted = [s for s in self.config.services if PROTOCOL_OF[s] == protocol]
            if wanted:
                new_session = builder(tls)
                for name in wanted:
                    factories[name] = new_session
        return factories

    def _pop3(self, tls: bool) -> SessionFactory:
        service = POP3Service(self.config, auth=self.auth, store=self.store, tls_available=tls)
        return service.new_session

    def _imap(self, tls: bool) -> SessionFactory:
        service = IMAPService(self.config, auth=self.auth, store=self.store, tls_available=tls)
        return service.new_session

    def start(self) -> None:
        try:
            for service in self.config.services:
                listener = Listener(
                    (self.config.listen, self.config.port(service)),
                    service=service,
                    factory=self._factories[service],
                    ssl_context=self.ssl_context,
                    limiter=self.limiter,
                    stopping=self.stopping,
                    wakes=self.wakes,
                )
                self.listeners[service] = listener
        except OSError:
            for listener in self.listeners.values():
                listener.server_close()
            raise
        for service, listener in self.listeners.items():
            thread = threading.Thread(
                target=listener.serve_forever,
                name=f"refmail-{service}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self.scheduler.start()

    def reload_tls(self) -> None:
        """Load the certificate and key again (after a renewal) into a new context that every
        listener uses from its next accept or STARTTLS on; open sessions keep theirs.  On an
        error (a missing or mismatched file) the old context stays and the error is raised."""
        context = server_context(self.config)
        self.ssl_context = context
        for listener in self.listeners.values():
            listener.ssl_context = context
        log.info("TLS certificate %s reloaded", self.cert_path)

    def address(self, service: str) -> tuple[str, int]:
        host, port = self.listeners[service].server_address[:2]
        return str(host), int(port)

    def stop(self, timeout: float = 10.0) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        for listener in self.listeners.values():
            listener.shutdown()
            listener.server_close()
        for listener in self.listeners.values():
            listener.wake_all()
        for thread in self._threads:
            thread.join(timeout)
        # Sessions finish the command they are in, then say goodbye; give them a moment.
        deadline = threading.Event()
        for listener in self.listeners.values():
            for _ in range(int(timeout * 20)):
                with listener.handlers_lock:
                    if not listener.handlers:
                        break
                deadline.wait(0.05)
        self.scheduler.stop()
        self.store.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
