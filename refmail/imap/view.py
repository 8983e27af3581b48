"""One session's view of its selected mailbox: message sequence numbers, the flags the client
was last told, the messages \\Recent to it, and the untagged updates other sessions' changes
cause.

Every session numbers messages for itself (RFC 3501 2.3.1.2).  Changes made elsewhere reach
it through the store's listener, which only marks the view stale (it runs on another thread and
may hold the mailbox lock) and wakes an IDLE session; the connection's own thread turns the
difference into EXISTS / RECENT / FETCH FLAGS / EXPUNGE responses where RFC 3501 7.4.1 allows.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping

from refmail.errors import IMAPError, NoSuchMailbox
from refmail.imap.arguments import SequenceSet
from refmail.store import Mailbox, MessageInfo

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
            self.uidvalidity: int = box.uidvalidity
            infos = box.messages()
        except BaseException:
            box.remove_listener(self._on_change)
            raise
        self.uids: list[int] = [info.uid for info in infos]
        self.flags: dict[int, frozenset[str]] = {info.uid: info.flags for info in infos}
        #: RFC 3501 6.3.1 UNSEEN: the first message without \Seen, at SELECT time
        self.first_unseen = next(
            (n for n, info in enumerate(infos, 1) if "\\Seen" not in info.flags), None
        )
        #: RFC 3501 2.3.2: the messages recent in this session (and in no other)
        self.recent = self._take_recent(self.uids, {info.uid: info for info in infos})
        self.ghosts: set[int] = set()  # expunged elsewhere, not yet announced

    def _take_recent(self, uids: list[int], infos: Mapping[int, MessageInfo]) -> set[int]:
        """RFC 3501 2.3.2: SELECT claims the messages no session has seen, so they are
        \\Recent here only; EXAMINE and STATUS leave them to others (RFC 3501 6.3.2,
        6.3.10).  The claim lives in the store (``Status: O``) and survives a restart."""
        if self.readonly:
            return {uid for uid in uids if infos[uid].recent}
        if not any(infos[uid].recent for uid in uids):
            return set()
        return self.box.claim_recent(uids)

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
        another program's changes to the mbox file only when asked."""
        with self._lock:
            stale, self._stale = self._stale, False
        if not (stale or refresh or (allow_expunge and self.ghosts)):
            return []
        box = self.box
        try:
            if box.uidvalidity != self.uidvalidity:
                raise MailboxGone("the mailbox was recreated")
            infos = box.messages()
        except NoSuchMailbox:
            raise MailboxGone("the mailbox was deleted") from None
        current = {info.uid: info for info in infos}
        out: list[bytes] = []
        gone = [uid for uid in self.uids if uid not in current]
        if gone and allow_expunge:
            kept: list[int] = []
            for uid in self.uids:
                if uid in current:
                    kept.append(uid)
                else:  # RFC 3501 7.4.1: each EXPUNGE renumbers the messages after it
                    out.append(b"* %d EXPUNGE\r\n" % (len(kept) + 1))
                    self.flags.pop(uid, None)
                    self.recent.discard(uid)
            self.uids = kept
            self.ghosts.clear()
        elif gone:
            self.ghosts.update(gone)
        top = self.uids[-1] if self.uids else 0
        new = [info.uid for info in infos if info.uid > top]
        for uid, flags in ((uid, current[uid].flags) for uid in self.uids if uid in current):
            if flags != self.flags.get(uid):
                self.flags[uid] = flags
                flag_text = format_flags(flags, uid in self.recent)
                out.append(f"* {self.seq_of(uid)} FETCH (FLAGS {flag_text})\r\n".encode())
        if new:
            self.uids.extend(new)
            for uid in new:
                self.flags[uid] = current[uid].flags
            self.recent |= self._take_recent(new, current)
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
            out.append(b"* %d RECENT\r\n" % len(self.recent))
        return out


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
