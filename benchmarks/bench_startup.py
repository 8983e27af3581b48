"""How long a throwaway ``refmail.MailServer`` takes to start, to be ready, and to stop.

    python benchmarks/bench_startup.py                   # repeated timing, median and p90
    python benchmarks/bench_startup.py --profile         # where the time goes (cProfile)
    python benchmarks/bench_startup.py --data-parent /tmp   # data directories on disk
    python benchmarks/bench_startup.py --pyperf -o startup.json   # pyperf's full run

Measured per cycle, in one warm process (the first start's imports and the one-time test
certificate are reported apart, from a fresh interpreter):

- ``start``: ``MailServer(users=2 users).start()`` returns (every port bound and served);
- ``ready``: from before ``start()`` until an SMTP client has read the 220 greeting;
- ``stop``: ``stop()`` returns (listeners closed, threads joined, data directory removed).

The goal (docs/embedding.md) is start-to-ready plus stop under 50 ms, so a server per test
costs a test suite little.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Run from a checkout without installing: the repository root holds the package.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from refmail.embedded import MailServer  # noqa: E402

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
GREETING_TIMEOUT = 5.0

COLD_START = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from refmail.embedded import MailServer
t1 = time.perf_counter()
server = MailServer(users={"alice": "pw"}, tls=sys.argv[2] == "1").start()
t2 = time.perf_counter()
server.stop()
t3 = time.perf_counter()
print(f"{1000 * (t1 - t0):.1f} {1000 * (t2 - t1):.1f} {1000 * (t3 - t2):.1f}")
"""


def make_server(tls: bool, data_parent: str | None) -> tuple[MailServer, Callable[[], None]]:
    """A server to start, and what removes its data directory when it was given one."""
    if data_parent is None:
        return MailServer(users=USERS, tls=tls), lambda: None
    data_dir = tempfile.mkdtemp(prefix="refmail-bench-", dir=data_parent)
    return MailServer(users=USERS, tls=tls, data_dir=data_dir), lambda: shutil.rmtree(data_dir)


def read_greeting(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=GREETING_TIMEOUT) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                raise ConnectionError("closed before the greeting")
            data += chunk
        if not data.startswith(b"220 "):
            raise ConnectionError(f"unexpected greeting {data!r}")
        sock.sendall(b"QUIT\r\n")
        sock.recv(512)


def one_cycle(tls: bool, data_parent: str | None) -> tuple[float, float, float]:
    """(start, ready, stop) in seconds for one server."""
    server, cleanup = make_server(tls, data_parent)
    begin = time.perf_counter()
    server.start()
    started = time.perf_counter()
    read_greeting(server.smtp_port)
    ready = time.perf_counter()
    server.stop()
    cleanup()
    stopped = time.perf_counter()
    return started - begin, ready - begin, stopped - ready


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, values: list[float]) -> str:
    ms = [1000 * v for v in values]
    return (
        f"{name:>14}: median {statistics.median(ms):6.1f} ms   p90 {percentile(ms, 0.9):6.1f} ms"
        f"   min {min(ms):6.1f} ms"
    )


def cold_start(tls: bool) -> str:
    """Import + first start + stop in a fresh interpreter (the certificate may be cached)."""
    out = subprocess.run(
        [sys.executable, "-c", COLD_START, str(REPO), "1" if tls else "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    imported, started, stopped = (float(x) for x in out)
    return f"import {imported:.1f} ms, first start {started:.1f} ms, stop {stopped:.1f} ms"


def timing(args: argparse.Namespace) -> None:
    for tls in (True, False):
        label = "all 7 ports (tls=True)" if tls else "4 plain ports (tls=False)"
        print(f"{label}; data in {args.data_parent or 'the default scratch dir'}")
        print(f"  fresh interpreter: {cold_start(tls)}")
        for _ in range(args.warmup):
            one_cycle(tls, args.data_parent)
        cycles = [one_cycle(tls, args.data_parent) for _ in range(args.cycles)]
        starts, readies, stops = zip(*cycles, strict=True)
        totals = [ready + stop for _, ready, stop in cycles]
        print("  " + report("start", list(starts)))
        print("  " + report("ready", list(readies)))
        print("  " + report("stop", list(stops)))
        print("  " + report("ready + stop", totals))


def profile(args: argparse.Namespace) -> None:
    for _ in range(args.warmup):
        one_cycle(True, args.data_parent)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.cycles):
        one_cycle(True, args.data_parent)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{args.cycles} cycles of start, greeting, stop (tls=True); by own time:")
    stats.sort_stats("tottime").print_stats(20)


def run_pyperf(argv: list[str]) -> None:
    import pyperf

    def bench(tls: bool) -> Callable[[int], float]:
        def timed(loops: int) -> float:
            total = 0.0
            for _ in range(loops):
                _start, ready, stop = one_cycle(tls, None)
                total += ready + stop
            return total

        return timed

    runner = pyperf.Runner(program_args=[sys.argv[0], "--pyperf"])
    runner.argparser.prog = "bench_startup.py --pyperf"
    sys.argv = [sys.argv[0], *argv]
    runner.bench_time_func("MailServer start-to-ready + stop, tls=True", bench(True))
    runner.bench_time_func("MailServer start-to-ready + stop, tls=False", bench(False))


def main() -> None:
    if "--pyperf" in sys.argv:
        run_pyperf([a for a in sys.argv[1:] if a != "--pyperf"])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--data-parent", help="make data directories here (default: scratch)")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timing")
    args = parser.parse_args()
    profile(args) if args.profile else timing(args)


if __name__ == "__main__":
    main()
