"""IMAP commands on mailboxes (RFC 3501 6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND, plus NAMESPACE (RFC 2342) and the
special-use mailboxes (RFC 6154) made at a user's first login.

Names on the wire are modified UTF-7 (RFC 3501 5.1.3, ``utf7.py``) with ``/`` as the
hierarchy delimiter; the store gets UTF-8 names.  ``INBOX`` is case-insensitive (RFC 3501 5.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

from refmail.errors import IMAPError, MailboxExists, NoSuchMailbox
from refmail.imap import utf7
from refmail.imap.arguments import Arguments, parse_date_time
from refmail.imap.commands import Done, State
from refmail.imap.fetch import imap_string
from refmail.imap.protocol import Atom, Command, ParenList, String
from refmail.imap.view import SelectedMailbox, format_flags
from refmail.store import MailStore
from refmail.store.model import normalize_flags

if TYPE_CHECKING:
    from refmail.imap.session import IMAPService

INBOX = "INBOX"
DELIMITER = "/"
#: RFC 6154 2 attributes, for the mailboxes made at first login (Dovecot's default names).
SPECIAL_USE = MappingProxyType(
    {
        "Drafts": "\\Drafts",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }
)
#: RFC 3501 6.3.1: the flags a client may set here; PERMANENTFLAGS adds \* for keywords.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
#: RFC 3501 6.3.10 STATUS data items.
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def decode_name(raw: bytes) -> str:
    """A mailbox name as sent -> the store's UTF-8 name (RFC 3501 5.1, 5.1.3)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise IMAPError("BAD", "mailbox names are modified UTF-7 (RFC 3501 5.1.3)") from None
    try:
        name = utf7.decode(text)
    except ValueError:
        raise IMAPError("BAD", "invalid modified UTF-7 in mailbox name") from None
    if name.upper() == INBOX:
        return INBOX
    return name


def encode_name(name: str) -> bytes:
    """The store's name as an IMAP string of modified UTF-7 (RFC 3501 5.1.3)."""
    return imap_string(utf7.encode(name))


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """RFC 3501 6.3.8: ``*`` matches anything, ``%`` anything but the delimiter."""
    parts = []
    for c in pattern:
        if c == "*":
            parts.append(".*")
        elif c == "%":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts) + r"\Z", re.S)


class MailboxCommands:
    """Mixin of ``IMAPSession``: the authenticated-state commands on mailboxes."""

    store: MailStore
    user: str | None
    state: State
    selected: SelectedMailbox | None
    service: IMAPService
    send: Callable[[bytes], None]
    deselect: Callable[[], None]

    # ------------------------------------------------------------------ login

    def login(self, user: str) -> None:
        """Enter the authenticated state (RFC 3501 6.2.3); on a user's first login make the
        special-use mailboxes and subscribe them (RFC 6154 5, as Dovecot's auto=subscribe)."""
        self.store.ensure_user(user)
        names = set(self.store.list_mailboxes(user))
        if not (names - {INBOX}) and not list(self.store.subscriptions(user)):
            for name in SPECIAL_USE:
                if name not in names:
                    try:
                        self.store.create_mailbox(user, name)
                    except MailboxExists:
                        pass
            for name in (INBOX, *SPECIAL_USE):
                self.store.subscribe(user, name)
        self.user = user
        self.state = State.AUTHENTICATED

    def _name(self, args: Arguments, what: str = "mailbox name") -> str:
        return decode_name(args.astring(what))

    # ------------------------------------------------------------------ SELECT / EXAMINE

    def imap_SELECT(self, cmd: Command) -> Done:
        """SELECT (RFC 3501 6.3.1)."""
        return self._select(cmd, readonly=False)

    def imap_EXAMINE(self, cmd: Command) -> Done:
        """EXAMINE (RFC 3501 6.3.2): SELECT, read-only, \\Recent left alone."""
        return self._select(cmd, readonly=True)

    def _select(self, cmd: Command, *, readonly: bool) -> Done:
        args = Arguments(cmd.args)
        name = self._name(args)
        args.end()
        # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected.
        self.deselect()
        assert self.user is not None
        try:
            box = self.store.mailbox(self.user, name)
        except NoSuchMailbox:
            raise IMAPError("NO", "no such mailbox", "NONEXISTENT") from None
        view = SelectedMailbox(box, user=self.user, name=name, readonly=readonly)
        flags = " ".join(SYSTEM_FLAGS)
        permanent = "" if readonly else f"{flags} \\*"
        unseen = view.first_unseen
        self.send(f"* FLAGS ({flags})\r\n".encode())
        self.send(b"* %d EXISTS\r\n" % view.exists)
        self.send(b"* %d RECENT\r\n" % len(view.recent))
        if unseen is not None:
            self.send(f"* OK [UNSEEN {unseen}] first unseen message\r\n".encode())
        self.send(f"* OK [PERMANENTFLAGS ({permanent})] flags permitted\r\n".encode())
        self.send(f"* OK [UIDVALIDITY {view.uidvalidity}] UIDs valid\r\n".encode())
        self.send(f"* OK [UIDNEXT {box.uidnext}] predicted next UID\r\n".encode())
        self.selected = view
        self.state = State.SELECTED
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        return Done(f"{cmd.name} completed", mode)

    # ------------------------------------------------------------------ CREATE / DELETE / RENAME

    def imap_CREATE(self, cmd: Command) -> Done:
        """CREATE (RFC 3501 6.3.3).  A trailing delimiter declares that names will be made
        below this one: an mbox file cannot hold mailboxes, so ``CREATE foo/`` makes a
        folder (a directory), listed ``\\Noselect`` until it is deleted."""
        args = Arguments(cmd.args)
        raw_name = self._name(args)
        args.end()
        name = raw_name.rstrip(DELIMITER)
        if name.upper() == INBOX:
            raise IMAPError("NO", "INBOX always exists", "ALREADYEXISTS")
        assert self.user is not None
        self._check_new_name(name, set(self._all_names()), set(self._folders()))
        if raw_name.endswith(DELIMITER):
            self.store.create_folder(self.user, name)
        else:
            self.store.create_mailbox(self.user, name)
        return Done("CREATE completed")

    def imap_DELETE(self, cmd: Command) -> Done:
        """DELETE (RFC 3501 6.3.4): INBOX may not be deleted."""
        args = Arguments(cmd.args)
        name = self._name(args)
        args.end()
        if name == INBOX:
            raise IMAPError("NO", "INBOX cannot be deleted", "CANNOT")
        assert self.user is not None
        names = self._all_names() + self._folders()
        if name not in names:
            raise IMAPError("NO", "no such mailbox", "NONEXISTENT")
        if any(other.startswith(name + DELIMITER) for other in names):
            # RFC 3501 6.3.4: a \Noselect name with inferiors may not be deleted (and an
            # mbox mailbox has none)
            raise IMAPError("NO", "mailbox has inferior hierarchical names", "CANNOT")
        if self.selected is not None and self.selected.name == name:
            self.deselect()  # RFC 7162 3.2.11 / RFC 3501 leaves it open: stop using it first
            self.send(b"* OK [CLOSED] the selected mailbox is being deleted\r\n")
        self.store.delete_mailbox(self.user, name)
        return Done("DELETE completed")

    def imap_RENAME(self, cmd: Command) -> Done:
        """RENAME (RFC 3501 6.3.5): renaming INBOX moves its messages, INBOX stays."""
        args = Arguments(cmd.args)
        old = self._name(args, "existing mailbox name")
        new = self._name(args, "new mailbox name").rstrip(DELIMITER)
        args.end()
        if new.upper() == INBOX:
            raise IMAPError("NO", "INBOX always exists", "ALREADYEXISTS")
        assert self.user is not None
        names = self._all_names()
        folders = self._folders()
        if old not in names + folders:
            raise IMAPError("NO", "no such mailbox", "NONEXISTENT")
        if new.startswith(old + DELIMITER):
            raise IMAPError("NO", "a mailbox cannot be moved below itself", "CANNOT")
        self._check_new_name(new, set(names), set(folders))
        if self.selected is not None and self.selected.name == old and old != INBOX:
            self.deselect()
            self.send(b"* OK [CLOSED] the selected mailbox is being renamed\r\n")
        self.store.rename_mailbox(self.user, old, new)
        return Done("RENAME completed")

    @staticmethod
    def _check_new_name(name: str, existing: set[str], folders: set[str]) -> None:
        """CREATE and RENAME targets: free (neither a mailbox nor a folder), and not below a
        mailbox (an mbox file holds messages, not other mailboxes)."""
        taken = existing | folders
        if name in taken or any(n.startswith(name + DELIMITER) for n in taken):
            raise IMAPError("NO", "mailbox already exists", "ALREADYEXISTS")
        parts = name.split(DELIMITER)
        for i in range(1, len(parts)):
            parent = DELIMITER.join(parts[:i])
            if parent in existing:
                raise IMAPError("NO", f"{parent} holds messages, not mailboxes (mbox)", "CANNOT")

    # ------------------------------------------------------------------ subscriptions

    def imap_SUBSCRIBE(self, cmd: Command) -> Done:
        """SUBSCRIBE (RFC 3501 6.3.6)."""
        args = Arguments(cmd.args)
        name = self._name(args)
        args.end()
        assert self.user is not None
        self.store.subscribe(self.user, name)
        return Done("SUBSCRIBE completed")

    def imap_UNSUBSCRIBE(self, cmd: Command) -> Done:
        """UNSUBSCRIBE (RFC 3501 6.3.7)."""
        args = Arguments(cmd.args)
        name = self._name(args)
        args.end()
        assert self.user is not None
        self.store.unsubscribe(self.user, name)
        return Done("UNSUBSCRIBE completed")

    # ------------------------------------------------------------------ LIST / LSUB

    def imap_LIST(self, cmd: Command) -> Done:
        """LIST (RFC 3501 6.3.8) with CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154)
        attributes; the RFC 5258 ``(SPECIAL-USE)`` selection and ``RETURN (...)`` forms that
        RFC 6154 clients send are understood too."""
        args = Arguments(cmd.args)
        special_only = False
        if isinstance(args.peek(), ParenList):  # RFC 5258 3 selection options
            options = [_atom_upper(t) for t in args.paren_list("selection options")]
            special_only = "SPECIAL-USE" in options
        reference = decode_name(args.astring("reference"))
        pattern = decode_name(args.astring("mailbox pattern"))
        if args.more():
            if _atom_upper(args.next("RETURN")) != "RETURN":
                raise IMAPError("BAD", "expected RETURN options")
            args.paren_list("return options")
        args.end()
        if not pattern:  # RFC 3501 6.3.8: the delimiter and the root of the reference
            root = reference.split(DELIMITER, 1)[0] + DELIMITER if DELIMITER in reference else ""
            self.send(b'* LIST (\\Noselect) "/" ' + encode_name(root) + b"\r\n")
            return Done("LIST completed")
        matches = self._matching(reference, pattern, self._all_names(), self._folders())
        for name, attributes in matches:
            if special_only and not any(a in SPECIAL_USE.values() for a in attributes):
                continue
            self._send_list("LIST", name, attributes)
        return Done("LIST completed")

    def imap_LSUB(self, cmd: Command) -> Done:
        """LSUB (RFC 3501 6.3.9): the subscribed names matching the pattern."""
        args = Arguments(cmd.args)
        reference = decode_name(args.astring("reference"))
        pattern = decode_name(args.astring("mailbox pattern"))
        args.end()
        assert self.user is not None
        subscribed = set(self.store.subscriptions(self.user))
        existing = set(self._all_names())
        for name, attributes in self._matching(reference, pattern, subscribed | existing):
            if name not in subscribed:
                # RFC 3501 6.3.9: a parent of subscribed names matched by % is \Noselect
                if not any(s.startswith(name + DELIMITER) for s in subscribed):
                    continue
                if "%" not in pattern:
                    continue
                attributes = ["\\Noselect"]
            elif name not in existing:
                attributes = ["\\Noselect"]
            self._send_list("LSUB", name, attributes)
        return Done("LSUB completed")

    def _all_names(self) -> list[str]:
        assert self.user is not None
        names = set(self.store.list_mailboxes(self.user))
        names.add(INBOX)
        return sorted(names, key=lambda n: (n != INBOX, n))

    def _folders(self) -> list[str]:
        """Names that hold mailboxes but no messages (directories: \\Noselect)."""
        assert self.user is not None
        return self.store.list_folders(self.user)

    def _matching(
        self, reference: str, pattern: str, names: Iterable[str], folders: Iterable[str] = ()
    ) -> list[tuple[str, list[str]]]:
        """Names (with implied parents and the folders) matching reference + pattern, and
        their attributes; a name that is no mailbox is \\Noselect (RFC 3501 6.3.8)."""
        full = reference + pattern if reference else pattern
        if full.upper().startswith(INBOX) and full[5:6] in ("", DELIMITER):
            full = INBOX + full[5:]
        regex = pattern_regex(full)
        existing = set(names)
        every = existing | set(folders)
        for name in existing:
            parts = name.split(DELIMITER)
            every.update(DELIMITER.join(parts[:i]) for i in range(1, len(parts)))
        out = []
        for name in sorted(every, key=lambda n: (n != INBOX, n)):
            if not regex.match(name):
                continue
            children = any(other.startswith(name + DELIMITER) for other in every)
            attributes = []
            if name not in existing:
                attributes.append("\\Noselect")
            if name == INBOX:
                attributes.append("\\NoInferiors")  # an mbox file cannot hold mailboxes
            else:
                attributes.append("\\HasChildren" if children else "\\HasNoChildren")
            if name in SPECIAL_USE:
                attributes.append(SPECIAL_USE[name])
            out.append((name, attributes))
        return out

    def _send_list(self, verb: str, name: str, attributes: list[str]) -> None:
        line = f'* {verb} ({" ".join(attributes)}) "/" '.encode() + encode_name(name)
        self.send(line + b"\r\n")

    # ------------------------------------------------------------------ STATUS

    def imap_STATUS(self, cmd: Command) -> Done:
        """STATUS (RFC 3501 6.3.10): counts without selecting; \\Recent is left alone."""
        args = Arguments(cmd.args)
        raw = args.astring("mailbox name")
        name = decode_name(raw)
        items = [_atom_upper(t) for t in args.paren_list("status items")]
        args.end()
        if not items or any(item not in STATUS_ITEMS for item in items):
            raise IMAPError("BAD", f"STATUS items are {' '.join(STATUS_ITEMS)}")
        assert self.user is not None
        try:
            box = self.store.mailbox(self.user, name)
        except NoSuchMailbox:
            raise IMAPError("NO", "no such mailbox", "NONEXISTENT") from None
        infos = box.messages()
        values = {
            "MESSAGES": len(infos),
            "RECENT": sum(1 for i in infos if i.recent),
            "UIDNEXT": box.uidnext,
            "UIDVALIDITY": box.uidvalidity,
            "UNSEEN": sum(1 for i in infos if "\\Seen" not in i.flags),
        }
        body = " ".join(f"{item} {values[item]}" for item in items)
        self.send(b"* STATUS " + encode_name(name) + f" ({body})\r\n".encode())
        return Done("STATUS completed")

    # ------------------------------------------------------------------ APPEND

    def imap_APPEND(self, cmd: Command) -> Done:
        """APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315 3)."""
        args = Arguments(cmd.args)
        name = self._name(args)
        flags: list[str] = []
        if isinstance(args.peek(), ParenList):
            flags = [_flag(t) for t in args.paren_list("flag list")]
        date = None
        token = args.peek()
        if isinstance(token, String) and not token.literal:
            date = parse_date_time(args.astring("date-time").decode("ascii", "replace"))
        message = args.next("message literal")
        args.end()
        if not (isinstance(message, String) and message.literal):
            raise IMAPError("BAD", "the message must be a literal")
        try:
            stored = normalize_flags(flags)
        except ValueError as exc:
            raise IMAPError("BAD", str(exc)) from None
        assert self.user is not None
        try:
            box = self.store.mailbox(self.user, name)
        except NoSuchMailbox:
            raise IMAPError("NO", "no such mailbox", "TRYCREATE") from None
        uid = box.append(message.value, flags=stored, internaldate=date)
        return Done("APPEND completed", f"APPENDUID {box.uidvalidity} {uid}")

    # ------------------------------------------------------------------ NAMESPACE

    def imap_NAMESPACE(self, cmd: Command) -> Done:
        """NAMESPACE (RFC 2342 5): one personal namespace, no prefix, ``/`` delimiter."""
        Arguments(cmd.args).end()
        self.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return Done("NAMESPACE completed")


def _atom_upper(token: object) -> str:
    if not isinstance(token, Atom):
        raise IMAPError("BAD", "expected an atom")
    return token.value.upper()


def _flag(token: object) -> str:
    """RFC 3501 9 flag: ``\\Answered`` ... or a keyword atom."""
    if not isinstance(token, Atom):
        raise IMAPError("BAD", "flags are atoms")
    return token.value


__all__ = ["MailboxCommands", "decode_name", "encode_name", "format_flags"]
