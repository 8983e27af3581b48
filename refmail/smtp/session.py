"""SMTP sessions: the semantics of RFC 5321 reception with its extensions.

``SMTPService`` is made once per server and makes one ``SMTPSession`` per connection.  A
session implements the sans-IO ``Session`` contract of ``refmail.connection``: bytes in,
reply bytes out.  Each verb is one ``smtp_VERB`` method, collected into ``VERBS`` once; each
event from the framing layer is handled to completion before the next is read, so pipelined
commands see the state their predecessors left (RFC 2920 3).

Choices where the RFCs leave room, stated once:

- 8-bit octets in a message sent without ``BODY=8BITMIME`` (or ``SMTPUTF8``) are accepted and
  stored as sent, as Postfix and Exim do.  RFC 6152 3 calls such a client in error, but the
  commonest one is Python's own ``smtplib.send_message`` with a UTF-8 text part; refusing it
  would lose mail that every peer server takes.  The outbound MTA checks the content itself
  before relaying to a hop without 8BITMIME.
- NUL octets in a message reject it with ``554 5.6.0`` (RFC 5321 4.5.2 text is US-ASCII without
  NUL, RFC 5322 2.1; RFC 3463 5.6.0 "other media error").
- Text lines over 1000 octets (RFC 5321 4.5.3.1.6) reject the message with ``554 5.6.0`` once
  it has been read: truncating or splitting it would alter a signed message.
- Bare LF in DATA is normalized to CRLF; only CRLF.CRLF ends the message (SMTP smuggling).
- A message over the size limit is read to its end and then refused with ``552 5.3.4``
  (RFC 1870 6.3).
- A header section (RFC 5322 2.1) of more than ``limits.max_header_fields`` fields or
  ``limits.max_header_size`` octets rejects the message with ``554 5.6.0`` (RFC 3463: 5.6.0
  "other or undefined media error", as for NUL octets); RFC 5322 sets no bound, these are a
  site's, as Postfix's header_size_limit is.
- Submission policy (RFC 6409 6.1 "MAY ... ensure that the envelope sender is appropriate for
  the authenticated user"; ``config.restrict_senders``): an authenticated user may use as
  envelope sender only an address local delivery gives to that same user (``user@`` any
  local domain, any case; ``postmaster@`` for the postmaster user), else ``553 5.7.1``.  The
  null sender stays allowed: it is what an authenticated user's MUA must use for a read
  receipt (RFC 8098 2.1) and it can cause no bounce to a forged address (RFC 5321 4.5.5).
- ``config.hide_client_ip``: the ``Received:`` field of authenticated submissions omits the
  client's HELO name and address (RFC 5321 7.6 lets a site omit trace details; the
  field stays, with ``by``, ``with`` and ``id``, so the hop is still counted).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from refmail import parse
from refmail.auth import Authenticator
from refmail.config import Config
from refmail.connection import ConnectionInfo
from refmail.delivery import LocalDelivery, new_message_id, received_header
from refmail.errors import InsufficientStorage, SMTPError, StorageError
from refmail.mta.spool import Spool
from refmail.smtp.protocol import (
    AuthResponse,
    BadCommandLine,
    Bdat,
    Chunk,
    Command,
    CommandTooLong,
    Event,
    MessageContent,
    SMTPProtocol,
    format_reply,
    parse_bdat,
    parse_mail_from,
    parse_rcpt_to,
)
from refmail.smtp.sasl import MECHANISMS, AuthExchange, SASLVerbs

log = logging.getLogger(__name__)

#: Services where AUTH comes before MAIL (RFC 6409 4.3 submission; RFC 8314 implicit TLS).
SUBMISSION_SERVICES = frozenset({"submission", "smtps"})
#: Verbs RFC 5321 names that this server does not offer: 502 (RFC 5321 4.2.4).
NOT_IMPLEMENTED = frozenset({"EXPN", "SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN"})
#: Verbs that need HELO/EHLO first (RFC 5321 4.1.4: a transaction starts after the greeting).
NEEDS_GREETING = frozenset({"MAIL", "RCPT", "DATA", "BDAT", "AUTH"})
#: Verbs of the EHLO reply that never change; SIZE, STARTTLS and AUTH depend on the session.
STATIC_EXTENSIONS = (
    "PIPELINING",  # RFC 2920
    "8BITMIME",  # RFC 6152
    "ENHANCEDSTATUSCODES",  # RFC 2034
    "SMTPUTF8",  # RFC 6531
    "CHUNKING",  # RFC 3030
)
#: The first octet of a header field's line (RFC 5322 2.2: a field starts with its name; a
#: line starting with WSP continues the one before; the blank line ends the section).
FIELD_START = re.compile(rb"^[^ \t\r\n]", re.MULTILINE)


@dataclass(slots=True)
class Envelope:
    """One mail transaction (RFC 5321 3.3): from MAIL to the message's end or RSET."""

    sender: str
    body_8bit: bool = False
    smtputf8: bool = False
    #: accepted local recipients: address -> user
    local: dict[str, str] = field(default_factory=dict)
    #: accepted foreign recipients (authenticated sessions only), for the queue
    relayed: list[str] = field(default_factory=list)
    rcpt_attempts: int = 0
    chunks: list[bytes] = field(default_factory=list)
    chunk_octets: int = 0

    @property
    def recipients(self) -> list[str]:
        return [*self.local, *self.relayed]


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A BDAT command whose chunk is being read; ``error`` is the reply owed after it."""

    command: Bdat
    error: SMTPError | None


class SMTPService:
    """Everything SMTP sessions share: made once per server (see ``new_session``)."""

    def __init__(
        self,
        config: Config,
        *,
        auth: Authenticator,
        delivery: LocalDelivery,
        spool: Spool,
        tls_available: bool,
    ) -> None:
        self.config = config
        self.auth = auth
        self.delivery = delivery
        self.spool = spool
        self.tls_available = tls_available

    def new_session(self, conn: ConnectionInfo, wake: Callable[[], None]) -> SMTPSession:
        """A session for one connection; SMTP never needs ``wake``."""
        return SMTPSession(self, conn)


class SMTPSession(SASLVerbs):
    """One SMTP connection's state machine (RFC 5321 4.1.4 for the command order)."""

    VERBS: ClassVar[Mapping[str, Callable[[SMTPSession, bytes], bytes]]]

    def __init__(self, service: SMTPService, conn: ConnectionInfo) -> None:
        self.service = service
        self.config = service.config
        self.limits = service.config.limits
        self.conn = conn
        self.tls = conn.tls
        self.want_tls = False
        self.closing = False
        self.auth_failures = 0
        self._proto = SMTPProtocol(
            command_line=self.limits.smtp_command_line,
            text_line=self.limits.smtp_text_line,
            message_size=self.limits.message_size,
        )
        self._forget_client()

    def _forget_client(self) -> None:
        """The state right after connect (also after STARTTLS, RFC 3207 4.2)."""
        self.helo: str | None = None
        self.esmtp = False
        self.user: str | None = None
        self.envelope: Envelope | None = None
        self._auth: AuthExchange | None = None
        self._chunk: PendingChunk | None = None

    # ----------------------------------------------------------------- Session contract

    @property
    def idle_timeout(self) -> float:
        """RFC 5321 4.5.3.2.7: at least 5 minutes for the next command."""
        return self.limits.smtp_idle_timeout

    def start(self) -> bytes:
        """The greeting (RFC 5321 4.3.1, 3.1): 220 and our name; no enhanced code."""
        return format_reply(220, f"{self.config.hostname} ESMTP refmail ready")

    def receive_data(self, data: bytes) -> bytes:
        if self.closing or self.want_tls:
            return b""
        self._proto.receive_data(data)
        out: list[bytes] = []
        while not self.closing and not self.want_tls:
            event = self._proto.next_event()
            if event is None:
                break
            out.append(self._handle(event))
        if self.want_tls:
            dropped = self._proto.discard_buffered()
            if dropped:  # CVE-2011-0411: plaintext pipelined after STARTTLS is injection
                log.warning("%s: discarded %d octets after STARTTLS", self.conn.peer_ip, dropped)
        return b"".join(out)

    def tls_started(self) -> bytes:
        """RFC 3207 4.2: forget everything learnt before TLS; the client says EHLO again."""
        self.want_tls = False
        self.tls = True
        self._proto.discard_buffered()
        self._forget_client()
        return b""

    def timed_out(self) -> bytes:
        """RFC 5321 4.5.3.2: a server may close an idle connection, saying 421 first."""
        self.closing = True
        self.envelope = None
        return format_reply(421, f"{self.config.hostname} timeout, closing connection", "4.4.2")

    def shutting_down(self) -> bytes:
        """RFC 5321 3.8: on shutdown the server sends 421 and closes."""
        self.closing = True
        self.envelope = None
        return format_reply(421, f"{self.config.hostname} shutting down", "4.3.2")

    def connection_lost(self) -> None:
        """The client vanished: an unfinished transaction is dropped (RFC 5321 3.8)."""
        if self.envelope is not None:
            log.info("%s: connection lost mid-transaction", self.conn.peer_ip)
        self.closing = True
        self.envelope = None
        self._auth = None

    def pending_output(self) -> bytes:
        return b""

    # ----------------------------------------------------------------- dispatch

    def _handle(self, event: Event) -> bytes:
        """One event to its reply; every error becomes its reply here and only here."""
        try:
            if isinstance(event, Command):
                return self._command(event)
            if isinstance(event, AuthResponse):
                return self._auth_response(event.line)
            if isinstance(event, MessageContent):
                return self._message_received(event)
            if isinstance(event, Chunk):
                return self._chunk_received(event)
            if isinstance(event, CommandTooLong):
                if event.auth:  # RFC 4954 6; the exchange is over
                    self._auth = None
                    raise SMTPError(500, "5.5.6", "authentication exchange line is too long")
                raise SMTPError(500, "5.5.2", "line too long")  # RFC 5321 4.5.3.1.10
            if isinstance(event, BadCommandLine):
                raise SMTPError(500, "5.5.2", f"syntax error: {event.reason}")
            raise TypeError(f"unexpected event {event!r}")
        except SMTPError as exc:
            if exc.code == 421:
                self.closing = True
            return format_reply(exc.code, exc.text, exc.status)
        except Exception:
            log.exception("%s: internal error handling %s", self.conn.peer_ip, type(event).__name__)
            self._auth = None
            if isinstance(event, MessageContent | Chunk):
                self.envelope = None
            return format_reply(451, "local error in processing", "4.3.0")

    def _command(self, command: Command) -> bytes:
        if command.verb == "AUTH":  # RFC 4954 4 / STYLE 14: credentials never reach a log
            log.debug("%s: AUTH %s ...", self.conn.peer_ip, command.arg.split(b" ")[0][:20])
        else:
            log.debug("%s: %s %r", self.conn.peer_ip, command.verb, command.arg[:100])
        handler = self.VERBS.get(command.verb)
        if handler is None:
            if command.verb in NOT_IMPLEMENTED:
                raise SMTPError(502, "5.5.1", f"{command.verb} not implemented")
            raise SMTPError(500, "5.5.2", "command not recognized")
        if command.verb in NEEDS_GREETING and self.helo is None:
            raise SMTPError(503, "5.5.1", "send HELO/EHLO first")
        return handler(self, command.arg)

    # ----------------------------------------------------------------- greeting

    def smtp_HELO(self, arg: bytes) -> bytes:
        """HELO (RFC 5321 4.1.1.1): plain SMTP, no extensions; resets the transaction."""
        self.helo = self._client_name(arg, "HELO")
        self.esmtp = False
        self.envelope = None
        return format_reply(250, f"{self.config.hostname} greets {self.helo}")

    def smtp_EHLO(self, arg: bytes) -> bytes:
        """EHLO (RFC 5321 4.1.1.1): the greeting and the extensions offered (RFC 5321 4.1.4)."""
        self.helo = self._client_name(arg, "EHLO")
        self.esmtp = True
        self.envelope = None
        lines = [f"{self.config.hostname} greets {self.helo}"]
        lines.append(STATIC_EXTENSIONS[0])
        lines.append(f"SIZE {self.limits.message_size}")  # RFC 1870
        lines.extend(STATIC_EXTENSIONS[1:])
        if self._can_starttls():
            lines.append("STARTTLS")  # RFC 3207
        lines.append("AUTH " + " ".join(MECHANISMS))  # RFC 4954
        lines.append("HELP")
        return format_reply(250, lines)

    @staticmethod
    def _client_name(arg: bytes, verb: str) -> str:
        """The HELO/EHLO argument: a domain or address literal (RFC 5321 4.1.1.1)."""
        words = arg.split()
        if not words:
            raise SMTPError(501, "5.5.4", f"syntax: {verb} hostname")
        try:
            return words[0].decode("utf-8")
        except UnicodeDecodeError:
            raise SMTPError(501, "5.5.4", f"syntax: {verb} hostname") from None

    # ----------------------------------------------------------------- transaction

    def smtp_MAIL(self, arg: bytes) -> bytes:
        """MAIL (RFC 5321 4.1.1.2) with SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
        (RFC 6531) and AUTH= (RFC 4954 5) parameters."""
        if self.envelope is not None:
            raise SMTPError(503, "5.5.1", "nested MAIL command")
        if self.conn.service in SUBMISSION_SERVICES and self.user is None:
            raise SMTPError(530, "5.7.0", "authentication required")  # RFC 4954 6
        command = parse_mail_from(arg)
        params = command.params
        if params and not self.esmtp:
            raise SMTPError(555, "5.5.4", "MAIL parameters need EHLO")
        envelope = Envelope(sender="")
        for name, value in params.items():
            if name == "SIZE":
                if value is None or not value.isdigit() or len(value) > 18:
                    raise SMTPError(501, "5.5.4", "syntax: SIZE=octets")
                if int(value) > self.limits.message_size:
                    raise SMTPError(552, "5.3.4", "message size exceeds fixed maximum")
            elif name == "BODY":
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME"):
                    raise SMTPError(501, "5.5.4", "syntax: BODY=7BIT or BODY=8BITMIME")
                envelope.body_8bit = body == "8BITMIME"
            elif name == "SMTPUTF8":
                if value is not None:
                    raise SMTPError(501, "5.5.4", "SMTPUTF8 takes no value")
                envelope.smtputf8 = True
            elif name != "AUTH":  # AUTH=<mailbox> is accepted and ignored (RFC 4954 5)
                raise SMTPError(555, "5.5.4", f"MAIL parameter {name} not supported")
        envelope.sender = self._address(command.path, envelope.smtputf8, "sender")
        self._check_sender(envelope.sender)
        self.envelope = envelope
        return format_reply(250, f"sender <{envelope.sender}> ok", "2.1.0")

    def _check_sender(self, sender: str) -> None:
        """Submission policy (RFC 6409 6.1, see the module docstring): 553 5.7.1 when an
        authenticated user names a sender that is not theirs (RFC 5321 4.1.1.2: 553)."""
        if self.user is None or not sender or not self.config.restrict_senders:
            return
        owner = self.service.delivery.resolve(sender) if "@" in sender else None
        if owner != self.user:
            log.info("%s: user %s refused sender <%s>", self.conn.peer_ip, self.user, sender)
            raise SMTPError(553, "5.7.1", f"<{sender}>: sender address not owned by {self.user}")

    def smtp_RCPT(self, arg: bytes) -> bytes:
        """RCPT (RFC 5321 4.1.1.3); local users, postmaster (4.5.1), relay only when
        authenticated (3.6.2, 7.1), at most ``limits.recipients`` (4.5.3.1.10)."""
        envelope = self.envelope
        if envelope is None:
            raise SMTPError(503, "5.5.1", "need MAIL before RCPT")
        if envelope.chunks:
            raise SMTPError(503, "5.5.1", "RCPT after BDAT")
        command = parse_rcpt_to(arg)
        envelope.rcpt_attempts += 1
        if command.params:
            name = next(iter(command.params))
            raise SMTPError(555, "5.5.4", f"RCPT parameter {name} not supported")
        address = self._address(command.path, envelope.smtputf8, "recipient")
        if address in envelope.local or address in envelope.relayed:
            return format_reply(250, f"recipient <{address}> ok", "2.1.5")
        if len(envelope.local) + len(envelope.relayed) >= self.limits.recipients:
            raise SMTPError(452, "4.5.3", "too many recipients")
        delivery = self.service.delivery
        user = delivery.resolve(address)
        if user is not None:
            envelope.local[address] = user
        elif delivery.is_local_address(address):
            raise SMTPError(550, "5.1.1", f"<{address}>: no such user here")
        elif self.user is None:
            raise SMTPError(550, "5.7.1", f"<{address}>: relay access denied")
        else:
            envelope.relayed.append(address)
        return format_reply(250, f"recipient <{address}> ok", "2.1.5")

    @staticmethod
    def _address(path: bytes, smtputf8: bool, role: str) -> str:
        """Decode a path: ASCII, or UTF-8 when the transaction said SMTPUTF8 (RFC 6531 3.5)."""
        if path.isascii():
            return path.decode("ascii")
        if smtputf8:
            try:
                return path.decode("utf-8")
            except UnicodeDecodeError:
                pass
            raise SMTPError(553, "5.6.7", f"{role} address is not valid UTF-8")
        raise SMTPError(553, "5.6.7", f"non-ASCII {role} address needs SMTPUTF8")

    def _check_recipients(self, envelope: Envelope | None) -> Envelope:
        """DATA/BDAT preconditions (RFC 5321 4.1.1.4, 3.3: 503, or 554 with no valid rcpt)."""
        if envelope is None:
            raise SMTPError(503, "5.5.1", "need MAIL first")
        if not envelope.recipients:
            if envelope.rcpt_attempts:
                raise SMTPError(554, "5.5.1", "no valid recipients")
            raise SMTPError(503, "5.5.1", "need RCPT first")
        return envelope

    def smtp_DATA(self, arg: bytes) -> bytes:
        """DATA (RFC 5321 4.1.1.4): 354, then the content up to CRLF.CRLF."""
        if arg:
            raise SMTPError(501, "5.5.4", "syntax: DATA takes no argument")
        envelope = self._check_recipients(self.envelope)
        if envelope.chunks:
            raise SMTPError(503, "5.5.1", "DATA after BDAT")  # RFC 3030 2
        self._proto.start_data()
        return format_reply(354, "end data with <CR><LF>.<CR><LF>")

    def _message_received(self, event: MessageContent) -> bytes:
        """The end of DATA (RFC 5321 4.1.1.4): the transaction ends whatever the reply."""
        envelope, self.envelope = self._check_recipients(self.envelope), None
        if event.oversize:
            raise SMTPError(552, "5.3.4", "message size exceeds fixed maximum")  # RFC 1870 6.3
        if event.flags & parse.DATA_NUL:
            raise SMTPError(554, "5.6.0", "message contains NUL octets")
        if event.flags & parse.DATA_LONG_LINE:
            raise SMTPError(554, "5.6.0", "message has lines over 1000 octets (RFC 5321)")
        return self._accept(envelope, event.content)

    def smtp_BDAT(self, arg: bytes) -> bytes:
        """BDAT (RFC 3030 2): the chunk is read whatever the reply, then answered."""
        command = parse_bdat(arg)
        error: SMTPError | None = None
        try:
            envelope = self._check_recipients(self.envelope)
            total = envelope.chunk_octets + command.size
            if total > self.limits.message_size:
                raise SMTPError(552, "5.3.4", "message size exceeds fixed maximum")
        except SMTPError as exc:
            error = exc
        self._chunk = PendingChunk(command, error)
        self._proto.start_bdat(command.size, keep=error is None)
        return b""

    def _chunk_received(self, event: Chunk) -> bytes:
        pending, self._chunk = self._chunk, None
        if pending is None:
            raise TypeError("BDAT chunk without a BDAT command")
        if pending.error is not None:
            if pending.error.code == 552:  # the transaction fails (RFC 3030 2)
                self.envelope = None
            raise pending.error
        envelope = self._check_recipients(self.envelope)
        envelope.chunks.append(event.content)
        envelope.chunk_octets += event.size
        if not pending.command.last:
            return format_reply(250, f"{event.size} octets received", "2.0.0")
        self.envelope = None
        content = b"".join(envelope.chunks)
        if b"\0" in content:
            raise SMTPError(554, "5.6.0", "message contains NUL octets")
        return self._accept(envelope, content)

    def _check_header_section(self, content: bytes) -> None:
        """The site's bounds on the header section (see the module docstring): 554 5.6.0."""
        size = parse.header_end(content)
        if size > self.limits.max_header_size:
            raise SMTPError(554, "5.6.0", "message header section is too large")
        starts = len(FIELD_START.findall(content, 0, size))
        if starts > self.limits.max_header_fields:
            raise SMTPError(554, "5.6.0", "message has too many header fields")

    def _accept(self, envelope: Envelope, content: bytes) -> bytes:
        """Deliver local copies, queue foreign ones; 250 only once all are on disk (4.4)."""
        self._check_header_section(content)
        message_id = new_message_id()
        recipients = envelope.recipients
        hidden = self.config.hide_client_ip and self.user is not None
        received = received_header(
            helo=self.helo or "unknown",
            peer_ip=None if hidden else self.conn.peer_ip,
            hostname=self.config.hostname,
            protocol=self._with_protocol(envelope),
            message_id=message_id,
            recipient=recipients[0] if len(recipients) == 1 else None,
        )
        delivered: list[tuple[str, int]] = []
        try:
            if envelope.local:
                delivered = self.service.delivery.deliver(
                    content,
                    envelope.local.values(),
                    return_path=envelope.sender,
                    received=received,
                )
            if envelope.relayed:
                queue_id = self.service.spool.enqueue(
                    envelope.sender, envelope.relayed, received + content
                )
                log.info("%s: %s queued as %s", self.conn.peer_ip, message_id, queue_id)
        except InsufficientStorage:
            log.error("%s: %s: storage full", self.conn.peer_ip, message_id)
            raise SMTPError(452, "4.3.1", "insufficient system storage") from None
        except (StorageError, OSError):
            log.exception("%s: %s: delivery failed", self.conn.peer_ip, message_id)
            raise SMTPError(451, "4.3.0", "local error in processing") from None
        log.info(
            "%s: %s from <%s> to %d recipient(s), %d octets%s",
            self.conn.peer_ip,
            message_id,
            envelope.sender,
            len(recipients),
            len(content),
            "".join(f", delivered to {user} uid {uid}" for user, uid in delivered),
        )
        return format_reply(250, f"OK id={message_id}", "2.0.0")

    def _with_protocol(self, envelope: Envelope) -> str:
        """The Received ``with`` keyword: RFC 3848 (ESMTP[S][A]), RFC 6531 (UTF8SMTP...)."""
        if not self.esmtp:
            return "SMTP"
        base = "UTF8SMTP" if envelope.smtputf8 else "ESMTP"
        return base + ("S" if self.tls else "") + ("A" if self.user else "")

    def smtp_RSET(self, arg: bytes) -> bytes:
        """RSET (RFC 5321 4.1.1.5): abort the transaction, keep the greeting and auth."""
        if arg.strip():
            raise SMTPError(501, "5.5.4", "syntax: RSET takes no argument")
        self.envelope = None
        return format_reply(250, "OK", "2.0.0")

    # ----------------------------------------------------------------- other verbs

    def smtp_NOOP(self, arg: bytes) -> bytes:
        """NOOP (RFC 5321 4.1.1.9): an argument is allowed and ignored."""
        return format_reply(250, "OK", "2.0.0")

    def smtp_QUIT(self, arg: bytes) -> bytes:
        """QUIT (RFC 5321 4.1.1.10): 221, then close; later pipelined bytes are ignored."""
        self.closing = True
        self.envelope = None
        return format_reply(221, f"{self.config.hostname} closing connection", "2.0.0")

    def smtp_VRFY(self, arg: bytes) -> bytes:
        """VRFY (RFC 5321 4.1.1.6, 3.5.3): 252 unless ``config.vrfy`` (7.3: it leaks users)."""
        text = arg.strip().decode("utf-8", "replace").strip("<>")
        if not text:
            raise SMTPError(501, "5.5.4", "syntax: VRFY address")
        if not self.config.vrfy:
            return format_reply(252, "cannot VRFY user, but will accept message", "2.5.0")
        delivery = self.service.delivery
        if "@" in text:
            user = delivery.resolve(text)
        else:
            user = delivery.resolve(f"{text}@{self.config.local_domains[0]}")
        if user is None:
            raise SMTPError(550, "5.1.1", "no such user here")
        return format_reply(250, f"<{user}@{self.config.local_domains[0]}>", "2.1.5")

    def smtp_HELP(self, arg: bytes) -> bytes:
        """HELP (RFC 5321 4.1.1.8): 214 with the commands understood."""
        verbs = " ".join(sorted(self.VERBS))
        return format_reply(214, [f"commands: {verbs}", "see RFC 5321"], "2.0.0")

    def _can_starttls(self) -> bool:
        return self.service.tls_available and not self.tls

    def smtp_STARTTLS(self, arg: bytes) -> bytes:
        """STARTTLS (RFC 3207 4): 220, then the handler upgrades; the pipelined rest of the
        input is discarded (``receive_data``), the session starts over in ``tls_started``."""
        if arg.strip():
            raise SMTPError(501, "5.5.4", "syntax: STARTTLS takes no argument")
        if self.tls:
            raise SMTPError(503, "5.5.1", "TLS already active")
        if not self.service.tls_available:
            raise SMTPError(454, "4.7.0", "TLS not available")
        self.want_tls = True
        self.envelope = None
        return format_reply(220, "ready to start TLS", "2.0.0")


SMTPSession.VERBS = MappingProxyType(
    {
        name[5:]: method
        for klass in reversed(SMTPSession.__mro__)
        for name, method in vars(klass).items()
        if name.startswith("smtp_")
    }
)
