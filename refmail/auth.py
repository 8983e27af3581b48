"""Users, password hashing, SASL PLAIN/LOGIN decoding and failure throttling.

The users file is Dovecot passwd-file style, one ``name:{SCHEME}hash`` line per user
(DESIGN.md, "On disk").  The only scheme written is ``{SCRYPT}``: the stdlib's memory-hard
``hashlib.scrypt`` (RFC 7914) with a random salt; comparison is constant time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from refmail.errors import AuthError

log = logging.getLogger(__name__)

#: scrypt cost: N=2**14, r=8 uses 16 MiB and ~50 ms; RFC 7914 section 2 and OWASP's minimum.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: For throwaway test servers only (refmail.embedded): N=2**4 hashes in microseconds and
#: protects nothing.  Never use it for a users file that guards real mail.
TEST_SCRYPT_N = 2**4
SCHEME = "{SCRYPT}"
#: User names double as file names under mail/ and as local parts: keep them plain.
USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")


def valid_user_name(name: str) -> bool:
    return bool(USER_NAME.match(name)) and ".." not in name


def hash_password(password: str, *, cost: int = SCRYPT_N) -> str:
    """A ``{SCRYPT}`` hash with a random salt.  ``cost`` is scrypt's N (a power of two);
    lower it only for throwaway test servers (``TEST_SCRYPT_N``): the default is the safe one."""
    if cost < 2 or cost & (cost - 1):
        raise ValueError("scrypt cost must be a power of two, at least 2")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=cost, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"{SCHEME}{cost}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``{SCRYPT}`` hash."""
    if not stored.startswith(SCHEME):
        return False
    try:
        n, r, p, salt_b64, digest_b64 = stored[len(SCHEME) :].split("$")
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so timing does not reveal who exists.
    Made on first use, not at import: one full-cost scrypt is ~50 ms of every start."""
    return hash_password(secrets.token_hex(8))


class UserDB:
    """The users file.  Re-read when it changes on disk, so ``refmail user add`` reaches a
    running server; written by write-new-then-rename so a crash never leaves half a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return self._users
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            users: dict[str, str] = {}
            for line in self.path.read_text("utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#") or ":" not in line:
                    continue
                name, hashed = line.split(":", 1)
                users[name] = hashed.split(":", 1)[0]
            self._stamp, self._users = stamp, users
        return self._users

    def _save(self, users: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for name, hashed in users.items():
                f.write(f"{name}:{hashed}\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._stamp = None

    def names(self) -> list[str]:
        with self._lock:
            return list(self._load())

    def exists(self, name: str) -> bool:
        with self._lock:
            return name.lower() in self._load()

    def add(self, name: str, password: str, *, cost: int = SCRYPT_N) -> None:
        """Add a user; ``cost`` as for ``hash_password`` (lower only in test servers)."""
        name = name.lower()
        if not valid_user_name(name):
            raise AuthError(f"invalid user name {name!r}: use a-z, 0-9, '.', '_', '-'")
        with self._lock:
            users = dict(self._load())
            if name in users:
                raise AuthError(f"user {name!r} exists")
            users[name] = hash_password(password, cost=cost)
            self._save(users)

    def set_password(self, name: str, password: str) -> None:
        name = name.lower()
        with self._lock:
            users = dict(self._load())
            if name not in users:
                raise AuthError(f"no user {name!r}")
            users[name] = hash_password(password)
            self._save(users)

    def delete(self, name: str) -> None:
        name = name.lower()
        with self._lock:
            users = dict(self._load())
            if users.pop(name, None) is None:
                raise AuthError(f"no user {name!r}")
            self._save(users)

    def verify(self, name: str, password: str) -> str | None:
        """The canonical user name when ``password`` is right, else None."""
        name = name.lower()
        with self._lock:
            stored = self._load().get(name)
        ok = verify_password(password, stored if stored is not None else _dummy_hash())
        return name if ok and stored is not None else None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class Authenticator:
    """Checks credentials and slows down failures, counted per client address and per user.

    Each failure from an address doubles the delay before the "no" (``failure_delay`` to
    ``max_delay``), which makes guessing slow; the count decays after ``forget_after`` seconds
    without failures.  After ``lockout_after`` failures (0: never) counted for an address or
    for a user name, every attempt from that address or for that user is refused, right
    password or not, until ``lockout_seconds`` have passed since the last failure (a
    temporary lockout, as fail2ban would impose; refused attempts do not extend it).
    """

    def __init__(
        self,
        users: UserDB,
        *,
        failure_delay: float = 1.0,
        max_delay: float = 15.0,
        forget_after: float = 900.0,
        lockout_after: int = 0,
        lockout_seconds: float = 300.0,
        sleep=time.sleep,
        clock=time.monotonic,
    ) -> None:
        self.users = users
        self.failure_delay = failure_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.lockout_after = lockout_after
        self.lockout_seconds = lockout_seconds
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}

    def _count(self, key: str) -> int:
        count, last = self._failures.get(key, (0, 0.0))
        if count and self._clock() - last > self.forget_after:
            return 0
        return count

    def failures(self, peer_ip: str) -> int:
        with self._lock:
            return self._count(f"ip:{peer_ip}")

    def _locked_out(self, key: str) -> bool:
        count, last = self._failures.get(key, (0, 0.0))
        window = min(self.lockout_seconds, self.forget_after)
        return 0 < self.lockout_after <= count and self._clock() - last < window

    def locked_out(self, name: str, peer_ip: str) -> bool:
        """True while the address or the user name is locked out."""
        with self._lock:
            return self._locked_out(f"ip:{peer_ip}") or self._locked_out(f"user:{name.lower()}")

    def authenticate(self, name: str, password: str, peer_ip: str) -> str | None:
        """The canonical user name, or None after the throttling delay."""
        if self.locked_out(name, peer_ip):
            log.warning("authentication refused for %r from %s: locked out", name, peer_ip)
            if self.failure_delay > 0:
                self._sleep(min(self.max_delay, self.failure_delay))
            return None
        user = self.users.verify(name, password) if name else None
        if user is not None:
            return user
        with self._lock:
            now = self._clock()
            counts = []
            for key in (f"ip:{peer_ip}", f"user:{name.lower()}"):
                count = self._count(key) + 1
                self._failures[key] = (count, now)
                counts.append(count)
            if len(self._failures) > 100_000:  # bound memory under a spray of addresses
                self._failures.clear()
        delay = min(self.max_delay, self.failure_delay * 2 ** (max(counts) - 1))
        log.info("authentication failed for %r from %s (failure %d)", name, peer_ip, max(counts))
        if delay > 0:
            self._sleep(delay)
        return None


def decode_base64(data: bytes | str) -> bytes:
    """Strict base64 (RFC 4648), as SASL requires; raises ValueError on anything else."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64") from exc


def decode_sasl_plain(data: bytes) -> tuple[str, str, str]:
    """RFC 4616 PLAIN message ``authzid NUL authcid NUL passwd`` -> the three, as UTF-8."""
    parts = data.split(b"\0")
    if len(parts) != 3:
        raise ValueError("malformed PLAIN message")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError as exc:
        raise ValueError("PLAIN message is not UTF-8") from exc
    if not authcid:
        raise ValueError("empty authentication identity")
    return authzid, authcid, password
