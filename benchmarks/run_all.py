"""One command for the end-to-end comparisons: refmail against its peers, as ratios.

    python benchmarks/run_all.py                 # SMTP vs aiosmtpd, POP3 vs Dovecot (~3-5 min)
    python benchmarks/run_all.py --quick         # smaller counts, 4 KiB only (~1 min)
    python benchmarks/run_all.py --baseline DIR  # also refmail from an older checkout DIR

SMTP: ``bench_smtp_e2e`` (messages/s and p50/p99 latency at 1, 8, 32 clients, 4 KiB and
1 MiB, both servers fsync every message into one mbox).  POP3: ``bench_pop3_e2e`` (login,
STAT+UIDL, RETR of all, against Dovecot's POP3 when it can run here, else it says why).
IMAP against Dovecot is ``bench_imap_e2e.py``, run on its own.  Each table is printed as its
figures come, then all the ratio tables together at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pop3_e2e  # noqa: E402 - after the path set-up above
import bench_smtp_e2e  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 KiB, 1 and 8 clients, 500 msgs")
    parser.add_argument("--baseline", type=Path, help="also refmail from this checkout (SMTP)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-all"
    )
    parser.add_argument("--no-smtp", action="store_true")
    parser.add_argument("--no-pop3", action="store_true")
    args = parser.parse_args()

    tables = []
    if not args.no_smtp:
        smtp = argparse.ArgumentParser()
        bench_smtp_e2e.add_arguments(smtp)
        smtp_args = smtp.parse_args(
            ["--workdir", str(args.workdir / "smtp")]
            + (["--sizes", "4096", "--clients", "1", "8"] if args.quick else [])
        )
        smtp_args.baseline = args.baseline
        print("== SMTP end to end", flush=True)
        results = bench_smtp_e2e.run(smtp_args)
        if args.baseline is not None:
            tables.append(bench_smtp_e2e.ratio_table(results, "refmail", "refmail baseline"))
        tables.append(bench_smtp_e2e.ratio_table(results, "refmail", "aiosmtpd"))
    if not args.no_pop3:
        pop3 = argparse.ArgumentParser()
        bench_pop3_e2e.add_arguments(pop3)
        pop3_args = pop3.parse_args(
            ["--workdir", str(args.workdir / "pop3")]
            + (["--messages", "500", "--repeat", "2"] if args.quick else [])
        )
        print("== POP3 end to end", flush=True)
        results, skipped = bench_pop3_e2e.run(pop3_args)
        if skipped is None:
            tables.append(
                bench_pop3_e2e.ratio_table(results, "refmail", "dovecot", pop3_args.messages)
            )
        else:
            tables.append(f"POP3: Dovecot skipped ({skipped})")
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
