"""SORT (RFC 5256 3) with DISPLAYFROM/DISPLAYTO (RFC 5957), and base subjects (RFC 5256 2.1).

``sort_messages(criteria, views)`` orders messages by the criteria, REVERSE applying to the
key it precedes; messages equal under every key keep sequence-number order (RFC 5256 3).
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from refmail.imap.message import (
    Address,
    Part,
    decode_header_value,
    parse_address_list,
    parse_header,
)
from refmail.imap.protocol import Atom, ParenList
from refmail.imap.search import MessageView

#: RFC 5256 3 sort-key, plus RFC 5957 DISPLAYFROM and DISPLAYTO.
SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)

# RFC 5256 2.1 ABNF, case-insensitive (after step 1 every WSP run is one space):
#   subj-trailer = "(fwd)" / WSP
#   subj-blob    = "[" *BLOBCHAR "]" *WSP
#   subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
#   subj-leader  = (*subj-blob subj-refwd) / WSP
_TRAILER = re.compile(r"(?:\(fwd\)| )\Z", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\] *"
_LEADER = re.compile(rf"(?:(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:| )", re.IGNORECASE)
_BLOB_PREFIX = re.compile(_BLOB)
_WSP_RUN = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """One RFC 5256 sort-criterion: a key and whether REVERSE precedes it."""

    key: str
    reverse: bool = False

    def __post_init__(self) -> None:
        if self.key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {self.key!r}")


def parse_sort_criteria(items: Sequence[object]) -> tuple[SortCriterion, ...]:
    """``(REVERSE DATE SUBJECT)`` (RFC 5256 3 sort-criteria: the list's items, as Atoms or
    str, or the ParenList itself) -> criteria.  Raises ValueError with the reason."""
    if isinstance(items, ParenList):
        items = items.items
    words = []
    for item in items:
        word = item.value if isinstance(item, Atom) else item
        if not isinstance(word, str):
            raise ValueError("sort criteria must be atoms")
        words.append(word.upper())
    if not words:
        raise ValueError("empty sort criteria")
    out = []
    reverse = False
    for word in words:
        if word == "REVERSE":
            if reverse:
                raise ValueError("REVERSE REVERSE is not a sort criterion")
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ValueError(f"unknown sort key {word[:40]!r}")
        out.append(SortCriterion(word, reverse))
        reverse = False
    if reverse:
        raise ValueError("REVERSE must precede a sort key")
    return tuple(out)


def base_subject(raw: bytes | str) -> str:
    """The base subject of RFC 5256 2.1, steps 1 to 7."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    text = decode_header_value(data)
    # (1) RFC 2047 decoding done; each run of whitespace becomes one space.
    subject = _WSP_RUN.sub(" ", text)
    while True:
        # (2) remove subj-trailer ("(fwd)" and whitespace) repeatedly.
        while True:
            stripped = _TRAILER.sub("", subject)
            if stripped == subject:
                break
            subject = stripped
        # (3)-(5): remove subj-leader, then a subj-blob when something remains after it.
        while True:
            before = subject
            while (match := _LEADER.match(subject)) and match.end() > 0:
                subject = subject[match.end() :]
            blob = _BLOB_PREFIX.match(subject)
            if blob and subject[blob.end() :].strip():
                subject = subject[blob.end() :]
            if subject == before:
                break
        # (6) "[fwd: ... ]" wrapper: unwrap and start over at (2).
        if subject[:5].lower() == "[fwd:" and subject.endswith("]"):
            subject = subject[5:-1].strip(" ")
            continue
        return subject


def _ascii_casemap(text: str) -> bytes:
    """i;ascii-casemap (RFC 4790 9.2): octets, ASCII letters upper-cased."""
    return text.encode("utf-8", "surrogateescape").upper()


def _first_mailbox(raw: bytes | None) -> Address | None:
    return next((a for a in parse_address_list(raw) if not a.is_group_marker), None)


def _mailbox_key(raw: bytes | None) -> bytes:
    """RFC 5256 3 FROM/TO/CC: the addr-mailbox of the first address, or empty."""
    first = _first_mailbox(raw)
    return _ascii_casemap(first.mailbox or "") if first else b""


def _display_key(raw: bytes | None) -> str:
    """RFC 5957 2: the first address's display name (RFC 2047 decoded), else its addr-spec;
    compared with i;unicode-casemap, approximated by case folding."""
    first = _first_mailbox(raw)
    if first is None:
        return ""
    if first.name:
        name = decode_header_value(first.name.encode("utf-8", "surrogateescape")).strip()
        if name:
            return name.casefold()
    return f"{first.mailbox}@{first.host}".casefold()


def _sent_time(view: MessageView, message: Part) -> datetime.datetime:
    """RFC 5256 2.2 sent date: the Date: header, else INTERNALDATE; compared in UTC."""
    raw = message.header("Date")
    if raw is not None:
        try:
            moment = email.utils.parsedate_to_datetime(raw.decode("ascii", "replace"))
            if moment.tzinfo is None:  # "-0000": no zone information; treat as UTC
                moment = moment.replace(tzinfo=datetime.UTC)
            return moment
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return _internaldate(view)


def _internaldate(view: MessageView) -> datetime.datetime:
    """INTERNALDATE as an instant; a naive one (a caller's slip) is taken as UTC so that it
    still compares with the aware Date: headers."""
    moment = view.internaldate
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _key_function(key: str) -> Callable[[MessageView, Part | None], Any]:
    def header(name: str) -> Callable[[Part | None], bytes | None]:
        return lambda m: m.header(name) if m is not None else None

    table: dict[str, Callable[[MessageView, Part | None], Any]] = {
        "ARRIVAL": lambda v, m: _internaldate(v),
        "SIZE": lambda v, m: v.size,
        "DATE": lambda v, m: _sent_time(v, m) if m is not None else _internaldate(v),
        "SUBJECT": lambda v, m: _ascii_casemap(base_subject(header("Subject")(m) or b"")),
        "FROM": lambda v, m: _mailbox_key(header("From")(m)),
        "TO": lambda v, m: _mailbox_key(header("To")(m)),
        "CC": lambda v, m: _mailbox_key(header("Cc")(m)),
        "DISPLAYFROM": lambda v, m: _display_key(header("From")(m)),
        "DISPLAYTO": lambda v, m: _display_key(header("To")(m)),
    }
    return table[key]


def sort_messages(criteria: Sequence[SortCriterion], views: Sequence[MessageView]) -> list[int]:
    """Sequence numbers of ``views`` ordered by ``criteria`` (RFC 5256 3).

    Ties under every criterion are broken by sequence number, ascending, whatever REVERSE
    says.  Messages are read only when a criterion needs their header.
    """
    if not criteria:
        raise ValueError("empty sort criteria")
    needs_header = any(c.key not in ("ARRIVAL", "SIZE") for c in criteria)
    rows = []
    for view in views:
        message = parse_header(view.message_bytes()) if needs_header else None
        rows.append((view, [_key_function(c.key)(view, message) for c in criteria]))
    rows.sort(key=lambda row: row[0].seq)
    # Stable sorts from the last criterion to the first give the lexicographic order;
    # Python's reverse=True keeps equal items in their existing (sequence) order.
    for index in range(len(criteria) - 1, -1, -1):
        rows.sort(key=lambda row: row[1][index], reverse=criteria[index].reverse)
    return [view.seq for view, _ in rows]
