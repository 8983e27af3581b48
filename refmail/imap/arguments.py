"""Argument grammar of IMAP commands (RFC 3501 9): the ``Arguments`` cursor handlers read
their arguments with, sequence sets, numbers and dates."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType

from refmail.errors import IMAPError
from refmail.imap.protocol import Atom, ParenList, String, Token
from refmail.parse import ParseError, imap_sequence_set

#: RFC 3501 9: nz-number is a 32-bit unsigned integer.
MAX_NUMBER = 2**32 - 1

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = MappingProxyType({m.upper(): i for i, m in enumerate(_MONTHS, 1)})
_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")
_DATE_TIME = re.compile(
    r"([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z"
)


# ------------------------------------------------------------------------------ arguments


class Arguments:
    """A cursor over a command's arguments; each reader raises BAD on a grammar mismatch."""

    def __init__(self, tokens: tuple[Token, ...] | list[Token]) -> None:
        self.tokens = tuple(tokens)
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.tokens)

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.more() else None

    def next(self, what: str) -> Token:
        if not self.more():
            raise IMAPError("BAD", f"missing {what}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def rest(self) -> tuple[Token, ...]:
        tokens = self.tokens[self.pos :]
        self.pos = len(self.tokens)
        return tokens

    def end(self) -> None:
        if self.more():
            raise IMAPError("BAD", "too many arguments")

    def atom(self, what: str = "argument") -> str:
        token = self.next(what)
        if not isinstance(token, Atom):
            raise IMAPError("BAD", f"{what} must be an atom")
        return token.value

    def astring(self, what: str = "argument") -> bytes:
        """RFC 3501 9 astring: atom or string."""
        return astring_value(self.next(what), what)

    def nstring(self, what: str = "argument") -> bytes | None:
        token = self.next(what)
        if isinstance(token, Atom) and token.value.upper() == "NIL":
            return None
        return astring_value(token, what)

    def text(self, what: str = "argument") -> str:
        """An astring decoded as UTF-8 (RFC 6855 allows UTF-8; others send ASCII)."""
        try:
            return self.astring(what).decode("utf-8")
        except UnicodeDecodeError:
            raise IMAPError("BAD", f"{what} is not valid UTF-8") from None

    def number(self, what: str = "number") -> int:
        return parse_number(self.atom(what), what)

    def paren_list(self, what: str = "list") -> tuple[Token, ...]:
        token = self.next(what)
        if not isinstance(token, ParenList):
            raise IMAPError("BAD", f"{what} must be a parenthesized list")
        return token.items

    def sequence_set(self) -> SequenceSet:
        return SequenceSet.parse(self.atom("sequence set"))


def astring_value(token: Token, what: str = "argument") -> bytes:
    if isinstance(token, String):
        return token.value
    if isinstance(token, Atom):
        return token.value.encode("ascii")
    raise IMAPError("BAD", f"{what} must be a string")


def parse_number(text: str, what: str = "number") -> int:
    """RFC 3501 9 number: 1*DIGIT fitting in 32 bits."""
    if not text.isdigit() or not text.isascii() or len(text) > 10 or int(text) > MAX_NUMBER:
        raise IMAPError("BAD", f"invalid {what}")
    return int(text)


# ------------------------------------------------------------------------------ sequence sets


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """RFC 3501 9 sequence-set: ranges of numbers where None stands for ``*`` (the largest
    number in use).  ``3:1`` is the same as ``1:3`` (RFC 3501 9, seq-range)."""

    ranges: tuple[tuple[int | None, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """RFC 3501 9 sequence-set, by the parsing core's ``imap_sequence_set``."""
        try:
            pairs = imap_sequence_set(text.encode("ascii"))
        except (UnicodeEncodeError, ParseError):
            raise IMAPError("BAD", "invalid sequence set") from None
        return cls(tuple((low or None, high or None) for low, high in pairs))

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``largest``, each as (low, high)."""
        out = []
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, number: int, largest: int) -> bool:
        return any(low <= number <= high for low, high in self.resolve(largest))

    def numbers(self, largest: int, universe: int | None = None) -> Iterator[int]:
        """Each number of the set in 1..universe (default largest), in order, once."""
        top = largest if universe is None else universe
        seen: set[int] = set()
        for low, high in sorted(self.resolve(largest)):
            for n in range(max(low, 1), min(high, top) + 1):
                if n not in seen:
                    seen.add(n)
                    yield n

    def uses_star(self) -> bool:
        return any(low is None or high is None for low, high in self.ranges)


# ------------------------------------------------------------------------------ dates


def parse_date(text: str) -> datetime.date:
    """RFC 3501 9 date: ``d-Mon-yyyy`` (SEARCH BEFORE/ON/SINCE ...)."""
    match = _DATE.match(text)
    if not match or match.group(2).upper() not in _MONTH_NUMBER:
        raise IMAPError("BAD", "invalid date")
    day, month, year = int(match.group(1)), _MONTH_NUMBER[match.group(2).upper()], int(match[3])
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise IMAPError("BAD", "invalid date") from None


def parse_date_time(text: str) -> datetime.datetime:
    """RFC 3501 9 date-time: ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (APPEND)."""
    match = _DATE_TIME.match(text)
    if not match or match.group(2).upper() not in _MONTH_NUMBER:
        raise IMAPError("BAD", "invalid date-time")
    day, mon, year, hh, mm, ss, sign, zh, zm = match.groups()
    offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
    try:
        tz = datetime.timezone(-offset if sign == "-" else offset)
        return datetime.datetime(
            int(year), _MONTH_NUMBER[mon.upper()], int(day), int(hh), int(mm), int(ss), tzinfo=tz
        )
    except ValueError:
        raise IMAPError("BAD", "invalid date-time") from None


def format_date_time(moment: datetime.datetime) -> str:
    """RFC 3501 9 date-time, quoted: ``"17-Jul-1996 02:44:25 -0700"``."""
    offset = moment.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} '
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )
