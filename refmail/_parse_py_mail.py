"""The parsing core in pure Python, messages and mbox: header blocks (RFC 5322 2.1-2.2),
MIME boundaries (RFC 2046 5.1.1), address lexemes (RFC 5322 3.2), mboxrd quoting and line ends.

Part of the pure twin: ``_parse_py.py`` re-exports every public name (API: ``_parse.pyi``).
"""

from __future__ import annotations

import re

_SP, _TAB, _CR, _LF = 0x20, 0x09, 0x0D, 0x0A
# An LF without a CR before it; the literal first lets the regex engine skip to each LF.
_BARE_LF = re.compile(rb"\n(?<!\r\n)")
# A blank line after an LF: "\n\n" or "\n\r\n" (RFC 5322 2.1).
_BLANK_AFTER_LF = re.compile(rb"\n\r?\n")
# mboxrd: ">*From " at a line start.  The text's first line is handled apart, so that each
# pattern starts with a literal LF, which the regex engine finds fast ("^" in MULTILINE
# mode is tried at every offset, ten times slower).
_MBOX_FROM = re.compile(rb">*From ")
_MBOX_FROM_AFTER_LF = re.compile(rb"\n(>*From )")
_MBOX_QUOTED_FROM_AFTER_LF = re.compile(rb"\n>(>*From )")
_HEADER_NAME = re.compile(rb"[!-9;-~]+")  # ftext, RFC 5322 3.6.8


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
