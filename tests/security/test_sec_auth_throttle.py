"""Login failure throttling over loopback on all three protocols: each failure is answered
later than the one before (per address and per user), and after K failures the address and
the user name are locked out for a while, right password or not (Limits.auth_lockout_*)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from security_helpers import LOGIN_SERVICE, greeted, read_until, try_login

from refmail.auth import Authenticator, UserDB

K = 4  # Limits.auth_lockout_failures in these tests
DELAY = 0.05  # Limits.auth_failure_delay: failure n waits DELAY * 2**(n-1)
LOCKOUT = 1.0  # Limits.auth_lockout_seconds

PROTOCOLS = ["smtp", "pop3", "imap"]


@pytest.fixture
def throttled(make_server):
    return make_server(
        limits={
            "auth_failure_delay": DELAY,
            "auth_lockout_failures": K,
            "auth_lockout_seconds": LOCKOUT,
        }
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lockout_after_k_failures_per_address_and_per_user(throttled, protocol) -> None:
    attacker, other = "127.0.0.2", "127.0.0.3"
    delays = []
    for _ in range(K - 1):
        ok, took = try_login(throttled, protocol, "alice", "guess", attacker)
        assert not ok
        delays.append(took)
    # Each failure waits longer than the one before (1x, 2x, 4x DELAY).
    assert delays[0] >= DELAY * 0.9 and delays[-1] >= DELAY * 2 ** (K - 2) * 0.9
    assert delays == sorted(delays)
    # K-1 failures: not locked, the right password works.
    assert try_login(throttled, protocol, "alice", "alice-pw", attacker)[0]
    # The K-th failure locks the address and the user name.
    assert not try_login(throttled, protocol, "alice", "guess", attacker)[0]
    assert not try_login(throttled, protocol, "alice", "alice-pw", attacker)[0]  # per address
    assert not try_login(throttled, protocol, "bob", "bob-pw", attacker)[0]
    assert not try_login(throttled, protocol, "alice", "alice-pw", other)[0]  # per user
    assert try_login(throttled, protocol, "bob", "bob-pw", other)[0]  # others unaffected
    time.sleep(LOCKOUT + 0.1)  # the lockout is temporary
    assert try_login(throttled, protocol, "alice", "alice-pw", attacker)[0]


def test_failures_for_unknown_users_count_too(throttled) -> None:
    for _ in range(K):
        assert not try_login(throttled, "imap", "nobody", "x", "127.0.0.4")[0]
    assert not try_login(throttled, "imap", "bob", "bob-pw", "127.0.0.4")[0]


def test_lockout_unit_per_user_across_addresses(tmp_path: Path) -> None:
    """K failures for one name spread over K addresses lock that name, not the addresses."""
    db = UserDB(tmp_path / "users")
    db.add("alice", "right", cost=16)
    db.add("bob", "right", cost=16)
    now = [0.0]
    auth = Authenticator(
        db, failure_delay=0, lockout_after=3, lockout_seconds=60, clock=lambda: now[0]
    )
    for i in range(2):
        assert auth.authenticate("alice", "wrong", f"192.0.2.{i}") is None
    assert auth.authenticate("alice", "right", "192.0.2.50") == "alice"  # N-1: allowed
    assert auth.authenticate("alice", "wrong", "192.0.2.2") is None  # N: locked
    assert auth.locked_out("alice", "198.51.100.1")
    assert auth.authenticate("alice", "right", "198.51.100.1") is None
    assert auth.authenticate("bob", "right", "192.0.2.0") == "bob"
    now[0] = 59.0
    assert auth.authenticate("alice", "right", "198.51.100.1") is None
    now[0] = 61.0
    assert auth.authenticate("alice", "right", "198.51.100.1") == "alice"


def test_lockout_disabled_with_zero(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users")
    db.add("alice", "right", cost=16)
    auth = Authenticator(db, failure_delay=0, lockout_after=0)
    for _ in range(20):
        assert auth.authenticate("alice", "wrong", "192.0.2.1") is None
    assert auth.authenticate("alice", "right", "192.0.2.1") == "alice"


def fail_on_one_connection(server, protocol: str, failures: int):
    """``failures`` wrong logins on one connection; then whether it is still open."""
    sock = greeted(server.address(LOGIN_SERVICE[protocol]))
    if protocol == "smtp":
        sock.sendall(b"EHLO c.example.net\r\n")
        read_until(sock, b"\r\n250 ")
    for i in range(failures):
        if protocol == "smtp":
            sock.sendall(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n")  # \0alice\0wrong
            assert read_until(sock, b"\r\n").startswith(b"535 ")
        elif protocol == "pop3":
            sock.sendall(b"USER alice\r\nPASS wrong\r\n")
            assert b"-ERR" in read_until(sock, b"-ERR")
        else:
            sock.sendall(b"a%d LOGIN alice wrong\r\n" % i)
            assert b"a%d NO" % i in read_until(sock, b"a%d NO" % i)
    return sock


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_closed_after_n_failures_not_before(make_server, protocol) -> None:
    n = 2
    server = make_server(limits={"auth_failures_per_connection": n, "auth_failure_delay": 0})
    with fail_on_one_connection(server, protocol, n - 1) as sock:  # N-1: still open
        if protocol == "smtp":
            sock.sendall(b"AUTH PLAIN AGFsaWNlAGFsaWNlLXB3\r\n")  # \0alice\0alice-pw
            assert read_until(sock, b"\r\n").startswith(b"235 ")
        elif protocol == "pop3":
            sock.sendall(b"USER alice\r\nPASS alice-pw\r\n")
            assert b"maildrop" in read_until(sock, b"maildrop")
        else:
            sock.sendall(b"b LOGIN alice alice-pw\r\n")
            assert b"b OK" in read_until(sock, b"b OK")
    with fail_on_one_connection(server, protocol, n) as sock:  # N: closed
        sock.settimeout(5)
        rest = b""
        while chunk := sock.recv(4096):
            rest += chunk
        assert b"+OK" not in rest and b"235" not in rest
