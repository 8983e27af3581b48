"""The parsing core on the shared corpus: compiled ``_parse`` vs pure ``_parse_py`` vs stdlib.

    python benchmarks/bench_parse.py --fast                   # every function, ~5-8 min
    python benchmarks/bench_parse.py --fast --messages 1000   # a smoke run, ~2 min
    python benchmarks/bench_parse.py -o parse.json            # pyperf's full run, saved
    python benchmarks/bench_parse.py --select mbox            # only names holding this
    python benchmarks/bench_parse.py --summarize parse.json   # the summary table of a saved run

Every public function of ``refmail/_parse_py.py`` (``__all__``, the API of ``_parse.pyi``) has
a workload here, run over the ``--messages`` first messages of the shared corpus
(``corpus.mailbox()``: 10,000 seeded messages, plain, multipart with attachments, non-ASCII
headers, long threads).  One timed value is one pass over the corpus; pyperf reports the time
per message (``inner_loops`` = the number of items).  ``[cython]`` and ``[python]`` are the two
twins; ``[stdlib ...]`` the standard library's nearest equivalent where one exists:

=====================  ==========================================  =============================
function               workload (per message of the corpus)        stdlib reference
=====================  ==========================================  =============================
next_line              every line of the message as a server       ``io.BytesIO.readline``
                       reads it (limit 1000, RFC 5321 4.5.3.1.6)   (socket.makefile's readline)
parse_smtp_command     EHLO, MAIL, RCPT per recipient, DATA, QUIT  none
parse_smtp_path        MAIL/RCPT arguments from its From/To        ``email.utils.parseaddr``
read_data              the dot-stuffed message + ``.`` in one      ``poplib`` reading a
                       buffer (DATA unstuffing, RFC 5321 4.5.2)    multi-line reply (unstuffs)
dot_stuff              the message (RETR, relaying)                ``smtplib._quote_periods``
header_end             the message                                 none (a find)
parse_headers          its header block                            ``BytesHeaderParser``
header_fields          the message (fields, spans, body start)     ``BytesHeaderParser`` on
                                                                   the message
mime_parts             the body of each multipart message (timed   none
                       per corpus message)
MIME walk (composite)  ``header_fields`` of the message and,       ``BytesParser``, ``walk()``
                       via ``mime_parts``, of every part           and every part's headers
split_header_fields    its stored header lines (LF) with Status,   none
                       X-Keywords, X-UID: the store's fields out
address_tokens         its From, To and Cc values                  ``email.utils.getaddresses``
mbox_quote             the message, for an append                  ``mailbox.mbox.add`` (mboxo
                                                                   From-mangling, buffered
                                                                   write to a temp file)
mbox_unquote           its stored (mboxrd, LF) body                none
mbox_scan              the corpus as one mbox, in memory (per      none
                       message found)
mbox read (composite)  read the mbox file, ``mbox_scan``, slice    ``mailbox.mbox`` iteration
                       out every message                           (``get_bytes`` of each)
to_crlf                its stored (LF) body                        ``smtplib._fix_eols`` (str)
crlf_size              its stored (LF) body                        none
imap_tokenize          UID FETCH, SEARCH SUBJECT "...", APPEND     none (imaplib parses
                       with the message as a literal               responses, not commands)
imap_literal_at_end    those command lines                         none
imap_sequence_set      FETCH range, a set with ``*``, 20 numbers   none
imap_quote             its Subject/From/To values                  ``imaplib.IMAP4._quote``
=====================  ==========================================  =============================

A function in ``__all__`` without a workload here is named on stderr and in the summary (the
parsing core grows; add its workload to ``WORKLOADS``).  The compiled benchmarks are left out,
with a note on stderr, when ``refmail._parse`` is not built.  At the end the master process
prints a summary: µs per message for each side, and the time ratios compiled/twin and
compiled/stdlib (below 1: the compiled core is faster).

Defaults are sized for passes of 10,000 messages: 6 processes, 1 warm-up and 3 values of one
pass each (``--fast``: 3 processes, 2 values); pyperf's options override them.
"""

from __future__ import annotations

import email.parser
import email.utils
import imaplib
import importlib
import io
import mailbox
import poplib
import re
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import corpus  # noqa: E402 - after the path set-up above

from refmail import _parse_py  # noqa: E402

MAX_LINE = 1000  # RFC 5321 4.5.3.1.6
IMAP_DEPTH = 8


def implementations() -> list[tuple[str, ModuleType]]:
    """The twins to compare: the compiled core when built, and the pure one."""
    found = [("python", _parse_py)]
    try:
        found.insert(0, ("cython", importlib.import_module("refmail._parse")))
    except ImportError:
        print("bench_parse: refmail._parse is not built; pure twin only", file=sys.stderr)
    return found


# ---------------------------------------------------------------------------- inputs

MESSAGES = corpus.COUNT
_memo: dict[str, object] = {}


def memo(name: str, make: Callable[[], object]) -> object:
    """Inputs are made on first use in the worker that needs them (not in every worker)."""
    if name not in _memo:
        _memo[name] = make()
    return _memo[name]


def messages() -> list[bytes]:
    return memo("messages", lambda: corpus.mailbox()[:MESSAGES])  # type: ignore[return-value]


def header_blocks() -> list[bytes]:
    return memo("blocks", lambda: [m[: _parse_py.header_end(m)] for m in messages()])  # type: ignore[return-value]


def header_values(name: bytes) -> list[bytes]:
    """One header's (unfolded) value of every message that has it."""

    def make() -> list[bytes]:
        found = []
        for block in header_blocks():
            for key, value in _parse_py.parse_headers(block):
                if key.lower() == name:
                    found.append(value)
                    break
        return found

    return memo(f"header {name!r}", make)  # type: ignore[return-value]


def stored_bodies() -> list[bytes]:
    """The messages as the mbox stores them: LF line ends, mboxrd quoting."""
    return memo("stored", lambda: [_parse_py.mbox_quote(m) for m in messages()])  # type: ignore


def mbox_file() -> tuple[Path, bytes, int]:
    """The corpus as an mboxrd file in the temporary directory, its bytes, its message count."""

    def make() -> tuple[Path, bytes, int]:
        data = corpus.mbox_bytes(messages())
        path = Path(tempfile.gettempdir()) / f"refmail-bench-parse-{len(messages())}.mbox"
        if not path.exists() or path.stat().st_size != len(data):
            partial = path.with_suffix(".tmp")
            partial.write_bytes(data)
            partial.replace(path)
        return path, data, len(messages())

    return memo("mbox", make)  # type: ignore[return-value]


ADDRESS = re.compile(rb"<([^<>\s]+@[^<>\s]+)>|(?<![<\w.])([\w.+-]+@[\w.-]+\w)")


def addresses(value: bytes) -> list[bytes]:
    return [a or b for a, b in ADDRESS.findall(value)]


def smtp_transactions() -> list[list[bytes]]:
    """Per message: the command lines a client sends to deliver it (RFC 5321 4.1.1)."""

    def make() -> list[list[bytes]]:
        out = []
        for message, (sender, to) in zip(messages(), senders_recipients(), strict=True):
            out.append(
                [
                    b"EHLO client.example.org\r\n",
                    b"MAIL FROM:<%s> SIZE=%d BODY=8BITMIME\r\n" % (sender, len(message)),
                    *(b"RCPT TO:<%s>\r\n" % rcpt for rcpt in to),
                    b"DATA\r\n",
                    b"QUIT\r\n",
                ]
            )
        return out

    return memo("smtp", make)  # type: ignore[return-value]


def senders_recipients() -> list[tuple[bytes, list[bytes]]]:
    def make() -> list[tuple[bytes, list[bytes]]]:
        out = []
        for block in header_blocks():
            fields = {k.lower(): v for k, v in _parse_py.parse_headers(block)}
            sender = (addresses(fields.get(b"from", b"")) or [b"nobody@example.org"])[0]
            out.append((sender, addresses(fields.get(b"to", b"")) or [b"bob@example.test"]))
        return out

    return memo("envelopes", make)  # type: ignore[return-value]


def smtp_path_args() -> list[list[tuple[bytes, bytes]]]:
    """Per message: the MAIL and RCPT arguments as ``parse_smtp_path`` gets them."""

    def make() -> list[list[tuple[bytes, bytes]]]:
        out = []
        for message, (sender, to) in zip(messages(), senders_recipients(), strict=True):
            args = [(b"FROM:<%s> SIZE=%d BODY=8BITMIME" % (sender, len(message)), b"FROM")]
            args += [(b"TO:<%s>" % rcpt, b"TO") for rcpt in to]
            out.append(args)
        return out

    return memo("paths", make)  # type: ignore[return-value]


def imap_commands() -> list[list[list[bytes]]]:
    """Per message: three commands as ``imap_tokenize`` gets them (text, literal, text...)."""

    def make() -> list[list[list[bytes]]]:
        subjects = {}
        for n, block in enumerate(header_blocks()):
            for key, value in _parse_py.parse_headers(block):
                if key.lower() == b"subject":
                    subjects[n] = value
        out = []
        for n, message in enumerate(messages()):
            subject = subjects.get(n, b"report").replace(b"\\", b"").replace(b'"', b"")
            subject = subject.decode("ascii", "replace").encode("ascii", "replace")
            out.append(
                [
                    [
                        b"a%d UID FETCH %d:%d (FLAGS INTERNALDATE RFC822.SIZE "
                        b"BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])"
                        % (n, n + 1, n + 50)
                    ],
                    [b'b%d UID SEARCH CHARSET UTF-8 SUBJECT "%s" NOT DELETED' % (n, subject)],
                    [b"c%d APPEND INBOX (\\Seen) {%d}" % (n, len(message)), message, b""],
                ]
            )
        return out

    return memo("imap", make)  # type: ignore[return-value]


# ---------------------------------------------------------------------------- workloads


def w_next_line(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()
    next_line = impl.next_line

    def run() -> None:
        for buf in items:
            pos = 0
            end = next_line(buf, pos, pos, MAX_LINE)
            while end >= 0:
                pos = end
                end = next_line(buf, pos, pos, MAX_LINE)

    return run, len(items)


def s_next_line() -> tuple[Callable[[], object], int]:
    items = messages()

    def run() -> None:
        for buf in items:
            readline = io.BytesIO(buf).readline
            while readline(MAX_LINE + 1):
                pass

    return run, len(items)


def w_parse_smtp_command(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = smtp_transactions()
    parse = impl.parse_smtp_command

    def run() -> None:
        for lines in items:
            for line in lines:
                parse(line)

    return run, len(items)


def w_parse_smtp_path(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = smtp_path_args()
    parse = impl.parse_smtp_path

    def run() -> None:
        for args in items:
            for arg, keyword in args:
                parse(arg, keyword)

    return run, len(items)


def s_parse_smtp_path() -> tuple[Callable[[], object], int]:
    items = [[arg.decode("utf-8", "replace") for arg, _ in args] for args in smtp_path_args()]
    parse = email.utils.parseaddr

    def run() -> None:
        for args in items:
            for arg in args:
                parse(arg)

    return run, len(items)


def dot_streams() -> list[bytes]:
    return memo("streams", lambda: [_parse_py.dot_stuff(m) + b".\r\n" for m in messages()])  # type: ignore[return-value]


def w_read_data(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = dot_streams()
    read_data, initial = impl.read_data, impl.DATA_INITIAL

    def run() -> None:
        for stream in items:
            read_data(stream, initial, MAX_LINE)

    return run, len(items)


def s_read_data() -> tuple[Callable[[], object], int]:
    """poplib's multi-line reply reader (readline, unstuff ``..``), joined back to bytes."""
    items = [b"+OK\r\n" + stream for stream in dot_streams()]
    client = object.__new__(poplib.POP3)
    client._debugging = 0

    def run() -> None:
        for stream in items:
            client.file = io.BytesIO(stream)
            b"\r\n".join(client._getlongresp()[1])

    return run, len(items)


def w_dot_stuff(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()
    stuff = impl.dot_stuff

    def run() -> None:
        for message in items:
            stuff(message)

    return run, len(items)


def s_dot_stuff() -> tuple[Callable[[], object], int]:
    items = messages()
    stuff = smtplib._quote_periods

    def run() -> None:
        for message in items:
            stuff(message)

    return run, len(items)


def w_header_end(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()
    header_end = impl.header_end

    def run() -> None:
        for message in items:
            header_end(message)

    return run, len(items)


def w_parse_headers(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = header_blocks()
    parse = impl.parse_headers

    def run() -> None:
        for block in items:
            parse(block)

    return run, len(items)


def s_parse_headers() -> tuple[Callable[[], object], int]:
    """BytesHeaderParser (compat32 policy) on the header block, every field read once."""
    items = header_blocks()
    parser = email.parser.BytesHeaderParser()

    def run() -> None:
        for block in items:
            parser.parsebytes(block).items()

    return run, len(items)


def w_header_fields(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()
    fields = impl.header_fields

    def run() -> None:
        for message in items:
            fields(message, 0, len(message))

    return run, len(items)


def s_header_fields() -> tuple[Callable[[], object], int]:
    """BytesHeaderParser on the whole message (the body is kept as one string)."""
    items = messages()
    parser = email.parser.BytesHeaderParser()

    def run() -> None:
        for message in items:
            parser.parsebytes(message).items()

    return run, len(items)


BOUNDARY = re.compile(rb'boundary="?([^";\s]+)"?', re.IGNORECASE)


def multipart_bodies() -> list[tuple[bytes, int, bytes]]:
    """(message, body start, boundary) of every multipart message of the corpus."""

    def make() -> list[tuple[bytes, int, bytes]]:
        out = []
        for message, block in zip(messages(), header_blocks(), strict=True):
            for key, value in _parse_py.parse_headers(block):
                if key.lower() == b"content-type" and value.lower().startswith(b"multipart/"):
                    found = BOUNDARY.search(value)
                    if found:
                        out.append((message, len(block), found.group(1)))
        return out

    return memo("multipart", make)  # type: ignore[return-value]


def w_mime_parts(impl: ModuleType) -> tuple[Callable[[], object], int]:
    """The parts of every multipart message (timed per corpus message: ~12% are multipart)."""
    items = multipart_bodies()
    parts = impl.mime_parts

    def run() -> None:
        for message, start, boundary in items:
            parts(message, start, len(message), boundary)

    return run, len(messages())


def mime_walk(impl: ModuleType, message: bytes) -> list:
    """The MIME tree's headers as BODYSTRUCTURE needs them: header_fields of the message,
    and for a multipart its parts' (mime_parts), recursively."""
    found = []
    stack = [(0, len(message))]
    while stack:
        start, end = stack.pop()
        fields, body = impl.header_fields(message, start, end)
        found.append(fields)
        for name, value, _, _ in fields:
            if name.lower() == b"content-type" and value[:10].lower() == b"multipart/":
                boundary = BOUNDARY.search(value)
                if boundary:
                    stack.extend(impl.mime_parts(message, body, end, boundary.group(1)))
    return found


def w_mime_walk(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()

    def run() -> None:
        for message in items:
            mime_walk(impl, message)

    return run, len(items)


def s_mime_walk() -> tuple[Callable[[], object], int]:
    """BytesParser (compat32): the whole MIME tree, every part's headers read once."""
    items = messages()
    parser = email.parser.BytesParser()

    def run() -> None:
        for message in items:
            for part in parser.parsebytes(message).walk():
                part.items()

    return run, len(items)


INTERNAL = (b"status", b"x-status", b"x-keywords", b"x-uid", b"content-length")


def stored_headers() -> list[bytes]:
    """The header lines of every message as the mbox stores it (LF), with the store's own
    fields (Status, X-UID, ...) among them, as ``split_header_fields`` gets them."""

    def make() -> list[bytes]:
        out = []
        for n, block in enumerate(header_blocks(), 1):
            lines = block.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n"
            out.append(lines + b"Status: RO\nX-Keywords: \nX-UID: %d\n" % n)
        return out

    return memo("stored headers", make)  # type: ignore[return-value]


def w_split_header_fields(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = stored_headers()
    split = impl.split_header_fields

    def run() -> None:
        for fields in items:
            split(fields, INTERNAL)

    return run, len(items)


def address_values() -> list[list[bytes]]:
    """Per message: its From, To and Cc values (unfolded), as ENVELOPE parses them."""

    def make() -> list[list[bytes]]:
        out = []
        for block in header_blocks():
            out.append(
                [
                    v
                    for k, v in _parse_py.parse_headers(block)
                    if k.lower() in (b"from", b"to", b"cc")
                ]
            )
        return out

    return memo("addresses", make)  # type: ignore[return-value]


def w_address_tokens(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = address_values()
    tokens = impl.address_tokens

    def run() -> None:
        for values in items:
            for value in values:
                tokens(value)

    return run, len(items)


def s_address_tokens() -> tuple[Callable[[], object], int]:
    """``email.utils.getaddresses`` on the same values (it also pairs names and addresses)."""
    items = [[v.decode("utf-8", "replace") for v in values] for values in address_values()]
    getaddresses = email.utils.getaddresses

    def run() -> None:
        for values in items:
            getaddresses(values)

    return run, len(items)


def w_mbox_quote(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = messages()
    quote = impl.mbox_quote

    def run() -> None:
        for message in items:
            quote(message)

    return run, len(items)


def s_mbox_quote() -> tuple[Callable[[], object], int]:
    """``mailbox.mbox.add`` of every message into a fresh temporary mbox (no flush)."""
    items = messages()

    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            box = mailbox.mbox(Path(directory) / "box")
            for message in items:
                box.add(message)
            box.close()

    return run, len(items)


def w_mbox_unquote(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = stored_bodies()
    unquote = impl.mbox_unquote

    def run() -> None:
        for body in items:
            unquote(body)

    return run, len(items)


def w_mbox_scan(impl: ModuleType) -> tuple[Callable[[], object], int]:
    _, data, count = mbox_file()
    scan = impl.mbox_scan
    assert len(scan(data, 0)) == count

    def run() -> None:
        scan(data, 0)

    return run, count


def w_mbox_read(impl: ModuleType) -> tuple[Callable[[], object], int]:
    """Read the mbox file, find its messages, slice each out (without its From_ line)."""
    path, _, count = mbox_file()
    scan = impl.mbox_scan

    def run() -> None:
        data = path.read_bytes()
        starts = scan(data, 0)
        ends = starts[1:] + [len(data)]
        for start, end in zip(starts, ends, strict=True):
            data[data.index(b"\n", start) + 1 : end]

    return run, count


def s_mbox_read() -> tuple[Callable[[], object], int]:
    path, _, count = mbox_file()

    def run() -> None:
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            box.get_bytes(key)
        box.close()

    return run, count


def w_to_crlf(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = stored_bodies()
    to_crlf = impl.to_crlf

    def run() -> None:
        for body in items:
            to_crlf(body)

    return run, len(items)


def s_to_crlf() -> tuple[Callable[[], object], int]:
    items = [body.decode("latin-1") for body in stored_bodies()]
    fix = smtplib._fix_eols

    def run() -> None:
        for body in items:
            fix(body)

    return run, len(items)


def w_crlf_size(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = stored_bodies()
    size = impl.crlf_size

    def run() -> None:
        for body in items:
            size(body)

    return run, len(items)


def w_imap_tokenize(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = imap_commands()
    tokenize = impl.imap_tokenize

    def run() -> None:
        for commands in items:
            for parts in commands:
                tokenize(parts, IMAP_DEPTH)

    return run, len(items)


def w_imap_literal_at_end(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = [[parts[0] for parts in commands] for commands in imap_commands()]
    literal_at_end = impl.imap_literal_at_end

    def run() -> None:
        for lines in items:
            for line in lines:
                literal_at_end(line, 10)

    return run, len(items)


def sequence_sets() -> list[list[bytes]]:
    """Per message: sequence sets a client sends (RFC 3501 9): a FETCH range, a set with
    ``*``, and the 20 numbers of a flag update after a SEARCH."""

    def make() -> list[list[bytes]]:
        out = []
        for n in range(1, len(messages()) + 1):
            numbers = b",".join(b"%d" % (n + 7 * k) for k in range(20))
            out.append([b"%d:%d" % (n, n + 50), b"1:3,%d,%d:*" % (n, n + 9), numbers])
        return out

    return memo("sets", make)  # type: ignore[return-value]


def w_imap_sequence_set(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = sequence_sets()
    parse = impl.imap_sequence_set

    def run() -> None:
        for sets in items:
            for text in sets:
                parse(text)

    return run, len(items)


def quote_values() -> list[list[bytes]]:
    def make() -> list[list[bytes]]:
        out = []
        for block in header_blocks():
            fields = {k.lower(): v for k, v in _parse_py.parse_headers(block)}
            out.append([fields.get(name, b"") for name in (b"subject", b"from", b"to")])
        return out

    return memo("quote", make)  # type: ignore[return-value]


def w_imap_quote(impl: ModuleType) -> tuple[Callable[[], object], int]:
    items = quote_values()
    quote = impl.imap_quote

    def run() -> None:
        for values in items:
            for value in values:
                quote(value)

    return run, len(items)


def s_imap_quote() -> tuple[Callable[[], object], int]:
    items = [[v.decode("utf-8", "replace") for v in values] for values in quote_values()]
    quote = imaplib.IMAP4._quote

    def run() -> None:
        for values in items:
            for value in values:
                quote(None, value)

    return run, len(items)


@dataclass(frozen=True)
class Workload:
    name: str  # the core function (or a composite: "mbox read")
    twin: Callable[[ModuleType], tuple[Callable[[], object], int]]
    stdlib: Callable[[], tuple[Callable[[], object], int]] | None = None
    stdlib_label: str = ""


WORKLOADS = (
    Workload("next_line", w_next_line, s_next_line, "BytesIO.readline"),
    Workload("parse_smtp_command", w_parse_smtp_command),
    Workload("parse_smtp_path", w_parse_smtp_path, s_parse_smtp_path, "email.utils.parseaddr"),
    Workload("read_data", w_read_data, s_read_data, "poplib multi-line reply"),
    Workload("dot_stuff", w_dot_stuff, s_dot_stuff, "smtplib._quote_periods"),
    Workload("header_end", w_header_end),
    Workload("parse_headers", w_parse_headers, s_parse_headers, "BytesHeaderParser"),
    Workload("header_fields", w_header_fields, s_header_fields, "BytesHeaderParser"),
    Workload("mime_parts", w_mime_parts),
    Workload("MIME walk", w_mime_walk, s_mime_walk, "BytesParser"),
    Workload("split_header_fields", w_split_header_fields),
    Workload("address_tokens", w_address_tokens, s_address_tokens, "email.utils.getaddresses"),
    Workload("mbox_quote", w_mbox_quote, s_mbox_quote, "mailbox.mbox.add"),
    Workload("mbox_unquote", w_mbox_unquote),
    Workload("mbox_scan", w_mbox_scan),
    Workload("mbox read", w_mbox_read, s_mbox_read, "mailbox.mbox iteration"),
    Workload("to_crlf", w_to_crlf, s_to_crlf, "smtplib._fix_eols"),
    Workload("crlf_size", w_crlf_size),
    Workload("imap_tokenize", w_imap_tokenize),
    Workload("imap_literal_at_end", w_imap_literal_at_end),
    Workload("imap_sequence_set", w_imap_sequence_set),
    Workload("imap_quote", w_imap_quote, s_imap_quote, "imaplib._quote"),
)


def uncovered() -> list[str]:
    """Public functions of the core that no workload here exercises."""
    names = {w.name for w in WORKLOADS}
    return [
        name
        for name in _parse_py.__all__
        if callable(getattr(_parse_py, name))
        and not isinstance(getattr(_parse_py, name), type)
        and name not in names
    ]


# ---------------------------------------------------------------------------- pyperf


def timer(make: Callable[[], tuple[Callable[[], object], int]]) -> Callable[[int], float]:
    """A pyperf time function: inputs made (once per worker) outside the timing."""

    def run(loops: int) -> float:
        body, _ = memo(f"timer {id(make)}", make)  # type: ignore[misc]
        started = time.perf_counter()
        for _ in range(loops):
            body()
        return time.perf_counter() - started

    return run


def summary(results: dict[str, float], messages_used: int) -> str:
    """µs per message of each side and the compiled/twin, compiled/stdlib time ratios."""
    lines = [
        f"parsing core on the corpus ({messages_used} messages): µs per message; "
        "ratio = compiled time / other time (below 1: compiled is faster)",
        f"{'function':<20} {'compiled':>9} {'twin':>9} {'stdlib':>9} {'c/twin':>7} "
        f"{'c/stdlib':>8}  stdlib reference",
    ]
    for workload in WORKLOADS:
        cython = results.get(f"{workload.name} [cython]")
        python = results.get(f"{workload.name} [python]")
        stdlib = results.get(f"{workload.name} [stdlib {workload.stdlib_label}]")
        if cython is None and python is None and stdlib is None:
            continue

        def cell(value: float | None, width: int = 9) -> str:
            return f"{value * 1e6:>{width}.2f}" if value is not None else f"{'-':>{width}}"

        def ratio(a: float | None, b: float | None, width: int) -> str:
            return f"{a / b:>{width}.3f}" if a is not None and b else f"{'-':>{width}}"

        lines.append(
            f"{workload.name:<20} {cell(cython)} {cell(python)} {cell(stdlib)} "
            f"{ratio(cython, python, 7)} {ratio(cython, stdlib, 8)}  "
            f"{workload.stdlib_label or 'none'}"
        )
    missing = uncovered()
    if missing:
        lines.append("no workload yet for: " + ", ".join(missing))
    return "\n".join(lines)


def summarize_json(path: Path) -> str:
    """The summary table of a run saved with ``-o``: the mean of each benchmark."""
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(path))
    results = {bench.get_name(): bench.mean() for bench in suite.get_benchmarks()}
    used = {bench.get_metadata().get("corpus_messages") for bench in suite.get_benchmarks()}
    return summary(results, int(used.pop()) if len(used) == 1 else MESSAGES)


def add_cmdline_args(cmd: list[str], args) -> None:
    """Pass our options on to pyperf's worker processes."""
    if args.select:
        cmd.extend(("--select", args.select))
    cmd.extend(("--messages", str(args.messages)))


def main() -> None:
    global MESSAGES
    if "--summarize" in sys.argv:
        print(summarize_json(Path(sys.argv[sys.argv.index("--summarize") + 1])))
        return
    import pyperf

    runner = pyperf.Runner(
        add_cmdline_args=add_cmdline_args,
        processes=6,
        values=3,
        warmups=1,
        loops=1,
    )
    runner.argparser.add_argument(
        "--select", default="", help="run only the benchmarks whose name contains this"
    )
    runner.argparser.add_argument(
        "--messages", type=int, default=corpus.COUNT, help="the first N messages of the corpus"
    )
    args = runner.parse_args()
    MESSAGES = args.messages
    runner.metadata["corpus_messages"] = str(MESSAGES)
    if not args.worker:
        corpus.mailbox()  # generate the cache once, before the workers read it
        missing = uncovered()
        if missing:
            print(f"bench_parse: no workload for {', '.join(missing)}", file=sys.stderr)

    results: dict[str, float] = {}

    def bench(name: str, make: Callable[[], tuple[Callable[[], object], int]]) -> None:
        if args.select not in name:
            return
        # inner_loops: the message count, known without building the inputs.
        found = runner.bench_time_func(name, timer(make), inner_loops=MESSAGES)
        if found is not None:
            results[name] = found.mean()

    impls = implementations()
    for workload in WORKLOADS:
        needs = "header_fields" if workload.name == "MIME walk" else workload.name
        if " " not in needs and not hasattr(_parse_py, needs):
            continue  # not in this checkout's core yet
        for label, impl in impls:
            if " " not in needs and not hasattr(impl, needs):
                print(f"bench_parse: {label} has no {needs} (rebuild?)", file=sys.stderr)
                continue
            bench(f"{workload.name} [{label}]", lambda w=workload, i=impl: w.twin(i))
        if workload.stdlib is not None:
            bench(f"{workload.name} [stdlib {workload.stdlib_label}]", workload.stdlib)
    if not args.worker and results:
        print()
        print(summary(results, MESSAGES))


if __name__ == "__main__":
    main()
