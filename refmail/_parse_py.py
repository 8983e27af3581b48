"""The parsing core in pure Python: the twin of ``_parse.pyx`` (API and contract: ``_parse.pyi``).

Everything here leans on C-level ``bytes`` methods and compiled regexes; no per-byte Python
loops.  Where the two twins could drift (offset validation, error reasons, edge cases of
``read_data``), both follow the same step order so that results, exception classes and
messages are identical; ``tests/parse`` checks that with hypothesis.

This module holds lines, SMTP commands and DATA; header blocks, MIME and mbox are in
``_parse_py_mail.py``, IMAP in ``_parse_py_imap.py``; every public name is re-exported here.
"""

from __future__ import annotations

import ipaddress
import re

from refmail._parse_errors import LineTooLong, ParseError
from refmail._parse_py_imap import (
    IMAP_ATOM,
    IMAP_LIST,
    IMAP_LITERAL,
    IMAP_QUOTED,
    imap_literal_at_end,
    imap_quote,
    imap_sequence_set,
    imap_tokenize,
)
from refmail._parse_py_mail import (
    _BARE_LF,
    ADDRESS_ATOM,
    ADDRESS_COMMENT,
    ADDRESS_LITERAL,
    ADDRESS_QUOTED,
    address_tokens,
    crlf_size,
    header_end,
    header_fields,
    mbox_quote,
    mbox_scan,
    mbox_unquote,
    mime_parts,
    parse_headers,
    split_header_fields,
    to_crlf,
)

__all__ = [
    "LineTooLong",
    "ParseError",
    "next_line",
    "parse_smtp_command",
    "parse_smtp_path",
    "read_data",
    "dot_stuff",
    "header_end",
    "parse_headers",
    "header_fields",
    "mime_parts",
    "split_header_fields",
    "address_tokens",
    "ADDRESS_ATOM",
    "ADDRESS_QUOTED",
    "ADDRESS_COMMENT",
    "ADDRESS_LITERAL",
    "mbox_quote",
    "mbox_unquote",
    "mbox_scan",
    "to_crlf",
    "crlf_size",
    "DATA_AT_LINE_START",
    "DATA_PREV_CRLF",
    "DATA_INITIAL",
    "DATA_BARE_LF",
    "DATA_8BIT",
    "DATA_LONG_LINE",
    "DATA_NUL",
    "imap_tokenize",
    "imap_literal_at_end",
    "imap_quote",
    "imap_sequence_set",
    "IMAP_ATOM",
    "IMAP_QUOTED",
    "IMAP_LITERAL",
    "IMAP_LIST",
]

# State bits and flags of read_data; disjoint so that a state is never mistaken for a flag.
DATA_AT_LINE_START = 1
DATA_PREV_CRLF = 2
DATA_INITIAL = DATA_AT_LINE_START | DATA_PREV_CRLF
DATA_BARE_LF = 4
DATA_8BIT = 8
DATA_LONG_LINE = 16
DATA_NUL = 32

_STATE_MASK = DATA_AT_LINE_START | DATA_PREV_CRLF
# read_data's smallest max_line: the terminator line "." CRLF must fit whole (RFC 5321 4.1.1.4).
_MIN_MAX_LINE = 3
# RFC 5321 4.1.1.4: the end of mail data is CRLF "." CRLF.
_TERMINATOR = b"\r\n.\r\n"

# ------------------------------------------------------------------ RFC 5321 4.1.2 grammar
# Control characters (and NUL) are refused anywhere in a MAIL/RCPT argument.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# atext (RFC 5322 3.2.3) plus UTF8-non-ascii (RFC 6531 3.3); a maximal run, no backtracking.
_ATEXT_RUN = re.compile(rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\xff-]+")
# Let-dig / Ldh-str characters plus U-label bytes (RFC 6531 3.3).
_LDH_RUN = re.compile(rb"[A-Za-z0-9\x80-\xff-]+")
# qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii (RFC 6531 3.3).
_QTEXT_RUN = re.compile(rb"[ !#-\[\]-~\x80-\xff]+")
# IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT of value 0-255.
_IPV4 = re.compile(rb"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
# Standardized-tag = Ldh-str; dcontent = %d33-90 / %d94-126.
_LDH_STR = re.compile(rb"[A-Za-z0-9-]*[A-Za-z0-9]")
_DCONTENT = re.compile(rb"[!-Z^-~]+")
_IPV6_CHARS = re.compile(rb"[0-9A-Fa-f:.]+")
# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
_ESMTP_KEYWORD = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*")
# esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii (RFC 6531 3.3).
_ESMTP_VALUE = re.compile(rb"[!-<>-~\x80-\xff]+")

_SP, _DQUOTE, _DOT, _AT, _COMMA, _COLON = 0x20, 0x22, 0x2E, 0x40, 0x2C, 0x3A
_LT, _GT, _LBRACKET, _HYPHEN = 0x3C, 0x3E, 0x5B, 0x2D

# ---------------------------------------------------------------------------- lines


def next_line(buf: bytes, start: int, search_from: int, max_len: int) -> int:
    """End of the line beginning at ``start``, or -1; ``LineTooLong`` past ``max_len``."""
    size = len(buf)
    if start < 0 or start > size:
        raise ValueError("start out of range")
    if search_from < start:
        search_from = start
    # Never look further than the longest allowed line: a flood of bytes costs one bounded scan.
    limit = start + max_len
    if limit > size:
        limit = size
    lf = buf.find(b"\n", search_from, limit) if search_from < limit else -1
    if lf >= 0:
        return lf + 1
    if size - start > max_len:
        raise LineTooLong("line too long")
    return -1


# ---------------------------------------------------------------------------- SMTP


def parse_smtp_command(line: bytes) -> tuple[bytes, bytes]:
    """Split an SMTP command line into (VERB, argument) (RFC 5321 4.1.1)."""
    if b"\0" in line:
        raise ParseError("NUL byte in command")
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    if not line:
        raise ParseError("empty command")
    space = line.find(b" ")
    verb = line if space < 0 else line[:space]
    if not verb.isalpha():
        raise ParseError("bad command verb")
    argument = b"" if space < 0 else line[space:].strip(b" ")
    return verb.upper(), argument


def parse_smtp_path(arg: bytes, keyword: bytes) -> tuple[bytes, list[tuple[bytes, bytes | None]]]:
    """MAIL FROM / RCPT TO argument -> (mailbox, parameters) (RFC 5321 4.1.2, 4.1.1.3)."""
    if _CONTROL.search(arg) is not None:
        raise ParseError("control character in argument")
    if not arg.isascii():
        try:
            arg.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("invalid UTF-8 in argument") from None
    size = len(arg)
    klen = len(keyword)
    if arg[:klen].upper() != keyword.upper() or arg[klen : klen + 1] != b":":
        raise ParseError(f"expected {keyword.decode('latin-1').upper()}:")
    pos = klen + 1
    while pos < size and arg[pos] == _SP:  # tolerated: "MAIL FROM: <a@b>" (common client fault)
        pos += 1
    if pos >= size or arg[pos] != _LT:
        raise ParseError("missing <")
    pos += 1
    if pos < size and arg[pos] == _GT:
        return b"", _esmtp_params(arg, pos + 1)
    routed = pos < size and arg[pos] == _AT
    if routed:
        pos = _skip_source_route(arg, pos)
    mailbox_start = pos
    pos = _local_part_end(arg, pos)
    if pos >= size or arg[pos] != _AT:
        # RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted.
        if (
            pos < size
            and arg[pos] == _GT
            and not routed
            and keyword.upper() == b"TO"
            and arg[mailbox_start:pos].lower() == b"postmaster"
        ):
            return arg[mailbox_start:pos], _esmtp_params(arg, pos + 1)
        if pos >= size or arg[pos] == _GT:
            raise ParseError("missing domain")
        raise ParseError("bad local part")
    pos += 1
    if pos < size and arg[pos] == _LBRACKET:
        pos = _address_literal_end(arg, pos)
        if pos >= size or arg[pos] != _GT:
            raise ParseError("missing >")
    else:
        pos = _domain_end(arg, pos)
        if pos < 0:
            raise ParseError("bad domain")
        if pos >= size:
            raise ParseError("missing >")
        if arg[pos] != _GT:
            raise ParseError("bad domain")
    return arg[mailbox_start:pos], _esmtp_params(arg, pos + 1)


def _skip_source_route(arg: bytes, pos: int) -> int:
    """A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 4.1.2); dropped per 4.1.1.3 / C."""
    size = len(arg)
    while True:
        pos = _domain_end(arg, pos + 1)  # past the "@"
        if pos < 0 or pos >= size:
            raise ParseError("bad source route")
        if arg[pos] == _COLON:
            return pos + 1
        if arg[pos] != _COMMA or pos + 1 >= size or arg[pos + 1] != _AT:
            raise ParseError("bad source route")
        pos += 1


def _local_part_end(arg: bytes, pos: int) -> int:
    """Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2); returns its end."""
    size = len(arg)
    if pos < size and arg[pos] == _DQUOTE:
        pos += 1
        while True:
            match = _QTEXT_RUN.match(arg, pos)
            if match is not None:
                pos = match.end()
            if pos >= size:
                raise ParseError("unterminated quoted string")
            if arg[pos] == _DQUOTE:
                return pos + 1
            # Only a backslash is left (controls were refused up front): quoted-pairSMTP.
            if pos + 1 >= size:
                raise ParseError("unterminated quoted string")
            if not 0x20 <= arg[pos + 1] <= 0x7E:
                raise ParseError("bad quoted string")
            pos += 2
    match = _ATEXT_RUN.match(arg, pos)
    if match is None:
        if pos < size and arg[pos] == _AT:
            raise ParseError("empty local part")
        raise ParseError("bad local part")
    pos = match.end()
    while pos < size and arg[pos] == _DOT:
        match = _ATEXT_RUN.match(arg, pos + 1)
        if match is None:
            raise ParseError("bad local part")
        pos = match.end()
    return pos


def _domain_end(arg: bytes, pos: int) -> int:
    """Domain = sub-domain *("." sub-domain) (RFC 5321 4.1.2); its end, or -1."""
    size = len(arg)
    while True:
        match = _LDH_RUN.match(arg, pos)
        if match is None:
            return -1
        end = match.end()
        # sub-domain = Let-dig [Ldh-str]: no hyphen first or last.
        if arg[pos] == _HYPHEN or arg[end - 1] == _HYPHEN:
            return -1
        if end < size and arg[end] == _DOT:
            pos = end + 1
            continue
        return end


def _address_literal_end(arg: bytes, pos: int) -> int:
    """address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]" (RFC 5321 4.1.3)."""
    close = arg.find(b"]", pos + 1)
    if close < 0 or not _valid_address_literal(arg[pos + 1 : close]):
        raise ParseError("bad address literal")
    return close + 1


def _valid_address_literal(content: bytes) -> bool:
    """IPv4-address-literal, "IPv6:" IPv6-addr, or Standardized-tag ":" 1*dcontent."""
    colon = content.find(b":")
    if colon < 0:
        match = _IPV4.fullmatch(content)
        return match is not None and all(int(octet) <= 255 for octet in match.groups())
    tag, rest = content[:colon], content[colon + 1 :]
    if _LDH_STR.fullmatch(tag) is None:
        return False
    if tag.lower() == b"ipv6":
        return _valid_ipv6(rest)
    return _DCONTENT.fullmatch(rest) is not None


def _valid_ipv6(text: bytes) -> bool:
    """IPv6-addr (RFC 5321 4.1.3), checked by the stdlib; zone ids ("%eth0") are refused."""
    if _IPV6_CHARS.fullmatch(text) is None:
        return False
    try:
        ipaddress.IPv6Address(text.decode("ascii"))
    except ValueError:
        return False
    return True


def _esmtp_params(arg: bytes, pos: int) -> list[tuple[bytes, bytes | None]]:
    """Mail-parameters / Rcpt-parameters after the path (RFC 5321 4.1.2)."""
    if pos >= len(arg):
        return []
    if arg[pos] != _SP:
        raise ParseError("bad parameter")
    params: list[tuple[bytes, bytes | None]] = []
    for token in arg[pos:].split(b" "):
        if not token:
            continue
        match = _ESMTP_KEYWORD.match(token)
        if match is None:
            raise ParseError("bad parameter")
        end = match.end()
        value: bytes | None = None
        if end < len(token):
            if token[end] != 0x3D or _ESMTP_VALUE.fullmatch(token, end + 1) is None:
                raise ParseError("bad parameter")
            value = token[end + 1 :]
        params.append((token[:end].upper(), value))
    return params


def read_data(buf: bytes, state: int, max_line: int) -> tuple[bytes, int, bool, int, int]:
    """Unstuff DATA content and find its end (RFC 5321 4.1.1.4, 4.5.2); see ``_parse.pyi``."""
    if max_line < _MIN_MAX_LINE:
        raise ValueError("max_line must be at least 3")
    state &= _STATE_MASK
    at_line_start = bool(state & DATA_AT_LINE_START)
    if state == DATA_INITIAL and buf.startswith(b".\r\n"):
        return b"", 3, True, DATA_INITIAL, 0
    # The first CRLF "." CRLF ends the data: every LF before it ends a complete line, and
    # a bare-LF line before "." (the smuggling trick) cannot produce this byte sequence.
    term = buf.find(_TERMINATOR)
    done = term >= 0
    if done:
        region_end = term + 2
        consumed = term + 5
    else:
        region_end = buf.rfind(b"\n") + 1
        consumed = region_end
    region = buf[:region_end]
    out = b""
    flags = 0
    if region:
        flags = _content_flags(region)
        if _has_long_line(region, max_line):
            flags |= DATA_LONG_LINE
        out = _unstuff(region, at_line_start)
        if flags & DATA_BARE_LF:
            out = to_crlf(out)
        at_line_start = True
        state = DATA_AT_LINE_START | (DATA_PREV_CRLF if region.endswith(b"\r\n") else 0)
    if done:
        return out, consumed, True, DATA_INITIAL, flags
    if len(buf) - region_end > max_line:
        # RFC 5321 4.5.3.1.6: a line past the limit is passed on in pieces and flagged, so
        # that an endless line cannot grow the buffer.  The byte after the piece is in the
        # buffer and is not an LF, so a CRLF is never split across calls.
        cut = max_line
        piece = buf[region_end : region_end + cut]
        flags |= _content_flags(piece) | DATA_LONG_LINE
        if at_line_start and piece[:1] == b".":
            piece = piece[1:]
        out += piece
        consumed = region_end + cut
        state = 0
    return out, consumed, False, state, flags


def _content_flags(data: bytes) -> int:
    """DATA_8BIT, DATA_NUL and DATA_BARE_LF for raw content."""
    flags = 0
    if not data.isascii():
        flags |= DATA_8BIT
    if b"\0" in data:
        flags |= DATA_NUL
    if _BARE_LF.search(data) is not None:
        flags |= DATA_BARE_LF
    return flags


def _has_long_line(region: bytes, max_line: int) -> bool:
    """Whether a line of ``region`` (complete lines) is longer than ``max_line`` with its LF.

    Jumps a window of ``max_line`` bytes at a time to the last LF inside it: every line
    that ends in the window is short, and a window without an LF holds a long line.
    """
    pos = 0
    size = len(region)
    while size - pos > max_line:
        lf = region.rfind(b"\n", pos, pos + max_line)
        if lf < 0:
            return True
        pos = lf + 1
    return False


def _unstuff(region: bytes, at_line_start: bool) -> bytes:
    """Drop the leading "." of every line that starts in ``region`` (RFC 5321 4.5.2)."""
    if b"\n." in region:
        # split + join outruns bytes.replace here (many near-misses on "\n").
        region = b"\n".join(region.split(b"\n."))
    if at_line_start and region[:1] == b".":
        region = region[1:]
    return region


def dot_stuff(data: bytes) -> bytes:
    """Double a leading ``.`` on every line (RFC 5321 4.5.2, RFC 1939 3)."""
    if b"\n." in data:
        data = b"\n..".join(data.split(b"\n."))  # faster than bytes.replace, as in _unstuff
    if data[:1] == b".":
        data = b"." + data
    return data
