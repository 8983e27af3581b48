"""The IMAP hot paths in process: compiled core ``[cython]`` vs pure twin ``[python]``.

    python benchmarks/bench_imap.py --fast                  # quick figures
    python benchmarks/bench_imap.py -o imap.json            # pyperf's full run, saved
    python benchmarks/bench_imap.py --fast --select search  # only names holding "search"
    python benchmarks/bench_imap.py --fast --messages 2000  # a smaller mailbox for SEARCH

Benchmarks (per command, per message, or per whole SEARCH, as the name says):

- ``tokenize``: the core's ``imap_tokenize`` over typical client commands (FETCH with
  sections, UID sets, STORE, SEARCH, LOGIN, LIST, APPEND with a literal).
- ``parse_command``: the protocol layer's ``parse_command``: the core plus the token objects.
- ``quote``: ``imap_quote`` over ENVELOPE strings; ``[fetch.imap_string]`` is the nstring
  wrapper ``refmail.imap.fetch`` puts around it (NIL, str).
- ``envelope``, ``bodystructure``: ``refmail.imap.fetch`` on each message of the corpus,
  parsed afresh (what a FETCH of an uncached message costs); the memos of header values
  (address lists, Content-Type) are cleared before each pass over the sample, so they help
  only as much as values recur within it.
- ``fetch response``: one ``* n FETCH (FLAGS ENVELOPE BODYSTRUCTURE)`` line per message, and
  ``fetch BODY[]``: the full-message item with its literal.
- ``search ... (N messages)``: ``parse_search`` + ``search`` over the whole mailbox: BODY (every
  body decoded), SUBJECT (every header parsed) and FLAGGED UNSEEN (index data only).

The mailbox is ``bench_imap_corpus.messages(--messages)`` (seeded, cached in the temporary
directory).  The twins are two imports of refmail's IMAP modules: the normal one (compiled
core, when built) and one made under ``REFMAIL_NO_EXTENSIONS=1`` (see ``python_stack``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pyperf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import bench_imap_corpus  # noqa: E402 - after the path set-up above

MAX_DEPTH = 32  # refmail.imap.protocol.MAX_NESTING_DEPTH
SAMPLE = 200  # messages for the per-message benchmarks
MODULES = ("parse", "imap.protocol", "imap.fetch", "imap.message", "imap.search")

COMMANDS = [
    [
        b"a001 UID FETCH 1:4000 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc "
        b"Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
        b"Content-Type Reply-To)])"
    ],
    [b"a002 FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE INTERNALDATE RFC822.SIZE)"],
    [b"a003 UID FETCH 17,19,23:31,40:* (BODY.PEEK[1.2.MIME] BODY.PEEK[TEXT]<0.2048>)"],
    [b"a004 UID STORE 4000:4100 +FLAGS.SILENT (\\Seen \\Flagged $Forwarded)"],
    [b'a005 SEARCH CHARSET UTF-8 OR (FROM "alice" SINCE 1-Jan-2024) SUBJECT "report" UNSEEN'],
    [b'a006 LOGIN "alice@example.test" "pa\\"ss w\\\\ord"'],
    [b'a007 LIST "" "%"'],
    [b"a008 SELECT INBOX"],
    [b"a009 APPEND Sent (\\Seen) {310+}", b"x" * 310, b""],
    [b"a010 NOOP"],
]


def twins() -> list[tuple[str, SimpleNamespace]]:
    """The compiled stack when the core is built, and the pure one."""
    found = [("python", python_stack())]
    normal = SimpleNamespace(**{m.split(".")[-1]: _import("refmail." + m) for m in MODULES})
    if normal.parse.IMPLEMENTATION == "cython":
        found.insert(0, ("cython", normal))
    else:
        print("bench_imap: refmail._parse is not built; pure twin only", file=sys.stderr)
    return found


def _import(name: str):
    return importlib.import_module(name)


def python_stack() -> SimpleNamespace:
    """refmail's IMAP modules imported a second time with ``REFMAIL_NO_EXTENSIONS=1``.

    The normal modules are set aside and put back afterwards, so both stacks live side by
    side, each consistent (its own ``ParseError``, token classes, core)."""
    _import("refmail.parse")  # the compiled core, if any, loads with the normal stack first
    ours = [n for n in sys.modules if n == "refmail" or n.startswith("refmail.")]
    saved = {n: sys.modules.pop(n) for n in ours}
    previous = os.environ.get("REFMAIL_NO_EXTENSIONS")
    os.environ["REFMAIL_NO_EXTENSIONS"] = "1"
    try:
        stack = SimpleNamespace(**{m.split(".")[-1]: _import("refmail." + m) for m in MODULES})
    finally:
        if previous is None:
            del os.environ["REFMAIL_NO_EXTENSIONS"]
        else:
            os.environ["REFMAIL_NO_EXTENSIONS"] = previous
        for name in [n for n in sys.modules if n == "refmail" or n.startswith("refmail.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert stack.parse.IMPLEMENTATION == "python"
    return stack


# ---------------------------------------------------------------------------- workloads


def tokenize(stack: SimpleNamespace, commands: list[list[bytes]]) -> None:
    run = stack.parse.imap_tokenize
    for parts in commands:
        run(parts, MAX_DEPTH)


def parse_commands(stack: SimpleNamespace, commands: list[list[bytes]]) -> None:
    run = stack.protocol.parse_command
    for parts in commands:
        run(parts)


def quote_all(quote: Callable[[bytes], bytes], values: list[bytes]) -> None:
    for value in values:
        quote(value)


def clear_memos(stack: SimpleNamespace) -> None:
    """Forget memoized header values: each pass starts as a FETCH of a new mailbox would."""
    stack.fetch._memo_address_list.cache_clear()
    stack.message._memo_content_type.cache_clear()


def envelopes(stack: SimpleNamespace, messages: list[bytes]) -> None:
    clear_memos(stack)
    run = stack.fetch.envelope
    for message in messages:
        run(message)


def bodystructures(stack: SimpleNamespace, messages: list[bytes]) -> None:
    clear_memos(stack)
    run = stack.fetch.bodystructure
    for message in messages:
        run(message)


def fetch_responses(stack: SimpleNamespace, messages: list[bytes]) -> None:
    """``* n FETCH (FLAGS (\\Seen) ENVELOPE (...) BODYSTRUCTURE (...))`` per message."""
    clear_memos(stack)
    fetch = stack.fetch
    parse = stack.message.parse_message
    for seq, message in enumerate(messages, 1):
        parsed = parse(message)
        b"* %d FETCH (FLAGS (\\Seen) ENVELOPE %s BODYSTRUCTURE %s)\r\n" % (
            seq,
            fetch.envelope(parsed),
            fetch.bodystructure(parsed),
        )


def fetch_bodies(stack: SimpleNamespace, messages: list[bytes]) -> None:
    fetch = stack.fetch
    whole = fetch.FetchSpec()
    for seq, message in enumerate(messages, 1):
        b"* %d FETCH (%s)\r\n" % (seq, fetch.body_item(message, whole))


def views(stack: SimpleNamespace, messages: list[bytes]) -> list[object]:
    """SEARCH's view of each message: flags and dates from the index, bytes on demand."""
    moment = datetime.datetime(2024, 1, 1, 10, tzinfo=datetime.UTC)
    made = []
    for seq, message in enumerate(messages, 1):
        flags = frozenset({"\\Seen"} if seq % 3 else {"\\Flagged"} if seq % 2 else ())
        made.append(
            stack.search.MessageView(
                seq, seq, len(message), flags, moment, False, (lambda m=message: m)
            )
        )
    return made


class Search:
    """One SEARCH over the whole mailbox, set up on its first call (in pyperf's warm-up) so
    that worker processes running other benchmarks do not pay for it."""

    def __init__(self, stack: SimpleNamespace, command: bytes, mailbox: list[bytes]) -> None:
        self.stack = stack
        self.command = command
        self.mailbox = mailbox
        self.views: list[object] | None = None
        self.expect: int | None = None

    def __call__(self) -> None:
        search = self.stack.search
        if self.views is None:
            self.views = views(self.stack, self.mailbox)
        context = search.SearchContext(len(self.views), len(self.views))
        parsed = self.stack.protocol.parse_command([self.command])
        found = search.search(search.parse_search(parsed.args), self.views, context)
        if self.expect is None:  # the first answer; every later run must give the same
            self.expect = len(found)
        assert len(found) == self.expect, (self.command, len(found), self.expect)


# ---------------------------------------------------------------------------- registration


def main() -> None:
    def add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
        cmd.extend(["--messages", str(args.messages), "--select", args.select])

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--messages", type=int, default=10_000)
    runner.argparser.add_argument(
        "--select", default="", help="run only the benchmarks whose name contains this"
    )
    args = runner.parse_args()
    stacks = twins()

    def bench(name: str, func: Callable[..., object], *func_args: object, inner: int = 1):
        if args.select in name:
            runner.bench_func(name, func, *func_args, inner_loops=inner)

    for label, stack in stacks:
        bench(f"tokenize [{label}]", tokenize, stack, COMMANDS, inner=len(COMMANDS))
    for label, stack in stacks:
        bench(f"parse_command [{label}]", parse_commands, stack, COMMANDS, inner=len(COMMANDS))

    def selected(*names: str) -> bool:
        return any(args.select in name for name in names)

    titles = ["quote", "envelope", "bodystructure", "fetch response", "fetch BODY[]", "search"]
    if not selected(*titles):
        return
    mailbox = bench_imap_corpus.messages(args.messages)
    sample = mailbox[:: max(1, len(mailbox) // SAMPLE)][:SAMPLE]
    strings = _header_values(stacks[-1][1], sample[:40])
    for label, stack in stacks:
        bench(f"quote [{label}]", quote_all, stack.parse.imap_quote, strings, inner=len(strings))
    imap_string = stacks[0][1].fetch.imap_string
    bench("quote [fetch.imap_string]", quote_all, imap_string, strings, inner=len(strings))

    per_message = [
        ("envelope", envelopes),
        ("bodystructure", bodystructures),
        ("fetch response FLAGS ENVELOPE BODYSTRUCTURE", fetch_responses),
        ("fetch BODY[]", fetch_bodies),
    ]
    for title, func in per_message:
        for label, stack in stacks:
            bench(f"{title} [{label}]", func, stack, sample, inner=len(sample))

    count = len(mailbox)
    marked = bench_imap_corpus.marked(count)
    for text in (f"BODY {bench_imap_corpus.MARKER}", "SUBJECT report", "FLAGGED UNSEEN"):
        command = f"s SEARCH {text}".encode()
        for label, stack in stacks:
            run = Search(stack, command, mailbox)
            if text.startswith("BODY"):
                run.expect = marked
            bench(f"search {text} ({count} messages) [{label}]", run)


def _header_values(stack: SimpleNamespace, messages: list[bytes]) -> list[bytes]:
    """The strings an ENVELOPE quotes: Date, Subject, Message-ID, In-Reply-To values."""
    values = []
    for message in messages:
        root = stack.message.parse_message(message).root
        for name in ("Date", "Subject", "Message-ID", "From", "To"):
            value = root.header(name)
            if value is not None:
                values.append(value)
    return values


if __name__ == "__main__":
    main()
