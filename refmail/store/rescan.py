"""What a scan of a whole mbox makes of it: UIDs, UID state and the entries to index.

``Mailbox._rescan`` reads the file (``mboxio.scan_entries``, ``mboxfmt.parse_entry``) when the
index does not describe it; ``number_entries`` decides, without touching the file or the
index, which UID each message keeps or gets and whether the file must be rewritten to carry
them (as Dovecot does), so they survive the loss of the index (DESIGN.md "On disk").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from refmail.errors import StorageError
from refmail.store.mboxfmt import MAX_UID, ParsedEntry
from refmail.store.model import Entry, MailboxState


@dataclass(frozen=True, slots=True)
class Numbered:
    """The scan's outcome: the mailbox's UID state and entries; ``restamp``: UIDs new to
    the file (no usable X-UID, or out of order); ``redate``: entries whose From line lacks
    a date."""

    state: MailboxState
    entries: list[Entry]
    restamp: frozenset[int]
    redate: frozenset[int]

    @property
    def needs_rewrite(self) -> bool:
        """New UIDs or dates to write, or X-IMAPbase missing from the first entry (RFC 3501
        2.3.1.1 state must live in the file) or present on another."""
        entries = self.entries
        return bool(
            self.restamp
            or self.redate
            or (entries and not entries[0].has_base)
            or any(entry.has_base for entry in entries[1:])
        )


def number_entries(
    name: str,
    offsets: list[int],
    parsed: list[ParsedEntry],
    known: MailboxState | None,
    *,
    fallback_date: datetime,
    new_uidvalidity: Callable[[], int],
    dirty_flags: Callable[[], Mapping[int, frozenset[str]]],
) -> Numbered:
    """UIDs from X-UID, UIDVALIDITY from X-IMAPbase (else the index's ``known`` state, else
    ``new_uidvalidity()``), flags from Status/X-Status/X-Keywords, or from ``dirty_flags()``
    (the index's flag changes not yet written) while the UIDVALIDITY stands.  UIDs must
    ascend in file order (RFC 3501 2.3.1.1); from the first one that does not (or is
    missing), every later message gets a fresh UID, and none reuses a UID ever seen here."""
    base = parsed[0].base if parsed else None
    if base is not None:
        uidvalidity = base[0]
    elif known is not None:
        uidvalidity = known.uidvalidity
    else:
        uidvalidity = new_uidvalidity()
    same_validity = known is not None and known.uidvalidity == uidvalidity
    uidnext = max(base[1] if base else 1, known.uidnext if same_validity and known else 1)
    restamp_from = len(parsed)
    previous = 0
    for position, entry in enumerate(parsed):
        if restamp_from == len(parsed):
            if entry.uid is None or entry.uid <= previous:
                restamp_from = position
            else:
                previous = entry.uid
        if entry.uid is not None:
            uidnext = max(uidnext, entry.uid + 1)
    pending = dirty_flags() if same_validity else {}

    entries = []
    for position, (start, entry) in enumerate(zip(offsets, parsed, strict=True)):
        if position >= restamp_from or entry.uid is None:
            uid, uidnext = uidnext, uidnext + 1
        else:
            uid = entry.uid
        dirty = uid in pending and position < restamp_from
        entries.append(
            Entry(
                uid,
                start,
                entry.length,
                entry.header_length,
                entry.size,
                pending[uid] if dirty else entry.flags,
                entry.old or dirty,
                entry.internaldate or fallback_date,
                has_base=entry.base is not None,
                dirty=dirty,
            )
        )
    if uidnext > MAX_UID + 1:
        raise StorageError(f"mailbox {name} has used up its UIDs")
    generation = known.generation if known is not None else 0
    return Numbered(
        MailboxState(uidvalidity, uidnext, generation=generation),
        entries,
        restamp=frozenset(entry.uid for entry in entries[restamp_from:]),
        redate=frozenset(
            entry.uid
            for entry, found in zip(entries, parsed, strict=True)
            if not found.internaldate
        ),
    )
