"""Users file, scrypt hashes, SASL PLAIN decoding and failure throttling."""

import base64
from pathlib import Path

import pytest

from refmail.auth import (
    Authenticator,
    UserDB,
    decode_base64,
    decode_sasl_plain,
    hash_password,
    verify_password,
)
from refmail.errors import AuthError


def test_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second and first.startswith("{SCRYPT}")
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("s3cret!", first)
    assert not verify_password("s3cret", "{PLAIN}s3cret")
    assert not verify_password("s3cret", "{SCRYPT}garbage")


def test_userdb_add_verify_passwd_delete(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users")
    db.add("Alice", "pw1")
    assert db.names() == ["alice"] and db.exists("ALICE")
    assert db.verify("alice", "pw1") == "alice"
    assert db.verify("alice", "nope") is None
    assert db.verify("nobody", "pw1") is None
    with pytest.raises(AuthError):
        db.add("alice", "again")
    db.set_password("alice", "pw2")
    assert db.verify("alice", "pw2") == "alice" and db.verify("alice", "pw1") is None
    line = (tmp_path / "users").read_text()
    assert line.startswith("alice:{SCRYPT}") and "pw2" not in line
    assert (tmp_path / "users").stat().st_mode & 0o077 == 0
    db.delete("alice")
    assert db.names() == []
    with pytest.raises(AuthError):
        db.delete("alice")


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a b", "x" * 65, "a:b"])
def test_userdb_refuses_names_that_could_escape(tmp_path: Path, name: str) -> None:
    with pytest.raises(AuthError):
        UserDB(tmp_path / "users").add(name, "pw")


def test_a_second_userdb_sees_changes(tmp_path: Path) -> None:
    writer, reader = UserDB(tmp_path / "users"), UserDB(tmp_path / "users")
    assert reader.names() == []
    writer.add("bob", "pw")
    assert reader.exists("bob")


def test_failures_are_delayed_and_the_delay_grows(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users")
    db.add("alice", "right")
    slept: list[float] = []
    auth = Authenticator(db, failure_delay=0.5, max_delay=3.0, sleep=slept.append)
    assert auth.authenticate("alice", "right", "192.0.2.1") == "alice"
    assert slept == []
    for _ in range(5):
        assert auth.authenticate("alice", "wrong", "192.0.2.1") is None
    assert slept == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert auth.failures("192.0.2.1") == 5
    # Another address guessing the same user is slowed down too (counted per user).
    assert auth.authenticate("alice", "wrong", "192.0.2.99") is None
    assert slept[-1] == 3.0


def test_failure_counts_are_forgotten(tmp_path: Path) -> None:
    now = [0.0]
    auth = Authenticator(
        UserDB(tmp_path / "users"),
        failure_delay=1.0,
        forget_after=10,
        sleep=lambda s: None,
        clock=lambda: now[0],
    )
    auth.authenticate("x", "y", "192.0.2.1")
    assert auth.failures("192.0.2.1") == 1
    now[0] = 11.0
    assert auth.failures("192.0.2.1") == 0


def test_sasl_plain() -> None:
    assert decode_sasl_plain(b"\0alice\0pw") == ("", "alice", "pw")
    assert decode_sasl_plain(b"admin\0alice\0p\xc3\xa9") == ("admin", "alice", "p\u00e9")
    for bad in (b"alice\0pw", b"\0\0pw", b"a\0b\0c\0d", b"\0al\xffice\0pw"):
        with pytest.raises(ValueError):
            decode_sasl_plain(bad)


def test_strict_base64() -> None:
    assert decode_base64(base64.b64encode(b"\0a\0b")) == b"\0a\0b"
    for bad in (b"%%%", b"abc", b"YW Jj"):
        with pytest.raises(ValueError):
            decode_base64(bad)
