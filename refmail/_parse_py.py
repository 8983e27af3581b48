"""The parsing core in pure Python: the twin of ``_parse.pyx`` (API and contract: ``_parse.pyi``).

Everything here leans on C-level ``bytes`` methods and compiled regexes; no per-byte Python
loops.  Where the two twins could drift (offset validation, error reasons, edge cases of
``read_data``), both follow the same step order so that results, exception classes and
messages are identical; ``tests/parse`` checks that with hypothesis.
"""

from __future__ import annotations

import ipaddress
import re

from refmail._parse_errors import LineTooLong, ParseError

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
# An LF without a CR before it; the literal first lets the regex engine skip to each LF.
_BARE_LF = re.compile(rb"\n(?<!\r\n)")
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
_TAB, _CR, _LF = 0x09, 0x0D, 0x0A
_LT, _GT, _LBRACKET, _HYPHEN = 0x3C, 0x3E, 0x5B, 0x2D

# ------------------------------------------------------------------ messages and mbox
# A blank line after an LF: "\n\n" or "\n\r\n" (RFC 5322 2.1).
_BLANK_AFTER_LF = re.compile(rb"\n\r?\n")
# mboxrd: ">*From " at a line start.  The text's first line is handled apart, so that each
# pattern starts with a literal LF, which the regex engine finds fast ("^" in MULTILINE
# mode is tried at every offset, ten times slower).
_MBOX_FROM = re.compile(rb">*From ")
_MBOX_FROM_AFTER_LF = re.compile(rb"\n(>*From )")
_MBOX_QUOTED_FROM_AFTER_LF = re.compile(rb"\n>(>*From )")
_HEADER_NAME = re.compile(rb"[!-9;-~]+")  # ftext, RFC 5322 3.6.8


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


# ---------------------------------------------------------------------------- messages


def header_end(data: bytes) -> int:
    """Offset past the blank line ending the header block, else ``len(data)`` (RFC 5322 2.1)."""
    if data[:1] == b"\n":
        return 1
    if data[:2] == b"\r\n":
        return 2
    match = _BLANK_AFTER_LF.search(data)
    return len(data) if match is None else match.end()


def parse_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """Header block -> [(name, unfolded value)] (RFC 5322 2.2, 2.2.3).

    Parsing stops at the first empty line (the end of the header section, RFC 5322 2.1).
    A line whose part before the colon is not a field name (RFC 5322 3.6.8 ftext, with
    obsolete whitespace before the colon allowed, 4.5.3) is skipped like a line without a
    colon, and so are continuation lines that follow it.
    """
    fields: list[tuple[bytes, bytes]] = []
    name: bytes | None = None
    parts: list[bytes] = []
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                parts.append(line)
            continue
        if name is not None:
            fields.append((name, b"".join(parts)))
            name = None
        if not line:
            break
        colon = line.find(b":")
        if colon < 0:
            continue
        candidate = line[:colon].rstrip(b" \t")
        if _HEADER_NAME.fullmatch(candidate) is None:
            continue
        name = candidate
        parts = [line[colon + 1 :].lstrip(b" \t")]
    if name is not None:
        fields.append((name, b"".join(parts)))
    return fields


def _check_span(data: bytes, start: int, end: int) -> None:
    if not 0 <= start <= end <= len(data):
        raise ValueError("need 0 <= start <= end <= len(data)")


HeaderFieldSpan = tuple[bytes, bytes, int, int]


def header_fields(data: bytes, start: int, end: int) -> tuple[list[HeaderFieldSpan], int]:
    """Header fields of the entity at ``data[start:end]`` with their spans, and where its
    body starts (RFC 5322 2.2, 2.2.3; RFC 2045 for body parts)."""
    _check_span(data, start, end)
    fields: list[HeaderFieldSpan] = []
    pending: tuple[bytes, int, int] | None = None  # name, field start, value start
    pos = start
    body_start = end
    while pos < end:
        newline = data.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        line = data[pos:line_end]
        if line in (b"\r\n", b"\n"):
            body_start = line_end
            break
        if pending is not None and line[0] in (_SP, _TAB):
            pos = line_end
            continue
        colon = line.find(b":")
        name = line[:colon].rstrip(b" \t") if colon > 0 else b""
        if not name or _HEADER_NAME.fullmatch(name) is None:
            body_start = pos
            break
        if pending is not None:
            fields.append(_header_field(data, pending, pos))
        pending = (name, pos, pos + colon + 1)
        pos = line_end
    if pending is not None:
        fields.append(_header_field(data, pending, pos))
    return fields, body_start


def _header_field(data: bytes, pending: tuple[bytes, int, int], end: int) -> HeaderFieldSpan:
    name, start, value_start = pending
    lines = data[value_start:end].split(b"\n")
    value = b"".join(line.rstrip(b"\r") for line in lines).lstrip(b" \t")
    return name, value, start, end


def mime_parts(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Spans of the body parts of the multipart body ``data[start:end]`` (RFC 2046 5.1.1)."""
    _check_span(data, start, end)
    marker = b"--" + boundary
    spans: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        found = data.find(marker, pos, end)
        if found < 0:
            break
        pos = found + 1
        if found != start and data[found - 1] != _LF:
            continue
        after = found + len(marker)
        closing = after + 2 <= end and data.startswith(b"--", after)
        rest_start = after + 2 if closing else after
        newline = data.find(b"\n", rest_start, end)
        line_end = end if newline < 0 else newline + 1
        if data[rest_start:line_end].strip(b" \t\r\n"):
            continue  # "--boundaryX": a longer boundary, or text
        if part_start >= 0:
            content_end = found
            if content_end > start and data[content_end - 1] == _LF:
                content_end -= 1
                if content_end > start and data[content_end - 1] == _CR:
                    content_end -= 1
            spans.append((part_start, max(content_end, part_start)))
        if closing:
            return spans
        part_start = line_end
        pos = line_end
    if part_start >= 0:
        spans.append((part_start, end))
    return spans


def split_header_fields(fields: bytes, names: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """Header lines -> (the fields not called one of ``names``, those that are), byte-exact;
    continuation lines go with their field (RFC 5322 2.2.3)."""
    if not isinstance(names, tuple) or not all(isinstance(n, bytes) for n in names):
        raise TypeError("names must be a tuple of bytes")
    own: list[bytes] = []
    named: list[bytes] = []
    target = own
    start = 0
    while start < len(fields):
        end = fields.find(b"\n", start)
        end = len(fields) if end < 0 else end + 1
        line = fields[start:end]
        if line[:1] not in (b" ", b"\t"):
            colon = line.find(b":")
            name = line[:colon].strip().lower() if colon > 0 else b""
            target = named if name in names else own
        target.append(line)
        start = end
    return b"".join(own), b"".join(named)


ADDRESS_ATOM = 1
ADDRESS_QUOTED = 2
ADDRESS_COMMENT = 3
ADDRESS_LITERAL = 4

_ADDRESS_ATOM_RUN = re.compile(rb'[^()<>\[\]:;@\\,." \t\r\n]+')
_ADDRESS_SPACE_RUN = re.compile(rb"[ \t\r\n]+")
_ADDRESS_QUOTED = re.compile(rb'"(?:[^"\\]+|\\.|\\\Z)*"?', re.S)
_ADDRESS_COMMENT_CHAR = re.compile(rb"[\\()]")


def address_tokens(raw: bytes) -> list[tuple[int, int, int]]:
    """RFC 5322 3.2 lexemes of an address header as ``(kind, start, end)``."""
    tokens: list[tuple[int, int, int]] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch in b" \t\r\n":
            i = _ADDRESS_SPACE_RUN.match(raw, i).end()  # type: ignore[union-attr]
        elif ch == 0x22:
            end = _ADDRESS_QUOTED.match(raw, i).end()  # type: ignore[union-attr]
            tokens.append((ADDRESS_QUOTED, i, end))
            i = end
        elif ch == 0x28:
            i = _address_comment(raw, i, tokens)
        elif ch == 0x5B:
            end = raw.find(b"]", i)
            end = n if end < 0 else end + 1
            tokens.append((ADDRESS_LITERAL, i, end))
            i = end
        elif ch in b'()<>[]:;@\\,."':
            tokens.append((ch, i, i + 1))
            i += 1
        else:
            end = _ADDRESS_ATOM_RUN.match(raw, i).end()  # type: ignore[union-attr]
            tokens.append((ADDRESS_ATOM, i, end))
            i = end
    return tokens


def _address_comment(raw: bytes, i: int, tokens: list[tuple[int, int, int]]) -> int:
    """The comment opening at ``raw[i]``: its content's token; where scanning goes on."""
    depth, j = 1, i + 1
    for found in _ADDRESS_COMMENT_CHAR.finditer(raw, i + 1):
        k = found.start()
        if k < j:
            continue  # escaped by the backslash before it
        if raw[k] == 0x5C:
            j = k + 2
            continue
        depth += 1 if raw[k] == 0x28 else -1
        j = k + 1
        if not depth:
            tokens.append((ADDRESS_COMMENT, i + 1, k))
            return j
    tokens.append((ADDRESS_COMMENT, i + 1, len(raw)))
    return len(raw)


# ---------------------------------------------------------------------------- mbox


def mbox_quote(message: bytes) -> bytes:
    """Message -> mboxrd body with LF line endings and one final LF."""
    if b"\r\n" in message:
        message = message.replace(b"\r\n", b"\n")
    if b"From " in message:
        message = _MBOX_FROM_AFTER_LF.sub(rb"\n>\1", message)
        if _MBOX_FROM.match(message) is not None:
            message = b">" + message
    if message and not message.endswith(b"\n"):
        message += b"\n"
    return message


def mbox_unquote(body: bytes) -> bytes:
    """mboxrd body -> message text: one ``>`` less on each ``^>+From `` line."""
    if b">From " in body:
        body = _MBOX_QUOTED_FROM_AFTER_LF.sub(rb"\n\1", body)
        if body[:1] == b">" and _MBOX_FROM.match(body) is not None:
            body = body[1:]
    return body


def mbox_scan(data: bytes, start: int) -> list[int]:
    """Offsets of the ``From `` lines that begin messages, from ``start`` on."""
    if start < 0:
        raise ValueError("start out of range")
    offsets = [start] if data.startswith(b"From ", start) else []
    pos = data.find(b"\nFrom ", start)
    while pos >= 0:
        offsets.append(pos + 1)
        pos = data.find(b"\nFrom ", pos + 6)
    return offsets


def to_crlf(data: bytes) -> bytes:
    """LF line endings -> CRLF, leaving existing CRLF alone."""
    if _BARE_LF.search(data) is None:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def crlf_size(data: bytes) -> int:
    """``len(to_crlf(data))`` without building it (RFC 1939 / RFC 3501 sizes)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


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
