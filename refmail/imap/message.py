"""A message's MIME tree as byte ranges of the original (RFC 2045, RFC 2046, RFC 5322).

FETCH sections must be exact byte ranges of the message as served (RFC 3501 6.4.5), so the
tree records offsets, never re-encoded text: each ``Part`` knows where its header starts, where
its body starts and where it ends, the raw span of every header field, and its children (the
parts of a multipart) or its encapsulated message (message/rfc822).  Parsing is bounded in
depth and in part count so a MIME bomb yields a bounded tree.

Also here, because FETCH, SEARCH and SORT share them: MIME parameter parsing (RFC 2045 5.1
with RFC 2231 continuations), RFC 2047 header decoding, and address lists (RFC 5322 3.4) as
RFC 3501 7.4.2 address structures.
"""

from __future__ import annotations

import binascii
import dataclasses
import email.errors
import email.header
import functools
import re
import urllib.parse
from dataclasses import dataclass
from typing import NamedTuple

from refmail.parse import (
    ADDRESS_ATOM,
    ADDRESS_COMMENT,
    ADDRESS_LITERAL,
    ADDRESS_QUOTED,
    address_tokens,
    header_fields,
    mime_parts,
)

#: Nesting limit of multiparts and message/rfc822 parts; deeper ones become opaque
#: application/octet-stream leaves.  RFC 2046 sets no limit; Dovecot uses the same 100.
MAX_MIME_DEPTH = 100
#: Parts in one message; parts past this are not split out (Dovecot's default too).
MAX_MIME_PARTS = 10_000

_LF = 0x0A
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


class HeaderField(NamedTuple):
    """One header field: ``name`` as sent, ``value`` unfolded (RFC 5322 2.2.3) without the
    leading whitespace and the line ending; ``start:end`` is its raw span with every folded
    line and the final line ending.  A named tuple: the parsing core makes the tuples, and a
    message has dozens of fields."""

    name: bytes
    value: bytes
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity: the header at ``start:body_start`` (with its blank line), the body at
    ``body_start:end``.  ``maintype``/``subtype`` are lower-case; ``params`` keep the names
    lower-case and the values as sent (unquoted).  ``message`` is the encapsulated message of a
    message/rfc822 (or message/global) part."""

    start: int
    body_start: int
    end: int
    fields: tuple[HeaderField, ...]
    maintype: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    children: tuple[Part, ...] = ()
    message: Part | None = None

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    def header(self, name: str) -> bytes | None:
        """The first field called ``name`` (case-insensitive), unfolded, or None."""
        wanted = name.lower().encode("ascii")
        size = len(wanted)
        for field in self.fields:
            if len(field.name) == size and field.name.lower() == wanted:
                return field.value
        return None

    def headers(self, name: str) -> list[bytes]:
        wanted = name.lower().encode("ascii")
        return [f.value for f in self.fields if f.name.lower() == wanted]

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def encoding(self) -> str:
        """Content-Transfer-Encoding, upper-case; 7BIT when absent (RFC 2045 6.1)."""
        raw = self.header("Content-Transfer-Encoding")
        text = _text(raw).strip() if raw is not None else ""
        return text.upper() if text else "7BIT"


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message's bytes and its MIME tree; parse once, use for every FETCH item."""

    data: bytes
    root: Part

    def body(self, part: Part) -> bytes:
        return self.data[part.body_start : part.end]

    def header_block(self, part: Part) -> bytes:
        return self.data[part.start : part.body_start]

    def lines(self, part: Part) -> int:
        """Text lines of a part's body (RFC 3501 7.4.2 body-fld-lines): the line endings,
        plus one for a last line without one."""
        count = self.data.count(b"\n", part.body_start, part.end)
        if part.end > part.body_start and self.data[part.end - 1] != _LF:
            count += 1
        return count


def parse_message(data: bytes | ParsedMessage) -> ParsedMessage:
    """Parse a whole message (RFC 5322 header, RFC 2045/2046 MIME structure)."""
    if isinstance(data, ParsedMessage):
        return data
    budget = [MAX_MIME_PARTS]
    return ParsedMessage(data, _parse_entity(data, 0, len(data), 0, ("text", "plain"), budget))


def parse_header(data: bytes) -> Part:
    """Only the top-level header of a message (for keys that need no body): a root Part
    whose type is read but whose body is not split."""
    fields, body_start = _split_header(data, 0, len(data))
    raw_type = next((f.value for f in fields if f.name.lower() == b"content-type"), None)
    maintype, subtype, params = _content_type(raw_type, ("text", "plain"))
    return Part(0, body_start, len(data), tuple(fields), maintype, subtype, params)


# ------------------------------------------------------------------------------ the tree


def _split_header(data: bytes, start: int, end: int) -> tuple[list[HeaderField], int]:
    """Header fields of ``data[start:end]`` and where the body starts (the parsing core's
    ``header_fields``: the header ends with its blank line, consumed, or before the first
    line that is neither a field nor a continuation, or at ``end``)."""
    spans, body_start = header_fields(data, start, end)
    return list(map(HeaderField._make, spans)), body_start


def _parse_entity(
    data: bytes, start: int, end: int, depth: int, default: tuple[str, str], budget: list[int]
) -> Part:
    """One entity (a message or a body part) spanning ``data[start:end]``."""
    budget[0] -= 1
    fields, body_start = _split_header(data, start, end)
    raw_type = next((f.value for f in fields if f.name.lower() == b"content-type"), None)
    maintype, subtype, params = _content_type(raw_type, default)
    boundary = dict(params).get("boundary") if maintype == "multipart" else None
    if maintype == "multipart" and not boundary:
        # RFC 2046 5.1.1 requires the boundary; without it the body cannot be split, so it is
        # what RFC 2045 5.2 makes of an unusable Content-Type: plain text.
        maintype, subtype, params = "text", "plain", (("charset", "US-ASCII"),)
    nested = maintype == "multipart" or (maintype, subtype) in _ENCAPSULATING
    if nested and (depth >= MAX_MIME_DEPTH or budget[0] <= 0):
        maintype, subtype, params = "application", "octet-stream", ()
        nested = False
    part = Part(start, body_start, end, tuple(fields), maintype, subtype, params)
    if not nested:
        return part
    if maintype == "multipart":
        assert boundary is not None
        child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
        children = []
        marker = boundary.encode("utf-8", "surrogateescape")
        for child_start, child_end in _body_parts(data, body_start, end, marker):
            if budget[0] <= 0:
                break
            children.append(
                _parse_entity(data, child_start, child_end, depth + 1, child_default, budget)
            )
        if not children:
            # RFC 3501 9 body-type-mpart needs one body at least: an empty text part stands
            # for a multipart whose boundary never occurs.
            children.append(
                Part(
                    body_start,
                    body_start,
                    body_start,
                    (),
                    "text",
                    "plain",
                    (("charset", "US-ASCII"),),
                )
            )
        return dataclasses.replace(part, children=tuple(children))
    inner = _parse_entity(data, body_start, end, depth + 1, ("text", "plain"), budget)
    return dataclasses.replace(part, message=inner)


_ENCAPSULATING = frozenset({("message", "rfc822"), ("message", "global")})


def _body_parts(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Spans of the body parts of a multipart body ``data[start:end]`` (RFC 2046 5.1.1): the
    parsing core's ``mime_parts``.  A delimiter is ``--boundary`` at the start of a line,
    then optional whitespace (``--`` first for the close delimiter); the line ending before it
    belongs to the delimiter, not to the part.  Preamble and epilogue are not parts.  A
    missing close delimiter ends the last part at the end of the body."""
    return mime_parts(data, start, end, boundary)


# ------------------------------------------------------------------------------ MIME values


def _text(raw: bytes) -> str:
    """Header bytes as str: UTF-8 (RFC 6532), undecodable bytes kept as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 3.2.2 comments (nested) outside quoted strings."""
    if "(" not in text:
        return text  # nothing to remove (the common case): no per-character walk
    out: list[str] = []
    depth = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and (quoted or depth):
            if not depth:
                out.append(text[i : i + 2])
            i += 2
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            quoted = ch == '"'
            out.append(ch)
        i += 1
    return "".join(out)


def parse_mime_value(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    """``value *(";" attribute "=" value)`` (RFC 2045 5.1, Content-Disposition RFC 2183 2).

    Returns the leading value as sent (stripped) and the parameters in order, names
    lower-cased, values unquoted.  RFC 2231 continuations are joined: ``name*0``/``name*1``
    become ``name``; when a segment is extended (``name*0*``), the joined percent-encoded
    value is ``name*`` (RFC 3501 9 asks for the parameter, RFC 9051 7.5.2 for continuations
    decoded).  Malformed parameters are skipped rather than failing the whole field.
    """
    text = _strip_comments(_text(raw))
    head, _, rest = text.partition(";")
    params: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rest):
        while pos < len(rest) and rest[pos] in " \t\r\n;":
            pos += 1
        eq = rest.find("=", pos)
        semi = rest.find(";", pos)
        if eq < 0 or (0 <= semi < eq):
            pos = len(rest) if semi < 0 else semi + 1
            continue
        name = rest[pos:eq].strip().lower()
        pos = eq + 1
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
        if pos < len(rest) and rest[pos] == '"':
            value, pos = _quoted_string(rest, pos)
        else:
            stop = rest.find(";", pos)
            stop = len(rest) if stop < 0 else stop
            value = rest[pos:stop].strip()
            pos = stop
        if name and not any(c in name for c in ' \t"'):
            params.append((name, value))
    return head.strip(), _join_continuations(params)


def _quoted_string(text: str, pos: int) -> tuple[str, int]:
    """RFC 5322 3.2.4 quoted-string at ``text[pos] == '"'``: (content unescaped, end)."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), i  # unterminated: take what there is


_SEGMENT = re.compile(r"(.+?)\*(\d+)(\*?)\Z")


def _join_continuations(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 2231 3-4: join ``name*0``, ``name*1*`` ... into one parameter."""
    segments: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    plain: dict[str, str] = {}
    for name, value in params:
        match = _SEGMENT.match(name)
        key = match.group(1) if match else name
        if key not in segments and key not in plain:
            order.append(key)
        if match:
            segments.setdefault(key, []).append((int(match.group(2)), bool(match[3]), value))
        elif key not in plain:
            plain[key] = value
    out: list[tuple[str, str]] = []
    for key in order:
        if key not in segments:
            out.append((key, plain[key]))
            continue
        parts = sorted(segments[key])
        if any(extended for _, extended, _ in parts):
            joined = "".join(v if ext else urllib.parse.quote(v, safe="") for _, ext, v in parts)
            out.append((key + "*" if not key.endswith("*") else key, joined))
        else:
            out.append((key, "".join(v for _, _, v in parts)))
    return out


_TOKEN = re.compile(r"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?=]+\Z")  # RFC 2045 5.1 token


#: Header values up to this long have their parsed form memoized (the same Content-Type
#: values recur across a mailbox); longer ones are parsed each time, so the memo stays small.
MEMO_VALUE_SIZE = 256
_MEMO_ENTRIES = 4096


def _content_type(
    raw: bytes | None, default: tuple[str, str]
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """Content-Type (RFC 2045 5), memoized for short values (``_parse_content_type``)."""
    if raw is not None and len(raw) > MEMO_VALUE_SIZE:
        return _parse_content_type(raw, default)
    return _memo_content_type(raw, default)


def _parse_content_type(
    raw: bytes | None, default: tuple[str, str]
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """Content-Type (RFC 2045 5): type, subtype (lower-case) and parameters.

    Absent: the context's default (text/plain; charset=us-ascii, or message/rfc822 inside a
    multipart/digest, RFC 2046 5.1.5).  Unparseable: text/plain; charset=us-ascii (RFC 2045 5.2).
    """
    plain_default = ("text", "plain", (("charset", "US-ASCII"),))
    if raw is None:
        return plain_default if default == ("text", "plain") else (*default, ())
    head, params = parse_mime_value(raw)
    maintype, slash, subtype = head.partition("/")
    maintype, subtype = maintype.strip().lower(), subtype.strip().lower()
    if not slash or not _TOKEN.match(maintype) or not _TOKEN.match(subtype):
        return plain_default
    return maintype, subtype, tuple(params)


#: A pure function of immutable arguments and results: memoizing it changes no behaviour.
_memo_content_type = functools.lru_cache(maxsize=_MEMO_ENTRIES)(_parse_content_type)


# ------------------------------------------------------------------------------ decoding


#: What the stdlib's RFC 2047 decoder raises on bad input (bad base64, unknown charsets).
_DECODE_ERRORS = (LookupError, ValueError, UnicodeError, binascii.Error, email.errors.MessageError)


def decode_header_value(raw: bytes) -> str:
    """A header value as text: RFC 2047 encoded words decoded, the rest as UTF-8 (RFC 6532).

    Never raises: unknown charsets and bad encodings decode to replacement characters.
    """
    text = raw.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except _DECODE_ERRORS:
        return _ENCODED_WORD.sub(lambda m: _decode_one_word(m.group(0)), text)


def _decode_one_word(word: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(word)))
    except _DECODE_ERRORS:
        return word


# ------------------------------------------------------------------------------ addresses


@dataclass(frozen=True, slots=True)
class Address:
    """One RFC 3501 7.4.2 address structure: raw display name (encoded words kept), source
    route (``@a,@b``), local part, host.  A group start has ``host`` None and the group's
    name in ``mailbox``; a group end has both None (RFC 3501 7.4.2)."""

    name: str | None
    route: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_marker(self) -> bool:
        return self.host is None


#: RFC 3501 7.4.2 makes a NIL host mean group syntax, so an address without a domain needs a
#: placeholder host; this is the one UW-IMAP's c-client uses.
MISSING_HOST = ".MISSING-HOST-NAME."


def _address_tokens(raw: bytes) -> list[tuple[str, str]]:
    """RFC 5322 3.2 lexemes (the parsing core's ``address_tokens``): ("atom", text),
    ("quoted", raw with quotes), ("comment", content stripped), ("literal", "[...]"), or
    (special, special).  Each token's bytes decode on their own as they would within the
    whole value: tokens end at ASCII bytes, which no UTF-8 sequence contains."""
    ascii_text = raw.decode("ascii") if raw.isascii() else None  # offsets are then indexes
    tokens: list[tuple[str, str]] = []
    for kind, start, end in address_tokens(raw):
        name = _ADDRESS_KINDS.get(kind)
        if name is None:
            special = chr(kind)
            tokens.append((special, special))
            continue
        if ascii_text is not None:
            text = ascii_text[start:end]
        else:
            text = raw[start:end].decode("utf-8", "surrogateescape")
        tokens.append((name, text.strip() if kind == ADDRESS_COMMENT else text))
    return tokens


_ADDRESS_KINDS = {
    ADDRESS_ATOM: "atom",
    ADDRESS_QUOTED: "quoted",
    ADDRESS_COMMENT: "comment",
    ADDRESS_LITERAL: "literal",
}


def _unquote(raw: str) -> str:
    return _quoted_string(raw, 0)[0] if raw.startswith('"') else raw


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    """A display name or group name: words joined by one space (RFC 5322 3.2.5)."""
    out = ""
    for kind, text in tokens:
        if kind in ("atom", "quoted"):
            word = _unquote(text) if kind == "quoted" else text
            out = f"{out} {word}" if out else word
        elif kind == ".":
            out += "."
    return out or None


def _joined(tokens: list[tuple[str, str]]) -> str:
    return "".join(text for kind, text in tokens if kind != "comment")


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str, str | None]:
    tokens = [t for t in tokens if t[0] != "comment"]
    ats = [i for i, (kind, _) in enumerate(tokens) if kind == "@"]
    if not ats:
        return _joined(tokens), None
    return _joined(tokens[: ats[-1]]), _joined(tokens[ats[-1] + 1 :])


def _mailbox(tokens: list[tuple[str, str]]) -> Address | None:
    """name-addr or addr-spec (RFC 5322 3.4); a trailing comment names a bare addr-spec."""
    kinds = [kind for kind, _ in tokens]
    route: str | None = None
    if "<" in kinds:
        opening = kinds.index("<")
        closing = kinds.index(">", opening) if ">" in kinds[opening:] else len(tokens)
        name = _phrase(tokens[:opening])
        inner = tokens[opening + 1 : closing]
        inner_kinds = [kind for kind, _ in inner]
        if ":" in inner_kinds:
            colon = len(inner_kinds) - 1 - inner_kinds[::-1].index(":")
            route = _joined(inner[:colon]) or None
            inner = inner[colon + 1 :]
        local, host = _addr_spec(inner)
    else:
        comments = [text for kind, text in tokens if kind == "comment" and text]
        name = comments[-1] if comments else None
        local, host = _addr_spec(tokens)
    if not local:
        return None
    return Address(name, route, local, host or MISSING_HOST)


def parse_address_list(raw: bytes | None) -> list[Address]:
    """An address-list header (RFC 5322 3.4) as RFC 3501 7.4.2 address structures, groups
    bracketed by their start and end markers.  Lenient: unparseable pieces are skipped."""
    if raw is None:
        return []
    if raw.isascii():
        simple = _simple_address_list(raw.decode("ascii"))
        if simple is not None:
            return simple
    return _general_address_list(raw)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 3.2.3
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_SPACE = r"[ \t\r\n]*"
_BARE_ADDRESS = re.compile(rf"{_SPACE}({_DOT_ATOM})@({_DOT_ATOM}){_SPACE}")
_NAMED_ADDRESS = re.compile(
    rf"{_SPACE}((?:{_ATEXT}+[ \t\r\n]+)*{_ATEXT}+)?{_SPACE}<({_DOT_ATOM})@({_DOT_ATOM})>{_SPACE}"
)
_NOT_SIMPLE = re.compile(r'["():;\[\]\\]')


def _simple_address_list(text: str) -> list[Address] | None:
    """The common forms only (``a@b.c``, ``Name Words <a@b.c>``, comma-separated, no quotes,
    comments, groups, routes or literals), or None for ``_general_address_list`` to parse.
    Where it answers, the answer is the general parser's: the tests check that."""
    if _NOT_SIMPLE.search(text):
        return None
    out = []
    for item in text.split(","):
        match = _BARE_ADDRESS.fullmatch(item)
        if match:
            out.append(Address(None, None, match[1], match[2]))
            continue
        match = _NAMED_ADDRESS.fullmatch(item)
        if match:
            name = " ".join(match[1].split()) if match[1] else None
            out.append(Address(name, None, match[2], match[3]))
            continue
        if item.strip(" \t\r\n"):
            return None
    return out


def _general_address_list(raw: bytes) -> list[Address]:
    """Any address-list, RFC 5322 3.4 with its obsolete forms, leniently."""
    out: list[Address] = []
    current: list[tuple[str, str]] = []
    angle = 0
    in_group = False

    def flush() -> None:
        if current:
            address = _mailbox(current)
            if address is not None:
                out.append(address)
            current.clear()

    for token in _address_tokens(raw):
        kind = token[0]
        if kind == "<":
            angle += 1
        elif kind == ">":
            angle = max(0, angle - 1)
        elif angle == 0 and kind == ",":
            flush()
            continue
        elif angle == 0 and kind == ":" and not in_group:
            out.append(Address(None, None, _phrase(current) or "", None))
            current.clear()
            in_group = True
            continue
        elif angle == 0 and kind == ";" and in_group:
            flush()
            out.append(Address(None, None, None, None))
            in_group = False
            continue
        current.append(token)
    flush()
    if in_group:
        out.append(Address(None, None, None, None))
    return out
