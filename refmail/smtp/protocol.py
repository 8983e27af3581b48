"""SMTP framing and grammar, sans-IO (h11 style): bytes in -> typed events; replies -> bytes.

``SMTPProtocol`` knows three ways of reading the stream and nothing else: command lines
(RFC 5321 4.1.1, 512 octets, bare LF accepted as a line ending), DATA content (RFC 5321
4.1.1.4, dot-unstuffed, 1000-octet text lines, only CRLF.CRLF ends it) and BDAT chunks by
octet count (RFC 3030 2).  The session tells it which one comes next; it never sees a socket,
a thread or the mail store.  Reply text is formatted here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from refmail import parse
from refmail.errors import SMTPError

#: RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
#: RFC 5321 4.5.3.1.6: a text line of DATA is at most 1000 octets including CRLF.
MAX_TEXT_LINE = 1000
#: RFC 4954 4: AUTH command lines and SASL responses may be up to 12288 octets.
MAX_AUTH_LINE = 12288
#: RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF.
MAX_REPLY_LINE = 512


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Command:
    """One command line (RFC 5321 4.1.1): the upper-cased verb and its raw argument."""

    verb: str
    arg: bytes


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A SASL response line after a ``334`` challenge (RFC 4954 4), line ending removed."""

    line: bytes


@dataclass(frozen=True, slots=True)
class CommandTooLong:
    """A command line over the limit (RFC 5321 4.5.3.1.4), or a SASL response line over
    RFC 4954's (``auth``); the line has been discarded."""

    limit: int
    auth: bool = False


@dataclass(frozen=True, slots=True)
class BadCommandLine:
    """A command line that is not ``verb [SP argument]``: empty, NUL bytes, not letters."""

    reason: str


@dataclass(frozen=True, slots=True)
class MessageContent:
    """DATA ended with CRLF.CRLF (RFC 5321 4.1.1.4).

    ``content`` is the unstuffed message with CRLF line endings, or ``b""`` when it grew past
    the size limit (``oversize``; ``size`` still counts every octet).  ``flags`` ORs the
    ``parse.DATA_*`` flags: 8-bit octets, NUL, over-long lines, bare LF.
    """

    content: bytes
    size: int
    flags: int
    oversize: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """A BDAT chunk (RFC 3030 2) read by octet count; ``content`` is ``b""`` when discarded."""

    content: bytes
    size: int
    kept: bool


Event = Command | AuthResponse | CommandTooLong | BadCommandLine | MessageContent | Chunk


# ---------------------------------------------------------------------------- typed commands


@dataclass(frozen=True, slots=True)
class MailFrom:
    """``MAIL FROM:<reverse-path> [params]`` (RFC 5321 4.1.1.2); ``path`` is ``b""`` for ``<>``."""

    path: bytes
    params: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RcptTo:
    """``RCPT TO:<forward-path> [params]`` (RFC 5321 4.1.1.3)."""

    path: bytes
    params: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bdat:
    """``BDAT chunk-size [LAST]`` (RFC 3030 2)."""

    size: int
    last: bool


def _params(raw: list[tuple[bytes, bytes | None]]) -> Mapping[str, str | None]:
    """esmtp-keyword[=esmtp-value] (RFC 5321 4.1.2); values are printable ASCII."""
    params: dict[str, str | None] = {}
    for key, value in raw:
        try:
            name = key.decode("ascii").upper()
            text = None if value is None else value.decode("ascii")
        except UnicodeDecodeError:
            raise SMTPError(501, "5.5.4", "invalid parameter syntax") from None
        if name in params:
            raise SMTPError(501, "5.5.4", f"duplicate parameter {name}")
        params[name] = text
    return MappingProxyType(params)


def parse_mail_from(arg: bytes) -> MailFrom:
    """MAIL arguments (RFC 5321 4.1.1.2, grammar 4.1.2); 501 5.5.4 on bad syntax."""
    try:
        path, raw = parse.parse_smtp_path(arg, b"FROM")
    except parse.ParseError as exc:
        raise SMTPError(501, "5.5.4", f"syntax: MAIL FROM:<address> ({exc})") from None
    return MailFrom(path, _params(raw))


def parse_rcpt_to(arg: bytes) -> RcptTo:
    """RCPT arguments (RFC 5321 4.1.1.3); ``<Postmaster>`` without a domain is allowed (the
    core's path grammar returns it as sent; delivery compares it case-insensitively)."""
    try:
        path, raw = parse.parse_smtp_path(arg, b"TO")
    except parse.ParseError as exc:
        raise SMTPError(501, "5.5.4", f"syntax: RCPT TO:<address> ({exc})") from None
    if not path:
        raise SMTPError(501, "5.5.4", "syntax: RCPT TO:<address> (empty forward path)")
    return RcptTo(path, _params(raw))


def parse_bdat(arg: bytes) -> Bdat:
    """``BDAT`` arguments: chunk-size is 1*DIGIT, then optional ``LAST`` (RFC 3030 2)."""
    words = arg.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or len(words[0]) > 18:
        raise SMTPError(501, "5.5.4", "syntax: BDAT chunk-size [LAST]")
    if len(words) == 2 and words[1].upper() != b"LAST":
        raise SMTPError(501, "5.5.4", "syntax: BDAT chunk-size [LAST]")
    return Bdat(int(words[0]), len(words) == 2)


# ---------------------------------------------------------------------------- replies


def format_reply(code: int, text: str | Iterable[str], status: str | None = None) -> bytes:
    """One reply (RFC 5321 4.2): ``code-text`` lines then ``code SP text``, each CRLF.

    ``status`` is the RFC 3463 enhanced status code, put on every line as RFC 2034 3
    requires; it is left out of the greeting, of EHLO/HELO replies and of 3xx replies.
    CR, LF and other control characters in the text are replaced so no reply can be split.
    """
    lines = [text] if isinstance(text, str) else list(text)
    if not lines:
        lines = [""]
    prefix = f"{status} " if status else ""
    out = []
    for i, line in enumerate(lines):
        clean = line if line.isprintable() else "".join(c if c.isprintable() else "?" for c in line)
        sep = " " if i == len(lines) - 1 else "-"
        rendered = f"{code}{sep}{prefix}{clean}".rstrip(" ")
        if len(rendered) + 2 > MAX_REPLY_LINE:
            rendered = rendered[: MAX_REPLY_LINE - 2]
        out.append(rendered + "\r\n")
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------------------- framing


class Mode(Enum):
    COMMAND = "command"
    AUTH = "auth"
    DATA = "data"
    BDAT = "bdat"


class SMTPProtocol:
    """The receiving side's framing: ``receive_data(chunk)``, then ``next_event()`` until None.

    Events come one at a time and the reader does not look past the current one, so a session
    that changes the mode (``start_data``, ``start_bdat``, ``expect_auth_response``) before
    asking for the next event gets the pipelined bytes read the right way (RFC 2920 3).
    """

    def __init__(
        self,
        *,
        command_line: int = MAX_COMMAND_LINE,
        text_line: int = MAX_TEXT_LINE,
        message_size: int,
    ) -> None:
        self.command_line = command_line
        self.text_line = text_line
        self.message_size = message_size
        self._buf = b""
        self._pos = 0  # where the unread input begins
        self._search = 0  # where the last search for LF stopped (no rescans of dribbles)
        self._skipping = False  # discarding the rest of an over-long command line
        self.mode = Mode.COMMAND
        # DATA / BDAT progress
        self._parts: list[bytes] = []
        self._size = 0
        self._flags = 0
        self._data_state = 0
        self._oversize = False
        self._remaining = 0
        self._keep = False

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the client; nothing is parsed until ``next_event``."""
        if self._pos:
            self._buf = self._buf[self._pos :]
            self._search = max(0, self._search - self._pos)
            self._pos = 0
        self._buf += data

    def discard_buffered(self) -> int:
        """Drop every unread byte (STARTTLS, RFC 3207 and CVE-2011-0411); returns the count."""
        dropped = len(self._buf) - self._pos
        self._buf, self._pos, self._search = b"", 0, 0
        self._skipping = False
        return dropped

    @property
    def buffered(self) -> int:
        """Unread bytes held."""
        return len(self._buf) - self._pos

    # ----------------------------------------------------------------- modes

    def start_data(self) -> None:
        """After ``354``: read message content up to CRLF.CRLF (RFC 5321 4.1.1.4)."""
        self.mode = Mode.DATA
        self._parts, self._size, self._flags, self._oversize = [], 0, 0, False
        self._data_state = parse.DATA_INITIAL

    def start_bdat(self, size: int, *, keep: bool) -> None:
        """After a ``BDAT size`` command: read exactly ``size`` octets (RFC 3030 2).

        ``keep=False`` reads and discards them: the server must consume a chunk even when it
        rejects it, or the chunk would be read as commands.
        """
        self.mode = Mode.BDAT
        self._parts, self._size, self._remaining, self._keep = [], size, size, keep

    def expect_auth_response(self) -> None:
        """After a ``334`` challenge: the next line is a SASL response (RFC 4954 4)."""
        self.mode = Mode.AUTH

    # ----------------------------------------------------------------- events

    def next_event(self) -> Event | None:
        """The next complete event, or None until more bytes arrive."""
        if self.mode is Mode.DATA:
            return self._next_data()
        if self.mode is Mode.BDAT:
            return self._next_chunk()
        return self._next_line()

    def _next_line(self) -> Event | None:
        if self._skipping and not self._skip_rest_of_line():
            return None
        # Read up to the AUTH limit, then hold every other verb to the command limit.
        try:
            end = parse.next_line(self._buf, self._pos, max(self._search, self._pos), MAX_AUTH_LINE)
        except parse.LineTooLong:
            self._skipping = True
            self._skip_rest_of_line()
            return self._too_long()
        if end < 0:
            self._search = len(self._buf)
            return None
        line = self._buf[self._pos : end]
        self._pos = self._search = end
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND
            return AuthResponse(line.rstrip(b"\r\n"))
        if len(line) > self.command_line and line[:5].upper() not in (b"AUTH ", b"AUTH\r"):
            return self._too_long()
        try:
            verb, arg = parse.parse_smtp_command(line)
        except parse.ParseError as exc:
            return BadCommandLine(str(exc) or "syntax error")
        return Command(verb.decode("ascii"), arg)

    def _too_long(self) -> Event:
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND
            return CommandTooLong(MAX_AUTH_LINE, auth=True)
        return CommandTooLong(self.command_line)

    def _skip_rest_of_line(self) -> bool:
        """Discard through the next LF; True when found (reading resumes after it)."""
        lf = self._buf.find(b"\n", self._pos)
        if lf < 0:
            self._buf, self._pos, self._search = b"", 0, 0
            return False
        self._pos = self._search = lf + 1
        self._skipping = False
        return True

    def _next_data(self) -> Event | None:
        while True:
            buf = self._buf[self._pos :] if self._pos else self._buf
            out, consumed, done, self._data_state, flags = parse.read_data(
                buf, self._data_state, self.text_line
            )
            self._pos += consumed
            self._search = self._pos
            self._flags |= flags
            self._size += len(out)
            if not self._oversize:
                if self._size > self.message_size:
                    self._oversize = True
                    self._parts = []  # RFC 1870 6: keep reading, stop keeping
                elif out:
                    self._parts.append(out)
            # read_data passes on one max-line piece of an over-long line per call: go on
            # until what is left is shorter, or an endless line would grow the buffer.
            if done or not consumed or len(buf) - consumed <= self.text_line:
                break
        if not done:
            return None
        self.mode = Mode.COMMAND
        content = b"".join(self._parts)
        self._parts = []
        return MessageContent(content, self._size, self._flags, self._oversize)

    def _next_chunk(self) -> Event | None:
        available = len(self._buf) - self._pos
        take = min(available, self._remaining)
        if take:
            if self._keep:
                self._parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            self._search = self._pos
            self._remaining -= take
        if self._remaining:
            return None
        self.mode = Mode.COMMAND
        content = b"".join(self._parts)
        self._parts = []
        return Chunk(content, self._size, self._keep)
