"""IMAP commands on the selected mailbox's messages (RFC 3501 6.4): CHECK, CLOSE, EXPUNGE,
SEARCH, FETCH, STORE, COPY and their UID forms, with UNSELECT (RFC 3691), UID EXPUNGE and
COPYUID (RFC 4315), MOVE (RFC 6851) and SORT (RFC 5256)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

from refmail.errors import IMAPError, NoSuchMailbox
from refmail.imap import fetch, search, sort
from refmail.imap.arguments import Arguments
from refmail.imap.commands import OUTPUT_SLICE, Done, Streamed
from refmail.imap.mailboxes import decode_name
from refmail.imap.message import ParsedMessage, parse_message
from refmail.imap.protocol import Atom, Command, ParenList, Token
from refmail.imap.view import SelectedMailbox, compact_uid_set, format_flags
from refmail.store import Mailbox, MailStore, MessageInfo
from refmail.store.model import normalize_flags

SEEN = "\\Seen"
DELETED = "\\Deleted"
#: RFC 3501 6.4.5 macros.
FETCH_MACROS = MappingProxyType(
    {
        "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
        "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
        "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
    }
)
#: What each simple item needs of the message: nothing (index data), its header, or all of it.
_NEEDS = MappingProxyType(
    {
        "UID": 0,
        "FLAGS": 0,
        "INTERNALDATE": 0,
        "RFC822.SIZE": 0,
        "ENVELOPE": 1,
        "RFC822.HEADER": 1,
        "BODY": 2,
        "BODYSTRUCTURE": 2,
        "RFC822": 2,
        "RFC822.TEXT": 2,
    }
)
_TEXT = fetch.FetchSpec(text="TEXT")
#: Simple items made from the MIME tree; the others take the index's data or the bytes as read.
_PARSES = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER", "RFC822.TEXT"})
#: Items the index caches per message once computed (DESIGN.md "On disk": envelope data):
#: their response bytes never change for a UID (RFC 3501 2.3.1.1).
CACHED_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY"})
#: FETCH reads at most this many messages under one mailbox lock, then lets go of it before
#: the responses are written (STYLE.md 12); \Seen it sets is stored once per batch.
FETCH_BATCH = 256
#: SEARCH reads at most this many messages under one mailbox lock, as FETCH does.
SEARCH_BATCH = 256
#: RFC 4731 3.1 search return options.
ESEARCH_OPTIONS = ("MIN", "MAX", "ALL", "COUNT")


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One fetch attribute (RFC 3501 6.4.5): a simple name or a ``BODY[section]`` spec."""

    name: str
    spec: fetch.FetchSpec | None = None

    @property
    def needs(self) -> int:
        if self.spec is None:
            return _NEEDS[self.name]
        whole_header = not self.spec.part and self.spec.text in (
            "HEADER",
            "HEADER.FIELDS",
            "HEADER.FIELDS.NOT",
        )
        return 1 if whole_header and self.spec.partial is None else 2

    @property
    def parses(self) -> bool:
        """Whether the item needs the message's MIME tree, not just its bytes."""
        if self.spec is None:
            return self.name in _PARSES
        return bool(self.spec.part or self.spec.text)

    @property
    def sets_seen(self) -> bool:
        """RFC 3501 6.4.5: BODY[...] (not PEEK), RFC822 and RFC822.TEXT set \\Seen."""
        if self.spec is not None:
            return not self.spec.peek
        return self.name in ("RFC822", "RFC822.TEXT")


def parse_fetch_items(token: Token) -> list[FetchItem]:
    """RFC 3501 9 ``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``."""
    if isinstance(token, Atom) and token.value.upper() in FETCH_MACROS:
        return [FetchItem(name) for name in FETCH_MACROS[token.value.upper()]]
    tokens = token.items if isinstance(token, ParenList) else (token,)
    if not tokens:
        raise IMAPError("BAD", "empty fetch attribute list")
    items = []
    for item in tokens:
        if not isinstance(item, Atom):
            raise IMAPError("BAD", "fetch attributes are atoms")
        name = item.value.upper()
        if name in _NEEDS:
            items.append(FetchItem(name))
        elif name.startswith(("BODY[", "BODY.PEEK[")):
            try:
                items.append(FetchItem(name, fetch.parse_fetch_att(item.value)))
            except ValueError as exc:
                raise IMAPError("BAD", str(exc)) from None
        else:
            raise IMAPError("BAD", f"unknown fetch attribute {item.value[:40]}")
    return items


class MessageCommands:
    """Mixin of ``IMAPSession``: the selected-state commands."""

    store: MailStore
    user: str | None
    selected: SelectedMailbox | None
    send: Callable[[bytes], None]
    deselect: Callable[[], None]
    _out: list[bytes]

    def _view(self) -> SelectedMailbox:
        assert self.selected is not None
        return self.selected

    def _writable(self) -> SelectedMailbox:
        view = self._view()
        if view.readonly:
            raise IMAPError("NO", "mailbox is read-only (EXAMINE)", "READ-ONLY")
        return view

    # ------------------------------------------------------------------ housekeeping

    def imap_CHECK(self, cmd: Command) -> Done:
        """CHECK (RFC 3501 6.4.1): write pending flag changes into the mbox."""
        Arguments(cmd.args).end()
        view = self._view()
        if not view.readonly:
            view.box.sync()
        view.mark_stale()
        return Done("CHECK completed")

    def imap_CLOSE(self, cmd: Command) -> Done:
        """CLOSE (RFC 3501 6.4.2): expunge silently unless read-only, then deselect.  Flag
        changes kept in the index are written into the mbox first (the expunge's rewrite
        carries them; else a sync), as Dovecot's mbox_lazy_writes does on close: after the
        OK, mutt and a rebuilt index see them too."""
        Arguments(cmd.args).end()
        view = self._view()
        if not view.readonly:
            deleted = self._deleted(view)
            if deleted:
                view.box.expunge(deleted)
            else:
                view.box.sync()
        self.deselect()
        return Done("CLOSE completed")

    def imap_UNSELECT(self, cmd: Command) -> Done:
        """UNSELECT (RFC 3691 2): deselect without expunging."""
        Arguments(cmd.args).end()
        self.deselect()
        return Done("UNSELECT completed")

    def imap_EXPUNGE(self, cmd: Command) -> Done:
        """EXPUNGE (RFC 3501 6.4.3); UID EXPUNGE only within a UID set (RFC 4315 2.1)."""
        args = Arguments(cmd.args)
        uid_set = args.sequence_set() if cmd.uid else None
        args.end()
        view = self._writable()
        deleted = self._deleted(view)
        if uid_set is not None:
            named = {uid for _, uid in view.resolve(uid_set, uid=True)}
            deleted = [uid for uid in deleted if uid in named]
        if deleted:
            view.box.expunge(deleted)
        view.mark_stale()
        self._out.extend(view.updates(allow_expunge=True))
        return Done("EXPUNGE completed")

    def _deleted(self, view: SelectedMailbox) -> list[int]:
        return [info.uid for info in view.box.messages() if DELETED in info.flags]

    # ------------------------------------------------------------------ SEARCH / SORT

    def imap_SEARCH(self, cmd: Command) -> Done:
        """SEARCH (RFC 3501 6.4.4); UID SEARCH answers with UIDs (RFC 3501 6.4.8);
        ``SEARCH RETURN (...)`` answers with ESEARCH (RFC 4731 3.1)."""
        tokens = cmd.args
        options: list[str] | None = None
        if tokens and isinstance(tokens[0], Atom) and tokens[0].value.upper() == "RETURN":
            args = Arguments(tokens[1:])
            options = [_word(t) for t in args.paren_list("RETURN options")] or ["ALL"]
            if any(o not in ESEARCH_OPTIONS for o in options):
                raise IMAPError("BAD", f"RETURN options are {' '.join(ESEARCH_OPTIONS)}")
            tokens = args.rest()
        key = _search_key(tokens)
        view = self._view()
        found = self._search_matches(view, key)
        numbers = [v.uid if cmd.uid else v.seq for v in found]
        if options is None:
            self.send(" ".join(["* SEARCH", *map(str, numbers)]).encode() + b"\r\n")
        else:
            self.send(_esearch(cmd.tag, cmd.uid, options, numbers))
        return Done("SEARCH completed")

    def imap_SORT(self, cmd: Command) -> Done:
        """SORT (RFC 5256 3): criteria, a charset, then search keys."""
        args = Arguments(cmd.args)
        try:
            criteria = sort.parse_sort_criteria(args.paren_list("sort criteria"))
        except ValueError as exc:
            raise IMAPError("BAD", str(exc)) from None
        charset = args.astring("charset").decode("ascii", "replace")
        key = _search_key(args.rest(), charset)
        view = self._view()
        found = self._search_matches(view, key)
        try:
            ordered = sort.sort_messages(criteria, found)
        except ValueError as exc:
            raise IMAPError("BAD", str(exc)) from None
        by_seq = {v.seq: v.uid for v in found}
        numbers = [by_seq[seq] if cmd.uid else seq for seq in ordered]
        self.send(" ".join(["* SORT", *map(str, numbers)]).encode() + b"\r\n")
        return Done("SORT completed")

    def _search_matches(
        self, view: SelectedMailbox, key: search.SearchKey
    ) -> list[search.MessageView]:
        """The messages that match ``key`` (RFC 3501 6.4.4).  A key that reads messages reads
        them SEARCH_BATCH at a time under one mailbox lock (``Mailbox.reading``), as FETCH
        does: one lock and one look at the file per batch, not per message."""
        context = _context(view)
        reads = _MessageReads(view.box)
        views = self._message_views(view, reads)
        if not search.needs_message(key):
            return [v for v in views if search.matches(key, v, context)]
        found = []
        for start in range(0, len(views), SEARCH_BATCH):
            with view.box.reading() as reader:
                reads.read = reader.read
                try:
                    found += [
                        v
                        for v in views[start : start + SEARCH_BATCH]
                        if search.matches(key, v, context)
                    ]
                finally:
                    reads.read = view.box.read  # SORT may read later, outside the batch
        return found

    def _message_views(
        self, view: SelectedMailbox, reads: _MessageReads
    ) -> list[search.MessageView]:
        """The messages as SEARCH sees them; expunged ghosts are left out (RFC 2180 4.1.3)."""
        current = {info.uid: info for info in view.box.messages()}
        views = []
        for seq, uid in enumerate(view.uids, 1):
            info = current.get(uid)
            if info is None:
                continue
            views.append(
                search.MessageView(
                    seq=seq,
                    uid=uid,
                    size=info.size,
                    flags=info.flags,
                    internaldate=info.internaldate,
                    recent=uid in view.recent,
                    message_bytes=partial(reads, uid),
                )
            )
        return views

    # ------------------------------------------------------------------ FETCH

    def imap_FETCH(self, cmd: Command) -> Streamed:
        """FETCH (RFC 3501 6.4.5); UID FETCH always returns UID (RFC 3501 6.4.8).  The
        arguments are checked now; the responses are made as the client reads them."""
        args = Arguments(cmd.args)
        seqset = args.sequence_set()
        items = parse_fetch_items(args.next("fetch attributes"))
        args.end()
        if cmd.uid and not any(item.name == "UID" for item in items):
            items.insert(0, FetchItem("UID"))
        view = self._view()
        targets = view.resolve(seqset, uid=cmd.uid)
        return Streamed(self._fetch_responses(view, targets, items))

    def _fetch_responses(
        self, view: SelectedMailbox, targets: list[tuple[int, int]], items: list[FetchItem]
    ) -> Generator[bytes, None, Done]:
        """Responses in batches: each batch is read under one lock (``Mailbox.reading``),
        made while it is held (no network I/O), and yielded after it is released."""
        current = {info.uid: info for info in view.box.messages()}
        missing = False
        start = 0
        while start < len(targets):
            responses, start, gone = self._fetch_batch(view, targets, start, items, current)
            missing = missing or gone
            yield from responses
        if missing:  # RFC 2180 4.1.2, RFC 5530 EXPUNGEISSUED
            raise IMAPError("NO", "some of the messages were expunged", "EXPUNGEISSUED")
        return Done("FETCH completed")

    def _fetch_batch(
        self,
        view: SelectedMailbox,
        targets: list[tuple[int, int]],
        start: int,
        items: list[FetchItem],
        current: dict[int, MessageInfo],
    ) -> tuple[list[bytes], int, bool]:
        """Responses for ``targets[start:]`` up to FETCH_BATCH messages or OUTPUT_SLICE
        bytes; the index of the next target; whether some message was expunged."""
        sets_seen = not view.readonly and any(item.sets_seen for item in items)
        reports_flags = any(item.name == "FLAGS" for item in items)
        cacheable = [item.name for item in items if item.spec is None and item.name in CACHED_ITEMS]
        seen: dict[int, frozenset[str]] = {}
        responses: list[bytes] = []
        size = 0
        missing = False
        position = start
        batch = targets[start : start + FETCH_BATCH]
        with view.box.reading() as reader:
            cache = reader.cached(uid for _, uid in batch) if cacheable else {}
            computed: dict[tuple[int, str], bytes] = {}
            for seq, uid in batch:
                if size >= OUTPUT_SLICE:
                    break
                position += 1
                info = current.get(uid)
                needs = max(
                    (0 if (uid, item.name) in cache else item.needs for item in items),
                    default=0,
                )
                try:
                    if info is None:
                        raise KeyError(uid)
                    data = b""
                    if needs == 2:
                        data = reader.read(uid)
                    elif needs == 1:
                        data = reader.read_header(uid)
                except KeyError:  # expunged by another session (RFC 2180 4.1.2)
                    missing = True
                    continue
                flags = info.flags
                if sets_seen and SEEN not in flags:
                    flags = seen[uid] = flags | {SEEN}
                message: bytes | ParsedMessage | None = None
                if needs:
                    parses = any(item.parses and (uid, item.name) not in cache for item in items)
                    message = parse_message(data) if parses else data
                parts = []
                for item in items:
                    value = cache.get((uid, item.name))
                    if value is None:
                        value = self._fetch_item(item, info, flags, view, message)
                        if item.name in cacheable:
                            computed[(uid, item.name)] = value
                    parts.append(value)
                if uid in seen and not reports_flags:
                    parts.append(b"FLAGS " + format_flags(flags, uid in view.recent).encode())
                if reports_flags or uid in seen:
                    view.flags[uid] = flags
                response = b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
                responses.append(response)
                size += len(response)
            reader.put_cached(computed)
        if seen:
            view.box.set_flags(seen)
        return responses, position, missing

    def _fetch_item(
        self,
        item: FetchItem,
        info: MessageInfo,
        flags: frozenset[str],
        view: SelectedMailbox,
        message: bytes | ParsedMessage | None,
    ) -> bytes:
        name = item.name
        if name == "UID":
            return b"UID %d" % info.uid
        if name == "FLAGS":
            return b"FLAGS " + format_flags(flags, info.uid in view.recent).encode()
        if name == "INTERNALDATE":
            return b"INTERNALDATE " + fetch.internaldate(info.internaldate)
        if name == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % info.size
        assert message is not None  # read because item.needs said so
        if item.spec is not None:
            return fetch.body_item(message, item.spec)
        if name == "ENVELOPE":
            return b"ENVELOPE " + fetch.envelope(message)
        if name == "BODYSTRUCTURE":
            return b"BODYSTRUCTURE " + fetch.bodystructure(message, True)
        if name == "BODY":
            return b"BODY " + fetch.bodystructure(message, False)
        if name == "RFC822":
            data = message if isinstance(message, bytes) else message.data
            return b"RFC822 " + fetch.imap_string(data)
        if name == "RFC822.HEADER":
            header = fetch.section(message, fetch.FetchSpec(text="HEADER"))
            return b"RFC822.HEADER " + fetch.imap_string(header)
        assert name == "RFC822.TEXT"
        return b"RFC822.TEXT " + fetch.imap_string(fetch.section(message, _TEXT))

    # ------------------------------------------------------------------ STORE

    def imap_STORE(self, cmd: Command) -> Done:
        """STORE (RFC 3501 6.4.6): FLAGS, +FLAGS, -FLAGS, each with .SILENT."""
        args = Arguments(cmd.args)
        seqset = args.sequence_set()
        item = args.atom("store item").upper()
        rest = args.rest()
        if len(rest) == 1 and isinstance(rest[0], ParenList):
            rest = rest[0].items
        mode, _, suffix = item.partition(".")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS") or suffix not in ("", "SILENT"):
            raise IMAPError("BAD", "STORE takes FLAGS, +FLAGS or -FLAGS, optionally .SILENT")
        if not all(isinstance(t, Atom) for t in rest):
            raise IMAPError("BAD", "flags are atoms")
        try:
            flags = normalize_flags(t.value for t in rest if isinstance(t, Atom))
        except ValueError as exc:
            raise IMAPError("BAD", str(exc)) from None
        if mode != "FLAGS" and not rest:
            raise IMAPError("BAD", "missing flags")
        view = self._writable()
        targets = view.resolve(seqset, uid=cmd.uid)
        current = {info.uid: info for info in view.box.messages()}
        changes: dict[int, frozenset[str]] = {}
        missing = False
        for _, uid in targets:
            info = current.get(uid)
            if info is None:
                missing = True
                continue
            if mode == "FLAGS":
                changes[uid] = flags
            elif mode == "+FLAGS":
                changes[uid] = info.flags | flags
            else:
                changes[uid] = info.flags - flags
        view.box.set_flags({uid: new for uid, new in changes.items() if new != current[uid].flags})
        for seq, uid in targets:
            if uid not in changes:
                continue
            view.flags[uid] = changes[uid]
            if suffix != "SILENT":
                flag_text = format_flags(changes[uid], uid in view.recent)
                uid_text = f" UID {uid}" if cmd.uid else ""
                self.send(f"* {seq} FETCH (FLAGS {flag_text}{uid_text})\r\n".encode())
        if missing:
            raise IMAPError("NO", "some of the messages were expunged", "EXPUNGEISSUED")
        return Done("STORE completed")

    # ------------------------------------------------------------------ COPY / MOVE

    def imap_COPY(self, cmd: Command) -> Done:
        """COPY (RFC 3501 6.4.7) with COPYUID (RFC 4315 3); all or nothing."""
        source_uids, dest_uids, validity = self._copy(cmd)
        if not source_uids:
            return Done("COPY completed")
        code = f"COPYUID {validity} {compact_uid_set(source_uids)} {compact_uid_set(dest_uids)}"
        return Done("COPY completed", code)

    def imap_MOVE(self, cmd: Command) -> Done:
        """MOVE (RFC 6851 3.1): COPY, then expunge the originals, reporting COPYUID in an
        untagged OK before the EXPUNGE responses (RFC 6851 3.3)."""
        view = self._writable()
        source_uids, dest_uids, validity = self._copy(cmd)
        if source_uids:
            code = f"COPYUID {validity} {compact_uid_set(source_uids)} {compact_uid_set(dest_uids)}"
            self.send(f"* OK [{code}] moved\r\n".encode())
            view.box.expunge(source_uids)
            view.mark_stale()
            self._out.extend(view.updates(allow_expunge=True))
        return Done("MOVE completed")

    def _copy(self, cmd: Command) -> tuple[list[int], list[int], int]:
        args = Arguments(cmd.args)
        seqset = args.sequence_set()
        name = decode_name(args.astring("mailbox name"))
        args.end()
        view = self._view()
        targets = view.resolve(seqset, uid=cmd.uid)
        assert self.user is not None
        try:
            dest = self.store.mailbox(self.user, name)
        except NoSuchMailbox:
            raise IMAPError("NO", "no such mailbox", "TRYCREATE") from None
        current = {info.uid: info for info in view.box.messages()}
        source_uids: list[int] = []
        dest_uids: list[int] = []
        try:
            for _, uid in targets:
                info = current.get(uid)
                if info is None:
                    raise IMAPError("NO", "some of the messages were expunged", "EXPUNGEISSUED")
                data = view.box.read(uid)
                new = dest.append(data, flags=info.flags, internaldate=info.internaldate)
                source_uids.append(uid)
                dest_uids.append(new)
        except BaseException:
            # RFC 3501 6.4.7: a failed COPY leaves the destination as it was
            if dest_uids:
                dest.expunge(dest_uids)
            raise
        return source_uids, dest_uids, dest.uidvalidity


class _MessageReads:
    """How SEARCH's message views read a message: through the open batch's reader (one lock
    per batch) while SEARCH evaluates, else through ``Mailbox.read`` (its own lock)."""

    def __init__(self, box: Mailbox) -> None:
        self.read: Callable[[int], bytes] = box.read

    def __call__(self, uid: int) -> bytes:
        return self.read(uid)


def _search_key(tokens: tuple[Token, ...], charset: str | None = None) -> search.SearchKey:
    try:
        if charset is None:
            return search.parse_search(tokens)
        return search.parse_search(tokens, charset)
    except search.BadCharset:
        codes = " ".join(search.SUPPORTED_CHARSETS)
        raise IMAPError("NO", "unsupported charset", f"BADCHARSET ({codes})") from None
    except search.SearchError as exc:
        raise IMAPError("BAD", str(exc)) from None


def _context(view: SelectedMailbox) -> search.SearchContext:
    """What ``*`` means in a search key's sequence set (RFC 3501 9)."""
    return search.SearchContext(view.exists, view.uids[-1] if view.uids else 0)


def _word(token: Token) -> str:
    if not isinstance(token, Atom):
        raise IMAPError("BAD", "expected an atom")
    return token.value.upper()


def _esearch(tag: str, uid: bool, options: list[str], numbers: list[int]) -> bytes:
    """``* ESEARCH (TAG "a") UID MIN 2 ...`` (RFC 4731 3.1, 7); MIN, MAX and ALL are left
    out when nothing matched, COUNT is then 0."""
    parts = [f'* ESEARCH (TAG "{tag}")']
    if uid:
        parts.append("UID")
    if numbers and "MIN" in options:
        parts.append(f"MIN {min(numbers)}")
    if numbers and "MAX" in options:
        parts.append(f"MAX {max(numbers)}")
    if numbers and "ALL" in options:
        parts.append(f"ALL {compact_uid_set(sorted(numbers))}")
    if "COUNT" in options:
        parts.append(f"COUNT {len(numbers)}")
    return " ".join(parts).encode() + b"\r\n"
