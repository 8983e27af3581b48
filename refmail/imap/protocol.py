"""IMAP4rev1 framing and grammar, sans-IO (RFC 3501 section 9, RFC 7888 LITERAL+).

``IMAPProtocol`` turns the bytes a client sends into events: a whole ``Command`` (every line
and literal of it), a ``RawLine`` when the session asked for one (AUTHENTICATE responses, IDLE's
``DONE``), a ``LiteralRequest`` the session must answer before a literal is read, or a
``Malformed`` input report.  It never sees a socket; the session writes what it decides.

Below the machine: the tokenizer (atoms, quoted strings, literals, parenthesized lists,
``BODY[...]<...>`` fetch attributes) and the response formatters (all replies are made here).
The argument grammar (sequence sets, dates, the ``Arguments`` cursor) is ``arguments.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refmail.errors import IMAPError

#: RFC 3501 9 leaves list nesting unbounded; SEARCH's ``OR (..) (..)`` and BODY[HEADER.FIELDS
#: (..)] need a handful.  Deeper input is an attack on the recursive consumers, so it is BAD.
MAX_NESTING_DEPTH = 32
#: A literal's size is read as at most this many digits: 2**32 has 10 (RFC 3501 9, "number"),
#: so anything longer is too big without converting it.
MAX_LITERAL_DIGITS = 10
#: Bytes of a discarded line kept to recognize a ``{n+}`` at its end: "{" 10 digits "+}".
_LITERAL_TAIL = MAX_LITERAL_DIGITS + 3
#: Verbs that take a fetch attribute whose section (``BODY[HEADER.FIELDS (A B)]``) holds spaces.
SECTION_ATTS = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})

_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\Z")
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
                match = _LITERAL_AT_END.search(line)
                if match and match.group(2) and len(match.group(1)) <= MAX_LITERAL_DIGITS:
                    size = int(match.group(1))
                    if size <= self.max_literal:
                        self._pending_literal = size
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
        match = _LITERAL_AT_END.search(line)
        if match is None:
            parts = self._parts
            self._reset_command()
            if not parts[0] and len(parts) == 1:
                return None  # RFC 3501 has no empty command; an empty line is ignored
            return parse_command(parts)
        digits, plus = match.group(1), match.group(2)
        tag, name = _guess_tag_and_name(self._parts[0])
        size = int(digits) if len(digits) <= MAX_LITERAL_DIGITS else self.max_literal + 1
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
        tokens = _Tokenizer(parts).tokens()
    except IMAPError as exc:
        return Malformed(tag, exc.text)
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


class _Tokenizer:
    """RFC 3501 9 lexical rules over the text parts and the literals between them."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.index = 0  # which text part
        self.text = parts[0]
        self.pos = 0

    def fail(self, reason: str) -> IMAPError:
        return IMAPError("BAD", reason)

    def tokens(self) -> list[Token]:
        items = self._sequence(depth=0)
        if self.pos < len(self.text) or self.index < len(self.parts) - 1:
            raise self.fail("unexpected ')'")
        return items

    def _sequence(self, depth: int) -> list[Token]:
        items: list[Token] = []
        first = True
        while True:
            text = self.text
            if self.pos >= len(text):
                if self.index < len(self.parts) - 1:
                    raise self.fail("literal not at the end of a line")
                return items
            if text[self.pos] == 0x29:  # ')'
                if depth == 0:
                    raise self.fail("unexpected ')'")
                return items
            if not first:
                if text[self.pos] != 0x20:
                    raise self.fail("expected a space between arguments")
                while self.pos < len(text) and text[self.pos] == 0x20:
                    self.pos += 1  # tolerate doubled spaces, as most servers do
                if self.pos >= len(text) or text[self.pos] == 0x29:
                    continue  # tolerate a trailing space
            first = False
            items.append(self._token(depth))

    def _token(self, depth: int) -> Token:
        text, pos = self.text, self.pos
        c = text[pos]
        if c == 0x28:  # '('
            if depth + 1 > MAX_NESTING_DEPTH:
                raise self.fail("lists nested too deeply")
            self.pos += 1
            items = self._sequence(depth + 1)
            if self.pos >= len(self.text):
                raise self.fail("unterminated list")
            self.pos += 1
            return ParenList(tuple(items))
        if c == 0x22:  # '"'
            return self._quoted()
        if c == 0x7B:  # '{'
            return self._literal()
        return self._atom()

    def _quoted(self) -> String:
        """RFC 3501 9 quoted: DQUOTE *QUOTED-CHAR DQUOTE; only \\" and \\\\ are escapes."""
        text, pos = self.text, self.pos + 1
        out = bytearray()
        while True:
            end = _find_any(text, pos, b'"\\')
            if end < 0:
                raise self.fail("unterminated quoted string")
            out += text[pos:end]
            if text[end] == 0x22:
                self.pos = end + 1
                return String(bytes(out))
            if end + 1 >= len(text) or text[end + 1] not in b'"\\':
                raise self.fail("invalid escape in quoted string")
            out.append(text[end + 1])
            pos = end + 2

    def _literal(self) -> String:
        """RFC 3501 4.3 literal ``{n}`` / RFC 7888 ``{n+}``: must end its line."""
        match = _LITERAL_AT_END.match(self.text, self.pos)
        if match is None or self.index + 1 >= len(self.parts):
            raise self.fail("invalid literal")
        literal = self.parts[self.index + 1]
        if len(literal) != int(match.group(1)):
            raise self.fail("literal size mismatch")
        self.index += 2
        self.text = self.parts[self.index]
        self.pos = 0
        return String(literal, literal=True)

    def _atom(self) -> Atom:
        """Any run of ATOM-CHAR plus the list-wildcards, ``\\`` and ``]`` (astring, flags,
        LIST patterns, sequence sets share this lexeme); ``NAME[section]<partial>`` keeps the
        section's spaces and parentheses (RFC 3501 6.4.5)."""
        text, start = self.text, self.pos
        pos = start
        n = len(text)
        while pos < n:
            c = text[pos]
            if c == 0x5B:  # '['
                name = text[start:pos].decode("ascii").upper()
                if name in SECTION_ATTS:
                    close = text.find(b"]", pos)
                    if close < 0:
                        raise self.fail("unterminated section")
                    if any(b < 0x20 or b >= 0x7F for b in text[pos:close]):
                        raise self.fail("invalid character in section")
                    pos = close + 1
                    continue
            elif c <= 0x20 or c >= 0x7F or c in b'()"{':
                break
            pos += 1
        if pos == start:
            c = text[pos]
            raise self.fail("8-bit data in atom" if c >= 0x7F else "invalid character")
        if pos < n and text[pos] >= 0x7F:
            raise self.fail("8-bit data in atom")
        if pos < n and text[pos] < 0x20:
            raise self.fail("control character in command")
        self.pos = pos
        return Atom(text[start:pos].decode("ascii"))


def _find_any(text: bytes, start: int, chars: bytes) -> int:
    found = [i for i in (text.find(bytes([c]), start) for c in chars) if i >= 0]
    return min(found) if found else -1


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
