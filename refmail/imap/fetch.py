"""FETCH data items (RFC 3501 6.4.5, 7.4.2): ENVELOPE, BODY/BODYSTRUCTURE, BODY[section].

Everything returns bytes ready to go on the wire inside a FETCH response.  Functions take the
message as served (``bytes``, CRLF line endings) or a ``ParsedMessage`` (parse once, fetch many
items); sections are exact byte ranges of the original, never re-encoded.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

from refmail.imap.message import (
    MEMO_VALUE_SIZE,
    Address,
    ParsedMessage,
    Part,
    parse_address_list,
    parse_message,
    parse_mime_value,
)
from refmail.parse import imap_quote

#: RFC 3501 9 section-text keywords after the part number.
SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
#: RFC 3501 9: nz-number and number are 32-bit unsigned.
MAX_NUMBER = 2**32 - 1

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")  # RFC 3501 9 header-fld-name, as ftext
_NIL = b"NIL"

Message = bytes | ParsedMessage


# ------------------------------------------------------------------------------ strings


def imap_string(value: bytes | str | None) -> bytes:
    """An nstring for a response (RFC 3501 4.3, 4.5): NIL for None; a quoted string when
    every byte is 7-bit and none is CR, LF, NUL, ``"`` or ``\\``; otherwise a literal."""
    if value is None:
        return _NIL
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return imap_quote(value)


def _list(items: list[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def internaldate(moment: datetime.datetime) -> bytes:
    """INTERNALDATE as RFC 3501 9 date-time: ``"17-Jul-1996 02:44:25 -0700"`` (quoted).

    ``moment`` must be timezone-aware: the zone is part of the value (RFC 3501 2.3.3)."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("INTERNALDATE needs a timezone-aware datetime")
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (
        f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} '
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )
    return text.encode("ascii")


# ------------------------------------------------------------------------------ ENVELOPE


def _address(address: Address) -> bytes:
    return _list(
        [
            imap_string(address.name),
            imap_string(address.route),
            imap_string(address.mailbox),
            imap_string(address.host),
        ]
    )


def _address_list(raw: bytes | None) -> bytes:
    """RFC 3501 9 env-from etc.: "(" 1*address ")" / nil, addresses not space-separated.
    Short values are memoized: the same senders and recipients recur across a mailbox."""
    if raw is not None and len(raw) <= MEMO_VALUE_SIZE:
        return _memo_address_list(raw)
    return _format_address_list(raw)


def _format_address_list(raw: bytes | None) -> bytes:
    addresses = parse_address_list(raw)
    if not addresses:
        return _NIL
    return b"(" + b"".join(_address(a) for a in addresses) + b")"


#: A pure function of bytes to bytes: memoizing it changes no behaviour.
_memo_address_list = functools.lru_cache(maxsize=4096)(_format_address_list)


def _envelope(part: Part) -> bytes:
    """RFC 3501 7.4.2 ENVELOPE of the message whose header is ``part``'s."""
    from_ = _address_list(part.header("From"))
    sender = _address_list(part.header("Sender"))
    reply_to = _address_list(part.header("Reply-To"))
    items = [
        imap_string(part.header("Date")),
        imap_string(part.header("Subject")),
        from_,
        # "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or are present
        # but empty, the server sets the corresponding member of the envelope to be the same
        # value as the from member" (RFC 3501 7.4.2).
        from_ if sender == _NIL else sender,
        from_ if reply_to == _NIL else reply_to,
        _address_list(part.header("To")),
        _address_list(part.header("Cc")),
        _address_list(part.header("Bcc")),
        imap_string(part.header("In-Reply-To")),
        imap_string(part.header("Message-ID")),
    ]
    return _list(items)


def envelope(message: Message) -> bytes:
    """ENVELOPE (RFC 3501 7.4.2): date, subject, from, sender, reply-to, to, cc, bcc,
    in-reply-to, message-id; header values raw (not RFC 2047 decoded), unfolded."""
    return _envelope(parse_message(message).root)


# ------------------------------------------------------------------------------ BODYSTRUCTURE


def _params(params: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> bytes:
    """RFC 3501 9 body-fld-param: ("NAME" "value" ...) or NIL."""
    if not params:
        return _NIL
    return _list([b"%s %s" % (imap_string(k.upper()), imap_string(v)) for k, v in params])


def _disposition(part: Part) -> bytes:
    """RFC 3501 9 body-fld-dsp from Content-Disposition (RFC 2183)."""
    raw = part.header("Content-Disposition")
    if raw is None:
        return _NIL
    kind, params = parse_mime_value(raw)
    if not kind:
        return _NIL
    return _list([imap_string(kind.upper()), _params(params)])


def _language(part: Part) -> bytes:
    """RFC 3501 9 body-fld-lang from Content-Language (RFC 3282): one string or a list."""
    raw = part.header("Content-Language")
    if raw is None:
        return _NIL
    tags = [t.strip() for t in raw.decode("utf-8", "replace").split(",") if t.strip()]
    if not tags:
        return _NIL
    if len(tags) == 1:
        return imap_string(tags[0])
    return _list([imap_string(t) for t in tags])


def _stripped(part: Part, name: str) -> bytes:
    value = part.header(name)
    return imap_string(value.strip() if value is not None else None)


def _body(message: ParsedMessage, part: Part, extensible: bool) -> bytes:
    """RFC 3501 7.4.2 BODY / BODYSTRUCTURE of one part, recursively (depth bounded by the
    parser's MAX_MIME_DEPTH)."""
    if part.is_multipart:
        out = b"".join(_body(message, child, extensible) for child in part.children)
        out += b" " + imap_string(part.subtype.upper())
        if extensible:
            out += b" " + b" ".join(
                [
                    _params(part.params),
                    _disposition(part),
                    _language(part),
                    _stripped(part, "Content-Location"),
                ]
            )
        return b"(" + out + b")"
    items = [
        imap_string(part.maintype.upper()),
        imap_string(part.subtype.upper()),
        _params(part.params),
        _stripped(part, "Content-ID"),
        _stripped(part, "Content-Description"),
        imap_string(part.encoding),
        b"%d" % (part.end - part.body_start),
    ]
    if part.message is not None:
        items += [
            _envelope(part.message),
            _body(message, part.message, extensible),
            b"%d" % message.lines(part),
        ]
    elif part.maintype == "text":
        items.append(b"%d" % message.lines(part))
    if extensible:
        items += [
            _stripped(part, "Content-MD5"),
            _disposition(part),
            _language(part),
            _stripped(part, "Content-Location"),
        ]
    return _list(items)


def bodystructure(message: Message, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (``extensible=True``) or BODY (False) (RFC 3501 7.4.2).

    Basic parts: type, subtype, parameters, id, description, encoding, size; text parts add
    their line count; message/rfc822 parts add the envelope, body structure and line count of
    the encapsulated message.  Extension data: MD5, disposition, language, location for basic
    parts; parameters, disposition, language, location for multiparts.
    """
    parsed = parse_message(message)
    return _body(parsed, parsed.root, extensible)


# ------------------------------------------------------------------------------ sections


@dataclass(frozen=True, slots=True)
class FetchSpec:
    """A ``BODY[section]<partial>`` fetch attribute (RFC 3501 6.4.5, 9 "section").

    ``part`` is the numeric part path (``(1, 2)`` for ``1.2``; empty for the whole message),
    ``text`` one of SECTION_TEXTS or None, ``fields`` the HEADER.FIELDS[.NOT] names,
    ``partial`` (origin, count), ``peek`` for BODY.PEEK (no implicit \\Seen).
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = False

    def __post_init__(self) -> None:
        if any(not 1 <= n <= MAX_NUMBER for n in self.part):
            raise ValueError("section part numbers must be nonzero 32-bit numbers")
        if self.text is not None and self.text not in SECTION_TEXTS:
            raise ValueError(f"unknown section text {self.text!r}")
        if self.text == "MIME" and not self.part:
            raise ValueError("MIME needs a part number (RFC 3501 6.4.5)")
        wants_fields = self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")
        if wants_fields and not self.fields:
            raise ValueError(f"{self.text} needs at least one field name")
        if self.fields and not wants_fields:
            raise ValueError("field names only go with HEADER.FIELDS[.NOT]")
        for name in self.fields:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"invalid header field name {name!r}")
        if self.partial is not None:
            origin, count = self.partial
            if not 0 <= origin <= MAX_NUMBER or not 1 <= count <= MAX_NUMBER:
                raise ValueError("partial needs origin >= 0 and count >= 1 (RFC 3501 9)")


_SECTION_ATT = re.compile(r"(BODY(?:\.PEEK)?)\[(.*)\](?:<(\d+)\.(\d+)>)?\Z", re.I | re.S)


def parse_fetch_att(att: str) -> FetchSpec:
    """``BODY[1.2.HEADER.FIELDS (A "B")]<0.10>`` or ``BODY.PEEK[...]`` -> FetchSpec
    (RFC 3501 9 fetch-att and section).  Raises ValueError with the reason."""
    match = _SECTION_ATT.match(att.strip())
    if not match:
        raise ValueError("invalid BODY[section] fetch attribute")
    head, paren, field_list = match.group(2).partition("(")
    head = head.strip()
    fields: tuple[str, ...] = ()
    if paren:
        if not field_list.rstrip().endswith(")"):
            raise ValueError("unterminated header field list")
        fields = _field_names(field_list.rstrip()[:-1])
    pieces = head.split(".") if head else []
    part: list[int] = []
    while pieces and pieces[0].isdigit() and pieces[0].isascii():
        if pieces[0].startswith("0"):
            raise ValueError("section part numbers start at 1")
        part.append(int(pieces.pop(0)))
    if not all(pieces):
        raise ValueError(f"empty component in section {match.group(2)!r}")
    text = ".".join(pieces).upper() or None
    if text is not None and text not in SECTION_TEXTS:
        raise ValueError(f"invalid section {match.group(2)!r}")
    if paren and text not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        raise ValueError("a field list only follows HEADER.FIELDS[.NOT]")
    partial = (int(match.group(3)), int(match.group(4))) if match.group(3) else None
    return FetchSpec(tuple(part), text, fields, partial, peek=match.group(1).upper() == "BODY.PEEK")


def _field_names(text: str) -> tuple[str, ...]:
    """header-list: astrings (atoms or quoted strings) separated by spaces."""
    names = []
    for quoted, atom in re.findall(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)', text):
        names.append(re.sub(r"\\(.)", r"\1", quoted) if not atom else atom)
    if not names:
        raise ValueError("empty header field list")
    return tuple(names)


def format_section_name(spec: FetchSpec) -> bytes:
    """The response item name: ``BODY[1.2.HEADER.FIELDS ("A" "B")]<0>`` (RFC 3501 7.4.2:
    only the origin of a partial fetch is returned; BODY.PEEK is answered as BODY)."""
    pieces = [".".join(str(n) for n in spec.part)] if spec.part else []
    if spec.text:
        pieces.append(spec.text)
    name = b"BODY[" + ".".join(pieces).encode("ascii")
    if spec.fields:
        # Quoted strings with escapes, never literals: the name is one line (RFC 3501 9 quoted).
        quoted = [
            b'"' + f.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            for f in spec.fields
        ]
        name += b" " + _list(quoted)
    name += b"]"
    if spec.partial is not None:
        name += b"<%d>" % spec.partial[0]
    return name


def _find_part(root: Part, path: tuple[int, ...]) -> tuple[Part, bool] | None:
    """The part at ``path`` (RFC 3501 6.4.5) and whether it is a whole message (the root or
    an encapsulated message viewed as such), or None when there is no such part.

    Parts of a multipart are numbered from 1; a non-multipart message has only part 1, its
    body; the parts of a message/rfc822 part are those of the message it holds.
    """
    node, is_message = root, True
    for number in path:
        if not is_message and node.message is not None:
            node, is_message = node.message, True
        if node.is_multipart:
            if number > len(node.children):
                return None
            node, is_message = node.children[number - 1], False
        elif is_message and number == 1:
            is_message = False  # part 1 of a non-multipart message is its body
        else:
            return None
    return node, is_message


def _header_fields(message: ParsedMessage, part: Part, spec: FetchSpec) -> bytes:
    wanted = {f.lower().encode("ascii") for f in spec.fields}
    keep = spec.text == "HEADER.FIELDS"
    chosen = [
        message.data[f.start : f.end] for f in part.fields if (f.name.lower() in wanted) == keep
    ]
    # RFC 3501 6.4.5: "the blank line is included in all header fetches, except in the case
    # of a message which has no body and no blank line": the header's own blank line, if any.
    header_end = part.fields[-1].end if part.fields else part.start
    return b"".join(chosen) + message.data[header_end : part.body_start]


def section(message: Message, spec: FetchSpec) -> bytes:
    """The octets of ``BODY[section]`` before any partial (RFC 3501 6.4.5), exact bytes of
    the original.  A part that does not exist gives b"" (as does HEADER/TEXT on a part that
    is not message/rfc822)."""
    if not spec.part and spec.text is None:
        # The whole message: no MIME tree needed (FETCH BODY[] of a range parses nothing).
        return message if isinstance(message, bytes) else message.data
    parsed = parse_message(message)
    found = _find_part(parsed.root, spec.part)
    if found is None:
        return b""
    part, is_message = found
    if spec.text is None:
        return parsed.body(part)
    if spec.text == "MIME":
        return parsed.header_block(part)
    if not is_message:
        # HEADER, HEADER.FIELDS[.NOT] and TEXT address the message a message/rfc822 part holds.
        if part.message is None:
            return b""
        part = part.message
    if spec.text == "TEXT":
        return parsed.body(part)
    if spec.text == "HEADER":
        return parsed.header_block(part)
    return _header_fields(parsed, part, spec)


def apply_partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    """``<origin.count>`` (RFC 3501 6.4.5): ``count`` octets from ``origin``; an origin past
    the end gives the empty string, a count past the end stops there."""
    if partial is None:
        return data
    origin, count = partial
    return data[origin : origin + count]


def body_item(message: Message, spec: FetchSpec) -> bytes:
    """The whole FETCH item: ``BODY[section]<origin> {n}\\r\\n...`` (RFC 3501 7.4.2)."""
    data = apply_partial(section(message, spec), spec.partial)
    return format_section_name(spec) + b" " + imap_string(data)
