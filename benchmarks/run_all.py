"""One command for every end-to-end comparison: refmail against its peers, one table of ratios.

    python benchmarks/run_all.py                 # everything, full size (~15 min)
    python benchmarks/run_all.py --quick         # a smoke run of everything (~2-3 min)
    python benchmarks/run_all.py --only imap idle          # some of smtp, imap, pop3, idle
    python benchmarks/run_all.py --baseline DIR  # also refmail from an older checkout (SMTP)

On loopback, in this order, each printing its detailed table as it ends:

- SMTP vs aiosmtpd (``bench_smtp_e2e``): messages/s and p50/p99 latency at 1, 8 and 32
  clients, 4 KiB and 1 MiB messages drawn from the corpus generator (``corpus.message``),
  both servers fsyncing every message into one mbox;
- IMAP vs Dovecot (``bench_imap_e2e``'s servers and session): LOGIN, SELECT, FETCH 1:*
  (FLAGS ENVELOPE BODYSTRUCTURE), SEARCH BODY, FETCH 1:* BODY.PEEK[] of the corpus mailbox,
  first session after start and best warm session;
- POP3 vs Dovecot (``bench_pop3_e2e``): login, STAT+UIDL, RETR of all, same mailbox;
- IDLE vs Dovecot (``bench_idle_e2e``): 500 clients idling on that INBOX, APPENDs from
  another connection, latency to each client's EXISTS.

The mailbox is the shared corpus (``corpus.mailbox()``: 10,000 seeded messages; ``--quick``:
the first 1,000), delivered once into refmail's store (kept under ``--workdir``, reused by
the next run) and given to Dovecot as an mboxrd INBOX.  At the end all ratio tables are
printed again, then one summary table: refmail / peer for every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_idle_e2e  # noqa: E402 - after the path set-up above
import bench_imap_e2e  # noqa: E402
import bench_pop3_e2e  # noqa: E402
import bench_smtp_e2e  # noqa: E402
import corpus  # noqa: E402
import dovecot  # noqa: E402

SECTIONS = ("smtp", "imap", "pop3", "idle")


class Summary:
    """Rows of the final table: (protocol, figure, refmail, peer, unit, higher_is_better)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, float, str, bool]] = []

    def add(self, proto: str, figure: str, mine: float, peer: float, unit: str, higher: bool):
        self.rows.append((proto, figure, mine, peer, unit, higher))

    def table(self) -> str:
        lines = [
            "refmail / peer, every figure (ratio above 1 is better for refmail where 'better' "
            "is 'higher', below 1 where it is 'lower')",
            f"{'protocol':<18} {'figure':<44} {'refmail':>10} {'peer':>10} {'unit':<6} "
            f"{'ratio':>7}  better",
        ]
        for proto, figure, mine, peer, unit, higher in self.rows:
            ratio = f"{mine / peer:>7.2f}" if peer else f"{'-':>7}"
            lines.append(
                f"{proto:<18} {figure:<44} {mine:>10.2f} {peer:>10.2f} {unit:<6} {ratio}  "
                f"{'higher' if higher else 'lower'}"
            )
        return "\n".join(lines)


def run_smtp(args: argparse.Namespace, summary: Summary) -> list[str]:
    parser = argparse.ArgumentParser()
    bench_smtp_e2e.add_arguments(parser)
    smtp_args = parser.parse_args(
        ["--workdir", str(args.workdir / "smtp")]
        + (["--sizes", "4096", "--clients", "1", "8", "--seconds", "1.5"] if args.quick else [])
    )
    smtp_args.baseline = args.baseline
    results = bench_smtp_e2e.run(smtp_args)
    tables = []
    if args.baseline is not None:
        tables.append(bench_smtp_e2e.ratio_table(results, "refmail", "refmail baseline"))
    tables.append(bench_smtp_e2e.ratio_table(results, "refmail", "aiosmtpd"))
    index = {(r.server, r.size, r.clients): r for r in results}
    for (server, size, clients), mine in index.items():
        other = index.get(("aiosmtpd", size, clients))
        if server != "refmail" or other is None:
            continue
        label = f"{bench_smtp_e2e.size_label(size)} x{clients}"
        summary.add("SMTP vs aiosmtpd", f"{label} msg/s", mine.rate, other.rate, "msg/s", True)
        summary.add(
            "SMTP vs aiosmtpd", f"{label} p50", mine.p50 * 1e3, other.p50 * 1e3, "ms", False
        )
        summary.add(
            "SMTP vs aiosmtpd", f"{label} p99", mine.p99 * 1e3, other.p99 * 1e3, "ms", False
        )
    return tables


def run_imap(
    args: argparse.Namespace, summary: Summary, messages: list[bytes], pristine: Path
) -> list[str]:
    """``bench_imap_e2e``'s servers, sessions (taking turns) and report, on the shared corpus
    delivered in ``pristine`` (as its own ``run`` does, by ``pristine_dir``)."""
    count = len(messages)
    workdir = args.workdir / "imap"
    runs: list[tuple[str, object]] = [
        ("refmail", bench_imap_e2e.RefmailServer(pristine, workdir / "refmail", pure_twin=False))
    ]
    why_not = dovecot.available()
    if why_not is None:
        server = dovecot.DovecotServer(
            workdir / "dovecot", bench_imap_e2e.USER, bench_imap_e2e.PASSWORD, b""
        )
        server.inbox = bench_imap_e2e.dovecot_inbox(messages)
        runs.append(("dovecot", server))
    try:
        firsts, bests = bench_imap_e2e.measure(
            [(label, server.start) for label, server in runs], count, args.imap_repeat
        )
    finally:
        for _, server in runs:
            server.stop()
    versions = f"refmail (Python {sys.version.split()[0]})"
    if why_not is None:
        versions += f", Dovecot {dovecot.DovecotServer(workdir, '', '', b'').version}"
    results = {
        "messages": count,
        "octets": sum(len(m) for m in messages),
        "repeat": args.imap_repeat,
        "versions": versions,
        "first": firsts,
        "warm": bests,
    }
    tables = [bench_imap_e2e.ratio_table(results)]
    if why_not is not None:
        tables.append(f"IMAP: Dovecot skipped ({why_not})")
        return tables
    for kind, columns in (("first", firsts), ("warm", bests)):
        mine, other = columns["refmail"], columns["dovecot"]
        for step in bench_imap_e2e.STEPS:
            summary.add(
                "IMAP vs Dovecot",
                f"{step} ({kind})",
                mine[step] * 1e3,
                other[step] * 1e3,
                "ms",
                False,
            )
        total_mine = sum(mine[s] for s in bench_imap_e2e.STEPS)
        total_other = sum(other[s] for s in bench_imap_e2e.STEPS)
        summary.add(
            "IMAP vs Dovecot",
            f"session total ({kind})",
            total_mine * 1e3,
            total_other * 1e3,
            "ms",
            False,
        )
    return tables


def run_pop3(
    args: argparse.Namespace, summary: Summary, messages: list[bytes], pristine: Path
) -> list[str]:
    parser = argparse.ArgumentParser()
    bench_pop3_e2e.add_arguments(parser)
    pop3_args = parser.parse_args(
        ["--workdir", str(args.workdir / "pop3"), "--messages", str(len(messages))]
        + ["--pristine", str(pristine)]
        + (["--repeat", "2"] if args.quick else [])
    )
    results, skipped = bench_pop3_e2e.run(pop3_args)
    if skipped is not None:
        return [f"POP3: Dovecot skipped ({skipped})"]
    index = {(r.server, r.step): r.seconds for r in results}
    for step in bench_pop3_e2e.STEPS:
        summary.add(
            "POP3 vs Dovecot",
            step,
            index[("refmail", step)] * 1e3,
            index[("dovecot", step)] * 1e3,
            "ms",
            False,
        )
    return [bench_pop3_e2e.ratio_table(results, "refmail", "dovecot", len(messages))]


def run_idle(args: argparse.Namespace, summary: Summary, count: int, pristine: Path) -> list[str]:
    parser = argparse.ArgumentParser()
    bench_idle_e2e.add_arguments(parser)
    idle_args = parser.parse_args(
        ["--workdir", str(args.workdir / "idle"), "--messages", str(count)]
        + ["--pristine", str(pristine)]
        + (["--clients", "100", "--deliveries", "5"] if args.quick else [])
    )
    results, skipped = bench_idle_e2e.run(idle_args)
    if skipped is not None:
        return [f"IDLE: Dovecot skipped ({skipped})"]
    index = {r.server: r for r in results}
    mine, other = index["refmail"], index["dovecot"]
    label = f"{mine.clients} idle clients"
    for name, fraction in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        summary.add(
            "IDLE vs Dovecot",
            f"{label}: EXISTS {name}",
            mine.pct(fraction) * 1e3,
            other.pct(fraction) * 1e3,
            "ms",
            False,
        )
    return [bench_idle_e2e.ratio_table(results)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (module doc)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--messages", type=int, help="corpus messages (10,000; quick: 1,000)")
    parser.add_argument("--imap-repeat", type=int, help="warm IMAP sessions (2; quick: 1)")
    parser.add_argument("--baseline", type=Path, help="also refmail from this checkout (SMTP)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-all"
    )
    args = parser.parse_args()
    count = args.messages or (1000 if args.quick else corpus.COUNT)
    if args.imap_repeat is None:
        args.imap_repeat = 1 if args.quick else 2
    args.workdir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "--quick " if args.quick else ""
    print(f"run_all {mode}{now}, load average {load}, {os.cpu_count()} CPUs", flush=True)
    summary = Summary()
    tables: list[str] = []
    messages: list[bytes] = []
    pristine = args.workdir
    if {"imap", "pop3", "idle"} & set(args.only):
        messages = corpus.mailbox()[:count]
        pristine = bench_imap_e2e.pristine_dir(args.workdir, messages)
        took = bench_imap_e2e.deliver(pristine, messages)
        if took:
            print(f"refmail: delivered {count} corpus messages in {took:.1f} s", flush=True)
    steps = {
        "smtp": lambda: run_smtp(args, summary),
        "imap": lambda: run_imap(args, summary, messages, pristine),
        "pop3": lambda: run_pop3(args, summary, messages, pristine),
        "idle": lambda: run_idle(args, summary, count, pristine),
    }
    for name in SECTIONS:
        if name not in args.only:
            continue
        section_start = time.monotonic()
        print(f"\n== {name.upper()} end to end", flush=True)
        found = steps[name]()
        took = time.monotonic() - section_start
        for table in found:
            print("\n" + table, flush=True)
        print(f"({name}: {took:.0f} s)", flush=True)
        tables += found
    print("\n\n== all ratio tables\n")
    print("\n\n".join(tables))
    print()
    print(summary.table())
    print(
        f"\nrun_all took {time.monotonic() - started:.0f} s; load average now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
