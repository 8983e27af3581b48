"""A full disk is a temporary condition, not a crash: the server says so and goes on.

The data directory is a 2 MiB tmpfs (``mount -t tmpfs``; the tests skip, saying why, where
mounting is not allowed), filled to a few KiB by a filler file.  Then over loopback:

- SMTP DATA gets ``452 4.3.1`` (RFC 5321 4.2.5 and 4.5.3.1.9; RFC 3463 X.3.1 "mail system
  full"), local delivery and queueing alike; the session goes on (RSET, NOOP, the next
  transaction); nothing acknowledged is lost, nothing refused is stored;
- IMAP APPEND gets ``NO [OVERQUOTA]`` (RFC 5530 3) and the session goes on;
- once the filler is deleted, the same sessions succeed again.
"""

from __future__ import annotations

import imaplib
import os
import random
import re
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import MAY, MUST, CrashServer, Ledger, make_message

from refmail.auth import TEST_SCRYPT_N, UserDB
from refmail.mta.spool import Spool

DISK_SIZE = "2m"
#: Room left beside the filler: less than one large test message.
HEADROOM = 24 << 10


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {DISK_SIZE} tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)


@pytest.fixture
def full_server(small_disk: Path) -> Iterator[CrashServer]:
    """A server whose data directory is the small disk, users alice and bob."""
    users = UserDB(small_disk / "users")
    for name in ("alice", "bob"):
        users.add(name, f"{name}-pw", cost=TEST_SCRYPT_N)
    server = CrashServer(small_disk).start()
    yield server
    server.close()


def fill(disk: Path, headroom: int = HEADROOM) -> Path:
    """A filler file that leaves ``headroom`` bytes free on the disk."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - headroom))
    return filler


def big_message(crash_id: str) -> bytes:
    """A message larger than the headroom: 64 KiB of body."""
    return make_message(crash_id, random.Random(crash_id), size=64 << 10)


def test_smtp_says_452_on_a_full_disk_and_recovers(full_server: CrashServer) -> None:
    disk = full_server.data_dir
    ledger, inbox = Ledger(), ("alice", "INBOX")
    with smtplib.SMTP(*full_server.address("smtp"), timeout=30) as client:
        client.sendmail("s@example.net", ["alice@example.test"], big_message("before-0"))
        ledger.mark(inbox, ["before-0"], MUST)
        filler = fill(disk)
        refused = 0
        for n in range(3):
            crash_id = f"full-{n}"
            ledger.mark(inbox, [crash_id], MAY)
            with pytest.raises(smtplib.SMTPDataError) as error:
                client.sendmail("s@example.net", ["alice@example.test"], big_message(crash_id))
            code, text = error.value.smtp_code, error.value.smtp_error
            assert (code, text[:5]) == (452, b"4.3.1"), (code, text)
            refused += 1
            assert client.noop()[0] == 250  # the session goes on
        assert client.rset()[0] == 250
        filler.unlink()  # space returns
        client.sendmail("s@example.net", ["alice@example.test"], big_message("after-0"))
        ledger.mark(inbox, ["after-0"], MUST)
    assert refused == 3
    full_server.stop()
    found = ledger.check(disk, [inbox])
    assert found[inbox] == ["before-0", "after-0"], "a refused message was stored"


def test_queueing_on_a_full_disk_is_452_too(full_server: CrashServer) -> None:
    """Submission to a foreign domain goes to the queue: a full disk there is 452 as well,
    and leaves no half-queued entry behind."""
    disk = full_server.data_dir
    with smtplib.SMTP(*full_server.address("submission"), timeout=30) as client:
        client.login("alice", "alice-pw")
        fill(disk)
        with pytest.raises(smtplib.SMTPDataError) as error:
            client.sendmail("alice@example.test", ["x@remote.test"], big_message("queued-0"))
        assert (error.value.smtp_code, error.value.smtp_error[:5]) == (452, b"4.3.1")
        assert client.noop()[0] == 250
        (disk / "filler").unlink()
        full_server_spool = Spool(disk / "queue")
        assert full_server_spool.list() == []
        assert [p.name for p in (disk / "queue").iterdir() if not p.name.startswith(".")] == []


def test_imap_append_says_overquota_and_the_session_goes_on(full_server: CrashServer) -> None:
    disk = full_server.data_dir
    client = imaplib.IMAP4(*full_server.address("imap"), timeout=30)
    try:
        client.login("alice", "alice-pw")
        assert client.append("INBOX", "", None, big_message("app-0"))[0] == "OK"
        filler = fill(disk)
        kind, data = client.append("INBOX", "", None, big_message("app-1"))
        assert kind == "NO" and re.match(rb"\[OVERQUOTA\]", data[0]), (kind, data)
        assert client.noop()[0] == "OK"
        kind, data = client.select("INBOX")
        assert (kind, data) == ("OK", [b"1"]), full_server.describe()
        kind, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-CRASH-ID)])")
        assert kind == "OK" and b"app-0" in data[0][1]
        filler.unlink()
        assert client.append("INBOX", "", None, big_message("app-2"))[0] == "OK"
        assert client.logout()[0] == "BYE"
    finally:
        if client.state != "LOGOUT":
            client.shutdown()
    full_server.stop()
    ledger = Ledger()
    ledger.mark(("alice", "INBOX"), ["app-0", "app-2"], MUST)
    assert ledger.check(disk, [("alice", "INBOX")])[("alice", "INBOX")] == ["app-0", "app-2"]
