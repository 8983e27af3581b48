"""The parsing core in pure Python, IMAP: the command tokenizer, literals, quoting and
sequence sets (RFC 3501 4, 9).

Part of the pure twin: ``_parse_py.py`` re-exports every public name (API: ``_parse.pyi``).
"""

from __future__ import annotations

import re

from refmail._parse_errors import ParseError

# ---------------------------------------------------------------------------- IMAP

# Token kinds of imap_tokenize: (kind, value) pairs.
IMAP_ATOM = 1
IMAP_QUOTED = 2
IMAP_LITERAL = 3
IMAP_LIST = 4
# imap_literal_at_end's max_digits: a count of up to 18 digits fits a C int64 in both twins.
_MAX_COUNT_DIGITS = 18
# An atom's bytes: 0x21-0x7E except ( ) " { and [ (the latter is looked at apart, for sections).
_IMAP_ATOM_RUN = re.compile(rb'[^\x00-\x20\x7f-\xff()"{\[]*')
_IMAP_NOT_SECTION_CHAR = re.compile(rb"[^\x20-\x7e]")
_IMAP_QUOTED_SPECIAL = re.compile(rb'["\\]')
# RFC 3501 4.3 literal / RFC 7888 literal+: "{" number ["+"] "}" ending the line.
_IMAP_LITERAL = re.compile(rb"\{([0-9]+)(\+?)\}\Z")
# Fetch attributes whose "[section]" may hold spaces and parentheses (RFC 3501 6.4.5, RFC 3516).
_IMAP_SECTION_NAMES = frozenset({b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"})
# A string needs a literal when it holds one of these (RFC 3501 4.3, 9: QUOTED-CHAR is 7-bit
# TEXT-CHAR; quoted-specials are left to literals, as fetch.imap_string does).
_IMAP_NOT_QUOTABLE = re.compile(rb'[\x00\r\n"\\\x80-\xff]')


def imap_tokenize(parts: list[bytes], max_depth: int) -> list[tuple[int, object]]:
    """RFC 3501 9 lexical rules over a command's text parts and the literals between them."""
    if type(parts) is not list or len(parts) % 2 == 0:
        raise ValueError("parts must be text, literal, text, ..., text")
    for part in parts:
        if type(part) is not bytes:
            raise TypeError("parts must be bytes")
    last = len(parts) - 1
    index = pos = 0
    text = parts[0]
    n = len(text)
    items: list[tuple[int, object]] = []
    stack: list[list[tuple[int, object]]] = []  # the enclosing lists' items
    first = True
    while True:
        if pos >= n:
            if index < last:
                raise ParseError("literal not at the end of a line")
            if stack:
                raise ParseError("unterminated list")
            return items
        c = text[pos]
        if c == 0x29:  # ')'
            if not stack:
                raise ParseError("unexpected ')'")
            pos += 1
            inner = items
            items = stack.pop()
            items.append((IMAP_LIST, inner))
            first = False
            continue
        if not first:
            if c != 0x20:
                raise ParseError("expected a space between arguments")
            while pos < n and text[pos] == 0x20:
                pos += 1  # tolerate doubled spaces, as most servers do
            if pos >= n or text[pos] == 0x29:
                continue  # tolerate a trailing space
        first = False
        c = text[pos]
        if c == 0x28:  # '('
            if len(stack) >= max_depth:
                raise ParseError("lists nested too deeply")
            pos += 1
            stack.append(items)
            items = []
            first = True
        elif c == 0x22:  # '"'
            value, pos = _imap_quoted(text, pos + 1)
            items.append((IMAP_QUOTED, value))
        elif c == 0x7B:  # '{'
            match = _IMAP_LITERAL.match(text, pos)
            if match is None or index >= last:
                raise ParseError("invalid literal")
            literal = parts[index + 1]
            if len(literal) != int(match.group(1)):
                raise ParseError("literal size mismatch")
            items.append((IMAP_LITERAL, literal))
            index += 2
            text = parts[index]
            n = len(text)
            pos = 0
        else:
            end = _imap_atom_end(text, pos)
            items.append((IMAP_ATOM, text[pos:end]))
            pos = end


def _imap_quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE from just past the DQUOTE; only \\" and \\\\ are
    escapes (RFC 3501 9).  Returns the unescaped value and the offset past the closing quote."""
    chunks = []
    while True:
        match = _IMAP_QUOTED_SPECIAL.search(text, pos)
        if match is None:
            raise ParseError("unterminated quoted string")
        end = match.start()
        chunks.append(text[pos:end])
        if text[end] == 0x22:
            return b"".join(chunks), end + 1
        if end + 1 >= len(text) or text[end + 1] not in b'"\\':
            raise ParseError("invalid escape in quoted string")
        chunks.append(text[end + 1 : end + 2])
        pos = end + 2


def _imap_atom_end(text: bytes, start: int) -> int:
    """End of the atom at ``start``: a run of ATOM-CHAR plus list-wildcards, ``\\`` and ``]``
    (astring, flags, LIST patterns and sequence sets share this lexeme); ``NAME[section]`` of
    a fetch attribute keeps the section's spaces and parentheses (RFC 3501 6.4.5)."""
    n = len(text)
    pos = start
    while True:
        pos = _IMAP_ATOM_RUN.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= n or text[pos] != 0x5B:  # '['
            break
        if text[start:pos].upper() in _IMAP_SECTION_NAMES:
            close = text.find(b"]", pos)
            if close < 0:
                raise ParseError("unterminated section")
            if _IMAP_NOT_SECTION_CHAR.search(text, pos, close) is not None:
                raise ParseError("invalid character in section")
            pos = close + 1
        else:
            pos += 1
    if pos == start:
        raise ParseError("8-bit data in atom" if text[pos] >= 0x7F else "invalid character")
    if pos < n and text[pos] >= 0x7F:
        raise ParseError("8-bit data in atom")
    if pos < n and text[pos] < 0x20:
        raise ParseError("control character in command")
    return pos


def imap_literal_at_end(line: bytes, max_digits: int) -> tuple[int, bool] | None:
    """The ``{n}`` / ``{n+}`` that ends a command line (RFC 3501 4.3, RFC 7888)."""
    if not 1 <= max_digits <= _MAX_COUNT_DIGITS:
        raise ValueError("max_digits out of range")
    match = _IMAP_LITERAL.search(line)
    if match is None:
        return None
    digits = match.group(1)
    return (int(digits) if len(digits) <= max_digits else -1), bool(match.group(2))


def imap_quote(value: bytes) -> bytes:
    """An IMAP string for a response: quoted when safe, else a literal (RFC 3501 4.3)."""
    if _IMAP_NOT_QUOTABLE.search(value) is None:
        return b'"' + value + b'"'
    return b"{%d}\r\n" % len(value) + value


_SEQ_NUMBER = re.compile(rb"[1-9][0-9]{0,9}")
_MAX_SEQ_NUMBER = 2**32 - 1


def imap_sequence_set(text: bytes) -> list[tuple[int, int]]:
    """RFC 3501 9 sequence-set -> [(first, last)] as written; 0 stands for ``*``."""
    ranges: list[tuple[int, int]] = []
    for item in text.split(b","):
        low, sep, high = item.partition(b":")
        first = _seq_number(low)
        ranges.append((first, _seq_number(high) if sep else first))
    return ranges


def _seq_number(text: bytes) -> int:
    if text == b"*":
        return 0
    if _SEQ_NUMBER.fullmatch(text) is None or int(text) > _MAX_SEQ_NUMBER:
        raise ParseError("invalid sequence set")
    return int(text)
