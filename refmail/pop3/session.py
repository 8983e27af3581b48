"""POP3 semantics (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL, RFC 6856 UTF8).

``POP3Service`` is made once per server and holds what sessions share: the config, the
authenticator, the store and the table of claimed maildrops (RFC 1939 8's exclusive-access
lock, answered with ``[IN-USE]``).  ``POP3Session`` is one connection's state machine: one
method per verb (``pop3_STAT``), which verbs each state allows as data (``ALLOWED``), and every
``POP3Error`` turned into ``-ERR`` in ``_dispatch`` alone.

APOP (RFC 1939 7) is not offered: it needs the plaintext password on the server, and refmail
stores only salted scrypt hashes.  The greeting therefore carries no APOP timestamp.
"""

from __future__ import annotations

import enum
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from refmail.auth import decode_base64, decode_sasl_plain
from refmail.config import Config
from refmail.connection import ConnectionInfo
from refmail.errors import LockTimeout, POP3Error, StorageError
from refmail.parse import LineTooLong, header_end
from refmail.pop3.protocol import (
    MAX_COMMAND_LINE,
    Apop,
    Auth,
    LineReader,
    MessageCommand,
    Pass,
    ScanCommand,
    Simple,
    Top,
    User,
    continuation,
    err,
    lines,
    multiline,
    ok,
    parse_arguments,
    split_command,
    strip_line_ending,
)

if TYPE_CHECKING:
    from refmail.auth import Authenticator
    from refmail.store import Mailbox, MailStore, MessageInfo

log = logging.getLogger(__name__)

#: The maildrop is the user's INBOX (DESIGN.md, "On disk").
MAILDROP = "INBOX"
#: RFC 5034 4: mechanisms offered in CAPA's SASL line and to AUTH.  PLAIN only: the others
#: (CRAM-MD5, DIGEST-MD5, SCRAM) need a stored plaintext or a scheme-specific verifier.
SASL_MECHANISMS = ("PLAIN",)
#: Octets of replies made before the session lets the handler write them and comes back for
#: the rest of a pipelined burst (RFC 2449 6.6) through ``wake``/``pending_output``.
OUTPUT_HIGH_WATER = 1 << 20


class State(enum.Enum):
    """RFC 1939 3: "the session enters the AUTHORIZATION state ... TRANSACTION ... UPDATE"."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


#: Which verbs each state allows (RFC 1939 4-7, RFC 2449 5, RFC 2595 4, RFC 5034 4,
#: RFC 6856 3.1).  UPDATE is entered by QUIT and ends the session, so it allows nothing.
ALLOWED: Mapping[State, frozenset[str]] = MappingProxyType(
    {
        State.AUTHORIZATION: frozenset(
            {"USER", "PASS", "APOP", "AUTH", "STLS", "UTF8", "CAPA", "QUIT"}
        ),
        State.TRANSACTION: frozenset(
            {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "QUIT"}
        ),
        State.UPDATE: frozenset(),
    }
)


class MaildropClaims:
    """Users whose maildrop a POP3 session holds (RFC 1939 8: an exclusive-access lock).

    Only POP3 sessions of this server claim; the mailbox's own locks guard each read and
    rewrite against IMAP sessions and other programs.  A claim names its session weakly: a
    session that vanished without QUIT or ``connection_lost`` (its handler died) holds nothing,
    as a stale lock file whose process is gone holds nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, weakref.ref[POP3Session]] = {}

    def claim(self, user: str, session: POP3Session) -> bool:
        with self._lock:
            owner = self._owners.get(user)
            if owner is not None and owner() is not None:
                return False
            self._owners[user] = weakref.ref(session)
            return True

    def release(self, user: str, session: POP3Session) -> None:
        with self._lock:
            owner = self._owners.get(user)
            if owner is not None and owner() in (session, None):
                del self._owners[user]

    def __contains__(self, user: object) -> bool:
        if not isinstance(user, str):
            return False
        with self._lock:
            owner = self._owners.get(user)
            return owner is not None and owner() is not None


class POP3Service:
    """What every POP3 session of one server shares; ``new_session`` is the SessionFactory."""

    def __init__(
        self,
        config: Config,
        *,
        auth: Authenticator,
        store: MailStore,
        tls_available: bool,
    ) -> None:
        self.config = config
        self.auth = auth
        self.store = store
        self.tls_available = tls_available
        self.claims = MaildropClaims()

    def new_session(self, conn: ConnectionInfo, wake: Callable[[], None]) -> POP3Session:
        return POP3Session(self, conn, wake)


class POP3Session:
    """One POP3 connection, sans-IO (the ``refmail.connection.Session`` contract)."""

    def __init__(
        self, service: POP3Service, conn: ConnectionInfo, wake: Callable[[], None]
    ) -> None:
        self._service = service
        self._limits = service.config.limits
        self._conn = conn
        self._wake = wake  # to come back for the rest of a long pipelined burst
        self._reader = LineReader()
        self.state = State.AUTHORIZATION
        self.want_tls = False
        self.closing = False
        self._tls = conn.tls
        self._utf8 = False
        self._auth_failures = 0
        self._pending_user: str | None = None  # USER given, PASS awaited (RFC 1939 7)
        self._sasl_mechanism: str | None = None  # AUTH sent "+ ", response awaited
        self.user: str | None = None
        self._claimed = False
        self._box: Mailbox | None = None
        self._uidvalidity = 0
        self._messages: list[MessageInfo] = []  # the snapshot taken at login
        self._deleted: set[int] = set()  # 0-based indexes into _messages marked by DELE

    # ------------------------------------------------------------------ the Session contract

    @property
    def idle_timeout(self) -> float:
        """RFC 1939 3: an autologout timer "of at least 10 minutes"."""
        return self._limits.pop3_idle_timeout

    def start(self) -> bytes:
        """RFC 1939 4: the greeting (no APOP timestamp: APOP is not offered)."""
        return ok("refmail POP3 server ready")

    def receive_data(self, data: bytes) -> bytes:
        """Frame ``data`` into lines and answer each, one command to completion at a time."""
        if self.closing or self.want_tls:
            return b""  # after QUIT, or after STLS's +OK: nothing more is read in the clear
        self._reader.feed(data)
        return self._answer_buffered()

    def pending_output(self) -> bytes:
        """The rest of a pipelined burst that ``_answer_buffered`` put off (it called wake)."""
        if self.closing or self.want_tls:
            return b""
        return self._answer_buffered()

    def _answer_buffered(self) -> bytes:
        """Answer the complete lines buffered, until about OUTPUT_HIGH_WATER octets of replies
        are made; then ask the handler (``wake``) to come back for the rest once it wrote
        these, so a burst of pipelined RETRs never sits in memory all at once."""
        replies: list[bytes] = []
        size = 0
        with ExitStack() as held:
            self._lock_maildrop_for_burst(held)
            while not self.closing and not self.want_tls:
                if size >= OUTPUT_HIGH_WATER and self.state is State.TRANSACTION:
                    if self._reader.pending:
                        self._wake()
                    break
                try:
                    line = self._reader.next_line(self._line_limit())
                except LineTooLong:
                    replies.append(self._line_too_long())
                    continue
                if line is None:
                    break
                replies.append(self._dispatch(line))
                size += len(replies[-1])
        if self.want_tls:
            dropped = self._reader.discard()
            if dropped:  # RFC 2595 4 / CVE-2011-0411: never run commands injected pre-TLS
                log.warning("POP3 %s: dropped %d octets sent after STLS", self._peer, dropped)
        return b"".join(replies)

    def _lock_maildrop_for_burst(self, held: ExitStack) -> None:
        """Hold the maildrop's lock across a burst of pipelined commands, so each RETR does not
        take the thread, fcntl and dot locks anew.  Never across a network wait: it is released
        before the replies are returned."""
        if self._box is None or self.state is not State.TRANSACTION or not self._reader.pending:
            return
        try:
            held.enter_context(self._box.locked(timeout=0))
        except StorageError:
            pass  # busy or broken: each command's own store call meets it and answers -ERR

    def tls_started(self) -> bytes:
        """RFC 2595 4: after the handshake the client starts over; no reply is sent."""
        self.want_tls = False
        self._tls = True
        self._pending_user = None
        self._reader.discard()
        return b""

    def timed_out(self) -> bytes:
        """RFC 1939 3: on autologout the session does NOT enter UPDATE; the server closes the
        connection "without removing any messages or sending any response"."""
        self.closing = True
        self._release()
        return b""

    def shutting_down(self) -> bytes:
        """Server shutdown: no UPDATE (nothing is deleted), a last -ERR so the client knows."""
        self.closing = True
        self._release()
        return err("server shutting down", "SYS/TEMP")

    def connection_lost(self) -> None:
        """A connection lost without QUIT deletes nothing (RFC 1939 6); the claim is freed."""
        self.closing = True
        self._release()

    # ------------------------------------------------------------------ dispatch

    @property
    def _peer(self) -> str:
        return f"{self._conn.peer_ip}:{self._conn.peer_port}"

    def _line_limit(self) -> int:
        """RFC 2449 4: 255 octets for a command; a SASL response may be longer (RFC 5034 4)."""
        if self._sasl_mechanism is not None:
            return self._limits.pop3_command_line
        return min(MAX_COMMAND_LINE, self._limits.pop3_command_line)

    def _line_too_long(self) -> bytes:
        if self._sasl_mechanism is not None:
            self._sasl_mechanism = None
            return err("SASL response too long; authentication cancelled")
        return err(f"command line too long (limit {self._line_limit()} octets, RFC 2449 4)")

    def _dispatch(self, line: bytes) -> bytes:
        """Answer one line: the only place POP3Error and unexpected exceptions become -ERR."""
        try:
            if self._sasl_mechanism is not None:
                return self._sasl_response(line)
            verb, rest = split_command(line, utf8=self._utf8)
            if verb not in ALLOWED[self.state]:
                raise POP3Error(self._wrong_state(verb))
            return HANDLERS[verb](self, parse_arguments(verb, rest))
        except POP3Error as exc:
            return err(exc.text, exc.code)
        except LockTimeout:
            log.warning("POP3 %s: maildrop of %s is locked", self._peer, self.user)
            # RFC 2449 8.1.1: IN-USE answers a login; later, a busy lock is temporary.
            code = "IN-USE" if self.state is State.AUTHORIZATION else "SYS/TEMP"
            return err("maildrop is locked by another program, try again later", code)
        except StorageError:
            log.exception("POP3 %s: storage error for %s", self._peer, self.user)
            return err("cannot access the maildrop now, try again later", "SYS/TEMP")
        except Exception:
            log.exception("POP3 %s: internal error", self._peer)
            return err("internal server error", "SYS/TEMP")

    def _wrong_state(self, verb: str) -> str:
        if self.state is State.AUTHORIZATION:
            return f"{verb} is not allowed before login (AUTHORIZATION state)"
        return f"{verb} is not allowed after login (TRANSACTION state)"

    # ------------------------------------------------------------------ AUTHORIZATION

    def _plaintext_allowed(self) -> bool:
        """DESIGN.md "Authentication": plaintext passwords only over TLS, from loopback, or
        when the configuration allows them (RFC 2595 2.2 lets a server refuse them)."""
        return self._tls or self._conn.loopback or self._service.config.allow_plaintext_auth

    def _require_plaintext_allowed(self) -> None:
        if not self._plaintext_allowed():
            raise POP3Error(
                "plaintext authentication disallowed on unencrypted connections: use STLS",
                "AUTH",
            )

    def pop3_CAPA(self, cmd: Simple) -> bytes:
        """CAPA (RFC 2449 5); tags from RFC 2449 6, RFC 2595 4, RFC 3206 6, RFC 6856 2."""
        capabilities = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        capabilities += ["EXPIRE NEVER", "IMPLEMENTATION refmail"]
        if self.state is State.AUTHORIZATION:
            if self._plaintext_allowed():
                capabilities += ["USER", "SASL " + " ".join(SASL_MECHANISMS)]
            if self._service.tls_available and not self._tls:
                capabilities.append("STLS")
            capabilities.append("UTF8")
        return multiline("Capability list follows", lines(capabilities))

    def pop3_STLS(self, cmd: Simple) -> bytes:
        """STLS (RFC 2595 4): +OK, then the handler upgrades the socket."""
        if self._tls:
            raise POP3Error("TLS is already active")
        if not self._service.tls_available:
            raise POP3Error("TLS is not available on this server")
        self.want_tls = True
        return ok("Begin TLS negotiation")

    def pop3_UTF8(self, cmd: Simple) -> bytes:
        """UTF8 (RFC 6856 3.1): arguments may be UTF-8; messages are always sent as stored."""
        self._utf8 = True
        return ok("UTF8 enabled")

    def pop3_USER(self, cmd: User) -> bytes:
        """USER name (RFC 1939 7).  Always +OK: whether the name exists is not revealed."""
        self._require_plaintext_allowed()
        self._pending_user = cmd.name
        return ok("send PASS")

    def pop3_PASS(self, cmd: Pass) -> bytes:
        """PASS string (RFC 1939 7): only right after a successful USER."""
        name, self._pending_user = self._pending_user, None
        if name is None:
            raise POP3Error("send USER first")
        self._require_plaintext_allowed()
        return self._login(name, cmd.password)

    def pop3_APOP(self, cmd: Apop) -> bytes:
        """APOP (RFC 1939 7) is not offered: it needs the plaintext password on the server."""
        raise POP3Error("APOP is not supported: use USER/PASS or AUTH PLAIN")

    def pop3_AUTH(self, cmd: Auth) -> bytes:
        """AUTH mechanism [initial-response] (RFC 5034 4); bare AUTH lists the mechanisms,
        as RFC 1734 clients expect."""
        self._pending_user = None
        if cmd.mechanism is None:
            return multiline("SASL mechanisms follow", lines(list(SASL_MECHANISMS)))
        if cmd.mechanism not in SASL_MECHANISMS:
            raise POP3Error(f"unsupported SASL mechanism {cmd.mechanism[:20]!a}")
        self._require_plaintext_allowed()
        if cmd.initial_response is None:
            self._sasl_mechanism = cmd.mechanism
            return continuation()
        return self._sasl_plain(cmd.initial_response)

    def _sasl_response(self, line: bytes) -> bytes:
        """The client's answer to "+ " (RFC 5034 4): base64, or "*" to cancel."""
        self._sasl_mechanism = None
        response = strip_line_ending(line)
        if response == b"*":
            raise POP3Error("authentication cancelled")
        try:
            text = response.decode("ascii")
        except UnicodeDecodeError:
            raise POP3Error("invalid base64 in SASL response") from None
        return self._sasl_plain(text)

    def _sasl_plain(self, response: str) -> bytes:
        """RFC 4616 PLAIN; RFC 5034 4: "=" is an empty initial response."""
        try:
            message = b"" if response == "=" else decode_base64(response)
        except ValueError:
            raise POP3Error("invalid base64 in SASL response") from None
        try:
            authzid, authcid, password = decode_sasl_plain(message)
        except ValueError as exc:
            raise POP3Error(f"malformed PLAIN response: {exc}") from None
        if authzid and authzid.lower() != authcid.lower():
            raise POP3Error("authorization identity differs from authentication identity", "AUTH")
        return self._login(authcid, password)

    def _login(self, name: str, password: str) -> bytes:
        """Check the credentials, claim the maildrop and snapshot it (RFC 1939 4)."""
        user = self._service.auth.authenticate(name, password, self._conn.peer_ip)
        if user is None:
            self._auth_failures += 1
            if self._auth_failures >= self._limits.auth_failures_per_connection:
                self.closing = True
                raise POP3Error("too many authentication failures, closing connection", "AUTH")
            raise POP3Error("invalid user name or password", "AUTH")
        self._open_maildrop(user)
        log.info("POP3 %s: %s logged in", self._peer, user)
        count, octets = self._totals()
        return ok(f"{user}'s maildrop has {count} messages ({octets} octets)")

    def _open_maildrop(self, user: str) -> None:
        """RFC 1939 4: acquire the exclusive-access lock, then take the snapshot of messages
        this session works on; mail arriving later shows at the next login."""
        if not self._service.claims.claim(user, self):
            raise POP3Error("maildrop is already in use by another POP3 session", "IN-USE")
        self.user, self._claimed = user, True
        try:
            store = self._service.store
            store.ensure_user(user)
            box = store.mailbox(user, MAILDROP)
            with box.locked():  # one consistent picture: the list and its UIDVALIDITY
                self._messages = list(box.messages())
                self._uidvalidity = box.uidvalidity
        except BaseException:
            self._release()
            self.user = None
            raise
        self._box = box
        self._deleted = set()
        self.state = State.TRANSACTION

    def _release(self) -> None:
        if self._claimed and self.user is not None:
            self._service.claims.release(self.user, self)
            self._claimed = False

    # ------------------------------------------------------------------ TRANSACTION

    def _totals(self) -> tuple[int, int]:
        live = [m for i, m in enumerate(self._messages) if i not in self._deleted]
        return len(live), sum(m.size for m in live)

    def _message(self, msg: int) -> MessageInfo:
        """Message ``msg`` (1-based) unless it is out of range or marked deleted (RFC 1939 5)."""
        if not 1 <= msg <= len(self._messages):
            raise POP3Error(f"no such message, only {len(self._messages)} messages in maildrop")
        if msg - 1 in self._deleted:
            raise POP3Error(f"message {msg} already deleted")
        return self._messages[msg - 1]

    def _live(self) -> list[tuple[int, MessageInfo]]:
        return [(i + 1, m) for i, m in enumerate(self._messages) if i not in self._deleted]

    def _unique_id(self, info: MessageInfo) -> str:
        """RFC 1939 7: a unique-id from UIDVALIDITY and UID, stable across restarts and index
        rebuilds since both live in the mbox itself (X-IMAPbase, X-UID)."""
        return f"{self._uidvalidity:08x}{info.uid:08x}"

    def _read(self, msg: int, info: MessageInfo) -> bytes:
        """The message as served (CRLF); another session (IMAP EXPUNGE) may have removed it."""
        assert self._box is not None
        try:
            return self._box.read(info.uid)
        except KeyError:
            raise POP3Error(f"message {msg} was removed by another session") from None

    def pop3_STAT(self, cmd: Simple) -> bytes:
        """STAT (RFC 1939 5): "+OK nn mm", deleted messages not counted."""
        count, octets = self._totals()
        return ok(f"{count} {octets}")

    def pop3_LIST(self, cmd: ScanCommand) -> bytes:
        """LIST [msg] (RFC 1939 5): sizes are the octets before dot-stuffing."""
        if cmd.msg is not None:
            return ok(f"{cmd.msg} {self._message(cmd.msg).size}")
        count, octets = self._totals()
        listing = lines([f"{n} {m.size}" for n, m in self._live()])
        return multiline(f"{count} messages ({octets} octets)", listing)

    def pop3_UIDL(self, cmd: ScanCommand) -> bytes:
        """UIDL [msg] (RFC 1939 7)."""
        if cmd.msg is not None:
            return ok(f"{cmd.msg} {self._unique_id(self._message(cmd.msg))}")
        listing = lines([f"{n} {self._unique_id(m)}" for n, m in self._live()])
        return multiline("unique-id listing follows", listing)

    def pop3_RETR(self, cmd: MessageCommand) -> bytes:
        """RETR msg (RFC 1939 5): the message as stored (CRLF), dot-stuffed."""
        message = self._read(cmd.msg, self._message(cmd.msg))
        return multiline(f"{len(message)} octets", message)

    def pop3_TOP(self, cmd: Top) -> bytes:
        """TOP msg n (RFC 1939 7): the header, the blank line, and the first n body lines
        (the whole message when it has fewer)."""
        message = self._read(cmd.msg, self._message(cmd.msg))
        return multiline("top of message follows", top_of_message(message, cmd.lines))

    def pop3_DELE(self, cmd: MessageCommand) -> bytes:
        """DELE msg (RFC 1939 5): marks only; the UPDATE state removes (on QUIT)."""
        self._message(cmd.msg)
        self._deleted.add(cmd.msg - 1)
        return ok(f"message {cmd.msg} deleted")

    def pop3_NOOP(self, cmd: Simple) -> bytes:
        """NOOP (RFC 1939 5)."""
        return ok()

    def pop3_RSET(self, cmd: Simple) -> bytes:
        """RSET (RFC 1939 5): unmark every message marked as deleted."""
        self._deleted.clear()
        count, octets = self._totals()
        return ok(f"maildrop has {count} messages ({octets} octets)")

    def pop3_QUIT(self, cmd: Simple) -> bytes:
        """QUIT (RFC 1939 4, 6): from TRANSACTION, enter UPDATE and remove the marked messages
        (a durable rewrite) before +OK; from AUTHORIZATION just sign off."""
        self.closing = True
        if self.state is not State.TRANSACTION:
            return ok("refmail POP3 server signing off")
        self.state = State.UPDATE
        try:
            removed = self._expunge_marked()
        except StorageError:
            log.exception("POP3 %s: UPDATE failed for %s", self._peer, self.user)
            raise POP3Error("some deleted messages not removed", "SYS/TEMP") from None
        finally:
            self._release()
        left = len(self._messages) - len(self._deleted)
        log.info("POP3 %s: %s quit, %d messages removed", self._peer, self.user, removed)
        if left:
            return ok(f"refmail POP3 server signing off ({left} messages left)")
        return ok("refmail POP3 server signing off (maildrop empty)")

    def _expunge_marked(self) -> int:
        if not self._deleted or self._box is None:
            return 0
        uids = sorted(self._messages[i].uid for i in self._deleted)
        return len(self._box.expunge(uids))


def top_of_message(message: bytes, body_lines: int) -> bytes:
    """The header block, its blank line and the first ``body_lines`` lines of the body."""
    end = header_end(message)
    for _ in range(body_lines):
        if end >= len(message):
            break
        newline = message.find(b"\n", end)
        end = len(message) if newline < 0 else newline + 1
    return message[:end]


def _collect_handlers() -> Mapping[str, Callable[[POP3Session, Any], bytes]]:
    """``{"STAT": POP3Session.pop3_STAT, ...}``, built once (STYLE.md principle 3)."""
    prefix = "pop3_"
    return MappingProxyType(
        {
            name[len(prefix) :]: method
            for name, method in vars(POP3Session).items()
            if name.startswith(prefix)
        }
    )


#: The verb table: every verb some state allows has a handler (checked by the tests).
HANDLERS = _collect_handlers()
