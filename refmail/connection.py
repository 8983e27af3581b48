"""The contract between the generic connection handler (server.py) and a protocol session.

A session is sans-IO: it never sees a socket, thread or timer.  The handler feeds it the bytes
it reads and writes back what it returns.  Sessions reach storage and auth only through the
objects passed to their constructor (DESIGN.md, "Layers").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a session may know of its connection."""

    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    service: str  # "smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps"
    tls: bool  # True when the connection is already encrypted (implicit TLS)

    @property
    def loopback(self) -> bool:
        """Connections from this host may use plaintext auth (DESIGN.md, "Authentication")."""
        try:
            return ipaddress.ip_address(self.peer_ip.split("%")[0]).is_loopback
        except ValueError:
            return False


class Session(Protocol):
    """What the handler calls; every method returns the bytes to write (maybe ``b""``).

    Order: ``start()`` once; then ``receive_data(chunk)`` for each chunk read; after writing
    each output the handler checks ``want_tls`` (upgrade the socket, then call
    ``tls_started()``, whose output it writes too) and ``closing`` (close the connection).
    On the idle timeout it writes ``timed_out()`` and closes; on server shutdown it writes
    ``shutting_down()`` and closes.  At the end of every connection, whatever ended it (the
    session closing, EOF, a socket error, a timeout, shutdown), the handler calls
    ``connection_lost()`` exactly once, so the session frees what it holds.  When the session
    was given a ``wake`` callable and calls it (from any thread), the handler calls
    ``pending_output()`` from its own thread and writes the result: this is how IMAP IDLE and
    other asynchronous updates reach the client without polling.
    """

    want_tls: bool
    closing: bool

    def start(self) -> bytes: ...

    def receive_data(self, data: bytes) -> bytes: ...

    def tls_started(self) -> bytes: ...

    def timed_out(self) -> bytes: ...

    def shutting_down(self) -> bytes: ...

    def connection_lost(self) -> None: ...

    def pending_output(self) -> bytes: ...

    @property
    def idle_timeout(self) -> float:
        """Seconds of client silence before ``timed_out``; may change with state."""
        ...


#: ``factory(conn, wake) -> Session``: how server.py makes a session for each connection.
SessionFactory = Callable[[ConnectionInfo, Callable[[], None]], Session]
