"""SIGKILL the server at random moments of each writing operation and check what is on disk
(crash_harness.py says what is checked).  Each test runs ``ITERATIONS`` kills (default 4;
``REFMAIL_CRASH_ITERATIONS=N`` for the long run) on one data directory, so damage done by one
crash meets the recovery of the next start.

DESIGN.md "Durability": an append is fsynced before SMTP's 250 or IMAP's OK; a rewrite
(EXPUNGE, POP3 UPDATE, flag write-back) is a new file renamed over the old, so a crash leaves
the old mailbox or the new one, whole.
"""

from __future__ import annotations

import imaplib
import poplib
import random
import re
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crash_harness import (
    GONE,
    ITERATIONS,
    MAY,
    MUST,
    CrashServer,
    Ledger,
    Run,
    kill_while,
    make_message,
    read_with_python,
    trim,
)

from refmail.auth import TEST_SCRYPT_N, UserDB
from refmail.mta.spool import Spool

Worker = Callable[[Run], None]
#: pytest-timeout scaled to the kills asked for (the default suite stays under its 120 s).
pytestmark = pytest.mark.timeout(60 + 20 * ITERATIONS)
ALICE, BOB = ("alice", "alice-pw"), ("bob", "bob-pw")
#: What a client sees when the server dies under it.
GONE_ERRORS = (OSError, EOFError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto)


@pytest.fixture
def crash_dir(tmp_path: Path) -> Path:
    """A data directory whose users' hashes are cheap (TEST_SCRYPT_N: a throwaway server),
    so logins do not eat the time between kills."""
    path = tmp_path / "data"
    path.mkdir()
    users = UserDB(path / "users")
    for name, password in (ALICE, BOB):
        users.add(name, password, cost=TEST_SCRYPT_N)
    return path


@pytest.fixture
def crash_server(crash_dir: Path) -> Iterator[CrashServer]:
    server = CrashServer(crash_dir)
    yield server
    server.close()


def report(request: pytest.FixtureRequest, server: CrashServer, ledger: Ledger) -> None:
    """The figures of a run, printed (``pytest -s``) for the long run's report."""
    torn = sum(seen.torn_tails_cut for seen in ledger.seen.values())
    print(
        f"\n{request.node.name}: {server.kills} kills survived, "
        f"{ledger.messages_checked} message checks, {torn} torn appends cut off"
    )


def imap_login(server: CrashServer, user: tuple[str, str] = ALICE) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*server.address("imap"), timeout=20)
    client.login(*user)
    return client


def ok(response: tuple[str, list]) -> list:
    kind, data = response
    if kind != "OK":
        raise imaplib.IMAP4.error(f"{kind} {data!r}")
    return data


def append(client: imaplib.IMAP4, mailbox: str, message: bytes) -> int:
    """APPEND, returning the APPENDUID (RFC 4315 3)."""
    data = ok(client.append(mailbox, "", None, message))
    match = re.search(rb"APPENDUID \d+ (\d+)", data[0])
    assert match, data
    return int(match.group(1))


def uid_map(client: imaplib.IMAP4) -> dict[str, int]:
    """``{crash id: UID}`` of the selected mailbox."""
    data = ok(client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (X-CRASH-ID)])"))
    found = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            found[item[1].split(b":", 1)[1].strip().decode()] = uid
    return found


def seed(server: CrashServer, ledger: Ledger, mailbox: str, prefix: str, count: int) -> None:
    """``count`` acknowledged messages appended to alice's ``mailbox`` before the kill."""
    rng = random.Random(prefix)
    with imap_login(server) as client:
        client.create(mailbox)
        for n in range(count):
            crash_id = f"{prefix}-{n}"
            ledger.mark(("alice", mailbox), [crash_id], MAY)
            append(client, mailbox, make_message(crash_id, rng))
            ledger.mark(("alice", mailbox), [crash_id], MUST)


def forever(run: Run) -> Iterator[int]:
    """0, 1, 2, ... until the server is dead; the first step says the worker is ready."""
    n = 0
    run.ready()
    while not run.stop.is_set():
        yield n
        n += 1


def quietly(work: Worker) -> Worker:
    """Run ``work``; the dead server's errors end it."""

    def run(state: Run) -> None:
        try:
            work(state)
        except GONE_ERRORS:
            pass

    return run


# ------------------------------------------------------------------ SMTP DATA, IMAP APPEND


def test_kill_during_smtp_data(crash_server: CrashServer, request: pytest.FixtureRequest) -> None:
    ledger, rng = Ledger(), random.Random(5321)
    inbox = ("alice", "INBOX")

    def sender(prefix: str) -> Worker:
        def work(run: Run) -> None:
            mine = random.Random(prefix)
            with smtplib.SMTP(*crash_server.address("smtp"), timeout=20) as client:
                for n in forever(run):
                    crash_id = f"{prefix}-{n}"
                    ledger.mark(inbox, [crash_id], MAY)
                    client.sendmail(
                        "crash@example.net", ["alice@example.test"], make_message(crash_id, mine)
                    )
                    ledger.mark(inbox, [crash_id], MUST)

        return quietly(work)

    for it in range(ITERATIONS):
        crash_server.start()
        kill_while(crash_server, [sender(f"smtp{it}w{w}") for w in range(3)], rng)
        ledger.check(crash_server.data_dir, [inbox])
        trim(crash_server.data_dir, inbox, ledger)
    assert ledger.present(inbox), "nothing was ever acknowledged"
    report(request, crash_server, ledger)


def test_kill_during_imap_append(crash_server: CrashServer, request: pytest.FixtureRequest) -> None:
    ledger, rng = Ledger(), random.Random(3501)
    box = ("alice", "Crash")

    def appender(prefix: str) -> Worker:
        def work(run: Run) -> None:
            mine = random.Random(prefix)
            with imap_login(crash_server) as client:
                for n in forever(run):
                    crash_id = f"{prefix}-{n}"
                    ledger.mark(box, [crash_id], MAY)
                    append(client, "Crash", make_message(crash_id, mine))
                    ledger.mark(box, [crash_id], MUST)

        return quietly(work)

    for it in range(ITERATIONS):
        crash_server.start()
        if it == 0:
            with imap_login(crash_server) as client:
                ok(client.create("Crash"))
        kill_while(crash_server, [appender(f"app{it}w{w}") for w in range(3)], rng)
        ledger.check(crash_server.data_dir, [box])
        trim(crash_server.data_dir, box, ledger)
    assert ledger.present(box)
    report(request, crash_server, ledger)


# ------------------------------------------------------------------ COPY / MOVE


def test_kill_during_copy_and_move(
    crash_server: CrashServer, request: pytest.FixtureRequest
) -> None:
    """An acknowledged COPY is in the destination once; an acknowledged MOVE there once and
    gone from the source; one cut short never loses the message (a MOVE killed between its
    copy and its expunge leaves it in both: two files cannot change in one rename)."""
    ledger, rng = Ledger(), random.Random(6851)
    src, copies, moved = ("alice", "Src"), ("alice", "Copies"), ("alice", "Moved")

    def copier(run: Run) -> None:
        prefix = f"cm{crash_server.kills}r"
        mine = random.Random(prefix)
        with imap_login(crash_server) as client:
            ok(client.select("Src"))
            uids = uid_map(client)
            for n in forever(run):
                # Each round: two new messages into Src, COPY the newest, MOVE one copied
                # earlier (so Src does not grow without end).
                for k in range(2):
                    crash_id = f"{prefix}-{n}-{k}"
                    ledger.mark(src, [crash_id], MAY)
                    uids[crash_id] = append(client, "Src", make_message(crash_id, mine))
                    ledger.mark(src, [crash_id], MUST)
                present = ledger.present(src)
                copied = set(ledger.present(copies))
                for crash_id in [c for c in present if c not in copied][:2]:
                    ledger.mark(copies, [crash_id], MAY)
                    ok(client.uid("COPY", str(uids[crash_id]), "Copies"))
                    ledger.mark(copies, [crash_id], MUST)
                # Not one whose earlier MOVE a kill cut short (in Src and Moved both): a
                # second MOVE would put it in Moved twice.
                done = set(ledger.present(moved))
                for crash_id in [c for c in present if c in copied and c not in done][:2]:
                    ledger.mark(src, [crash_id], MAY)
                    ledger.mark(moved, [crash_id], MAY)
                    with ledger.lock:
                        ledger.either.append((src, moved, crash_id))
                    ok(client.uid("MOVE", str(uids[crash_id]), "Moved"))
                    ledger.mark(src, [crash_id], GONE)
                    ledger.mark(moved, [crash_id], MUST)

    for _it in range(ITERATIONS):
        crash_server.start()
        with imap_login(crash_server) as client:
            for name in ("Src", "Copies", "Moved"):
                client.create(name)
        kill_while(crash_server, [quietly(copier)], rng, window=(0.01, 0.4))
        ledger.check(crash_server.data_dir, [src, copies, moved])
    assert ledger.present(copies) and ledger.present(moved)
    report(request, crash_server, ledger)


# ------------------------------------------------------------------ EXPUNGE


def test_kill_during_expunge(crash_server: CrashServer, request: pytest.FixtureRequest) -> None:
    """UID EXPUNGE (RFC 4315 2.1) of a few messages at a time: acknowledged ones are gone, one
    cut short removed all of its messages or none."""
    ledger, rng = Ledger(), random.Random(4315)
    box = ("alice", "Trim")

    def expunger(run: Run) -> None:
        prefix = f"ex{crash_server.kills}r"
        mine = random.Random(prefix)
        with imap_login(crash_server) as client:
            ok(client.select("Trim"))
            uids = uid_map(client)
            for n in forever(run):
                present = sorted(ledger.present(box))
                if len(present) < 6:  # top up, so the kill always finds work
                    for k in range(4):
                        crash_id = f"{prefix}-{n}-{k}"
                        ledger.mark(box, [crash_id], MAY)
                        uids[crash_id] = append(client, "Trim", make_message(crash_id, mine))
                        ledger.mark(box, [crash_id], MUST)
                    continue
                chosen = mine.sample(present, min(len(present), mine.randint(1, 3)))
                uid_set = ",".join(str(uids[c]) for c in chosen)
                ledger.mark(box, chosen, MAY)
                ledger.group(box, chosen)
                ok(client.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)"))
                ok(client.uid("EXPUNGE", uid_set))
                ledger.mark(box, chosen, GONE)

    for it in range(ITERATIONS):
        crash_server.start()
        seed(crash_server, ledger, "Trim", f"ex{it}", 8)
        kill_while(crash_server, [quietly(expunger)], rng, window=(0.01, 0.3))
        ledger.check(crash_server.data_dir, [box])
    report(request, crash_server, ledger)


# ------------------------------------------------------------------ flag write-back


def test_kill_during_flag_write_back(
    crash_server: CrashServer, request: pytest.FixtureRequest
) -> None:
    """STORE, then CLOSE or LOGOUT: an acknowledged STORE survives the kill (in the index
    at least); after an acknowledged CLOSE/LOGOUT the mbox file itself holds the flags
    (X-Keywords, what mutt sees); a write-back cut short wrote all of them or none."""
    ledger, rng = Ledger(), random.Random(2060)
    box = ("alice", "Flags")
    stored: list[tuple[str, frozenset[str]]] = []  # (keyword, ids): STORE acknowledged
    written: list[tuple[str, frozenset[str]]] = []  # and CLOSE/LOGOUT acknowledged after it
    tried: list[tuple[str, frozenset[str]]] = []  # STORE sent

    def flagger(prefix: str) -> Worker:
        def work(run: Run) -> None:
            mine = random.Random(prefix)
            client = imap_login(crash_server)
            for n in forever(run):
                ok(client.select("Flags"))
                uids = uid_map(client)
                present = sorted(ledger.present(box))
                chosen = frozenset(mine.sample(present, min(len(present), 3)))
                keyword = f"$k{prefix}x{n}"
                tried.append((keyword, chosen))
                uid_set = ",".join(str(uids[c]) for c in chosen)
                ok(client.uid("STORE", uid_set, "+FLAGS.SILENT", f"({keyword})"))
                stored.append((keyword, chosen))
                if n % 3 == 2:
                    ok(client.logout())
                    written.append((keyword, chosen))
                    client = imap_login(crash_server)
                else:
                    ok(client.close())
                    written.append((keyword, chosen))

        return quietly(work)

    totals = [0, 0, 0]
    for it in range(ITERATIONS):
        crash_server.start()
        if it == 0:
            seed(crash_server, ledger, "Flags", "fl", 10)
        for record in (stored, written, tried):
            record.clear()
        kill_while(crash_server, [flagger(f"f{it}")], rng, window=(0.05, 0.6))
        ledger.check(crash_server.data_dir, [box])
        totals = [t + len(done) for t, done in zip(totals, (tried, stored, written), strict=True)]
        seen = ledger.seen[box]
        for keyword, ids in tried:
            in_store = {i for i in ids if keyword in seen.flags[i]}
            in_file = {i for i in ids if keyword in seen.file_keywords[i]}
            assert in_store in (set(), ids), f"STORE {keyword} half applied: {in_store}"
            assert in_file in (set(), ids), f"write-back of {keyword} half done: {in_file}"
            if (keyword, ids) in stored:
                assert in_store == ids, f"acknowledged STORE {keyword} lost"
            if (keyword, ids) in written:
                assert in_file == ids, f"{keyword} not in the mbox after CLOSE/LOGOUT"
    assert totals[2], "no CLOSE/LOGOUT was ever acknowledged"
    print(
        "\nflags: {} STOREs sent, {} acknowledged, {} written back and acknowledged".format(*totals)
    )
    report(request, crash_server, ledger)


# ------------------------------------------------------------------ POP3 QUIT


def test_kill_during_pop3_quit(crash_server: CrashServer, request: pytest.FixtureRequest) -> None:
    """DELE then QUIT (RFC 1939 6, UPDATE): after +OK the messages are gone; a QUIT cut
    short removed all of them or none."""
    ledger, rng = Ledger(), random.Random(1939)
    box = ("bob", "INBOX")

    def deliver(client: smtplib.SMTP, prefix: str, count: int, mine: random.Random) -> None:
        for n in range(count):
            crash_id = f"{prefix}-{n}"
            ledger.mark(box, [crash_id], MAY)
            message = make_message(crash_id, mine)
            client.sendmail("crash@example.net", ["bob@example.test"], message)
            ledger.mark(box, [crash_id], MUST)

    def popper(run: Run) -> None:
        prefix = f"pop{crash_server.kills}r"
        mine = random.Random(prefix)
        with smtplib.SMTP(*crash_server.address("smtp"), timeout=20) as smtp:
            for round_number in forever(run):
                if len(ledger.present(box)) < 6:  # top up, so the kill always finds work
                    deliver(smtp, f"{prefix}-{round_number}", 4, mine)
                client = poplib.POP3(*crash_server.address("pop3"), timeout=20)
                client.user(BOB[0])
                client.pass_(BOB[1])
                count = len(client.list()[1])
                numbers = mine.sample(range(1, count + 1), min(count, mine.randint(1, 3)))
                chosen = []
                for number in numbers:
                    header = b"\n".join(client.top(number, 0)[1])
                    chosen.append(re.search(rb"X-Crash-Id: (\S+)", header).group(1).decode())
                    client.dele(number)
                ledger.mark(box, chosen, MAY)
                ledger.group(box, chosen)
                client.quit()
                ledger.mark(box, chosen, GONE)

    for _it in range(ITERATIONS):
        crash_server.start()
        kill_while(crash_server, [quietly(popper)], rng, window=(0.01, 0.4))
        ledger.check(crash_server.data_dir, [box])
    report(request, crash_server, ledger)


# ------------------------------------------------------------------ the outbound queue


def write_config(path: Path, domains: tuple[str, ...], extra: str = "") -> None:
    ports = "".join(
        f"{s} = 0\n" for s in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps")
    )
    path.write_text(
        f'hostname = "mx.{domains[0]}"\ndomains = {list(domains)!r}\n'.replace("'", '"')
        + f"[ports]\n{ports}[limits]\nauth_failure_delay = 0.01\n{extra}"
    )


def test_kill_during_queue_processing(
    crash_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Authenticated submission to a foreign domain, relayed to a second refmail on loopback
    (``--route``): a kill anywhere (enqueue, delivery, envelope update) loses nothing
    acknowledged; after the restart every message reaches the receiver, at least once (a kill
    between the receiver's 250 and our envelope update sends it again: RFC 5321 6.1, the
    duplicate SMTP cannot avoid) and the queue empties."""
    ledger, rng = Ledger(), random.Random(5322)
    receiver_dir = tmp_path / "receiver"
    receiver_dir.mkdir()
    UserDB(receiver_dir / "users").add("carol", "carol-pw", cost=TEST_SCRYPT_N)
    write_config(tmp_path / "receiver.toml", ("remote.test",))
    receiver = CrashServer(receiver_dir, "--config", str(tmp_path / "receiver.toml")).start()
    host, port = receiver.address("smtp")
    write_config(
        tmp_path / "sender.toml",
        ("example.test", "example.org"),
        f'[mta]\nretry = [1, 1]\n[mta.routes]\n"remote.test" = "{host}:{port}"\n',
    )
    sender = CrashServer(crash_dir, "--config", str(tmp_path / "sender.toml"))
    acked: set[str] = set()
    spool = Spool(crash_dir / "queue")

    def submitter(prefix: str) -> Worker:
        def work(run: Run) -> None:
            mine = random.Random(prefix)
            with smtplib.SMTP(*sender.address("submission"), timeout=20) as client:
                client.login(*ALICE)
                for n in forever(run):
                    crash_id = f"{prefix}-{n}"
                    message = make_message(crash_id, mine).replace(
                        b"To: alice@example.test", b"To: carol@remote.test"
                    )
                    client.sendmail("alice@example.test", ["carol@remote.test"], message)
                    acked.add(crash_id)

        return quietly(work)

    duplicates = 0
    try:
        sender.start()
        for it in range(ITERATIONS):
            kill_while(sender, [submitter(f"q{it}w{w}") for w in range(2)], rng)
            for envelope in spool.list():  # what was queued is whole on disk
                assert spool.message(envelope["id"]), envelope
            sender.start()  # and relays what it holds, at once
            deadline = time.monotonic() + 60
            while spool.list():
                assert time.monotonic() < deadline, sender.describe()
                time.sleep(0.1)
            received = collect_receiver(receiver_dir)
            missing = acked - set(received)
            assert not missing, f"acknowledged, never relayed: {sorted(missing)[:5]}"
            duplicates = sum(n - 1 for n in received.values())
            ledger.messages_checked += sum(received.values())
        # Each kill can duplicate at most the deliveries in flight then: one per outbound
        # connection (Limits default max_outbound_connections = 10).
        assert duplicates <= sender.kills * 10
        print(f"\nqueue: {len(acked)} acknowledged and relayed, {duplicates} duplicates")
        report(request, sender, ledger)
    finally:
        sender.close()
        receiver.stop()


def collect_receiver(data_dir: Path) -> dict[str, int]:
    """``{id: copies}`` in the receiver's INBOX, every message whole."""
    path = data_dir / "mail" / "carol" / "INBOX"
    counts: dict[str, int] = {}
    if path.exists():
        for crash_id, _, _ in read_with_python(path):
            counts[crash_id] = counts.get(crash_id, 0) + 1
    return counts
