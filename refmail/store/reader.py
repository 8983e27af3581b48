"""Messages read under one hold of a mailbox's lock (``Mailbox.reading``: a FETCH of a range,
POP3 RETRs), and the fetch data the index caches for them.

The reader works on the ``Mailbox``'s current picture (its entries by UID), which the lock
keeps current while the ``with`` block lasts; ``Mailbox._read_entry`` checks that each entry
still starts where the index says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from refmail.store.mboxfmt import served_header, split_entry

if TYPE_CHECKING:  # the mailbox makes its readers
    from refmail.store.mailbox import Mailbox


class MailboxReader:
    """Messages of a mailbox read under the lock ``Mailbox.reading`` holds, and the fetch
    data the index caches for them (ENVELOPE, BODYSTRUCTURE, ...: opaque bytes to the
    store, keyed by UID and item name).  Valid only inside its ``with`` block."""

    def __init__(self, box: Mailbox) -> None:
        self._box = box

    def read(self, uid: int) -> bytes:
        """As ``Mailbox.read`` (KeyError for a UID not in the mailbox)."""
        return self._message(uid, header_only=False)

    def read_header(self, uid: int) -> bytes:
        """As ``Mailbox.read_header``."""
        return self._message(uid, header_only=True)

    def _message(self, uid: int, *, header_only: bool) -> bytes:
        """The served message (CRLF, unquoted, internal headers removed) or its header."""
        box = self._box
        position = box._position.get(uid)
        if position is None:
            raise KeyError(uid)
        entry = box._entries[position]
        box.message_reads += 1
        if header_only:
            return served_header(box._read_entry(entry, entry.header_length))
        return split_entry(box._read_entry(entry, entry.length)).served()

    def cached(self, uids: Iterable[int]) -> dict[tuple[int, str], bytes]:
        """``{(uid, item): value}`` cached for these UIDs."""
        box = self._box
        present = [uid for uid in uids if uid in box._position]
        return box._index.cached(box.name, present)

    def put_cached(self, values: Mapping[tuple[int, str], bytes]) -> None:
        """Cache fetch data derived from the messages read here (UIDs gone are skipped)."""
        box = self._box
        kept = {key: value for key, value in values.items() if key[0] in box._position}
        box._index.put_cached(box.name, kept)
