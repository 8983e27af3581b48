"""A mailbox's change journal: what changed since a generation, so that a session catching up
with a change pays for the change, not for the mailbox (issue 6, IDLE with many clients).

``Mailbox`` records every change it tells its listeners of ("append", "flags", "expunge")
under its lock, each bumping the generation by one.  A picture it adopts from elsewhere (the
index written by another process, the mbox file changed by another program, a rescan, a
removed file) is a reset: the journal cannot say what changed there, so a session older than
the reset is told to look at the whole mailbox, as it would without a journal.  The journal
keeps the last ``JOURNAL_LENGTH`` changes; a session further behind also looks at the whole
mailbox.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from refmail.store.model import MessageInfo

#: Changes kept; a session more changes behind than this gets the whole mailbox instead.
JOURNAL_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What ``Mailbox.changes_since`` found, all under one hold of the mailbox's lock.

    ``messages`` is the whole mailbox (ascending UIDs) when the journal could not answer
    (``reset``: the generation asked for is older than the journal, or a picture was adopted
    from outside since); then ``appended``, ``flagged`` and ``expunged`` are empty.  Otherwise
    ``appended`` holds the messages added since and still there, ``flagged`` those whose flags
    changed since (not among ``appended``), both as they are now in ascending UIDs, and
    ``expunged`` the UIDs removed since (some perhaps added since as well).
    """

    generation: int
    uidvalidity: int
    messages: list[MessageInfo] | None = None
    appended: tuple[MessageInfo, ...] = ()
    flagged: tuple[MessageInfo, ...] = ()
    expunged: frozenset[int] = frozenset()

    @property
    def reset(self) -> bool:
        return self.messages is not None


@dataclass(frozen=True, slots=True)
class JournalSpan:
    """The UIDs each kind of change touched between two generations."""

    appended: frozenset[int]
    flagged: frozenset[int]
    expunged: frozenset[int]


_EMPTY = JournalSpan(frozenset(), frozenset(), frozenset())


class ChangeJournal:
    """A generation counter and the last ``length`` changes; the owner serializes calls."""

    def __init__(self, length: int | None = None) -> None:
        self.generation = 0
        #: the generation of the last reset: nothing at or before it can be answered
        self._floor = 0
        self._changes: deque[tuple[int, str, tuple[int, ...]]] = deque(
            maxlen=JOURNAL_LENGTH if length is None else length
        )

    def record(self, kind: str, uids: tuple[int, ...]) -> None:
        """One change ("append", "flags" or "expunge") of these UIDs."""
        self.generation += 1
        self._changes.append((self.generation, kind, uids))

    def reset(self) -> None:
        """The picture changed in a way the journal does not describe."""
        self.generation += 1
        self._floor = self.generation
        self._changes.clear()

    def since(self, generation: int) -> JournalSpan | None:
        """The UIDs touched after ``generation``, or None when the journal cannot say:
        the generation is from before a reset, or its successors have left the journal, or
        it is not one this journal handed out."""
        if generation == self.generation:
            return _EMPTY
        if generation < self._floor or generation > self.generation:
            return None
        changes = self._changes
        if not changes or changes[0][0] > generation + 1:
            return None  # overflowed: the changes right after ``generation`` are gone
        touched: dict[str, set[int]] = {"append": set(), "flags": set(), "expunge": set()}
        for number, kind, uids in reversed(changes):
            if number <= generation:
                break
            touched[kind].update(uids)
        return JournalSpan(
            frozenset(touched["append"]),
            frozenset(touched["flags"]),
            frozenset(touched["expunge"]),
        )
