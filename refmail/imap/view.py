"""One session's view of its selected mailbox: message sequence numbers, the flags the client
was last told, the messages \\Recent to it, and the untagged updates other sessions' changes
cause.

Every session numbers messages for itself (RFC 3501 2.3.1.2).  Changes made elsewhere reach
it through the store's listener, which only marks the view stale (it runs on another thread and
may hold the mailbox lock) and wakes an IDLE session; the connection's own thread turns the
difference into EXISTS / RECENT / FETCH FLAGS / EXPUNGE responses where RFC 3501 7.4.1 allows.

Catching up costs the changes, not the mailbox: the view keeps the store's journal generation
it has caught up to and asks ``Mailbox.changes_since`` for what came after (new messages,
changed flags, expunged UIDs), under one hold of the mailbox lock.  When the journal cannot
answer (another program changed the mbox, the journal overflowed) the store hands over the
whole mailbox and the view compares it all, as it did before the journal existed.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

from refmail.errors import IMAPError, NoSuchMailbox
from refmail.imap.arguments import SequenceSet
from refmail.store import Mailbox, MessageInfo
from refmail.store.journal import MailboxChanges

RECENT = "\\Recent"


class MailboxGone(Exception):
    """The selected mailbox was deleted, renamed or recreated (new UIDVALIDITY) elsewhere."""


def format_flags(flags: Iterable[str], recent: bool = False) -> str:
    """``(\\Seen foo)``: system flags first, then keywords, each sorted (RFC 3501 7.2.6)."""
    ordered = sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower()))
    if recent:
        ordered.append(RECENT)
    return "(" + " ".join(ordered) + ")"


class SelectedMailbox:
    """The selected mailbox of one session (RFC 3501 6.3.1)."""

    def __init__(
        self,
        box: Mailbox,
        *,
        user: str,
        name: str,
        readonly: bool,
    ) -> None:
        self.box = box
        self.user = user
        self.name = name
        self.readonly = readonly
        self._lock = threading.Lock()
        self._stale = False
        self._wake: Callable[[], None] | None = None
        # listen first: a change made while the messages are read marks the view stale
        box.add_listener(self._on_change)
        try:
            snapshot = box.changes_since(None)
        except BaseException:
            box.remove_listener(self._on_change)
            raise
        infos = snapshot.messages
        assert infos is not None  # generation None: the whole mailbox
        self.uidvalidity: int = snapshot.uidvalidity
        #: the store's journal generation this view has caught up to
        self.generation = snapshot.generation
        self.uids: list[int] = [info.uid for info in infos]
        self.flags: dict[int, frozenset[str]] = {info.uid: info.flags for info in infos}
        #: RFC 3501 6.3.1 UNSEEN: the first message without \Seen, at SELECT time
        self.first_unseen = next(
            (n for n, info in enumerate(infos, 1) if "\\Seen" not in info.flags), None
        )
        #: RFC 3501 2.3.2: the messages recent in this session (and in no other)
        self.recent = self._take_recent(infos)
        self.ghosts: set[int] = set()  # expunged elsewhere, not yet announced

    def _take_recent(self, infos: Iterable[MessageInfo]) -> set[int]:
        """RFC 3501 2.3.2: SELECT claims the messages no session has seen, so they are
        \\Recent here only; EXAMINE and STATUS leave them to others (RFC 3501 6.3.2,
        6.3.10).  The claim lives in the store (``Status: O``) and survives a restart.
        Only messages still recent are offered: the lock is taken only when there are any."""
        recent = [info.uid for info in infos if info.recent]
        if self.readonly or not recent:
            return set(recent)
        return self.box.claim_recent(recent)

    def close(self) -> None:
        self.box.remove_listener(self._on_change)

    # -- called from the store's thread

    def _on_change(self, kind: str, uids: tuple[int, ...]) -> None:
        with self._lock:
            self._stale = True
            wake = self._wake
        if wake is not None:
            wake()

    def wake_on_change(self, wake: Callable[[], None] | None) -> None:
        """While IDLE (RFC 2177) a change wakes the connection at once."""
        with self._lock:
            self._wake = wake
            stale = self._stale
        if wake is not None and stale:
            wake()

    # -- numbering

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int:
        """The sequence number of ``uid`` (which is in the view)."""
        return bisect.bisect_left(self.uids, uid) + 1

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """``(seq, uid)`` pairs named by a sequence set, in order (RFC 3501 6.4.8, 9).

        UIDs that name no message are skipped; ``*`` is the highest UID or the last sequence
        number.  A sequence number past the last message is an error (RFC 3501 9, seq-number).
        """
        uids = self.uids
        if uid:
            largest = uids[-1] if uids else 0
            chosen: set[int] = set()
            for low, high in seqset.resolve(largest):
                lo = bisect.bisect_left(uids, low)
                hi = bisect.bisect_right(uids, high)
                chosen.update(range(lo, hi))
            return [(i + 1, uids[i]) for i in sorted(chosen)]
        if not uids:
            raise IMAPError("BAD", "no messages in the mailbox")
        ranges = seqset.resolve(len(uids))
        if any(high > len(uids) for _, high in ranges):
            raise IMAPError("BAD", "invalid message sequence number")
        return [(n, uids[n - 1]) for n in seqset.numbers(len(uids))]

    # -- updates

    def mark_stale(self) -> None:
        with self._lock:
            self._stale = True

    def updates(self, *, allow_expunge: bool, refresh: bool = False) -> list[bytes]:
        """Untagged responses bringing the client up to date (RFC 3501 7.3.1, 7.3.2, 7.4.1,
        7.4.2).  EXPUNGE only when ``allow_expunge``; otherwise the expunged messages stay in
        the view as ghosts until a later command may announce them (RFC 2180 4.1).
        ``refresh`` looks at the mailbox even when no change was heard of: the store notices
        another program's changes to the mbox file only when asked.

        Responses come in one order whatever the path: EXPUNGE (ascending, each renumbering
        the ones after it), FETCH FLAGS of messages whose flags the client was told
        otherwise, then EXISTS and RECENT for new messages."""
        with self._lock:
            stale, self._stale = self._stale, False
        if not (stale or refresh or (allow_expunge and self.ghosts)):
            return []
        try:
            # a wake-up for a change made in this process needs no look at the file: that
            # change took every lock and looked (Mailbox.changes_since)
            changes = self.box.changes_since(self.generation, look=refresh)
        except NoSuchMailbox:
            raise MailboxGone("the mailbox was deleted") from None
        if changes.uidvalidity != self.uidvalidity:
            raise MailboxGone("the mailbox was recreated")
        self.generation = changes.generation
        if changes.messages is not None:
            return self._compare_all(changes.messages, allow_expunge=allow_expunge)
        return self._apply(changes, allow_expunge=allow_expunge)

    def _apply(self, changes: MailboxChanges, *, allow_expunge: bool) -> list[bytes]:
        """The journal's answer: work in proportion to the changes."""
        out: list[bytes] = []
        uids = self.uids
        gone = sorted(uid for uid in changes.expunged if uid in self.flags)
        if allow_expunge and (gone or self.ghosts):
            out.extend(self._expunge(sorted(self.ghosts.union(gone))))
        elif gone:
            self.ghosts.update(gone)
        for info in changes.flagged:
            if info.uid in self.flags and info.flags != self.flags[info.uid]:
                out.append(self._flags_response(info.uid, info.flags))
        top = uids[-1] if uids else 0
        new = [info for info in changes.appended if info.uid > top]
        if new:
            self._add(new, out)
        return out

    def _compare_all(self, infos: list[MessageInfo], *, allow_expunge: bool) -> list[bytes]:
        """The whole mailbox against the view (the journal could not answer)."""
        current = {info.uid: info for info in infos}
        out: list[bytes] = []
        gone = [uid for uid in self.uids if uid not in current]
        if gone and allow_expunge:
            out.extend(self._expunge(sorted(self.ghosts.union(gone))))
        elif gone:
            self.ghosts.update(gone)
        for uid in self.uids:
            info = current.get(uid)
            if info is not None and info.flags != self.flags.get(uid):
                out.append(self._flags_response(uid, info.flags))
        top = self.uids[-1] if self.uids else 0
        new = [info for info in infos if info.uid > top]
        if new:
            self._add(new, out)
        return out

    def _expunge(self, gone: list[int]) -> list[bytes]:
        """Take ``gone`` (ascending, all in the view) out of the view: one EXPUNGE each,
        numbered after the ones before it are gone (RFC 3501 7.4.1)."""
        out: list[bytes] = []
        uids = self.uids
        positions = [bisect.bisect_left(uids, uid) for uid in gone]
        for removed, position in enumerate(positions):
            out.append(b"* %d EXPUNGE\r\n" % (position - removed + 1))
        for position in reversed(positions):
            del uids[position]
        for uid in gone:
            self.flags.pop(uid, None)
            self.recent.discard(uid)
        self.ghosts.clear()
        return out

    def _flags_response(self, uid: int, flags: frozenset[str]) -> bytes:
        """RFC 3501 7.4.2: FETCH FLAGS for a change made elsewhere; the client now knows."""
        self.flags[uid] = flags
        flag_text = format_flags(flags, uid in self.recent)
        return f"* {self.seq_of(uid)} FETCH (FLAGS {flag_text})\r\n".encode()

    def _add(self, new: list[MessageInfo], out: list[bytes]) -> None:
        """New messages (ascending UIDs above the view's): EXISTS and RECENT (RFC 3501
        7.3.1, 7.3.2), \\Recent claimed for those no session has claimed yet."""
        for info in new:
            self.uids.append(info.uid)
            self.flags[info.uid] = info.flags
        self.recent |= self._take_recent(new)
        out.append(b"* %d EXISTS\r\n" % len(self.uids))
        out.append(b"* %d RECENT\r\n" % len(self.recent))


def compact_uid_set(uids: Iterable[int]) -> str:
    """``1,3:5,9`` for a UID list (RFC 4315 3, uid-set), keeping the given order of runs."""
    parts: list[str] = []
    run_start = run_end = None
    for uid in uids:
        if run_end is not None and uid == run_end + 1:
            run_end = uid
            continue
        if run_start is not None:
            parts.append(str(run_start) if run_start == run_end else f"{run_start}:{run_end}")
        run_start = run_end = uid
    if run_start is not None:
        parts.append(str(run_start) if run_start == run_end else f"{run_start}:{run_end}")
    return ",".join(parts)
