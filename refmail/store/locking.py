"""The host-wide part of a mailbox lock: ``fcntl`` on the mbox, then the dotlock ``PATH.lock``.

mutt, procmail, mailx and Dovecot (``mbox_write_locks = dotlock fcntl``) use these two, so
holding both keeps every mbox program on the host out.  The thread lock that comes first
lives in the Mailbox (POSIX record locks do not exclude threads of one process).

POSIX locks belong to the process and vanish when *any* descriptor of the file is closed, so
while locked all I/O goes through ``FileLock.fd``; after a rewrite renamed a new file over
the old one, ``reopen()`` gives a descriptor of the new file and the lock stays on the old
inode until release (whoever waits on the old inode notices the swap and retries).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from refmail.errors import LockTimeout, NoSuchMailbox, StorageError

log = logging.getLogger(__name__)

#: A dotlock older than this is left over by a crash and broken (procmail and Dovecot use
#: similar ages; a rewrite of even a large mbox takes far less).
STALE_DOTLOCK_SECONDS = 300.0
#: Polling while another holder has the lock: start small, back off to this.
MAX_POLL_INTERVAL = 0.05
FIRST_POLL_INTERVAL = 0.001
#: ``pid_dir/dotlock.PID``: the file a process's dotlocks are hard links of.
PID_FILE_PREFIX = "dotlock."


class FileLock:
    """fcntl + dotlock on one mbox file, taken with a deadline and released in reverse."""

    def __init__(self, path: Path, *, pid_dir: Path | None = None) -> None:
        """``pid_dir``: a directory on the same file system (the user's ``.index``) where
        this process keeps the file its dotlocks are linked from (``_pid_file``)."""
        self.path = path
        self.dotlock = path.with_name(path.name + ".lock")
        # str forms of the names every lock and release uses (no pathlib per call)
        self._path_name = os.fspath(path)
        self._dotlock_name = os.fspath(self.dotlock)
        self._private_prefix = os.fspath(self.dotlock.with_name(f".{self.dotlock.name}"))
        self._pid_dir = None if pid_dir is None else os.fspath(pid_dir)
        self.fd = -1
        self._lock_fd = -1
        self._have_dotlock = False

    @property
    def held(self) -> bool:
        return self._lock_fd >= 0

    def acquire(self, deadline: float) -> None:
        """Take fcntl then the dotlock before ``deadline`` (time.monotonic) or LockTimeout.

        The file is checked again once both are held: fcntl does not exclude another
        MailStore in this process, so only then is it certain no rewrite replaced the file
        while we waited for the dotlock."""
        while True:
            self._lock_fd = self._fcntl_lock(deadline)
            self.fd = self._lock_fd
            try:
                self._take_dotlock(deadline)
                if self._same_file(self._lock_fd):
                    return
            except BaseException:
                self.release()
                raise
            self.release()

    def release(self) -> None:
        if self._have_dotlock:
            try:
                os.unlink(self._dotlock_name)
            except FileNotFoundError:
                log.warning("dotlock %s vanished while held", self.dotlock)
            self._have_dotlock = False
        if self.fd >= 0 and self.fd != self._lock_fd:
            os.close(self.fd)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing releases the fcntl lock
        self.fd = self._lock_fd = -1

    def reopen(self) -> None:
        """Point ``fd`` at the file now at ``path`` (after a rewrite renamed it there)."""
        new_fd = os.open(self._path_name, os.O_RDWR | os.O_CLOEXEC)
        if self.fd >= 0 and self.fd != self._lock_fd:
            os.close(self.fd)
        self.fd = new_fd

    def _fcntl_lock(self, deadline: float) -> int:
        interval = FIRST_POLL_INTERVAL
        while True:
            try:
                fd = os.open(self._path_name, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NoSuchMailbox(f"mailbox file {self.path.name} does not exist") from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise StorageError(f"cannot lock mailbox: {exc.strerror}") from exc
            else:
                # Whether a rewrite replaced the file while we waited is checked once both
                # locks are held (acquire): a stat here too would only make that retry sooner.
                return fd
            if time.monotonic() >= deadline:
                raise LockTimeout("mailbox is locked by another program")
            time.sleep(interval)
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    def _same_file(self, fd: int) -> bool:
        try:
            current = os.stat(self._path_name)
        except FileNotFoundError:
            raise NoSuchMailbox(f"mailbox file {self.path.name} was removed") from None
        opened = os.fstat(fd)
        return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)

    def _take_dotlock(self, deadline: float) -> None:
        """Create ``PATH.lock`` holding our pid, atomically: the pid is in a file first,
        which is then hard-linked to the lock name (link fails if the name exists), as
        liblockfile and Dovecot do.  A crash can therefore never leave an empty dotlock that
        only the five-minute age rule could break.

        That file is the process's pid file in ``pid_dir`` (``_pid_file``), made once and
        linked from by every lock: creating a private file per lock cost an inode
        allocation each time, about a tenth of a millisecond, on every delivery.  Without
        it (no ``pid_dir``, another file system) a private file is made, linked, removed."""
        interval = FIRST_POLL_INTERVAL
        source = self._pid_file()
        private = None
        try:
            while True:
                if source is None:
                    source = private = self._private_file()
                try:
                    os.link(source, self._dotlock_name)
                except FileExistsError:
                    self._break_if_stale()
                except OSError as exc:
                    if private is None:  # the pid file went (ENOENT) or is elsewhere (EXDEV)
                        source = None
                        continue
                    raise StorageError(f"cannot create dotlock: {exc.strerror}") from exc
                else:
                    self._have_dotlock = True
                    return
                if time.monotonic() >= deadline:
                    raise LockTimeout("mailbox is dotlocked by another program")
                time.sleep(interval)
                interval = min(interval * 2, MAX_POLL_INTERVAL)
        finally:
            if private is not None:
                try:
                    os.unlink(private)
                except FileNotFoundError:
                    pass

    def _private_file(self) -> str:
        """A new file beside the mbox holding our pid (the caller links and removes it)."""
        private = f"{self._private_prefix}.{os.getpid()}.{threading.get_ident()}"
        _write_pid_file(private)
        return private

    def _pid_file(self) -> str | None:
        """``pid_dir/dotlock.PID`` holding our pid, its mtime set to now (a dotlock's age is
        its inode's mtime to mutt, procmail and ``_break_if_stale``), made if missing; None
        when it cannot be (no ``pid_dir``, or an error: the caller makes a private file)."""
        if self._pid_dir is None:
            return None
        pid = os.getpid()
        path = f"{self._pid_dir}/{PID_FILE_PREFIX}{pid}"
        try:
            os.utime(path)
        except FileNotFoundError:
            try:
                _write_pid_file(f"{path}.{threading.get_ident()}.tmp", rename_to=path)
            except StorageError:
                return None
            _remove_dead_pid_files(self._pid_dir, pid)
        except OSError:
            return None
        return path

    def _break_if_stale(self) -> None:
        """Remove a dotlock left by a crash: too old, or naming a process that is gone
        (Dovecot and procmail judge the same way; mutt's empty dotlocks only by age)."""
        try:
            age = time.time() - os.stat(self.dotlock).st_mtime
            holder = self.dotlock.read_bytes()[:32].strip()
        except FileNotFoundError:
            return
        dead = holder.isdigit() and not _process_exists(int(holder))
        if age > STALE_DOTLOCK_SECONDS or dead:
            log.warning(
                "breaking stale dotlock %s (%.0f s old, holder %r)", self.dotlock, age, holder
            )
            try:
                os.unlink(self.dotlock)
            except FileNotFoundError:
                pass


def _write_pid_file(path: str, rename_to: str | None = None) -> None:
    """A file at ``path`` (renamed to ``rename_to``: it appears whole) holding our pid."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"%d\n" % os.getpid())
        finally:
            os.close(fd)
        if rename_to is not None:
            os.rename(path, rename_to)
    except OSError as exc:
        raise StorageError(f"cannot create dotlock: {exc.strerror}") from exc


def _remove_dead_pid_files(directory: str, own: int) -> None:
    """Pid files of processes gone (a crash leaves its own) are removed when we make ours."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid = name[len(PID_FILE_PREFIX) :]
        if name.startswith(PID_FILE_PREFIX) and pid.isdigit() and int(pid) != own:
            if not _process_exists(int(pid)):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we can judge: leave it to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
