"""IMAP end to end over loopback with imaplib: refmail against Dovecot, side by side.

    python benchmarks/bench_imap_e2e.py                       # 10,000 messages, both servers
    python benchmarks/bench_imap_e2e.py --messages 2000 --repeat 5
    python benchmarks/bench_imap_e2e.py --pure-twin           # also refmail on the pure twin
    python benchmarks/bench_imap_e2e.py --no-dovecot          # refmail only

One mailbox, the first ``--messages`` of the shared seeded corpus (``corpus.py``, the one
``run_all.py`` uses), is given to each server:

- refmail: delivered once through its store (``MailStore.deliver``, durable appends, as local
  delivery does) into a data directory kept in ``--workdir``; each run serves a fresh copy of
  it with ``python -m refmail serve``, only IMAP, on an ephemeral port of 127.0.0.1;
- Dovecot (Debian's ``dovecot-imapd``): the same messages written as an mboxrd ``INBOX`` and
  ``dovecot -F -c CONF`` from a generated config (``benchmarks/dovecot.py``).

Each session, timed step by step with imaplib: LOGIN; SELECT INBOX; FETCH 1:* (FLAGS ENVELOPE
BODYSTRUCTURE); SEARCH BODY <a word in 1% of the messages>; FETCH 1:* BODY.PEEK[] (the full
message of all; PEEK so that no run changes flags for the next); LOGOUT.  All servers are
started at once and take turns (the machine may be shared: a change of load then hits them
alike): first each one's first session after start, reported on its own (Dovecot builds its
index there; refmail's index was built at delivery, its ENVELOPE/BODYSTRUCTURE cache is filled
there), then ``--repeat`` rounds of one warm session each, in alternating order; the best warm
session per step is reported.  Answers are checked: the message count, one FETCH response per
message, the SEARCH hits, the octets of BODY[].  The figures include imaplib's own parsing on
the client side, the same for both servers.

From another script: ``add_arguments(parser)``, ``results = run(args)``,
``print(ratio_table(results))``.
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import corpus  # noqa: E402 - after the path set-up above
import dovecot  # noqa: E402
import peers  # noqa: E402

from refmail.auth import UserDB  # noqa: E402
from refmail.parse import mbox_quote  # noqa: E402
from refmail.store import MailStore  # noqa: E402

USER, PASSWORD = "bench", "bench-pw"
STEPS = ("LOGIN", "SELECT", "FETCH FLAGS ENVELOPE BODYSTRUCTURE", "SEARCH BODY", "FETCH BODY[]")
#: The envelope line of every message in the Dovecot mbox (RFC 4155 From_ line).
FROM_LINE = b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"
TIMEOUT = 600.0


# ---------------------------------------------------------------------------- servers


class RefmailServer(peers.RefmailServe):
    """``python -m refmail serve`` (``peers.RefmailServe``, IMAP) over a fresh copy of a data
    directory with the corpus delivered: every run starts with the same state."""

    def __init__(self, pristine: Path, data_dir: Path, *, pure_twin: bool) -> None:
        super().__init__(data_dir, "imap", pure_twin=pure_twin)
        self.pristine = pristine

    def start(self) -> tuple[str, int]:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        shutil.copytree(self.pristine, self.data_dir)
        return super().start()


def deliver(data_dir: Path, messages: list[bytes]) -> float:
    """A refmail data directory with the corpus delivered, made once (a marker file says it is
    complete) and never served from; seconds the delivery took, 0 when it was there."""
    marker = data_dir / f".bench-imap-{len(messages)}"
    if marker.exists():
        return 0.0
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / "refmail.toml").write_text(
        'services = ["imap"]\n[ports]\nimap = 0\n', encoding="utf-8"
    )
    UserDB(data_dir / "users").add(USER, PASSWORD)
    store = MailStore(data_dir / "mail")
    store.ensure_user(USER)
    started = time.perf_counter()
    for message in messages:
        store.deliver(USER, message, mailbox="INBOX")
    store.close()
    took = time.perf_counter() - started
    marker.touch()
    return took


def dovecot_inbox(messages: list[bytes]) -> bytes:
    """The corpus as an mboxrd file: From_ line, LF endings, ``>From`` quoting, blank line."""
    return b"".join(FROM_LINE + mbox_quote(message) + b"\n" for message in messages)


# ---------------------------------------------------------------------------- one session


def session(address: tuple[str, int], count: int, marked: int) -> dict[str, float]:
    """One client session; seconds per step.  Raises AssertionError on a wrong answer."""
    times: dict[str, float] = {}

    def step(name: str, action: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = action()
        times[name] = time.perf_counter() - started
        return result

    client = imaplib.IMAP4(*address, timeout=TIMEOUT)
    step("LOGIN", lambda: client.login(USER, PASSWORD))
    status, data = step("SELECT", lambda: client.select("INBOX", readonly=True))
    assert status == "OK" and int(data[0]) == count, (status, data)
    status, data = step(STEPS[2], lambda: client.fetch("1:*", "(FLAGS ENVELOPE BODYSTRUCTURE)"))
    assert status == "OK" and len(data) == count, (status, len(data))
    status, data = step(STEPS[3], lambda: client.search(None, "BODY", corpus.MARKER))
    hits = len(data[0].split())
    assert status == "OK" and hits == marked, (status, hits, marked)
    status, data = step(STEPS[4], lambda: client.fetch("1:*", "(BODY.PEEK[])"))
    literals = [item for item in data if isinstance(item, tuple)]
    assert status == "OK" and len(literals) == count, (status, len(literals))
    times["octets"] = sum(len(item[1]) for item in literals)
    client.logout()
    return times


def measure(
    servers: list[tuple[str, Callable[[], tuple[str, int]]]], count: int, repeat: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({label: first session}, {label: best of ``repeat`` warm sessions}), the servers taking
    turns: every server is started, then each has its first session, then each has one warm
    session per round (the order reversed every other round), so that a change of load on
    the shared machine hits them alike."""
    marked = corpus.marked(count)
    addresses = {}
    for label, start in servers:
        addresses[label] = start()
        print(f"{label}: listening on {addresses[label][0]}:{addresses[label][1]}", file=sys.stderr)
    labels = [label for label, _ in servers]
    firsts: dict[str, dict[str, float]] = {}
    for label in labels:
        firsts[label] = session(addresses[label], count, marked)
        total = sum(firsts[label][s] for s in STEPS)
        print(f"{label}: first session {total:.2f} s", file=sys.stderr)
    bests: dict[str, dict[str, float]] = {label: {} for label in labels}
    for run in range(repeat):
        for label in labels if run % 2 == 0 else labels[::-1]:
            times = session(addresses[label], count, marked)
            best = bests[label]
            for name, value in times.items():
                best[name] = min(best.get(name, value), value)
            total = sum(times[s] for s in STEPS)
            print(f"{label}: warm session {run + 1} {total:.2f} s", file=sys.stderr)
    return firsts, bests


# ---------------------------------------------------------------------------- report


def table(title: str, columns: list[tuple[str, dict[str, float]]]) -> str:
    """Seconds per step for each server, and refmail / dovecot when both ran."""
    names = [name for name, _ in columns]
    ratio = "refmail" in names and "dovecot" in names
    head = f"{'step':<36}" + "".join(f"{name:>16}" for name in names)
    head += f"{'refmail/dovecot':>17}" if ratio else ""
    lines = [title, head, "-" * len(head)]
    for step_name in (*STEPS, "total"):
        row = f"{step_name:<36}"
        values = {}
        for name, times in columns:
            value = sum(times[s] for s in STEPS) if step_name == "total" else times[step_name]
            values[name] = value
            row += f"{value:>15.3f}s"
        if ratio:
            row += f"{values['refmail'] / values['dovecot']:>16.2f}x"
        lines.append(row)
    octets = "  ".join(f"{name}: {int(times['octets']):,}" for name, times in columns)
    lines.append(f"BODY[] octets received  {octets}")
    return "\n".join(lines)


def ratio_table(results: dict) -> str:
    """The report of ``run``: seconds per step and refmail/dovecot, first and warm sessions."""
    count, octets = results["messages"], results["octets"]
    head = (
        f"IMAP end to end, {count} messages ({octets / 2**20:.1f} MiB), imaplib on loopback,"
        f" servers taking turns; {results['versions']}"
    )
    first = table("first session after start (seconds)", list(results["first"].items()))
    warm = table(
        f"best of {results['repeat']} warm sessions (seconds)", list(results["warm"].items())
    )
    return f"{head}\n\n{first}\n\n{warm}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options (``run_all.py`` adds them to its own parser)."""
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="warm sessions per server")
    parser.add_argument("--pure-twin", action="store_true", help="also refmail without _parse")
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "refmail-bench-imap-e2e",
        help="refmail's data (kept between runs) and Dovecot's files",
    )


def pristine_dir(workdir: Path, messages: list[bytes]) -> Path:
    """Where refmail's store with ``messages`` delivered is kept: named by their count and
    checksum, so that a store delivered from another corpus is never served for this one."""
    crc = 0
    for message in messages:
        crc = zlib.crc32(message, crc)
    return workdir / f"delivered-{len(messages)}-{crc:08x}"


def run(args: argparse.Namespace) -> dict:
    """Deliver (once), serve, measure.  Returns ``{"messages", "octets", "repeat",
    "versions", "first": {label: {step: seconds}}, "warm": {...}}`` (labels: refmail,
    refmail-py with ``--pure-twin``, dovecot when it can run); ``ratio_table`` prints it."""
    count = args.messages
    messages = corpus.mailbox()[:count]
    octets = sum(len(m) for m in messages)
    print(f"corpus: {count} messages, {octets / 2**20:.1f} MiB", file=sys.stderr)

    pristine = pristine_dir(args.workdir, messages)
    took = deliver(pristine, messages)
    if took:
        print(f"refmail: delivered {count} messages in {took:.1f} s", file=sys.stderr)
    runs: list[tuple[str, RefmailServer | dovecot.DovecotServer]] = [
        ("refmail", RefmailServer(pristine, args.workdir / "refmail", pure_twin=False))
    ]
    if args.pure_twin:
        runs.append(
            ("refmail-py", RefmailServer(pristine, args.workdir / "refmail-py", pure_twin=True))
        )
    why_not = None if args.no_dovecot else dovecot.available()
    if not args.no_dovecot and why_not is None:
        server = dovecot.DovecotServer(args.workdir / "dovecot", USER, PASSWORD, b"")
        server.inbox = dovecot_inbox(messages)
        runs.append(("dovecot", server))
    elif why_not:
        print(f"dovecot: not run: {why_not}", file=sys.stderr)
    try:
        firsts, bests = measure(
            [(label, server.start) for label, server in runs], count, args.repeat
        )
    finally:
        for _, server in runs:
            server.stop()
    versions = f"refmail (Python {sys.version.split()[0]})"
    if any(label == "dovecot" for label, _ in runs):
        versions += f", Dovecot {dovecot.DovecotServer(args.workdir, '', '', b'').version}"
    return {
        "messages": count,
        "octets": octets,
        "repeat": args.repeat,
        "versions": versions,
        "first": firsts,
        "warm": bests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    print(ratio_table(run(parser.parse_args())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
