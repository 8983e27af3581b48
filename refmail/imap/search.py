"""SEARCH keys (RFC 3501 6.4.4): a parsed key tree of frozen dataclasses and its evaluation.

``parse_search(tokens)`` turns the command's arguments into one key; ``matches(key, view)``
tests one message.  A ``MessageView`` carries what the mailbox index knows (flags, size,
dates) and a lazy ``message_bytes`` callable, so keys on flags, sizes and dates never read the
message; header and body keys parse it once per message.
"""

from __future__ import annotations

import binascii
import codecs
import datetime
import email.utils
import quopri
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from refmail.errors import IMAPError
from refmail.imap.arguments import SequenceSet
from refmail.imap.message import (
    ParsedMessage,
    Part,
    decode_header_value,
    parse_header,
    parse_message,
)
from refmail.imap.protocol import Atom, ParenList, String

#: Charsets a client may name in SEARCH CHARSET (RFC 3501 6.4.4: US-ASCII MUST be supported);
#: listed in the ``[BADCHARSET (...)]`` response code for any other (RFC 3501 7.1).
SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")
#: Nesting of NOT/OR/parentheses a search key may have.  RFC 3501 sets none, but the parser
#: and the evaluator recurse, and a command line of "NOT NOT NOT ..." must not exhaust the stack.
MAX_SEARCH_DEPTH = 64
#: RFC 3501 9: number is a 32-bit unsigned integer.
MAX_NUMBER = 2**32 - 1

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")  # RFC 3501 9 date-text
_SEQUENCE_SET = re.compile(r"[0-9*:,]+\Z")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")  # RFC 5322 2.2 ftext
_SYSTEM_FLAGS = {
    "ANSWERED": "\\Answered",
    "DELETED": "\\Deleted",
    "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged",
    "SEEN": "\\Seen",
}
_ADDRESS_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_KEYS = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}


class SearchError(ValueError):
    """A search key that does not parse: reply BAD with ``str(exc)``."""


class BadCharset(SearchError):
    """An unsupported CHARSET: reply ``NO [BADCHARSET (US-ASCII UTF-8)]`` (RFC 3501 6.4.4)."""


# ------------------------------------------------------------------------------ keys


@dataclass(frozen=True, slots=True)
class All:
    """ALL: every message."""


@dataclass(frozen=True, slots=True)
class HasFlag:
    """ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, KEYWORD: the flag is set (compared
    case-insensitively, RFC 3501 2.3.2).  The UN- forms are ``Not(HasFlag(...))``."""

    flag: str


@dataclass(frozen=True, slots=True)
class Recent:
    """RECENT: the \\Recent flag of this session (NEW and OLD are built from it)."""


@dataclass(frozen=True, slots=True)
class HeaderContains:
    """BCC, CC, FROM, SUBJECT, TO, HEADER: the field (decoded) contains ``value``; an empty
    value matches every message that has the field (RFC 3501 6.4.4 HEADER)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class BodyContains:
    """BODY: the decoded text of the body contains ``value``."""

    value: str


@dataclass(frozen=True, slots=True)
class TextContains:
    """TEXT: the decoded header or body contains ``value``."""

    value: str


@dataclass(frozen=True, slots=True)
class DateKey:
    """BEFORE/ON/SINCE (``source="internal"``: INTERNALDATE) and SENTBEFORE/SENTON/SENTSINCE
    (``"sent"``: the Date: header), by date only, "disregarding time and timezone"."""

    source: str
    relation: str
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SizeKey:
    """LARGER (``relation="larger"``) / SMALLER: RFC822.SIZE compared with ``size``."""

    relation: str
    size: int


@dataclass(frozen=True, slots=True)
class SeqSetKey:
    """A sequence set (message sequence numbers) or ``UID`` set; ``*`` is the largest number
    in use, which the caller supplies through ``SearchContext``."""

    sequence: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    """A parenthesized list, or the keys of the command: all must match."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    All
    | HasFlag
    | Recent
    | HeaderContains
    | BodyContains
    | TextContains
    | DateKey
    | SizeKey
    | SeqSetKey
    | Not
    | Or
    | And
)


# ------------------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class MessageView:
    """What SEARCH and SORT know of one message: the index's data plus a lazy reader of the
    message as served (CRLF), called only when a key needs the header or the body."""

    seq: int
    uid: int
    size: int
    flags: frozenset[str]
    internaldate: datetime.datetime
    recent: bool
    message_bytes: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class SearchContext:
    """The numbers ``*`` stands for: the largest sequence number (the message count) and the
    largest UID in the mailbox (RFC 3501 9 seq-number)."""

    largest_seq: int
    largest_uid: int


# ------------------------------------------------------------------------------ parsing


def _word(token: object) -> str | None:
    """An atom's text (also a plain str token), or None for strings and lists."""
    if isinstance(token, Atom):
        return token.value
    if isinstance(token, str):
        return token
    return None


class _Parser:
    def __init__(self, tokens: Sequence[object], charset: str) -> None:
        self.tokens = list(tokens)
        self.pos = 0
        self.charset = charset

    def next(self, what: str) -> object:
        if self.pos >= len(self.tokens):
            raise SearchError(f"missing {what}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def string(self, what: str) -> str:
        """RFC 3501 9 astring in the search charset."""
        token = self.next(what)
        if isinstance(token, String):
            token = token.value
        if isinstance(token, bytes):
            try:
                return token.decode(self.charset)
            except UnicodeDecodeError:
                raise SearchError(f"{what} is not valid {self.charset}") from None
        word = _word(token)
        if word is None:
            raise SearchError(f"{what} must be a string")
        return word

    def atom(self, what: str) -> str:
        word = _word(self.next(what))
        if word is None:
            raise SearchError(f"{what} must be an atom")
        return word

    def number(self, what: str) -> int:
        text = self.atom(what)
        if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > MAX_NUMBER:
            raise SearchError(f"invalid {what}")
        return int(text)

    def date(self, what: str) -> datetime.date:
        """RFC 3501 9 date: date-text or DQUOTE date-text DQUOTE (``1-Feb-1994``)."""
        match = _DATE.match(self.string(what))
        if not match or match.group(2).upper() not in _MONTHS:
            raise SearchError(f"invalid {what} (expected d-Mon-yyyy)")
        try:
            return datetime.date(int(match[3]), _MONTHS[match[2].upper()], int(match[1]))
        except ValueError:
            raise SearchError(f"invalid {what}") from None

    def keys(self, depth: int) -> list[SearchKey]:
        out = []
        while self.pos < len(self.tokens):
            out.append(self.key(depth))
        return out

    def key(self, depth: int) -> SearchKey:
        """One search-key (RFC 3501 9)."""
        if depth > MAX_SEARCH_DEPTH:
            raise SearchError("search keys nested too deeply")
        token = self.next("search key")
        items = token.items if isinstance(token, ParenList) else token
        if isinstance(items, list | tuple):
            inner = _Parser(items, self.charset).keys(depth + 1)
            if not inner:
                raise SearchError("empty parenthesized search key")
            return inner[0] if len(inner) == 1 else And(tuple(inner))
        word = _word(token)
        if word is None:
            raise SearchError("search key must be an atom")
        name = word.upper()
        if _SEQUENCE_SET.match(word):
            return SeqSetKey(_sequence_set(word))
        if name == "ALL":
            return All()
        if name in _SYSTEM_FLAGS:
            return HasFlag(_SYSTEM_FLAGS[name])
        if name.startswith("UN") and name[2:] in _SYSTEM_FLAGS:
            return Not(HasFlag(_SYSTEM_FLAGS[name[2:]]))
        if name in ("KEYWORD", "UNKEYWORD"):
            flag = HasFlag(self.atom("keyword"))
            return flag if name == "KEYWORD" else Not(flag)
        if name == "RECENT":
            return Recent()
        if name == "NEW":  # RFC 3501 6.4.4: "functionally equivalent to (RECENT UNSEEN)"
            return And((Recent(), Not(HasFlag("\\Seen"))))
        if name == "OLD":  # "functionally equivalent to NOT RECENT"
            return Not(Recent())
        if name in _ADDRESS_KEYS:
            return HeaderContains(_ADDRESS_KEYS[name], self.string(f"{name} string"))
        if name == "HEADER":
            field = self.string("header field name")
            if not _FIELD_NAME.match(field):
                raise SearchError(f"invalid header field name {field[:40]!r}")
            return HeaderContains(field, self.string("HEADER string"))
        if name == "BODY":
            return BodyContains(self.string("BODY string"))
        if name == "TEXT":
            return TextContains(self.string("TEXT string"))
        if name in _DATE_KEYS:
            source, relation = _DATE_KEYS[name]
            return DateKey(source, relation, self.date(f"{name} date"))
        if name in ("LARGER", "SMALLER"):
            return SizeKey(name.lower(), self.number(f"{name} size"))
        if name == "UID":
            return SeqSetKey(_sequence_set(self.atom("UID set")), uid=True)
        if name == "NOT":
            return Not(self.key(depth + 1))
        if name == "OR":
            left = self.key(depth + 1)
            return Or(left, self.key(depth + 1))
        raise SearchError(f"unknown search key {word[:40]!r}")


def _sequence_set(text: str) -> SequenceSet:
    try:
        return SequenceSet.parse(text)
    except IMAPError:
        raise SearchError(f"invalid sequence set {text[:40]!r}") from None


def _charset(name: str) -> str:
    """The Python codec for a SEARCH CHARSET, or BadCharset (RFC 3501 6.4.4)."""
    upper = name.upper()
    if upper not in SUPPORTED_CHARSETS:
        raise BadCharset(f"unsupported charset {name[:40]!r}")
    return "ascii" if upper == "US-ASCII" else "utf-8"


def parse_search(tokens: Sequence[object], charset: str | None = None) -> SearchKey:
    """The SEARCH arguments (RFC 3501 6.4.4, 9 "search") -> one key.

    ``tokens`` are the protocol's ``Atom``/``String``/``ParenList`` (or plain ``str`` atoms,
    ``bytes`` strings and Python lists).  A leading ``CHARSET name`` is honoured; ``charset``
    is the default (US-ASCII; UTF-8 once a client ENABLEd UTF8=ACCEPT).  Several keys mean AND.
    Raises SearchError (BAD) or BadCharset (NO [BADCHARSET]).
    """
    tokens = list(tokens)
    codec = _charset(charset or "US-ASCII")
    if tokens and (_word(tokens[0]) or "").upper() == "CHARSET":
        parser = _Parser(tokens[1:], "ascii")
        codec = _charset(parser.string("charset name"))
        tokens = tokens[1 + parser.pos :]
    keys = _Parser(tokens, codec).keys(0)
    if not keys:
        raise SearchError("missing search key")
    return keys[0] if len(keys) == 1 else And(tuple(keys))


# ------------------------------------------------------------------------------ evaluation


def decode_body(message: ParsedMessage, part: Part) -> bytes:
    """A leaf part's body with its Content-Transfer-Encoding undone (RFC 2045 6)."""
    body = message.body(part)
    encoding = part.encoding
    if encoding == "BASE64":
        # Lenient, as mail readers are: skip foreign bytes and repair the padding.
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return b""
    if encoding == "QUOTED-PRINTABLE":
        return quopri.decodestring(body)
    return body


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes in a MIME charset as text: unknown (or non-text) codecs and "us-ascii" text with
    8-bit bytes read as UTF-8, which they nearly always are; bad bytes become U+FFFD."""
    name = (charset or "utf-8").strip().lower()
    try:
        if not codecs.lookup(name)._is_text_encoding or name in ("us-ascii", "ascii"):
            name = "utf-8"
    except LookupError:
        name = "utf-8"
    return data.decode(name, "replace")


def searchable_body(message: ParsedMessage, part: Part) -> list[str]:
    """Text of an entity's body for SEARCH BODY/TEXT (RFC 3501 6.4.4): every text leaf
    decoded (transfer encoding and charset), and the header and body of encapsulated
    messages; other leaves (images, archives) hold no text and are not searched."""
    out: list[str] = []
    stack = [part]
    while stack:
        node = stack.pop()
        if node.children:
            stack.extend(reversed(node.children))
        elif node.message is not None:
            out.append(decode_header_value(message.header_block(node.message)))
            stack.append(node.message)
        elif node.maintype in ("text", "message"):
            out.append(decode_text(decode_body(message, node), node.param("charset")))
    return out


def _sent_date(view: MessageView, header: Part) -> datetime.date:
    """The Date: header's date in its own zone; INTERNALDATE's when it is absent or invalid
    (the fallback RFC 5256 2.2 prescribes for SORT, used here too for consistency)."""
    raw = header.header("Date")
    if raw is not None:
        try:
            return email.utils.parsedate_to_datetime(raw.decode("ascii", "replace")).date()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return view.internaldate.date()


class _Evaluator:
    """One message's evaluation; the message is read and parsed at most once."""

    def __init__(self, view: MessageView, context: SearchContext | None) -> None:
        self.view = view
        self.context = context
        self.flags = {f.lower() for f in view.flags}

    @cached_property
    def data(self) -> bytes:
        return self.view.message_bytes()

    @cached_property
    def message(self) -> ParsedMessage:
        return parse_message(self.data)

    @cached_property
    def header(self) -> Part:
        if "message" in self.__dict__:
            return self.message.root
        return parse_header(self.data)

    @cached_property
    def body_text(self) -> list[str]:
        return [t.casefold() for t in searchable_body(self.message, self.message.root)]

    def test(self, key: SearchKey) -> bool:
        view = self.view
        match key:
            case All():
                return True
            case HasFlag(flag):
                return flag.lower() in self.flags
            case Recent():
                return view.recent
            case SizeKey(relation, size):
                return view.size > size if relation == "larger" else view.size < size
            case DateKey(source, relation, date):
                if source == "internal":
                    day = view.internaldate.date()
                else:
                    day = _sent_date(view, self.header)
                if relation == "before":
                    return day < date
                return day == date if relation == "on" else day >= date
            case SeqSetKey(sequence, uid):
                number = view.uid if uid else view.seq
                if self.context is not None:
                    largest = self.context.largest_uid if uid else self.context.largest_seq
                elif sequence.uses_star():
                    raise ValueError("a sequence set with '*' needs a SearchContext")
                else:
                    largest = 0
                return sequence.contains(number, largest)
            case HeaderContains(field, value):
                values = self.header.headers(field)
                if not value:
                    return bool(values)
                needle = value.casefold()
                return any(needle in decode_header_value(v).casefold() for v in values)
            case BodyContains(value):
                needle = value.casefold()
                return any(needle in text for text in self.body_text)
            case TextContains(value):
                needle = value.casefold()
                header = decode_header_value(self.message.header_block(self.message.root))
                return needle in header.casefold() or any(needle in t for t in self.body_text)
            case Not(inner):
                return not self.test(inner)
            case Or(left, right):
                return self.test(left) or self.test(right)
            case And(keys):
                return all(self.test(k) for k in keys)
        raise TypeError(f"not a search key: {key!r}")


def matches(key: SearchKey, view: MessageView, context: SearchContext | None = None) -> bool:
    """Does the message match the key (RFC 3501 6.4.4)?  ``context`` gives ``*`` its value
    in sequence sets; a key using ``*`` without one is a caller's error (ValueError)."""
    return _Evaluator(view, context).test(key)


def search(
    key: SearchKey, views: Iterable[MessageView], context: SearchContext | None = None
) -> list[MessageView]:
    """The views that match, in the order given."""
    return [view for view in views if matches(key, view, context)]


def needs_message(key: SearchKey) -> bool:
    """Whether evaluating the key reads the message (header or body keys, SENT* dates)."""
    match key:
        case HeaderContains() | BodyContains() | TextContains():
            return True
        case DateKey(source):
            return source == "sent"
        case Not(inner):
            return needs_message(inner)
        case Or(left, right):
            return needs_message(left) or needs_message(right)
        case And(keys):
            return any(needs_message(k) for k in keys)
    return False
