"""The outbound queue on disk: one message file and one JSON envelope per queued message.

``queue/ID.msg`` holds the message as received (CRLF, trace field prepended) and
``queue/ID.json`` its envelope: sender, recipients each with a state (``pending``,
``delivered``, ``failed``), attempts, next_attempt, first_queued and last_error.  Each file is
written to a temporary name, fsynced, renamed into place and the directory fsynced; the message
first, so an envelope never names a message that is not on disk.  A ``.msg`` without its
``.json`` is an enqueue cut short by a crash and is not listed (``orphans`` finds them).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refmail.errors import InsufficientStorage
from refmail.store.fileio import DISK_FULL

log = logging.getLogger(__name__)

#: Queue ids are ours: hex only, so an id from the command line cannot name another file.
QUEUE_ID = re.compile(r"[0-9A-F]{8,40}\Z")
MESSAGE_SUFFIX = ".msg"
ENVELOPE_SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"


def new_queue_id() -> str:
    """Time-ordered, unique: milliseconds since the epoch, then 40 random bits, in hex."""
    return f"{time.time_ns() // 1_000_000:011X}{secrets.token_hex(5).upper()}"


def _check_id(queue_id: str) -> str:
    if not QUEUE_ID.match(queue_id):
        raise KeyError(f"not a queue id: {queue_id!r}")
    return queue_id


class Spool:
    """The outbound queue directory.  Safe to share between threads and processes: every
    change is one atomic rename; ``on_enqueue(id)`` (optional) tells the scheduler at once."""

    def __init__(self, queue_dir: Path, *, on_enqueue: Callable[[str], None] | None = None) -> None:
        self.queue_dir = Path(queue_dir)
        self.on_enqueue = on_enqueue

    # ----------------------------------------------------------------- files

    def _ensure_dir(self) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _fsync_dir(self) -> None:
        fd = os.open(self.queue_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_atomic(self, name: str, data: bytes) -> None:
        """Write temp, fsync, rename over ``name``, fsync the directory."""
        tmp = self.queue_dir / f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.queue_dir / name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in DISK_FULL:  # a temporary condition: 452 4.3.1, not 451
                raise InsufficientStorage("insufficient storage for the queue") from exc
            raise
        self._fsync_dir()

    # ----------------------------------------------------------------- API

    def enqueue(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Queue ``message`` for ``recipients``; returns the queue id once both files are
        durable (the caller replies 250 only after that, RFC 5321 4.4 and 6.1)."""
        if not recipients:
            raise ValueError("nothing to queue: no recipients")
        self._ensure_dir()
        queue_id = new_queue_id()
        now = time.time()
        envelope = {
            "id": queue_id,
            "sender": sender,
            "recipients": [
                {"address": rcpt, "state": "pending", "last_error": None}
                for rcpt in dict.fromkeys(recipients)
            ],
            "attempts": 0,
            "first_queued": now,
            "next_attempt": now,
            "last_error": None,
            "size": len(message),
        }
        self._write_atomic(queue_id + MESSAGE_SUFFIX, message)
        try:
            self._write_atomic(queue_id + ENVELOPE_SUFFIX, _encode(envelope))
        except BaseException:  # no 250 for it: leave no orphan behind (a full disk, say)
            (self.queue_dir / (queue_id + MESSAGE_SUFFIX)).unlink(missing_ok=True)
            raise
        log.info("queued %s from <%s> to %d recipient(s)", queue_id, sender, len(recipients))
        if self.on_enqueue is not None:
            self.on_enqueue(queue_id)
        return queue_id

    def list(self) -> list[dict[str, Any]]:
        """Every queued envelope, oldest first; unreadable envelopes are logged and skipped."""
        try:
            names = sorted(os.listdir(self.queue_dir))
        except FileNotFoundError:
            return []
        envelopes = []
        for name in names:
            if not name.endswith(ENVELOPE_SUFFIX) or name.startswith(TEMP_PREFIX):
                continue
            queue_id = name[: -len(ENVELOPE_SUFFIX)]
            if not QUEUE_ID.match(queue_id):
                continue
            try:
                envelopes.append(self.load(queue_id))
            except (KeyError, ValueError) as exc:
                log.warning("queue entry %s unreadable: %s", queue_id, exc)
        return envelopes

    def load(self, queue_id: str) -> dict[str, Any]:
        """The envelope of ``queue_id``; KeyError when it is not queued."""
        path = self.queue_dir / (_check_id(queue_id) + ENVELOPE_SUFFIX)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(queue_id) from None
        envelope = json.loads(data)
        if not isinstance(envelope, dict):
            raise ValueError(f"{path}: not an envelope")
        return envelope

    def message(self, queue_id: str) -> bytes:
        """The queued message (CRLF line endings); KeyError when it is not queued."""
        path = self.queue_dir / (_check_id(queue_id) + MESSAGE_SUFFIX)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(queue_id) from None

    def update(self, queue_id: str, envelope: dict[str, Any]) -> None:
        """Replace the envelope (after an attempt) atomically; KeyError when not queued."""
        _check_id(queue_id)
        if not (self.queue_dir / (queue_id + MESSAGE_SUFFIX)).exists():
            raise KeyError(queue_id)
        self._write_atomic(queue_id + ENVELOPE_SUFFIX, _encode(envelope))

    def delete(self, queue_id: str) -> None:
        """Remove a queued message: the envelope first, so no half entry is ever listed."""
        _check_id(queue_id)
        envelope = self.queue_dir / (queue_id + ENVELOPE_SUFFIX)
        message = self.queue_dir / (queue_id + MESSAGE_SUFFIX)
        if not envelope.exists() and not message.exists():
            raise KeyError(queue_id)
        envelope.unlink(missing_ok=True)
        message.unlink(missing_ok=True)
        self._fsync_dir()
        log.info("removed %s from the queue", queue_id)

    def orphans(self) -> builtins.list[str]:
        """Ids of message files without an envelope (an enqueue interrupted by a crash)."""
        try:
            names = set(os.listdir(self.queue_dir))
        except FileNotFoundError:
            return []
        return sorted(
            name[: -len(MESSAGE_SUFFIX)]
            for name in names
            if name.endswith(MESSAGE_SUFFIX)
            and QUEUE_ID.match(name[: -len(MESSAGE_SUFFIX)])
            and name[: -len(MESSAGE_SUFFIX)] + ENVELOPE_SUFFIX not in names
        )


def _encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, indent=1, sort_keys=True).encode("utf-8") + b"\n"
