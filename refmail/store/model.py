"""The store's records: what a message is to the protocols, and what the index keeps of it.

Flags follow RFC 3501 2.3.2: the system flags the store keeps and keywords, which are IMAP
atoms.  ``\\Recent`` is no stored flag: a message is recent until a session claims it
(``Mailbox.claim_recent``), which sets the mbox ``Status: O`` bit, as Dovecot does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

#: RFC 3501 2.3.2 system flags stored in the mbox (Status/X-Status), by their lower-case name.
SYSTEM_FLAGS = {
    "\\seen": "\\Seen",
    "\\answered": "\\Answered",
    "\\flagged": "\\Flagged",
    "\\deleted": "\\Deleted",
    "\\draft": "\\Draft",
}
#: RFC 3501 2.3.2: \Recent is session state the server sets; never stored, silently dropped.
RECENT = "\\recent"
#: RFC 3501 9 atom-specials (plus ``]`` for flag-keyword): characters a keyword may not hold.
ATOM_SPECIALS = frozenset('(){ %*"\\]')
#: X-Keywords is one header line; keep a keyword well inside RFC 5322 2.1.1's 998 octets.
MAX_KEYWORD_LENGTH = 200


def normalize_flags(flags: Iterable[str]) -> frozenset[str]:
    """Canonical flag set: system flags in their RFC 3501 spelling, keywords as given.

    Raises ValueError for an unknown ``\\`` flag or a keyword that is not an atom
    (RFC 3501 9, ``flag-keyword = atom``).  ``\\Recent`` is dropped (RFC 3501 2.3.2).
    """
    result: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            lower = flag.lower()
            if lower == RECENT:
                continue
            if lower not in SYSTEM_FLAGS:
                raise ValueError(f"unknown system flag {flag!r}")
            result.add(SYSTEM_FLAGS[lower])
        elif valid_keyword(flag):
            result.add(flag)
        else:
            raise ValueError(f"invalid flag keyword {flag!r}")
    return frozenset(result)


def valid_keyword(word: str) -> bool:
    """RFC 3501 9 ``atom``: 1*ATOM-CHAR, printable US-ASCII but atom-specials."""
    return (
        0 < len(word) <= MAX_KEYWORD_LENGTH
        and word.isascii()
        and all(0x20 < ord(c) < 0x7F and c not in ATOM_SPECIALS for c in word)
    )


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message as the protocols see it.

    ``offset``/``length`` are the byte range of the whole entry on disk (``From `` line
    included); ``size`` is ``len(read(uid))``, the CRLF size served (RFC 3501 RFC822.SIZE,
    RFC 1939 LIST/STAT).  ``recent``: no session has claimed the message yet (no
    ``Status: O``), so it is \\Recent to the first that selects its mailbox (RFC 3501 2.3.2).
    """

    uid: int
    offset: int
    length: int
    size: int
    flags: frozenset[str]
    internaldate: datetime
    recent: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """What the index keeps of one message: the public part plus how to rewrite it.

    ``header_length`` counts bytes from the entry's start through its header block (the blank
    line included when there is one), so a header fetch reads only that much.  ``old`` is the
    mbox ``Status: O`` bit (no longer new to mail readers).  ``has_base`` says the entry carries
    ``X-IMAPbase`` (only the first may).  ``dirty`` marks flags changed in the index and not
    yet written to the mbox (lazy writes, as Dovecot's ``mbox_lazy_writes``).
    """

    uid: int
    offset: int
    length: int
    header_length: int
    size: int
    flags: frozenset[str]
    old: bool
    internaldate: datetime
    has_base: bool = False
    dirty: bool = False

    def info(self) -> MessageInfo:
        return MessageInfo(
            self.uid,
            self.offset,
            self.length,
            self.size,
            self.flags,
            self.internaldate,
            recent=not self.old,
        )


@dataclass(frozen=True, slots=True)
class MailboxState:
    """The index's row for one mailbox: UID state and the mbox file it describes.

    The cached entries are valid only while ``(ino, size, mtime_ns)`` match the file;
    ``generation`` counts index changes, so another process's lazy flag change is seen.
    """

    uidvalidity: int
    uidnext: int
    ino: int = 0
    size: int = -1
    mtime_ns: int = 0
    generation: int = 0

    def describes(self, ino: int, size: int, mtime_ns: int) -> bool:
        return (self.ino, self.size, self.mtime_ns) == (ino, size, mtime_ns)
