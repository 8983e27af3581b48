"""Authorization over loopback: no client input names a file outside the user's own mail
directory (DESIGN.md "On disk"; refmail.store.names), and one user never reaches another's
mailboxes, through any IMAP command, POP3, or a crafted user name at login."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from security_helpers import greeted, read_until, try_login

#: Names that must never leave alice's directory: plain, absolute, UTF-7-encoded dots and
#: slashes (modified UTF-7 must not encode printable ASCII; a lax decoder would give "..").
HOSTILE_NAMES = [
    "..",
    "../bob/INBOX",
    "../bob",
    "Sent/../../bob/INBOX",
    "/etc/passwd",
    "/",
    "./INBOX",
    "Sent/.",
    "&AC4ALg-",
    "&AC4ALg-/bob/INBOX",
    "&AC4ALgAv-bob&AC8-INBOX",
    "&AC8-etc&AC8-passwd",
    "bob/INBOX/../../../bob/INBOX",
    "Sent/&AC4ALg-/&AC4ALg-/&AC4ALg-/bob/INBOX",
    ".index/x",
    "INBOX.lock",
]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def quote(name: str) -> bytes:
    return b'"' + name.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class IMAP:
    def __init__(self, server, user: str = "alice", password: str = "alice-pw") -> None:
        self.sock = greeted(server.address("imap"))
        self.n = 0
        assert b"OK" in self.command(f"LOGIN {user} {password}".encode())

    def command(self, line: bytes, literal: bytes | None = None) -> bytes:
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + line + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + line + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        data = b""
        while not any(line.startswith(tag + b" ") for line in data.split(b"\r\n")[:-1]):
            chunk = self.sock.recv(65536)
            assert chunk, data
            data += chunk
        return data

    def status(self, line: bytes, literal: bytes | None = None) -> bytes:
        """The tagged reply's status word: OK, NO or BAD."""
        last = self.command(line, literal).split(b"\r\n")[-2]
        return last.split(b" ")[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def world(server):
    """alice and bob with mail in their INBOXes; bob's tree is recorded."""
    store = server.store
    for user in ("alice", "bob"):
        store.ensure_user(user)
        store.deliver(user, f"Subject: {user}'s secret\r\n\r\nfor {user}\r\n".encode())
    bob = IMAP(server, "bob", "bob-pw")
    assert bob.status(b"CREATE Private") == b"OK"
    bob.close()
    root = server.config.data_dir
    return server, root


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_mailbox_command_leaves_the_users_directory(world, name) -> None:
    server, root = world
    mail = root / "mail"
    before_outside = {k: v for k, v in tree(root).items() if not k.startswith("mail/alice")}
    client = IMAP(server)
    q = quote(name)
    try:
        for line in (
            b"SELECT " + q,
            b"EXAMINE " + q,
            b"CREATE " + q,
            b"DELETE " + q,
            b"RENAME " + q + b" Stolen",
            b"RENAME Sent " + q,
            b"STATUS " + q + b" (MESSAGES UIDNEXT)",
            b"SUBSCRIBE " + q,
        ):
            assert client.status(line) in (b"NO", b"BAD"), line
        assert client.status(b"APPEND " + q, b"Subject: planted\r\n\r\nx\r\n") in (b"NO", b"BAD")
        assert client.status(b"SELECT INBOX") == b"OK"
        for verb in (b"COPY", b"MOVE", b"UID COPY"):
            assert client.status(verb + b" 1 " + q) in (b"NO", b"BAD")
        listing = client.command(b'LIST "" ' + q) + client.command(b"LIST " + q + b' "*"')
        assert b"bob" not in listing.lower() and b"passwd" not in listing
    finally:
        client.close()
    after_outside = {k: v for k, v in tree(root).items() if not k.startswith("mail/alice")}
    assert after_outside == before_outside  # nothing outside alice's directory changed
    assert not (mail / "Stolen").exists() and not (root / "Stolen").exists()
    assert len(server.store.mailbox("bob", "INBOX").messages()) == 1
    assert len(server.store.mailbox("alice", "INBOX").messages()) == 1  # nothing moved out


def test_symlinks_out_of_the_users_directory_are_not_followed(world) -> None:
    server, root = world
    alice_dir = root / "mail" / "alice"
    (alice_dir / "bobs").symlink_to(root / "mail" / "bob")  # a directory link
    (alice_dir / "bobinbox").symlink_to(root / "mail" / "bob" / "INBOX")  # a file link
    (alice_dir / "passwd").symlink_to("/etc/passwd")
    before = tree(root / "mail" / "bob")
    client = IMAP(server)
    try:
        for name in ("bobs/INBOX", "bobs/Private", "bobinbox", "passwd"):
            q = quote(name)
            for line in (b"SELECT " + q, b"STATUS " + q + b" (MESSAGES)", b"DELETE " + q):
                assert client.status(line) in (b"NO", b"BAD"), line
            assert client.status(b"APPEND " + q, b"Subject: x\r\n\r\nx\r\n") in (b"NO", b"BAD")
            assert client.status(b"CREATE " + quote(name + "/sub")) in (b"NO", b"BAD")
        listing = client.command(b'LIST "" "*"')
        assert b"secret" not in listing and b"Private" not in listing
    finally:
        client.close()
    assert tree(root / "mail" / "bob") == before


def test_one_user_never_reads_anothers_mailboxes(world) -> None:
    server, _ = world
    client = IMAP(server)
    try:
        for name in ("bob", "bob/INBOX", "bob/Private", "#users/bob/INBOX", "~bob", "Private"):
            q = quote(name)
            assert client.status(b"SELECT " + q) == b"NO"
            assert client.status(b"STATUS " + q + b" (MESSAGES)") == b"NO"
        everything = client.command(b'LIST "" "*"') + client.command(b'LSUB "" "*"')
        everything += client.command(b"NAMESPACE")
        assert b"bob" not in everything.lower() and b"Private" not in everything
        assert client.status(b"SELECT INBOX") == b"OK"
        fetched = client.command(b"FETCH 1:* (BODY[])")
        assert b"alice's secret" in fetched and b"bob's secret" not in fetched
    finally:
        client.close()
    # POP3: the maildrop is the user's own INBOX.
    with greeted(server.address("pop3")) as sock:
        sock.sendall(b"USER alice\r\nPASS alice-pw\r\nRETR 1\r\nQUIT\r\n")
        data = read_until(sock, b"\r\n.\r\n")
        assert b"alice's secret" in data and b"bob's secret" not in data


@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap"])
@pytest.mark.parametrize("name", ["../bob", "bob/../bob", "./bob", "/bob", "bob/", "mail/bob"])
def test_crafted_user_names_do_not_log_in(server, protocol, name) -> None:
    assert not try_login(server, protocol, name, "bob-pw")[0]


@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap"])
def test_sasl_authorization_identity_of_another_user_is_refused(server, protocol) -> None:
    """RFC 4616 2: authzid "bob" with alice's credentials must not act as bob (nor as alice)."""
    plain = base64.b64encode(b"bob\0alice\0alice-pw")
    service = {"smtp": "submission", "pop3": "pop3", "imap": "imap"}[protocol]
    with greeted(server.address(service)) as sock:
        if protocol == "smtp":
            sock.sendall(b"EHLO c.example.net\r\n")
            read_until(sock, b"\r\n250 ")
            sock.sendall(b"AUTH PLAIN " + plain + b"\r\n")
            assert read_until(sock, b"\r\n").startswith(b"535 ")
        elif protocol == "pop3":
            sock.sendall(b"AUTH PLAIN " + plain + b"\r\n")
            assert read_until(sock, b"\r\n").startswith(b"-ERR")
        else:
            sock.sendall(b"a AUTHENTICATE PLAIN " + plain + b"\r\n")
            assert b"a NO" in read_until(sock, b"a OK", b"a NO", b"a BAD")
