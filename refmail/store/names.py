"""Mailbox and user names, and the only place they become paths (DESIGN.md, "On disk").

A mailbox name is UTF-8 text with ``/`` as the hierarchy separator; ``Work/Projects`` is the
file ``mail/USER/Work/Projects``.  Nothing a client sends may name a file outside
``mail/USER/``: no absolute names, no ``.`` or ``..`` components, no empty components, no
control characters.  Components starting with ``.`` (the ``.index`` directory, temporary files
of a rewrite) and ending in ``.lock`` (another mailbox's dotlock) are the store's own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from refmail.errors import InvalidMailboxName, StorageError

INBOX = "INBOX"
SEPARATOR = "/"
#: NAME_MAX of Linux file systems (ext4, xfs, tmpfs): bytes per path component.
MAX_COMPONENT_BYTES = 255
#: A bound on a whole name; deeper names are abuse, not filing (PATH_MAX is 4096).
MAX_NAME_BYTES = 1024
#: A dotlock is ``PATH.lock`` (mutt, procmail, Dovecot): a mailbox may not be named like one.
LOCK_SUFFIX = ".lock"


def normalize_mailbox_name(name: str) -> str:
    """Check a mailbox name and return its canonical form (``INBOX`` in any case -> ``INBOX``,
    RFC 3501 5.1).  Raises InvalidMailboxName with the reason."""
    if not isinstance(name, str) or not name:
        raise InvalidMailboxName("empty mailbox name")
    if name.upper() == INBOX:
        return INBOX
    if name.startswith(SEPARATOR):
        raise InvalidMailboxName("absolute mailbox names are not allowed")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMailboxName("mailbox name is not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidMailboxName("mailbox name too long")
    parts = name.split(SEPARATOR)
    for part in parts:
        _check_component(part)
    if parts[0].upper() == INBOX:
        raise InvalidMailboxName("INBOX is a mailbox file and cannot hold other mailboxes")
    return name


def _check_component(part: str) -> None:
    if not part:
        raise InvalidMailboxName("empty component in mailbox name")
    if part in (".", ".."):
        raise InvalidMailboxName("'.' and '..' are not allowed in mailbox names")
    if part.startswith("."):
        raise InvalidMailboxName("mailbox names may not start with '.'")
    if part.endswith(LOCK_SUFFIX):
        raise InvalidMailboxName("mailbox names may not end with '.lock'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
        raise InvalidMailboxName("control characters are not allowed in mailbox names")
    if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise InvalidMailboxName("mailbox name component too long")


def check_user(user: str) -> str:
    """A user name is one plain path component (auth.py allows far less)."""
    if (
        not isinstance(user, str)
        or not user
        or SEPARATOR in user
        or user.startswith(".")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in user)
        or len(user.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES
    ):
        raise StorageError(f"invalid user name {user!r}")
    return user


def user_dir(root: Path, user: str) -> Path:
    return root / check_user(user)


def mailbox_path(root: Path, user: str, name: str) -> Path:
    """The file of mailbox ``name`` (already normalized) of ``user``, proven to be inside
    the user's directory even when a component is a symlink."""
    base = user_dir(root, user)
    parts = name.split(SEPARATOR)
    plain = not ({"", ".", ".."} & set(parts))
    if plain and not _symlink_below(f"{root}/{user}", parts):
        # No component below ``base`` is a link, so the path resolves to realpath(base)
        # plus these (validated, non-empty, no "..") components: inside.  A delivery opens
        # INBOX for one lstat instead of two realpath walks of every directory up to /.
        return Path(f"{root}/{user}/{name}")
    path = base.joinpath(*parts)
    real_base = os.path.realpath(base)
    real = os.path.realpath(path)
    if os.path.commonpath([real_base, real]) != real_base or real == real_base:
        raise InvalidMailboxName("mailbox name leads outside the user's mail directory")
    return path


def _symlink_below(base: str, parts: list[str]) -> bool:
    """Whether some existing component of ``base/parts...`` below ``base`` is a symlink
    (the first missing one ends the walk: nothing below it exists)."""
    current = base
    for part in parts:
        current = f"{current}/{part}"
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return True
    return False


def name_from_path(base: Path, path: Path) -> str | None:
    """The mailbox name of a file found under ``base``, or None when it is not one of ours
    (dotfiles, dotlocks, names that are not UTF-8 or would not validate)."""
    rel = path.relative_to(base).parts
    try:
        name = SEPARATOR.join(part.encode("utf-8", "strict").decode("utf-8") for part in rel)
        return normalize_mailbox_name(name)
    except (UnicodeError, InvalidMailboxName):
        return None
