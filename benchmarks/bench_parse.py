"""The SMTP hot path of the parsing core: compiled ``_parse`` vs pure ``_parse_py`` vs stdlib.

    python benchmarks/bench_parse.py --fast              # quick figures
    python benchmarks/bench_parse.py -o parse.json       # pyperf's full run, saved
    python benchmarks/bench_parse.py --select read_data  # only benchmarks whose name has this

Benchmarks (``[cython]``/``[python]`` are the two twins, ``[stdlib]`` the nearest stdlib code):

- ``smtp_command``: ``parse_smtp_command`` over one transaction's command lines (per line).
- ``smtp_path``: ``parse_smtp_path`` over MAIL/RCPT arguments (per argument); the stdlib
  reference is ``email.utils.parseaddr``, which extracts an address but checks no grammar.
- ``read_data <kind> <size> whole|64k``: DATA unstuffing and terminator search on a dot-stuffed
  message, given in one buffer or received in 64 KiB chunks as the server does.
- ``dot_stuff``: the sending side (POP3 RETR, outbound SMTP); stdlib: ``smtplib.quotedata``.
- ``headers <kind>``: ``header_end`` + ``parse_headers`` on a message; stdlib:
  ``email.parser.BytesHeaderParser``.
- ``mbox_quote <kind> <size>``: mboxrd formatting for an append; stdlib: ``mailbox.mbox.add``
  of the same bytes (its mboxo formatting plus a buffered write, no flush or fsync).

The corpus comes from ``benchmarks/corpus.py`` (seeded, deterministic).  The compiled
benchmarks are left out, with a note on stderr, when ``refmail._parse`` is not built.
"""

from __future__ import annotations

import email.parser
import email.utils
import importlib
import mailbox
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import corpus  # noqa: E402 - after the path set-up above

from refmail import _parse_py  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
CHUNK = 64 * KIB  # what the server's connection handler reads per recv
MAX_LINE = 1000  # RFC 5321 4.5.3.1.6


def implementations() -> list[tuple[str, ModuleType]]:
    """The twins to compare: the compiled core when built, and the pure one."""
    found = [("python", _parse_py)]
    try:
        found.insert(0, ("cython", importlib.import_module("refmail._parse")))
    except ImportError:
        print("bench_parse: refmail._parse is not built; pure twin only", file=sys.stderr)
    return found


# ---------------------------------------------------------------------------- workloads


def commands(impl: ModuleType, lines: list[bytes]) -> None:
    parse = impl.parse_smtp_command
    for line in lines:
        parse(line)


def paths(impl: ModuleType, args: list[tuple[bytes, bytes]]) -> None:
    parse = impl.parse_smtp_path
    for arg, keyword in args:
        parse(arg, keyword)


def stdlib_paths(args: list[tuple[str, str]]) -> None:
    parse = email.utils.parseaddr
    for arg, _ in args:
        parse(arg)


def read_whole(impl: ModuleType, stream: bytes) -> None:
    out, consumed, done, _, _ = impl.read_data(stream, impl.DATA_INITIAL, MAX_LINE)
    assert done and consumed == len(stream)


def read_chunked(impl: ModuleType, chunks: list[bytes]) -> None:
    """The session's loop: append a recv'd chunk to what is left, consume complete lines."""
    read_data = impl.read_data
    state = impl.DATA_INITIAL
    parts = []
    buf = b""
    for chunk in chunks:
        buf = buf + chunk if buf else chunk
        out, consumed, done, state, _ = read_data(buf, state, MAX_LINE)
        parts.append(out)
        buf = buf[consumed:]
    assert done
    b"".join(parts)


def headers(impl: ModuleType, message: bytes) -> None:
    impl.parse_headers(message[: impl.header_end(message)])


def stdlib_headers(parser: email.parser.BytesHeaderParser, message: bytes) -> None:
    parser.parsebytes(message).items()


def mailbox_add_timer(message: bytes) -> Callable[[int], float]:
    """Time ``mailbox.mbox.add`` into a fresh temporary mbox, set-up outside the timing."""

    def run(loops: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            box = mailbox.mbox(Path(directory) / "box")
            box.lock()
            started = time.perf_counter()
            for _ in range(loops):
                box.add(message)
            elapsed = time.perf_counter() - started
            box.unlock()
            box.close()
        return elapsed

    return run


# ---------------------------------------------------------------------------- registration


def add_cmdline_args(cmd: list[str], args) -> None:
    """Pass --select on to pyperf's worker processes."""
    if args.select:
        cmd.extend(("--select", args.select))


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument(
        "--select", default="", help="run only the benchmarks whose name contains this"
    )
    args = runner.parse_args()
    impls = implementations()

    def bench(name: str, func: Callable[..., object], *func_args: object, inner: int = 1):
        if args.select in name:
            runner.bench_func(name, func, *func_args, inner_loops=inner)

    command_lines = corpus.smtp_commands()
    path_args = corpus.smtp_paths()
    for label, impl in impls:
        bench(f"smtp_command [{label}]", commands, impl, command_lines, inner=len(command_lines))
    for label, impl in impls:
        bench(f"smtp_path [{label}]", paths, impl, path_args, inner=len(path_args))
    str_paths = [(arg.decode(), keyword.decode()) for arg, keyword in path_args]
    bench("smtp_path [stdlib parseaddr]", stdlib_paths, str_paths, inner=len(str_paths))

    for size, size_label in ((4 * KIB, "4k"), (MIB, "1m")):
        message = corpus.message("plain", size)
        stream = _parse_py.dot_stuff(message) + b".\r\n"
        chunks = [stream[pos : pos + CHUNK] for pos in range(0, len(stream), CHUNK)]
        for label, impl in impls:
            bench(f"read_data plain {size_label} whole [{label}]", read_whole, impl, stream)
        if len(chunks) > 1:
            for label, impl in impls:
                bench(f"read_data plain {size_label} 64k [{label}]", read_chunked, impl, chunks)

    for size, size_label in ((4 * KIB, "4k"), (MIB, "1m")):
        message = corpus.message("plain", size)
        for label, impl in impls:
            bench(f"dot_stuff {size_label} [{label}]", impl.dot_stuff, message)
        text = message.decode("ascii")
        bench(f"dot_stuff {size_label} [stdlib smtplib.quotedata]", smtplib.quotedata, text)

    parser = email.parser.BytesHeaderParser()
    for kind in corpus.KINDS:
        message = corpus.message(kind, 4 * KIB)
        for label, impl in impls:
            bench(f"headers {kind} [{label}]", headers, impl, message)
        bench(f"headers {kind} [stdlib BytesHeaderParser]", stdlib_headers, parser, message)

    for kind, size, size_label in (("plain", 4 * KIB, "4k"), ("multipart", MIB, "1m")):
        message = corpus.message(kind, size)
        for label, impl in impls:
            bench(f"mbox_quote {kind} {size_label} [{label}]", impl.mbox_quote, message)
        name = f"mbox_quote {kind} {size_label} [stdlib mailbox.mbox.add]"
        if args.select in name:
            runner.bench_time_func(name, mailbox_add_timer(message))


if __name__ == "__main__":
    main()
