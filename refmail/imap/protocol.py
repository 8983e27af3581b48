"""IMAP4rev1 framing and grammar, sans-IO (RFC 3501 section 9, RFC 7888 LITERAL+).

``IMAPProtocol`` turns the bytes a client sends into events: a whole ``Command`` (every line
and literal of it), a ``RawLine`` when the session asked for one (AUTHENTICATE responses, IDLE's
``DONE``), a ``LiteralRequest`` the session must answer before a literal is read, or a
``Malformed`` input report.  It never sees a socket; the session writes what it decides.

Below the machine: the tokens (atoms, quoted strings, literals, parenthesized lists,
``BODY[...]<...>`` fetch attributes; the byte-level work is the parsing core's
``imap_tokenize``) and the response formatters (all replies are made here).
The argument grammar (sequence sets, dates, the ``Arguments`` cursor) is ``arguments.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refmail.parse import (
    IMAP_ATOM,
    IMAP_LIST,
    IMAP_LITERAL,
    ParseError,
    imap_literal_at_end,
    imap_tokenize,
)

#: RFC 3501 9 leaves list nesting unbounded; SEARCH's ``OR (..) (..)`` and BODY[HEADER.FIELDS
#: (..)] need a handful.  Deeper input is an attack on the recursive consumers, so it is BAD.
MAX_NESTING_DEPTH = 32
#: A literal's size is read as at most this many digits: 2**32 has 10 (RFC 3501 9, "number"),
#: so anything longer is too big without converting it.
MAX_LITERAL_DIGITS = 10
#: Bytes of a discarded line kept to recognize a ``{n+}`` at its end: "{" 10 digits "+}".
_LITERAL_TAIL = MAX_LITERAL_DIGITS + 3
#: Verbs that take a fetch attribute whose section (``BODY[HEADER.FIELDS (A B)]``) holds spaces
#: (the parsing core's ``imap_tokenize`` knows them; kept here for the session's reference).
SECTION_ATTS = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})

#: RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">.
_TAG = re.compile(r"[!#$&',\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~]+\Z")
_VERB = re.compile(r"[A-Za-z]+\Z")


# ------------------------------------------------------------------------------ tokens


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom as sent (case kept): ``FLAGS``, ``\\Seen``, ``1:*``, ``BODY[TEXT]<0.10>``."""

    value: str


@dataclass(frozen=True, slots=True)
class String:
    """A quoted string (unescaped) or a literal's octets (RFC 3501 4.3)."""

    value: bytes
    literal: bool = False


@dataclass(frozen=True, slots=True)
class ParenList:
    """A parenthesized list (RFC 3501 4.4)."""

    items: tuple[Token, ...]


Token = Atom | String | ParenList


# ------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class Command:
    """One complete client command (RFC 3501 2.2.1).  ``name`` is upper-case; after ``UID``
    the real verb is ``name`` and ``uid`` is True (RFC 3501 6.4.8)."""

    tag: str
    name: str
    args: tuple[Token, ...]
    uid: bool = False


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line the session asked for with ``expect_line`` (RFC 3501 6.2.2, RFC 2177 3)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LiteralRequest:
    """A line ended in ``{size}`` or ``{size+}``: the session must call ``accept_literal`` (and
    send ``+`` when ``synchronizing``, RFC 3501 7.5) or ``reject_literal`` (and reply NO)."""

    tag: str
    name: str
    size: int
    synchronizing: bool


@dataclass(frozen=True, slots=True)
class Malformed:
    """Input that is not a command: reply ``BAD`` (tagged when ``tag`` is known) and go on,
    or close after the reply when ``close`` is set."""

    tag: str | None
    text: str
    code: str | None = None
    close: bool = False
    kind: str = "BAD"


Event = Command | RawLine | LiteralRequest | Malformed


# ------------------------------------------------------------------------------ machine

_LINE, _LITERAL, _DECIDE, _SKIP_LITERAL, _DISCARD_LINE, _RAW_LINE, _CLOSED = range(7)


class IMAPProtocol:
    """Bytes in, events out (the h11 model).  Call ``receive_data`` with what was read, then
    ``next_event`` until it returns None (more data needed)."""

    def __init__(self, *, max_line: int, max_literal: int) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self._buf = bytearray()
        self._scan_from = 0  # where the last search for LF stopped
        self._mode = _LINE
        self._parts: list[bytes] = []  # text, literal, text, ... of the command being read
        self._text_size = 0
        self._literal_total = 0
        self._pending_literal = 0
        self._pending_sync = False

    # -- input

    def receive_data(self, data: bytes) -> None:
        if self._mode != _CLOSED:
            self._buf += data

    def discard_buffer(self) -> None:
        """Forget bytes read but not yet parsed: after STARTTLS nothing sent in plaintext may
        be taken as sent over TLS (RFC 3501 6.2.1, CVE-2011-0411)."""
        self._buf.clear()
        self._scan_from = 0

    def expect_line(self) -> None:
        """The next line is a continuation (an AUTHENTICATE response, IDLE's DONE), not a
        command: it comes back as ``RawLine``."""
        self._mode = _RAW_LINE

    def close(self) -> None:
        self._mode = _CLOSED
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # -- the session's answer to a LiteralRequest

    def accept_literal(self) -> None:
        assert self._mode == _DECIDE
        self._mode = _LITERAL

    def reject_literal(self) -> None:
        """Drop the command; a non-synchronizing literal is already on its way, so its bytes
        and the rest of its command are read and discarded (RFC 7888 4)."""
        assert self._mode == _DECIDE
        self._reset_command()
        self._mode = _SKIP_LITERAL if not self._pending_sync else _LINE

    # -- output

    def next_event(self) -> Event | None:
        while True:
            mode = self._mode
            if mode in (_CLOSED, _DECIDE):
                return None
            if mode in (_LITERAL, _SKIP_LITERAL):
                if len(self._buf) < self._pending_literal:
                    return None
                n = self._pending_literal
                literal = bytes(self._buf[:n])
                del self._buf[:n]
                self._scan_from = 0
                if mode == _LITERAL:
                    self._parts.append(literal)
                    self._mode = _LINE
                else:
                    self._mode = _DISCARD_LINE
                continue
            if self._line_too_long():
                return self._too_long()
            line = self._take_line()
            if line is None:
                if mode == _DISCARD_LINE:  # keep only what could be a "{n+}" at its end
                    del self._buf[:-_LITERAL_TAIL]
                    self._scan_from = len(self._buf)
                elif len(self._buf) > self.max_line:  # an endless continuation line
                    return self._too_long()
                return None
            if mode == _DISCARD_LINE:
                marker = imap_literal_at_end(line, MAX_LITERAL_DIGITS)
                if marker is not None and marker[1] and 0 <= marker[0] <= self.max_literal:
                    self._pending_literal = marker[0]
                    self._mode = _SKIP_LITERAL
                    continue
                self._mode = _LINE
                continue
            if mode == _RAW_LINE:
                self._mode = _LINE
                return RawLine(line)
            event = self._command_line(line)
            if event is not None:
                return event

    def _take_line(self) -> bytes | None:
        """The next line without its CRLF (or bare LF); None when no LF has arrived yet."""
        end = self._buf.find(b"\n", self._scan_from)
        if end < 0:
            self._scan_from = len(self._buf)
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        self._scan_from = 0
        return line[:-1] if line.endswith(b"\r") else line

    def _line_too_long(self) -> bool:
        """RFC 3501 leaves the line length open; ``max_line`` bounds it (incl. CRLF)."""
        if self._mode == _DISCARD_LINE:
            return False
        end = self._buf.find(b"\n", self._scan_from)
        limit = self.max_line - self._text_size
        return end + 1 > limit if end >= 0 else len(self._buf) > limit

    def _too_long(self) -> Malformed:
        """Answer now, then throw the rest of the line away as it arrives."""
        tag = self._first_tag() or _guess_tag(bytes(self._buf[:64]))
        self._reset_command()
        self._mode = _DISCARD_LINE
        return Malformed(tag, "command line too long", "TOOBIG")

    def _first_tag(self) -> str | None:
        return _guess_tag(self._parts[0][:64]) if self._parts else None

    def _reset_command(self) -> None:
        self._parts = []
        self._text_size = 0
        self._literal_total = 0

    def _command_line(self, line: bytes) -> Event | None:
        self._text_size += len(line) + 2
        self._parts.append(line)
        marker = imap_literal_at_end(line, MAX_LITERAL_DIGITS)
        if marker is None:
            parts = self._parts
            self._reset_command()
            if not parts[0] and len(parts) == 1:
                return None  # RFC 3501 has no empty command; an empty line is ignored
            return parse_command(parts)
        size, plus = marker
        tag, name = _guess_tag_and_name(self._parts[0])
        if size < 0:  # more digits than any allowed size has
            size = self.max_literal + 1
        if size + self._literal_total > self.max_literal:
            self._reset_command()
            if plus:  # the octets are already coming and could be taken for commands
                self._mode = _CLOSED
                self._buf.clear()
                return Malformed(tag, "literal too big", "TOOBIG", close=True)
            return Malformed(tag, "literal too big", "TOOBIG", kind="NO")
        self._literal_total += size
        self._pending_literal = size
        self._pending_sync = not plus
        self._mode = _DECIDE
        return LiteralRequest(tag or "*", name, size, synchronizing=not plus)


def _guess_tag(data: bytes) -> str | None:
    word = data.split(b" ", 1)[0].decode("ascii", "replace")
    return word if _TAG.match(word) and "+" not in word else None


def _guess_tag_and_name(line: bytes) -> tuple[str | None, str]:
    words = line.split(b" ", 3)
    tag = _guess_tag(line)
    name = words[1].decode("ascii", "replace").upper() if len(words) > 1 else ""
    if name == "UID" and len(words) > 2:
        name = words[2].decode("ascii", "replace").upper()
    return tag, name


# ------------------------------------------------------------------------------ tokenizer


def parse_command(parts: list[bytes]) -> Command | Malformed:
    """``parts`` alternates command text and literal octets: text, literal, text, ...
    (RFC 3501 9, "command").  Returns the Command, or Malformed with the reason."""
    tag = _guess_tag(parts[0][:64])
    try:
        tokens = _tokens(imap_tokenize(parts, MAX_NESTING_DEPTH))
    except ParseError as exc:
        return Malformed(tag, str(exc))
    if not tokens or not isinstance(tokens[0], Atom) or not _TAG.match(tokens[0].value):
        return Malformed(None, "invalid tag")
    tag = tokens[0].value
    if "+" in tag:
        return Malformed(None, "invalid tag")
    if len(tokens) < 2 or not isinstance(tokens[1], Atom) or not _VERB.match(tokens[1].value):
        return Malformed(tag, "missing or invalid command name")
    name = tokens[1].value.upper()
    args = tuple(tokens[2:])
    if name == "UID":
        if not args or not isinstance(args[0], Atom) or not _VERB.match(args[0].value):
            return Malformed(tag, "UID needs a command")
        return Command(tag, args[0].value.upper(), args[1:], uid=True)
    return Command(tag, name, args)


def _tokens(raw: list[tuple[int, object]]) -> list[Token]:
    """The core's ``(kind, value)`` pairs -> Atom, String and ParenList."""
    out: list[Token] = []
    append = out.append
    for kind, value in raw:
        if kind == IMAP_ATOM:
            append(Atom(value.decode("ascii")))  # type: ignore[attr-defined]
        elif kind == IMAP_LIST:
            append(ParenList(tuple(_tokens(value))))  # type: ignore[arg-type]
        else:
            append(String(value, kind == IMAP_LITERAL))  # type: ignore[arg-type]
    return out


# ------------------------------------------------------------------------------ responses


def untagged(text: str | bytes) -> bytes:
    """``* text`` (RFC 3501 7); ``text`` may hold literals already framed."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return b"* " + data + b"\r\n"


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` (RFC 3501 7.1)."""
    assert status in ("OK", "NO", "BAD")
    code_part = f"[{code}] " if code else ""
    return f"{tag} {status} {code_part}{_one_line(text)}\r\n".encode()


def status_response(status: str, text: str, code: str | None = None) -> bytes:
    """Untagged ``* OK|NO|BAD|BYE|PREAUTH [code] text`` (RFC 3501 7.1)."""
    code_part = f"[{code}] " if code else ""
    return f"* {status} {code_part}{_one_line(text)}\r\n".encode()


def continuation(text: str = "") -> bytes:
    """``+ text`` (RFC 3501 7.5); RFC 3501 9 allows ``+`` followed by a space and base64."""
    return f"+ {_one_line(text)}\r\n".encode()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")
