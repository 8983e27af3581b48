"""The mbox entry format: ``From `` lines, internal headers and the message as served.

An entry on disk (mboxrd, LF line endings)::

    From alice@example.org Thu Nov 26 03:37:47 2026      <- sender, INTERNALDATE (UTC asctime)
    Subject: hi                                         <- the message's own header fields
    X-IMAPbase: 1764128267 0000000002                   <- first message only: UIDVALIDITY UIDNEXT
    X-UID: 1
    Status: RO                                  <- R = \\Seen, O = not new
    X-Status: AF                                <- A F T D: \\Answered \\Flagged \\Draft \\Deleted
    X-Keywords: $Forwarded work
                                                        <- end of the header block
    body, with ^>*From lines quoted by one more '>'
                                                        <- separator before the next From line

The internal headers are those of Dovecot, UW-IMAP and mutt; they are stripped from incoming
messages and are never part of the message as served (CRLF, unquoted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from refmail.parse import (
    crlf_size,
    header_end,
    mbox_quote,
    mbox_unquote,
    parse_headers,
    split_header_fields,
    to_crlf,
)
from refmail.store.model import valid_keyword

#: Lower-case names of the headers the store owns (Dovecot's mbox format, UW-IMAP's X-IMAP).
INTERNAL_HEADERS = frozenset(
    {b"x-uid", b"x-imapbase", b"x-imap", b"status", b"x-status", b"x-keywords"}
)
_INTERNAL_NAMES = tuple(sorted(INTERNAL_HEADERS))
#: RFC 3501 2.3.1.1: UIDs and UIDVALIDITY are 32-bit non-zero values.
MAX_UID = 2**32 - 1
#: X-Status letters (Dovecot's mbox-flags.c, UW-IMAP), in the order they are written.
X_STATUS_LETTERS = (("A", "\\Answered"), ("F", "\\Flagged"), ("T", "\\Draft"), ("D", "\\Deleted"))
SEEN = "\\Seen"
DEFAULT_SENDER = "MAILER-DAEMON"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# ctime(3) date in a From line; some writers add a zone name or offset before the year.
_FROM_DATE = re.compile(
    rb"([A-Z][a-z]{2}) +([A-Z][a-z]{2}) +(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb" +(?:[A-Za-z]{1,5} +|[+-]\d{4} +)?(\d{4})"
)
_SENDER_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


def from_line(sender: str, date: datetime) -> bytes:
    """``From <sender> <asctime UTC>`` plus LF; an empty or null sender is MAILER-DAEMON."""
    sender = _SENDER_UNSAFE.sub("_", sender.strip().strip("<>")) or DEFAULT_SENDER
    d = date.astimezone(UTC)
    stamp = (
        f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:2d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {d.year}"
    )
    return f"From {sender} {stamp}\n".encode("utf-8", "replace")


def parse_from_date(line: bytes) -> datetime | None:
    """The date of a ``From `` line, read as UTC (as Python's mailbox and we write it)."""
    match = _FROM_DATE.search(line)
    if match is None or match.group(2).decode() not in _MONTHS:
        return None
    _, month, day, hour, minute, second, year = match.groups()
    try:
        return datetime(
            int(year),
            _MONTHS.index(month.decode()) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def internal_headers(
    uid: int, flags: Iterable[str], old: bool, base: tuple[int, int] | None
) -> bytes:
    """The store's header lines for one entry (``base`` = (UIDVALIDITY, UIDNEXT) for the
    first entry of the file)."""
    flags = frozenset(flags)
    lines = []
    if base is not None:
        lines.append(b"X-IMAPbase: %010d %010d\n" % base)
    lines.append(b"X-UID: %d\n" % uid)
    status = ("R" if SEEN in flags else "") + ("O" if old else "")
    if status:
        lines.append(b"Status: %s\n" % status.encode())
    x_status = "".join(letter for letter, flag in X_STATUS_LETTERS if flag in flags)
    if x_status:
        lines.append(b"X-Status: %s\n" % x_status.encode())
    keywords = sorted(f for f in flags if not f.startswith("\\"))
    if keywords:
        lines.append(b"X-Keywords: %s\n" % " ".join(keywords).encode("ascii"))
    return b"".join(lines)


def split_internal(fields: bytes) -> tuple[bytes, bytes]:
    """Split header fields into (the message's own, the store's internal ones), byte-exact:
    a folded field's continuation lines go with it (RFC 5322 2.2.3).  The parsing core's
    ``split_header_fields``: every message read passes through here."""
    return split_header_fields(fields, _INTERNAL_NAMES)


def _blank_line_length(block: bytes) -> int:
    """Length of the blank line that ends a header block, 0 when it has none."""
    if block.endswith(b"\r\n") and (len(block) == 2 or block[-3:-2] == b"\n"):
        return 2
    if block.endswith(b"\n") and (len(block) == 1 or block[-2:-1] == b"\n"):
        return 1
    return 0


@dataclass(frozen=True, slots=True)
class Parts:
    """An entry cut into the pieces the store works with."""

    from_line: bytes  # with its LF
    own_fields: bytes  # the message's header fields, internal ones removed
    internal: bytes  # the internal header lines as found
    rest: bytes  # from the blank line that ends the header block to the message's end
    separator: bytes  # the blank line before the next entry ("\n" or "")

    def served(self) -> bytes:
        """The message as served: unquoted, CRLF, internal headers removed."""
        return to_crlf(mbox_unquote(self.own_fields + self.rest))

    def served_size(self) -> int:
        return crlf_size(mbox_unquote(self.own_fields + self.rest))

    def header_length(self) -> int:
        """Bytes of the entry through its header block (and its blank line, if any)."""
        blank = 1 if self.rest.startswith(b"\n") else 2 if self.rest.startswith(b"\r\n") else 0
        return len(self.from_line) + len(self.own_fields) + len(self.internal) + blank


def split_entry(raw: bytes) -> Parts:
    """Cut one on-disk entry (``From `` line through the separator) into its Parts."""
    eol = raw.find(b"\n")
    first = raw if eol < 0 else raw[: eol + 1]
    content = raw[len(first) :]
    separator = b""
    if content.endswith(b"\n\n"):
        content, separator = content[:-1], b"\n"
    hend = header_end(content)
    block = content[:hend]
    fields_end = hend - _blank_line_length(block)
    own, internal = split_internal(content[:fields_end])
    return Parts(first, own, internal, content[fields_end:], separator)


def build_entry(
    parts_or_message: Parts | bytes,
    *,
    sender: str = DEFAULT_SENDER,
    date: datetime | None = None,
    uid: int,
    flags: Iterable[str],
    old: bool,
    base: tuple[int, int] | None,
) -> bytes:
    """A complete entry ending in its separator.

    From raw message bytes (CRLF or LF): quoted, internal headers dropped, From line made of
    ``sender`` and ``date``.  From Parts: the From line and the message are kept byte-exact
    and only the internal headers are replaced; but given a ``date``, the From line gets it
    (an entry whose From line had no readable date keeps the INTERNALDATE it was given).
    """
    if isinstance(parts_or_message, Parts):
        parts = parts_or_message
        first = parts.from_line if parts.from_line.endswith(b"\n") else parts.from_line + b"\n"
        if date is not None:
            words = parts.from_line.split()
            first = from_line(words[1].decode("utf-8", "replace") if len(words) > 1 else "", date)
        own, rest = parts.own_fields, parts.rest
    else:
        if date is None:
            raise ValueError("a new entry needs its INTERNALDATE")
        first = from_line(sender, date)
        own, rest = _quoted_pieces(parts_or_message)
    return b"".join(
        (first, _line(own), internal_headers(uid, flags, old, base), _line(rest), b"\n")
    )


def new_entry(
    message: bytes,
    *,
    sender: str = DEFAULT_SENDER,
    date: datetime,
    uid: int,
    flags: Iterable[str],
    old: bool,
    base: tuple[int, int] | None,
) -> tuple[bytes, int, int]:
    """``build_entry(message, ...)`` and the ``header_length`` and ``size`` that
    ``parse_entry`` would find in it, known from the pieces instead of parsed back out of
    the entry (an append's hot path: for a 1 MiB message that second parse cost about a fifth
    of the delivery).  ``size`` adds the pieces' served sizes: ``own`` ends with a LF, so
    unquoting and CRLF counting never straddle the cut."""
    own, rest = _quoted_pieces(message)
    own, rest = _line(own), _line(rest)
    first = from_line(sender, date)
    internal = internal_headers(uid, flags, old, base)
    blank = 1 if rest.startswith(b"\n") else 2 if rest.startswith(b"\r\n") else 0
    header_length = len(first) + len(own) + len(internal) + blank
    size = crlf_size(mbox_unquote(own)) + crlf_size(mbox_unquote(rest))
    # One join copies the body once; a chain of + would copy it at each step.
    return b"".join((first, own, internal, rest, b"\n")), header_length, size


def _quoted_pieces(message: bytes) -> tuple[bytes, bytes]:
    """A new message mboxrd-quoted and cut into (its own header fields, the rest from the
    blank line on); internal header fields a sender put in are dropped."""
    quoted = mbox_quote(message)
    hend = header_end(quoted)
    fields_end = hend - _blank_line_length(quoted[:hend])
    own, _ = split_internal(quoted[:fields_end])
    return own, quoted[fields_end:]


def _line(piece: bytes) -> bytes:
    """``piece`` ending with its LF: a header-only message cut short still gets a line for
    the internal headers after it, and the entry's separator stays a blank line."""
    return piece + b"\n" if piece and not piece.endswith(b"\n") else piece


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """What a scan learns of one entry."""

    length: int
    header_length: int
    size: int
    uid: int | None  # None: no valid X-UID
    base: tuple[int, int] | None  # X-IMAPbase (UIDVALIDITY, UIDNEXT) when present and valid
    flags: frozenset[str]
    old: bool
    internaldate: datetime | None
    well_formed: bool  # ends with its separator, so it can be copied verbatim


def parse_entry(raw: bytes) -> ParsedEntry:
    """Read the store's state of one entry from its internal headers (Dovecot's semantics:
    an X-UID that is not a positive 32-bit number counts as missing)."""
    parts = split_entry(raw)
    uid = None
    base = None
    flags: set[str] = set()
    old = False
    for name, value in parse_headers(parts.internal):
        key = name.strip().lower()
        if key == b"x-uid":
            uid = _uid(value.strip())
        elif key == b"x-imapbase":
            words = value.split()
            if len(words) >= 2:
                validity, uidnext = _uid(words[0]), _uid(words[1])
                if validity is not None and uidnext is not None:
                    base = (validity, uidnext)
        elif key == b"status":
            flags.update([SEEN] if b"R" in value else [])
            old = old or b"O" in value
        elif key == b"x-status":
            text = value.decode("ascii", "replace")
            flags.update(flag for letter, flag in X_STATUS_LETTERS if letter in text)
        elif key == b"x-keywords":
            flags.update(_keywords(value))
    return ParsedEntry(
        length=len(raw),
        header_length=parts.header_length(),
        size=parts.served_size(),
        uid=uid,
        base=base,
        flags=frozenset(flags),
        old=old,
        internaldate=parse_from_date(parts.from_line),
        well_formed=bool(parts.separator) and parts.from_line.endswith(b"\n"),
    )


def _uid(text: bytes) -> int | None:
    if not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= MAX_UID else None


def _keywords(value: bytes) -> list[str]:
    words = value.decode("ascii", "replace").replace(",", " ").split()
    return [word for word in words if valid_keyword(word)]


def served_header(raw_head: bytes) -> bytes:
    """The served header block from an entry's first ``header_length`` bytes (no separator
    to strip here: a trailing blank line is the header block's own)."""
    eol = raw_head.find(b"\n")
    content = b"" if eol < 0 else raw_head[eol + 1 :]
    hend = header_end(content)
    fields_end = hend - _blank_line_length(content[:hend])
    own, _ = split_internal(content[:fields_end])
    return to_crlf(mbox_unquote(own + content[fields_end:hend]))
