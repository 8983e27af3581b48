"""POP3 wire format, sans-IO: line framing, typed commands, and every reply's bytes.

Nothing here touches a socket, a thread or the store.  ``LineReader`` frames the client's byte
stream into lines with a length limit, ``parse_command`` turns one line into a typed command
(RFC 1939 3, RFC 2449, RFC 2595, RFC 5034, RFC 6856), and ``ok``/``err``/``multiline`` are the
only places a reply is formatted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refmail.errors import POP3Error
from refmail.parse import LineTooLong, dot_stuff, next_line

#: RFC 2449 4: "The maximum length of a command is increased from 47 characters (4 character
#: command, single space, 40 character argument, CRLF) to 255 octets, including the
#: terminating CRLF."  SASL responses are not commands and may be longer (RFC 5034 4).
MAX_COMMAND_LINE = 255
#: RFC 1939 3: keywords are three or four characters long (RFC 2449 keeps that for extensions;
#: RFC 6856's UTF8 shows they may hold digits).
KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,3}\Z")
#: RFC 1939 3: a message-number is a decimal number; we accept no sign and no leading junk.
DECIMAL = re.compile(r"[0-9]+\Z")
#: A message number or line count past this is no real message; keeps int() away from huge
#: digit strings (the 255-octet line already bounds them, this bounds them far below that).
MAX_NUMBER_DIGITS = 18

CRLF = b"\r\n"


# ---------------------------------------------------------------------------- framing


class LineReader:
    """Splits a byte stream into lines of at most ``max_len`` octets (line ending included).

    The buffer remembers where it last searched for LF, so a line dribbled in one byte at a time
    is scanned once (as h11's ReceiveBuffer does).  An over-long line is reported once, as
    ``LineTooLong`` from ``next_line``; the rest of that line is then skipped up to its LF, so
    the session can answer ``-ERR`` and go on with the next command.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._start = 0  # where the next line begins
        self._searched = 0  # no LF in _buf[_start:_searched]
        self._skipping = False  # inside an over-long line: drop up to its LF

    def feed(self, data: bytes) -> None:
        if self._start:
            self._buf = self._buf[self._start :]
            self._searched -= self._start
            self._start = 0
        self._buf += data

    def next_line(self, max_len: int) -> bytes | None:
        """The next complete line (with its line ending), or None until more bytes arrive.

        Raises ``LineTooLong`` once per over-long line, as soon as it is known to be too long.
        """
        if self._skipping:
            end = self._buf.find(b"\n", self._start)
            if end < 0:
                self._start = self._searched = len(self._buf)
                return None
            self._start = self._searched = end + 1
            self._skipping = False
        try:
            end = next_line(self._buf, self._start, self._searched, max_len)
        except LineTooLong:
            self._skipping = True
            self._searched = self._start
            raise
        if end < 0:
            self._searched = len(self._buf)
            return None
        line = self._buf[self._start : end]
        self._start = self._searched = end
        return line

    def discard(self) -> int:
        """Drop everything buffered (RFC 2595 4: nothing sent before TLS may be used after it,
        CVE-2011-0411); returns how many octets were dropped."""
        dropped = len(self._buf) - self._start
        self._buf = b""
        self._start = self._searched = 0
        self._skipping = False
        return dropped

    @property
    def pending(self) -> int:
        """Octets received but not yet returned as a line."""
        return len(self._buf) - self._start


def strip_line_ending(line: bytes) -> bytes:
    """The line without its CRLF (or a bare LF, which RFC 1939 clients sometimes send)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Simple:
    """A command without arguments: STAT, NOOP, RSET, QUIT, CAPA, STLS, UTF8."""

    verb: str


@dataclass(frozen=True, slots=True)
class User:
    """USER name (RFC 1939 7)."""

    name: str
    verb: str = "USER"


@dataclass(frozen=True, slots=True)
class Pass:
    """PASS string (RFC 1939 7); the whole rest of the line, spaces included."""

    password: str
    verb: str = "PASS"

    def __repr__(self) -> str:  # never let a password reach a log through repr()
        return "Pass(password=<redacted>)"


@dataclass(frozen=True, slots=True)
class Apop:
    """APOP name digest (RFC 1939 7); recognised so it can be refused with a reason."""

    name: str
    digest: str
    verb: str = "APOP"


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH [mechanism [initial-response]] (RFC 5034 4); no mechanism lists them (RFC 1734)."""

    mechanism: str | None
    initial_response: str | None
    verb: str = "AUTH"

    def __repr__(self) -> str:
        shown = None if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


@dataclass(frozen=True, slots=True)
class MessageCommand:
    """RETR msg or DELE msg (RFC 1939 5); ``msg`` is the 1-based message-number."""

    verb: str
    msg: int


@dataclass(frozen=True, slots=True)
class ScanCommand:
    """LIST [msg] or UIDL [msg] (RFC 1939 5, 7); ``msg`` None means every message."""

    verb: str
    msg: int | None


@dataclass(frozen=True, slots=True)
class Top:
    """TOP msg n (RFC 1939 7): the header and the first ``lines`` lines of the body."""

    msg: int
    lines: int
    verb: str = "TOP"


Command = Simple | User | Pass | Apop | Auth | MessageCommand | ScanCommand | Top


def _number(text: str, what: str) -> int:
    """A non-negative decimal (RFC 1939 3), else ``-ERR`` naming what was expected."""
    if not DECIMAL.match(text):
        raise POP3Error(f"invalid {what} {text!a}: expected a decimal number")
    if len(text.lstrip("0")) > MAX_NUMBER_DIGITS:
        raise POP3Error(f"{what} {text[:20]!a}... is out of range")
    return int(text)


def _arguments(verb: str, args: list[str], least: int, most: int) -> list[str]:
    if len(args) < least:
        needed = "an argument" if least == 1 else f"{least} arguments"
        raise POP3Error(f"{verb} needs {needed}")
    if len(args) > most:
        allowed = "no arguments" if most == 0 else f"at most {most} argument(s)"
        raise POP3Error(f"{verb} takes {allowed}")
    return args


#: Verbs without arguments.  UTF8 is RFC 6856 3.1, STLS RFC 2595 4, CAPA RFC 2449 5.
SIMPLE_VERBS = frozenset({"STAT", "NOOP", "RSET", "QUIT", "CAPA", "STLS", "UTF8"})
#: Every verb the grammar knows; anything else is an unknown command.
KNOWN_VERBS = SIMPLE_VERBS | {"USER", "PASS", "APOP", "AUTH", "RETR", "DELE", "LIST", "UIDL", "TOP"}


def split_command(line: bytes, *, utf8: bool = False) -> tuple[str, str]:
    """One command line (line ending included or not) -> (VERB, rest) (RFC 1939 3).

    "Keywords and arguments consist of printable ASCII characters.  Keywords and arguments are
    each separated by a single SPACE character."  After UTF8 (RFC 6856 3.1) arguments may hold
    UTF-8.  Raises ``POP3Error`` for an empty line, control characters or an unknown keyword.
    """
    raw = strip_line_ending(line)
    if not raw:
        raise POP3Error("empty command")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise POP3Error("command line is not UTF-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise POP3Error("control characters in command line")
    keyword, _, rest = text.partition(" ")
    verb = keyword.upper()
    if not KEYWORD.match(keyword) or verb not in KNOWN_VERBS:
        raise POP3Error(f"unknown command {keyword[:20]!a}")
    # Passwords are UTF-8 in practice whatever the client announced; other arguments are
    # ASCII until UTF8 (RFC 6856 3.1).
    if not (utf8 or verb == "PASS" or text.isascii()):
        raise POP3Error("non-ASCII argument: send UTF8 first")
    return verb, rest


def parse_arguments(verb: str, rest: str) -> Command:
    """A known verb and the rest of its line -> a typed command (RFC 1939 5-7, RFC 5034 4).

    Runs of spaces between arguments are accepted (clients in the wild send them).  Raises
    ``POP3Error`` naming the fault: missing, extra or non-numeric arguments.
    """
    if verb == "PASS":  # RFC 1939 7: "a server may treat spaces in the argument as part of
        if not rest:  # the password, instead of as argument separators"
            raise POP3Error("PASS needs an argument")
        return Pass(rest)
    args = rest.split(" ")
    args = [a for a in args if a]
    if verb in SIMPLE_VERBS:
        _arguments(verb, args, 0, 0)
        return Simple(verb)
    if verb == "USER":
        (name,) = _arguments(verb, args, 1, 1)
        return User(name)
    if verb == "APOP":
        name, digest = _arguments(verb, args, 2, 2)
        return Apop(name, digest)
    if verb == "AUTH":
        args = _arguments(verb, args, 0, 2)
        mechanism = args[0].upper() if args else None
        return Auth(mechanism, args[1] if len(args) == 2 else None)
    if verb in ("RETR", "DELE"):
        (msg,) = _arguments(verb, args, 1, 1)
        return MessageCommand(verb, _number(msg, "message number"))
    if verb in ("LIST", "UIDL"):
        args = _arguments(verb, args, 0, 1)
        return ScanCommand(verb, _number(args[0], "message number") if args else None)
    if verb == "TOP":
        msg, count = _arguments(verb, args, 2, 2)
        return Top(_number(msg, "message number"), _number(count, "line count"))
    raise POP3Error(f"unknown command {verb}")


def parse_command(line: bytes, *, utf8: bool = False) -> Command:
    """``split_command`` then ``parse_arguments``: one line -> a typed command."""
    return parse_arguments(*split_command(line, utf8=utf8))


# ---------------------------------------------------------------------------- replies


def ok(text: str = "") -> bytes:
    """``+OK text`` (RFC 1939 3: "+OK" and "-ERR" in upper case, then optional text)."""
    return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"


def err(text: str, code: str | None = None) -> bytes:
    """``-ERR [CODE] text`` (RFC 2449 8: the response code in brackets right after -ERR)."""
    prefix = f"[{code}] " if code else ""
    return f"-ERR {prefix}{text}\r\n".encode()


def continuation(challenge: bytes = b"") -> bytes:
    """``+ challenge`` (RFC 5034 4: a server challenge, base64, after "+" and a space)."""
    return b"+ " + challenge + CRLF


def multiline(text: str, body: bytes) -> bytes:
    """``+OK text``, then ``body`` dot-stuffed, then ``.`` (RFC 1939 3).

    ``body`` is CRLF text; a final line without its CRLF gets one, since "the final line [is]
    terminated by a CRLF pair" before the termination octet.
    """
    if body and not body.endswith(CRLF):
        body += CRLF
    return ok(text) + dot_stuff(body) + b".\r\n"


def lines(items: list[str]) -> bytes:
    """Lines of a multi-line listing (LIST, UIDL, CAPA) as CRLF text."""
    return "".join(f"{item}\r\n" for item in items).encode("utf-8")
