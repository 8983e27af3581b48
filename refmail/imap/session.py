"""The IMAP session: states, dispatch, and the commands valid in any state or before login
(RFC 3501 6.1, 6.2), with STARTTLS, LOGIN, AUTHENTICATE PLAIN (SASL-IR, RFC 4959), ID
(RFC 2971), IDLE (RFC 2177) and ENABLE (RFC 5161).

Mailbox commands are in ``mailboxes.py``, message commands in ``messages.py``; all are
``imap_VERB`` methods collected into one table when this module is imported.  The session is
sans-IO (``refmail/connection.py``): it turns bytes into replies and never blocks on the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from types import MappingProxyType

from refmail.auth import Authenticator, decode_base64, decode_sasl_plain
from refmail.config import Config
from refmail.connection import ConnectionInfo
from refmail.errors import (
    IMAPError,
    InsufficientStorage,
    InvalidMailboxName,
    LockTimeout,
    MailboxExists,
    NoSuchMailbox,
    StorageError,
)
from refmail.imap.arguments import Arguments
from refmail.imap.commands import COMMANDS, OUTPUT_SLICE, Cmd, Done, State, Streamed
from refmail.imap.fetch import imap_string
from refmail.imap.mailboxes import MailboxCommands
from refmail.imap.messages import MessageCommands
from refmail.imap.protocol import (
    Atom,
    Command,
    IMAPProtocol,
    LiteralRequest,
    Malformed,
    ParenList,
    RawLine,
    continuation,
    status_response,
    tagged,
)
from refmail.imap.view import MailboxGone, SelectedMailbox
from refmail.store import MailStore

log = logging.getLogger(__name__)

#: RFC 3501 5.4: the autologout timer applies to authenticated sessions; an unauthenticated
#: one gets a short one (Dovecot uses 3 minutes before login).
PREAUTH_IDLE_TIMEOUT = 180.0
#: RFC 2971 3.3: at most 30 field-value pairs, fields 30 octets, values 1024 octets.
ID_MAX_PAIRS, ID_MAX_FIELD, ID_MAX_VALUE = 30, 30, 1024
#: RFC 5530 response codes for store failures.
STORAGE_CODES: tuple[tuple[type[StorageError], str, str], ...] = (
    (NoSuchMailbox, "NONEXISTENT", "no such mailbox"),
    (MailboxExists, "ALREADYEXISTS", "mailbox already exists"),
    (InvalidMailboxName, "CANNOT", "invalid mailbox name"),
    (LockTimeout, "INUSE", "mailbox is locked, try again later"),
    (InsufficientStorage, "OVERQUOTA", "out of disk space"),
    (StorageError, "UNAVAILABLE", "temporary storage failure"),
)
SERVER_ID = (("name", "refmail"), ("vendor", "refmail"))


class IMAPService:
    """Made once per server: what every IMAP session shares (auth, the store)."""

    def __init__(
        self, config: Config, *, auth: Authenticator, store: MailStore, tls_available: bool
    ) -> None:
        self.config = config
        self.auth = auth
        self.store = store
        self.tls_available = tls_available

    def new_session(self, conn: ConnectionInfo, wake: Callable[[], None]) -> IMAPSession:
        return IMAPSession(self, conn, wake)


class IMAPSession(MailboxCommands, MessageCommands):
    """One connection (``refmail.connection.Session``)."""

    def __init__(self, service: IMAPService, conn: ConnectionInfo, wake: Callable[[], None]):
        self.service = service
        self.config = service.config
        self.limits = service.config.limits
        self.store = service.store
        self.conn = conn
        self.wake = wake
        self.protocol = IMAPProtocol(
            max_line=self.limits.imap_command_line, max_literal=self.limits.imap_literal_size
        )
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.tls_active = conn.tls
        self.want_tls = False
        self.closing = False
        self.selected: SelectedMailbox | None = None
        self.auth_failures = 0
        self._continuation: Callable[[bytes], None] | None = None
        self._continuation_tag = ""
        self._idling = False
        self._stream: tuple[Command, Cmd, Generator[bytes, None, Done]] | None = None
        self._out: list[bytes] = []

    # ------------------------------------------------------------------ the Session contract

    def start(self) -> bytes:
        """RFC 3501 7.1.1 greeting with the capabilities (RFC 3501 7.2.1 allows the code)."""
        return status_response("OK", "refmail IMAP4rev1 ready", f"CAPABILITY {self.capabilities()}")

    def receive_data(self, data: bytes) -> bytes:
        if self.want_tls:  # plaintext after STARTTLS's OK is never used (CVE-2011-0411)
            return b""
        self.protocol.receive_data(data)
        return self._run()

    def tls_started(self) -> bytes:
        """RFC 3501 6.2.1: the session goes on in the not authenticated state, no greeting."""
        self.tls_active = True
        self.want_tls = False
        return self._run()

    def timed_out(self) -> bytes:
        self._end()
        return status_response("BYE", "autologout; idle for too long")  # RFC 3501 5.4

    def shutting_down(self) -> bytes:
        self._end()
        return status_response("BYE", "server shutting down")  # RFC 3501 7.1.5

    def connection_lost(self) -> None:
        self._end()

    def pending_output(self) -> bytes:
        """The next slice of a streamed command's responses (then the commands that waited
        behind it), or asynchronous updates for an IDLE client (RFC 2177 3)."""
        if self._stream is not None and not self.closing:
            cmd, spec, _ = self._stream
            outcome = self._guarded(cmd, self._pump)
            if outcome is not None:
                self._finish(cmd, spec, *outcome)
            if self._stream is None and not self.closing:
                return self._run()
            return self._flush()
        if not self._idling or self.selected is None or self.closing:
            return b""
        try:
            self._out.extend(self._updates(allow_expunge=True))
        except MailboxGone:
            self._mailbox_gone()
        except StorageError as exc:  # e.g. a lock held too long: the next wake-up retries
            log.warning("%s: mailbox update failed: %s", self.user, exc)
            self.selected.mark_stale()
        return self._flush()

    @property
    def idle_timeout(self) -> float:
        if self.state == State.NOT_AUTHENTICATED:
            return min(PREAUTH_IDLE_TIMEOUT, self.limits.imap_idle_timeout)
        return self.limits.imap_idle_timeout

    # ------------------------------------------------------------------ event loop

    def _run(self) -> bytes:
        while not self.closing and not self.want_tls and self._stream is None:
            event = self.protocol.next_event()
            if event is None:
                break
            if isinstance(event, Command):
                self._dispatch(event)
            elif isinstance(event, RawLine):
                self._continue(event.data)
            elif isinstance(event, LiteralRequest):
                self._literal_request(event)
            else:
                self._malformed(event)
        return self._flush()

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, data: bytes) -> None:
        self._out.append(data)

    def _end(self) -> None:
        if self._stream is not None:
            self._stream[2].close()
            self._stream = None
        self.state = State.LOGOUT
        self.closing = True
        self.protocol.close()
        self._idling = False
        self.deselect()

    def _malformed(self, event: Malformed) -> None:
        tag = event.tag
        if self._continuation is not None:  # an over-long AUTHENTICATE response or IDLE line
            tag = self._continuation_tag
            self._continuation = None
            self._idling = False
            if self.selected is not None:
                self.selected.wake_on_change(None)
        if tag is None:
            self.send(status_response("BAD", event.text, event.code))
        else:
            self.send(tagged(tag, event.kind, event.text, event.code))
        if event.close:
            self.send(status_response("BYE", "closing the connection"))
            self._end()

    def _literal_request(self, event: LiteralRequest) -> None:
        """Decide on a literal before a byte of it is read (RFC 3501 7.5, RFC 7888 4)."""
        spec = COMMANDS.get(event.name)
        refusal: IMAPError | None = None
        if spec is None or self.state not in spec.states:
            refusal = IMAPError("BAD", "command unknown or not valid in this state")
        elif event.name in ("LOGIN", "AUTHENTICATE") and not self.plaintext_allowed():
            refusal = IMAPError("NO", "plaintext login refused, use STARTTLS", "PRIVACYREQUIRED")
        elif event.name == "APPEND" and event.size > self.limits.message_size:
            refusal = IMAPError("NO", "message too big", "TOOBIG")  # RFC 7889 APPENDLIMIT
        if refusal is None:
            self.protocol.accept_literal()
            if event.synchronizing:
                self.send(continuation("ready for literal data"))
            return
        self.protocol.reject_literal()
        self.send(tagged(event.tag, refusal.kind, refusal.text, refusal.code))

    def _dispatch(self, cmd: Command) -> None:
        """Run one command to completion; state commits before the next is parsed."""
        spec = COMMANDS.get(cmd.name)
        if spec is None or (cmd.uid and not spec.uid):
            name = f"UID {cmd.name}" if cmd.uid else cmd.name
            self.send(tagged(cmd.tag, "BAD", f"unknown command {name[:40]}"))
            return
        if self.state not in spec.states:
            text = f"{cmd.name} not valid in the {self.state.value} state"
            self.send(tagged(cmd.tag, "BAD", text))
            return
        log.debug("%s command %s", self.conn.peer_ip, cmd.name)
        outcome = self._guarded(cmd, lambda: self._start(cmd))
        if outcome is not None:
            self._finish(cmd, spec, *outcome)

    def _start(self, cmd: Command) -> Done | None:
        if cmd.uid and self.selected is not None:
            # RFC 3501 7.4.1: UID commands may carry EXPUNGE; sent first, the client
            # renumbers before the command's own responses
            self._out.extend(self._updates(allow_expunge=True))
        result = HANDLERS[cmd.name](self, cmd)
        if isinstance(result, Streamed):
            self._stream = (cmd, COMMANDS[cmd.name], result.chunks)
            return self._pump()
        return result

    def _pump(self) -> Done | None:
        """One slice of the streamed command's output; its Done once it has no more."""
        assert self._stream is not None
        chunks = self._stream[2]
        size = 0
        try:
            while size < OUTPUT_SLICE:
                chunk = next(chunks)
                self._out.append(chunk)
                size += len(chunk)
        except StopIteration as stop:
            self._stream = None
            return stop.value
        except BaseException:
            self._stream = None
            raise
        self.wake()  # the handler writes this slice, then calls pending_output for more
        return None

    def _guarded(
        self, cmd: Command, call: Callable[[], Done | None]
    ) -> tuple[str, str, str | None] | None:
        """Run a command step; the tagged reply it ends with (its Done, or what its exception
        carries), or None when it is not finished or was answered already.  The one place
        errors become replies: never an exception's name on the wire."""
        try:
            done = call()
        except IMAPError as exc:
            return exc.kind, exc.text, exc.code
        except MailboxGone:
            self._mailbox_gone()
            return None
        except StorageError as exc:
            log.warning("%s: %s failed: %s", self.user, cmd.name, exc)
            return ("NO", *_storage_reply(exc))
        except Exception:
            log.exception("internal error in IMAP %s", cmd.name)
            return "NO", "internal server error", "SERVERBUG"
        if done is None:
            return None
        return "OK", done.text, done.code

    def _finish(self, cmd: Command, spec: Cmd, status: str, text: str, code: str | None) -> None:
        """Updates the command may carry (RFC 3501 7.4.1), then its tagged reply."""
        if status != "BAD" and self.selected is not None and not self.closing:
            try:
                self._out.extend(self._updates(allow_expunge=cmd.uid or not spec.uses_seqs))
            except MailboxGone:
                self._mailbox_gone()
                return
            except StorageError as exc:
                log.warning("%s: mailbox update failed: %s", self.user, exc)
        self.send(tagged(cmd.tag, status, text, code))
        self._after_auth_failure()

    def _after_auth_failure(self) -> None:
        """Too many failed logins on one connection: say BYE after the NO (DESIGN.md)."""
        if self.auth_failures >= self.limits.auth_failures_per_connection and not self.closing:
            self.send(status_response("BYE", "too many authentication failures"))
            self._end()

    def _updates(self, *, allow_expunge: bool, refresh: bool = False) -> list[bytes]:
        assert self.selected is not None
        return self.selected.updates(allow_expunge=allow_expunge, refresh=refresh)

    def _mailbox_gone(self) -> None:
        """The selected mailbox vanished under us: RFC 3501 7.1.5 lets the server say BYE."""
        self.send(status_response("BYE", "the selected mailbox was changed by another program"))
        self._end()

    def _continue(self, line: bytes) -> None:
        handler, self._continuation = self._continuation, None
        if handler is None:  # cannot happen: RawLine comes only after expect_line
            return
        try:
            handler(line)
        except IMAPError as exc:
            self.send(tagged(self._continuation_tag, exc.kind, exc.text, exc.code))
        except Exception:
            log.exception("internal error in an IMAP continuation")
            self.send(tagged(self._continuation_tag, "NO", "internal server error", "SERVERBUG"))
        self._after_auth_failure()

    def expect_continuation(self, tag: str, handler: Callable[[bytes], None]) -> None:
        self._continuation = handler
        self._continuation_tag = tag
        self.protocol.expect_line()

    def deselect(self) -> None:
        if self.selected is not None:
            self.selected.wake_on_change(None)
            self.selected.close()
            self.selected = None
        if self.state == State.SELECTED:
            self.state = State.AUTHENTICATED

    # ------------------------------------------------------------------ capabilities

    def plaintext_allowed(self) -> bool:
        """DESIGN.md "Authentication": TLS, loopback, or the config's explicit consent."""
        return self.tls_active or self.conn.loopback or self.config.allow_plaintext_auth

    def capabilities(self) -> str:
        """RFC 3501 7.2.1; what is offered depends on state and TLS (RFC 3501 6.2.1, 6.2.3)."""
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE"]
        caps += ["UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "SORT", "ESEARCH"]
        if self.state == State.NOT_AUTHENTICATED:
            if self.service.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            if self.plaintext_allowed():
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
        return " ".join(caps)

    # ------------------------------------------------------------------ any state (RFC 3501 6.1)

    def imap_CAPABILITY(self, cmd: Command) -> Done:
        """CAPABILITY (RFC 3501 6.1.1)."""
        Arguments(cmd.args).end()
        self.send(f"* CAPABILITY {self.capabilities()}\r\n".encode())
        return Done("CAPABILITY completed")

    def imap_NOOP(self, cmd: Command) -> Done:
        """NOOP (RFC 3501 6.1.2): a chance for updates, which the dispatcher sends."""
        Arguments(cmd.args).end()
        if self.selected is not None:
            self._out.extend(self._updates(allow_expunge=True, refresh=True))
        return Done("NOOP completed")

    def imap_LOGOUT(self, cmd: Command) -> Done | None:
        """LOGOUT (RFC 3501 6.1.3): BYE, then the tagged OK, then close.  Flag changes of
        the selected mailbox still in the index are written into the mbox before the OK (as
        CLOSE does); a mailbox busy elsewhere keeps them for the next write-back."""
        Arguments(cmd.args).end()
        if self.selected is not None and not self.selected.readonly:
            try:
                self.selected.box.sync()
            except StorageError:
                log.exception("IMAP: flags of %r not written back at LOGOUT", self.selected.box)
        self.send(status_response("BYE", "logging out"))
        self.send(tagged(cmd.tag, "OK", "LOGOUT completed"))
        self._end()
        return None

    def imap_ID(self, cmd: Command) -> Done:
        """ID (RFC 2971 3.1): log what the client says, say who we are."""
        args = Arguments(cmd.args)
        token = args.next("ID parameters")
        args.end()
        if isinstance(token, ParenList):
            items = token.items
            if len(items) % 2 or len(items) > 2 * ID_MAX_PAIRS:
                raise IMAPError("BAD", "ID takes up to 30 field-value pairs")
            for i in range(0, len(items), 2):
                field = Arguments(items[i : i + 1]).astring("ID field")
                value = Arguments(items[i + 1 : i + 2]).nstring("ID value")
                if len(field) > ID_MAX_FIELD or (value is not None and len(value) > ID_MAX_VALUE):
                    raise IMAPError("BAD", "ID field or value too long")
        elif not (isinstance(token, Atom) and token.value.upper() == "NIL"):
            raise IMAPError("BAD", "ID takes a list or NIL")
        pairs = b" ".join(imap_string(k) + b" " + imap_string(v) for k, v in SERVER_ID)
        self.send(b"* ID (" + pairs + b")\r\n")
        return Done("ID completed")

    # ------------------------------------------------------------------ not authenticated

    def imap_STARTTLS(self, cmd: Command) -> Done | None:
        """STARTTLS (RFC 3501 6.2.1); bytes pipelined after it are discarded (CVE-2011-0411)."""
        Arguments(cmd.args).end()
        if not self.service.tls_available:
            raise IMAPError("NO", "TLS is not available")
        if self.tls_active:
            raise IMAPError("BAD", "TLS is already active")
        self.send(tagged(cmd.tag, "OK", "begin TLS negotiation now"))
        self.protocol.discard_buffer()
        self.want_tls = True
        return None  # answered above: nothing may follow the OK in plaintext

    def imap_LOGIN(self, cmd: Command) -> Done:
        """LOGIN (RFC 3501 6.2.3): refused with LOGINDISABLED until TLS (DESIGN.md)."""
        args = Arguments(cmd.args)
        name = args.text("user name")
        password = args.text("password")
        args.end()
        if not self.plaintext_allowed():
            raise IMAPError("NO", "plaintext login refused, use STARTTLS", "PRIVACYREQUIRED")
        return self._authenticate(name, password)

    def imap_AUTHENTICATE(self, cmd: Command) -> Done | None:
        """AUTHENTICATE PLAIN (RFC 3501 6.2.2, RFC 4616), initial response per RFC 4959."""
        args = Arguments(cmd.args)
        mechanism = args.atom("mechanism").upper()
        initial = args.atom("initial response") if args.more() else None
        args.end()
        if mechanism != "PLAIN":
            raise IMAPError("NO", "unsupported authentication mechanism", "CANNOT")
        if not self.plaintext_allowed():
            raise IMAPError("NO", "plaintext login refused, use STARTTLS", "PRIVACYREQUIRED")
        if initial is not None:
            return self._sasl_plain(b"" if initial == "=" else initial.encode("ascii"))
        self.send(continuation(""))
        tag = cmd.tag

        def respond(line: bytes) -> None:
            done = self._sasl_plain_response(line)
            self.send(tagged(tag, "OK", done.text, done.code))

        self.expect_continuation(tag, respond)
        return None

    def _sasl_plain_response(self, line: bytes) -> Done:
        if line.strip() == b"*":  # RFC 3501 6.2.2: the client cancels
            raise IMAPError("BAD", "authentication cancelled")
        return self._sasl_plain(line.strip())

    def _sasl_plain(self, encoded: bytes) -> Done:
        try:
            authzid, authcid, password = decode_sasl_plain(decode_base64(encoded))
        except ValueError as exc:
            raise IMAPError("BAD", f"invalid SASL response: {exc}") from None
        if authzid and authzid.lower() != authcid.lower():  # no proxy authorization
            raise IMAPError("NO", "authorization identity refused", "AUTHORIZATIONFAILED")
        return self._authenticate(authcid, password)

    def _authenticate(self, name: str, password: str) -> Done:
        user = self.service.auth.authenticate(name, password, self.conn.peer_ip)
        if user is None:
            self.auth_failures += 1
            raise IMAPError("NO", "invalid credentials", "AUTHENTICATIONFAILED")
        self.login(user)
        return Done("logged in", f"CAPABILITY {self.capabilities()}")

    # ------------------------------------------------------------------ authenticated

    def imap_ENABLE(self, cmd: Command) -> Done:
        """ENABLE (RFC 5161 3.1): no extension here needs enabling, so none is enabled."""
        args = Arguments(cmd.args)
        if not args.more():
            raise IMAPError("BAD", "ENABLE needs at least one capability")
        while args.more():
            args.atom("capability name")  # RFC 5161 4: capability names are atoms
        self.send(b"* ENABLED\r\n")
        return Done("ENABLE completed")

    def imap_IDLE(self, cmd: Command) -> Done | None:
        """IDLE (RFC 2177 3): updates as they happen until the client sends DONE."""
        Arguments(cmd.args).end()
        self.send(continuation("idling"))
        self._idling = True
        tag = cmd.tag
        if self.selected is not None:
            self._out.extend(self._updates(allow_expunge=True, refresh=True))
            self.selected.wake_on_change(self.wake)

        def done(line: bytes) -> None:
            self._idling = False
            if self.selected is not None:
                self.selected.wake_on_change(None)
            if line.strip().upper() != b"DONE":
                raise IMAPError("BAD", "expected DONE")
            if self.selected is not None:
                try:
                    self._out.extend(self._updates(allow_expunge=True))
                except MailboxGone:
                    self._mailbox_gone()
                    return
            self.send(tagged(tag, "OK", "IDLE terminated"))

        self.expect_continuation(tag, done)
        return None


def _storage_reply(exc: StorageError) -> tuple[str, str]:
    for kind, code, text in STORAGE_CODES:
        if isinstance(exc, kind):
            if kind is InvalidMailboxName and str(exc):
                return str(exc), code
            return text, code
    return "temporary storage failure", "UNAVAILABLE"


def _collect_handlers(cls: type) -> Mapping[str, Callable[..., Done | Streamed | None]]:
    """``imap_VERB`` methods of the session and its mixins, collected once (STYLE.md 3)."""
    handlers = {}
    for klass in reversed(cls.__mro__):
        for name, method in vars(klass).items():
            if name.startswith("imap_"):
                handlers[name[5:]] = method
    missing = set(COMMANDS) - set(handlers)
    assert not missing, f"commands without handlers: {sorted(missing)}"
    return MappingProxyType(handlers)


HANDLERS = _collect_handlers(IMAPSession)
