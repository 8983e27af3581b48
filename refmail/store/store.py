"""The mail store: each user's tree of mbox mailboxes under ``DATA/mail/USER/``.

``MailStore`` is the interface sessions get at construction (DESIGN.md, "Layers"): it hands
out one shared Mailbox object per (user, name) in the process, and does what concerns the
tree (CREATE, DELETE, RENAME, LIST, subscriptions; RFC 3501 6.3) and SMTP delivery.

An mbox file holds messages and no other mailboxes, so the tree's inner nodes are plain
directories: made for ``CREATE Work/Projects`` or on their own (``create_folder``, IMAP's
``CREATE Work/``), listed by ``list_folders`` (IMAP shows them ``\\Noselect``), and kept when
their last mailbox is deleted (RFC 3501 6.3.4's example keeps ``foo`` after ``DELETE foo/bar``).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from refmail.errors import MailboxExists, NoSuchMailbox, StorageError
from refmail.store.fileio import fsync_dir, write_all
from refmail.store.index import INDEX_DIR, MailIndex
from refmail.store.mailbox import Mailbox
from refmail.store.model import MailboxState
from refmail.store.names import (
    INBOX,
    SEPARATOR,
    mailbox_path,
    name_from_path,
    normalize_mailbox_name,
    user_dir,
)

log = logging.getLogger(__name__)

SUBSCRIPTIONS_FILE = "subscriptions"


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class MailStore:
    """All users' mailboxes under ``root`` (``DATA/mail``)."""

    def __init__(self, root: Path, *, lock_timeout: float = 10.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()
        self._boxes: dict[tuple[str, str], Mailbox] = {}
        self._indexes: dict[str, MailIndex] = {}

    # ------------------------------------------------------------------ users

    def ensure_user(self, user: str) -> None:
        """Create ``mail/USER/`` and its empty INBOX unless they exist."""
        with self._lock:
            if os.path.isfile(mailbox_path(self.root, user, INBOX)):
                return  # every delivery asks: one lstat and one stat when all is there
            base = user_dir(self.root, user)
            if not base.is_dir():
                base.mkdir(mode=0o700, parents=True, exist_ok=True)
                fsync_dir(base.parent)
            inbox = mailbox_path(self.root, user, INBOX)
            if not inbox.exists():
                self._create_file(inbox, exist_ok=True)

    def _base(self, user: str) -> Path:
        base = user_dir(self.root, user)
        if not base.is_dir():
            raise NoSuchMailbox(f"user {user} has no mail directory")
        return base

    def _index(self, user: str) -> MailIndex:
        with self._lock:
            index = self._indexes.get(user)
            if index is None:
                index = MailIndex(self._base(user), timeout=self.lock_timeout)
                self._indexes[user] = index
            return index

    @staticmethod
    def _create_file(path: Path, *, exist_ok: bool = False) -> None:
        """A new empty mbox, durable (its directory entry fsynced) before we go on.
        ``exist_ok``: another process creating it first is fine (INBOX on first delivery)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            if exist_ok:
                return
            raise MailboxExists(f"mailbox {path.name} already exists") from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)

    # ------------------------------------------------------------------ mailboxes

    def mailbox(self, user: str, name: str) -> Mailbox:
        """The shared Mailbox object (SELECT, RFC 3501 6.3.1); NoSuchMailbox when absent.
        INBOX always exists for a user that does (RFC 3501 5.1)."""
        name = normalize_mailbox_name(name)
        with self._lock:
            box = self._boxes.get((user, name))
            if box is not None and SEPARATOR not in name and _regular_file(box.path):
                # Still a regular file, not a symlink, right in the user's directory: inside
                # it, as mailbox_path would prove with more stats (this runs per delivery).
                return box
            path = mailbox_path(self.root, user, name)
            if not os.path.isfile(path):  # an mbox there means its user's directory is too
                self._base(user)
                path = mailbox_path(self.root, user, name)
                if name == INBOX and not path.exists():
                    self._create_file(path, exist_ok=True)
                if not path.is_file():
                    raise NoSuchMailbox(f"no mailbox named {name}")
            if box is None:
                box = Mailbox(user, name, path, self._index(user), lock_timeout=self.lock_timeout)
                self._boxes[(user, name)] = box
            return box

    def list_mailboxes(self, user: str) -> list[str]:
        """Every mailbox of the user: INBOX first, then the others sorted (LIST, RFC 3501
        6.3.8, filters these).  Directories that only hold mailboxes are not listed."""
        base = self._base(user)
        names = []
        for directory, subdirs, files in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for file in files:
                path = Path(directory, file)
                name = name_from_path(base, path)
                if name is None or not path.is_file() or path.is_symlink():
                    continue
                if name == INBOX and path != base / INBOX:
                    continue  # "inbox" and the like: only the file INBOX is INBOX
                names.append(name)
        others = sorted(name for name in names if name != INBOX)
        return ([INBOX] if INBOX in names else []) + others

    def list_folders(self, user: str) -> list[str]:
        """The directories of the user's tree (names that can hold mailboxes but no
        messages), sorted; a directory that only holds the store's dotfiles counts too."""
        base = self._base(user)
        names = []
        for directory, subdirs, _ in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for sub in subdirs:
                path = Path(directory, sub)
                name = name_from_path(base, path)
                if name is not None and name != INBOX and not path.is_symlink():
                    names.append(name)
        return sorted(names)

    def _new_path(self, user: str, name: str) -> Path:
        """The path a new mailbox or folder ``name`` takes, with its parent directories made;
        MailboxExists when the name is taken.  Called with ``self._lock`` held."""
        if name == INBOX:
            raise MailboxExists("INBOX always exists")
        base = self._base(user)
        path = mailbox_path(self.root, user, name)
        self._check_parents(base, path)
        if path.exists():
            raise MailboxExists(f"{name} already exists")
        self._make_parents(base, path)
        return path

    def create_folder(self, user: str, name: str) -> None:
        """A directory that will hold mailboxes (IMAP ``CREATE name/``, RFC 3501 6.3.3);
        MailboxExists when the name is taken by a mailbox or a folder."""
        name = normalize_mailbox_name(name)
        with self._lock:
            path = self._new_path(user, name)
            path.mkdir(mode=0o700)
            fsync_dir(path.parent)

    def create_mailbox(self, user: str, name: str) -> None:
        """CREATE (RFC 3501 6.3.3): parents are made as directories; MailboxExists."""
        name = normalize_mailbox_name(name)
        with self._lock:
            path = self._new_path(user, name)
            self._create_file(path)
            index = self._index(user)
            index.delete(name)
            index.put_state(name, MailboxState(index.new_uidvalidity(), 1))

    @staticmethod
    def _check_parents(base: Path, path: Path) -> None:
        parent = path.parent
        while parent != base:
            if parent.exists() and not parent.is_dir():
                raise StorageError(
                    f"{parent.relative_to(base)} is a mailbox and cannot hold other mailboxes"
                )
            parent = parent.parent

    @staticmethod
    def _make_parents(base: Path, path: Path) -> None:
        missing = []
        parent = path.parent
        while parent != base and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
            fsync_dir(directory.parent)

    @staticmethod
    def _remove_empty_parents(base: Path, path: Path) -> None:
        parent = path.parent
        while parent != base:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def delete_mailbox(self, user: str, name: str) -> None:
        """DELETE (RFC 3501 6.3.4): not INBOX; a folder only when it holds no mailbox.
        The parents stay, as folders."""
        name = normalize_mailbox_name(name)
        if name == INBOX:
            raise StorageError("INBOX cannot be deleted")
        with self._lock:
            self._base(user)
            path = mailbox_path(self.root, user, name)
            if path.is_dir() and not path.is_symlink():
                self._remove_folder(path, name)
                return
            box = self.mailbox(user, name)
            box.remove_file()
            del self._boxes[(user, name)]

    @staticmethod
    def _remove_folder(path: Path, name: str) -> None:
        """An empty folder goes; one with mailboxes (or foreign files) stays."""
        leftovers = [p for p in path.iterdir() if not p.name.startswith(".")]
        if leftovers:
            raise StorageError(f"mailbox {name} has child mailboxes")
        for dotfile in path.iterdir():  # a crashed rewrite's temporary file, say
            if dotfile.is_file():
                dotfile.unlink()
        try:
            path.rmdir()
        except OSError as exc:
            raise StorageError(f"cannot remove {name}: {exc.strerror}") from exc
        fsync_dir(path.parent)

    def rename_mailbox(self, user: str, old: str, new: str) -> None:
        """RENAME (RFC 3501 6.3.5): children move too.  Renaming INBOX moves its messages to
        the new mailbox and leaves INBOX empty."""
        old = normalize_mailbox_name(old)
        new = normalize_mailbox_name(new)
        if new == INBOX:
            raise MailboxExists("INBOX always exists")
        if new.startswith(old + SEPARATOR):
            raise StorageError("a mailbox cannot be moved below itself")
        with self._lock:
            base = self._base(user)
            old_path = mailbox_path(self.root, user, old)
            new_path = mailbox_path(self.root, user, new)
            if old != INBOX and not old_path.exists():
                raise NoSuchMailbox(f"no mailbox named {old}")
            self._check_parents(base, new_path)
            if new_path.exists():
                raise MailboxExists(f"mailbox {new} already exists")
            self._make_parents(base, new_path)
            index = self._index(user)
            if old == INBOX:
                inbox = self.mailbox(user, INBOX)
                inbox.move_messages_to(new_path, new, index.new_uidvalidity())
                return
            if old_path.is_file():
                self.mailbox(user, old).rename_file(new_path)
            else:
                os.rename(old_path, new_path)
            fsync_dir(new_path.parent)
            fsync_dir(old_path.parent)
            index.rename(old, new)
            for key in [k for k in self._boxes if k[0] == user]:
                if key[1] == old or key[1].startswith(old + SEPARATOR):
                    del self._boxes[key]
            self._remove_empty_parents(base, old_path)

    # ------------------------------------------------------------------ subscriptions

    def _subscriptions_path(self, user: str) -> Path:
        return self._base(user) / INDEX_DIR / SUBSCRIPTIONS_FILE

    def subscriptions(self, user: str) -> list[str]:
        """LSUB (RFC 3501 6.3.9): the names subscribed, whether or not they exist."""
        path = self._subscriptions_path(user)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line]

    def subscribe(self, user: str, name: str) -> None:
        """SUBSCRIBE (RFC 3501 6.3.6)."""
        name = normalize_mailbox_name(name)
        with self._lock:
            names = self.subscriptions(user)
            if name not in names:
                self._write_subscriptions(user, [*names, name])

    def unsubscribe(self, user: str, name: str) -> None:
        """UNSUBSCRIBE (RFC 3501 6.3.7); a name not subscribed is no error."""
        name = normalize_mailbox_name(name)
        with self._lock:
            names = self.subscriptions(user)
            if name in names:
                self._write_subscriptions(user, [n for n in names if n != name])

    def _write_subscriptions(self, user: str, names: Iterable[str]) -> None:
        path = self._subscriptions_path(user)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = "".join(f"{name}\n" for name in names).encode("utf-8")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
        fsync_dir(path.parent)

    # ------------------------------------------------------------------ delivery

    def deliver(
        self,
        user: str,
        message: bytes,
        *,
        mailbox: str = INBOX,
        sender: str = "MAILER-DAEMON",
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> int:
        """Local delivery (RFC 5321 4.4: the caller has added Return-Path and Received):
        durable when this returns; the UID of the new message."""
        box = self.mailbox(user, mailbox)
        return box.append(message, sender=sender, flags=flags, internaldate=internaldate)

    def close(self) -> None:
        """Write pending flag changes back to every open mailbox and close the indexes.
        The store may be used again afterwards (indexes reopen on demand)."""
        with self._lock:
            boxes = list(self._boxes.values())
            for box in boxes:
                try:
                    box.sync()
                except (StorageError, OSError):
                    log.exception("could not write back flags of %r", box)
            for index in self._indexes.values():
                index.close()
            self._boxes.clear()
            self._indexes.clear()
