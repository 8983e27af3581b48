"""The crash harness: a refmail server process killed with SIGKILL at random moments while
clients work, and the checks run on its data directory after each kill (the server dead).

Every test message carries ``X-Crash-Id`` (unique) and ``X-Crash-Size``; its body is a pure
function of the id, so a message cut short or mixed with another shows as a body that does
not match.  A ``Ledger`` records what the clients were told (acknowledged or not) and checks
the mailboxes on disk against it:

- every mbox parses with refmail's store and then (after refmail's first look, which cuts off
  the tail of an append torn by the kill) with Python's ``mailbox.mbox``, alike;
- each acknowledged message is there exactly once, whole; an unacknowledged one at most once;
- acknowledged deletions are gone; an unacknowledged expunge or POP3 QUIT removed all of its
  messages or none (``groups``); a MOVE cut short kept the message somewhere (``either``);
- UIDs ascend in the file, are unique, a message keeps its UID while UIDVALIDITY holds, and a
  new message gets a UID above every one seen before (RFC 3501 2.3.1.1);
- the index rebuilt from the mbox files (``.index/`` deleted, on a copy) gives the same
  UIDVALIDITY, UIDs and messages, and the same flags but for flag changes the index still
  holds (lazy writes).

``REFMAIL_CRASH_ITERATIONS`` sets the number of kills per operation (default 4, so the
default suite spends about a minute here; the long run uses a few hundred in all).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import mailbox as stdlib_mailbox
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from refmail_testing import ServeProcess

from refmail.store import MailStore
from refmail.store.index import MailIndex

ITERATIONS = int(os.environ.get("REFMAIL_CRASH_ITERATIONS", "4"))
#: Bodies from 1 KiB to 96 KiB: large ones span many pages, so a kill can land inside the
#: write(2) of one message (Linux stops a regular-file write between pages on SIGKILL).
MIN_BODY, MAX_BODY = 1 << 10, 96 << 10
LINE = 76


# ------------------------------------------------------------------ messages


def body_of(crash_id: str, size: int) -> bytes:
    """``size`` bytes (rounded up to whole lines) of hex lines derived from the id, LF ends."""
    lines = -(-size // (LINE + 1))
    digest = hashlib.shake_256(crash_id.encode()).hexdigest(lines * LINE // 2 + 1)
    return b"".join(digest[i * LINE : (i + 1) * LINE].encode() + b"\n" for i in range(lines))


def make_message(crash_id: str, rng: random.Random, size: int | None = None) -> bytes:
    """A CRLF message with its id and body size (random unless given) in the header."""
    if size is None:
        size = int(rng.triangular(MIN_BODY, MAX_BODY, MIN_BODY * 4))
    body = body_of(crash_id, size)
    head = (
        f"From: crash@example.net\r\nTo: alice@example.test\r\nSubject: {crash_id}\r\n"
        f"X-Crash-Id: {crash_id}\r\nX-Crash-Size: {size}\r\n\r\n"
    )
    return head.encode() + body.replace(b"\n", b"\r\n")


def identify(served: bytes) -> str:
    """The id of a served (CRLF) message whose body is whole and its own; AssertionError
    for a partial or garbled one."""
    head, sep, body = served.partition(b"\r\n\r\n")
    assert sep, f"no header/body separator in a {len(served)}-octet message"
    fields = dict(
        line.split(b": ", 1) for line in head.split(b"\r\n") if line.startswith(b"X-Crash-")
    )
    assert b"X-Crash-Id" in fields, f"a message without X-Crash-Id: {head[:200]!r}"
    crash_id = fields[b"X-Crash-Id"].decode()
    expected = body_of(crash_id, int(fields[b"X-Crash-Size"])).replace(b"\n", b"\r\n")
    assert body == expected, f"{crash_id}: partial or garbled body ({len(body)} octets)"
    return crash_id


# ------------------------------------------------------------------ the server


class CrashServer:
    """``python -m refmail serve`` over one data directory, restarted after every kill.
    Its log is drained by a thread (a full stderr pipe would block the server)."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.args = args
        self.process: ServeProcess | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        self.log: collections.deque[str] = collections.deque(maxlen=80)
        self.kills = 0

    def start(self) -> CrashServer:
        self.process = ServeProcess(self.data_dir, *self.args)
        stderr = self.process.proc.stderr
        assert stderr is not None
        threading.Thread(target=self._drain, args=(stderr,), daemon=True).start()
        return self

    def _drain(self, stream: Iterable[str]) -> None:
        for line in stream:
            self.log.append(line.rstrip("\n"))

    def address(self, service: str) -> tuple[str, int]:
        """The listener of the current process, or of the last one once it is killed (a
        worker connecting then gets ECONNREFUSED, as a client of a dead server does)."""
        if self.process is not None:
            self.addresses = dict(self.process.addresses)
        return self.addresses[service]

    def kill(self) -> None:
        """SIGKILL, and reap the child (so its pid is really gone for the dotlock checks)."""
        assert self.process is not None
        proc, self.process = self.process.proc, None
        proc.kill()
        proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.proc.poll() is None:
            self.kill()

    def describe(self) -> str:
        return "--- server log ---\n" + "\n".join(self.log)


class Run:
    """What a worker gets: ``stop`` (set once the server is dead) and ``ready()``, called
    when it is connected and logged in, so the random kill delay counts from real work."""

    def __init__(self, workers: int) -> None:
        self.stop = threading.Event()
        self._ready = threading.Semaphore(0)
        self.workers = workers

    def ready(self) -> None:
        self._ready.release()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(self.workers):
            if not self._ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return  # a worker failed early: kill anyway, the checks still apply


def kill_while(
    server: CrashServer,
    workers: list[Callable[[Run], None]],
    rng: random.Random,
    window: tuple[float, float] = (0.0, 0.6),
) -> None:
    """Run the workers (each until ``run.stop`` is set or its connection dies); once all
    are ready, SIGKILL the server after a random delay in ``window``; wait for them."""
    run = Run(len(workers))
    threads = [threading.Thread(target=w, args=(run,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    run.wait_ready(20)
    time.sleep(rng.uniform(*window))
    server.kill()
    run.stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a client did not notice the dead server"


# ------------------------------------------------------------------ the ledger

Box = tuple[str, str]
MUST, MAY, GONE = "must", "may", "gone"


@dataclass
class BoxSeen:
    uidvalidity: int = 0
    uids: dict[str, int] = field(default_factory=dict)
    max_uid: int = 0
    #: Flags as the store reports them (index, lazy writes included) and keywords as the
    #: mbox file itself holds them (X-Keywords), by id.
    flags: dict[str, frozenset[str]] = field(default_factory=dict)
    file_keywords: dict[str, frozenset[str]] = field(default_factory=dict)
    torn_tails_cut: int = 0


@dataclass
class Ledger:
    """What clients were told, and what was on disk at the last check."""

    status: dict[Box, dict[str, str]] = field(default_factory=dict)
    #: (box, ids): an unacknowledged deletion of these ids: all gone or all there.
    groups: list[tuple[Box, frozenset[str]]] = field(default_factory=list)
    #: (source, dest, id): an unacknowledged MOVE: the id is in one of them at least.
    either: list[tuple[Box, Box, str]] = field(default_factory=list)
    seen: dict[Box, BoxSeen] = field(default_factory=dict)
    messages_checked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self, box: Box, ids: Iterable[str], state: str) -> None:
        with self.lock:
            table = self.status.setdefault(box, {})
            for crash_id in ids:
                table[crash_id] = state

    def group(self, box: Box, ids: Iterable[str]) -> None:
        with self.lock:
            self.groups.append((box, frozenset(ids)))

    def present(self, box: Box) -> list[str]:
        with self.lock:
            return [i for i, s in self.status.get(box, {}).items() if s == MUST]

    def check(self, data_dir: Path, boxes: Iterable[Box]) -> dict[Box, list[str]]:
        """Check every listed mailbox (server dead), then adopt what was found as the new
        truth: unacknowledged messages found become acknowledged ones, the rest are dropped."""
        found = {
            box: check_mailbox(data_dir, box, self.seen.setdefault(box, BoxSeen())) for box in boxes
        }
        for box, ids in found.items():
            self.messages_checked += len(ids)
            table = self.status.get(box, {})
            here = set(ids)
            unknown = here - set(table)
            assert not unknown, f"{box}: messages nobody sent: {sorted(unknown)[:5]}"
            for crash_id, state in table.items():
                if state == MUST:
                    assert crash_id in here, f"{box}: acknowledged {crash_id} is lost"
                elif state == GONE:
                    assert crash_id not in here, f"{box}: deleted {crash_id} came back"
        for box, ids in self.groups:
            kept = ids & set(found[box])
            assert kept in (set(), set(ids)), (
                f"{box}: a deletion cut short removed {len(ids) - len(kept)} of {len(ids)}"
            )
        for source, dest, crash_id in self.either:
            assert crash_id in found[source] or crash_id in found[dest], (
                f"a MOVE cut short lost {crash_id}"
            )
        for box, ids in found.items():
            self.status[box] = dict.fromkeys(ids, MUST)
        self.groups.clear()
        self.either.clear()
        return found


def trim(data_dir: Path, box: Box, ledger: Ledger, keep: int = 150) -> None:
    """Expunge all but the newest ``keep`` messages (server dead), so a long run's checks
    do not grow with it; the ledger forgets them (their UIDs stay seen)."""
    user, name = box
    store = MailStore(data_dir / "mail")
    try:
        mailbox = store.mailbox(user, name)
        infos = mailbox.messages()
        if len(infos) <= keep:
            return
        mailbox.expunge([info.uid for info in infos[:-keep]])
    finally:
        store.close()
    seen = ledger.seen[box]
    ids = {crash_id for crash_id, uid in seen.uids.items() if uid in {i.uid for i in infos[:-keep]}}
    ledger.status[box] = {i: s for i, s in ledger.status[box].items() if i not in ids}
    seen.uids = {i: uid for i, uid in seen.uids.items() if i not in ids}


def read_with_python(path: Path) -> list[tuple[str, int, frozenset[str]]]:
    """``(id, X-UID, keywords)`` of each message, by Python's mailbox.mbox, bodies checked."""
    result = []
    for message in stdlib_mailbox.mbox(path, create=False):
        payload = message.get_payload(decode=False)
        assert isinstance(payload, str)
        head = "".join(f"{k}: {v}\r\n" for k, v in message.items() if k.startswith("X-Crash-"))
        served = (head + "\r\n" + payload.replace("\n", "\r\n")).encode()
        keywords = frozenset(str(message.get("X-Keywords", "")).split())
        result.append((identify(served), int(message["X-UID"]), keywords))
    return result


def store_picture(root: Path, user: str, name: str) -> tuple[int, list[tuple[int, str, frozenset]]]:
    """``(uidvalidity, [(uid, id, flags)])`` through refmail's store over ``root``, without
    writing anything back (``MailStore.close`` would sync pending flags: not here)."""
    store = MailStore(root)
    try:
        box = store.mailbox(user, name)
        infos = box.messages()
        picture = [(i.uid, identify(box.read(i.uid)), frozenset(i.flags)) for i in infos]
        return box.uidvalidity, picture
    finally:
        for index in store._indexes.values():
            index.close()


class TornTailCounter(logging.Handler):
    """Counts the store's "cutting off ... torn by a crash" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "torn by a crash" in record.getMessage():
            self.count += 1


def check_mailbox(data_dir: Path, box: Box, seen: BoxSeen) -> list[str]:
    """Every check on one mailbox file; returns the ids in mailbox order."""
    user, name = box
    path = data_dir / "mail" / user / name
    if not path.exists():
        return []
    # refmail first: its next look at the mailbox is the recovery (a torn append's tail is
    # cut off then; until then mutt reading the file would see it), then the file as Python
    # reads it.
    counter = TornTailCounter()
    logging.getLogger("refmail.store.mailbox").addHandler(counter)
    try:
        uidvalidity, ours = store_picture(data_dir / "mail", user, name)
    finally:
        logging.getLogger("refmail.store.mailbox").removeHandler(counter)
    seen.torn_tails_cut += counter.count
    python_view = read_with_python(path)
    ids = [crash_id for _, crash_id, _ in ours]
    uids = [uid for uid, _, _ in ours]
    assert len(set(ids)) == len(ids), f"{box}: a message is there twice"
    assert uids == sorted(set(uids)), f"{box}: UIDs not unique and ascending: {uids}"
    assert [v[0] for v in python_view] == ids, f"{box}: mailbox.mbox and refmail differ"
    assert [v[1] for v in python_view] == uids, f"{box}: X-UID in the file differs"
    if seen.uidvalidity == uidvalidity:
        for uid, crash_id, _ in ours:
            if crash_id in seen.uids:
                assert seen.uids[crash_id] == uid, f"{box}: {crash_id} changed its UID"
            else:
                assert uid > seen.max_uid, f"{box}: new {crash_id} got old UID {uid}"
    elif seen.uidvalidity:
        assert uidvalidity > seen.uidvalidity, f"{box}: UIDVALIDITY went down"
    seen.uidvalidity = uidvalidity
    seen.uids = {crash_id: uid for uid, crash_id, _ in ours}
    seen.max_uid = max([seen.max_uid, *uids])
    seen.flags = {crash_id: flags for _, crash_id, flags in ours}
    seen.file_keywords = {crash_id: keywords for crash_id, _, keywords in python_view}
    check_rebuilt_index(data_dir, box, uidvalidity, ours)
    return ids


def check_rebuilt_index(
    data_dir: Path, box: Box, uidvalidity: int, ours: list[tuple[int, str, frozenset]]
) -> None:
    """Delete ``.index/`` on a copy of the user's tree and compare what a rescan finds."""
    user, name = box
    index = MailIndex(data_dir / "mail" / user)
    try:
        dirty = index.dirty_flags(name)
    finally:
        index.close()
    with tempfile.TemporaryDirectory() as temp:
        copy = Path(temp) / user
        shutil.copytree(
            data_dir / "mail" / user, copy, ignore=shutil.ignore_patterns(".index", "*.lock")
        )
        rebuilt_validity, rebuilt = store_picture(Path(temp), user, name)
    if ours:
        assert rebuilt_validity == uidvalidity, f"{box}: UIDVALIDITY lost with the index"
    assert [(u, i) for u, i, _ in rebuilt] == [(u, i) for u, i, _ in ours], (
        f"{box}: the rebuilt index differs"
    )
    for (uid, crash_id, flags), (_, _, again) in zip(ours, rebuilt, strict=True):
        if uid not in dirty:
            assert flags == again, f"{box}: {crash_id} flags {flags} vs rebuilt {again}"
