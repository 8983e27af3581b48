"""SMTP end to end over loopback: refmail against aiosmtpd, messages/s and latency.

    python benchmarks/bench_smtp_e2e.py                     # both servers, default counts
    python benchmarks/bench_smtp_e2e.py --clients 1 8 --sizes 4096 --seconds 5
    python benchmarks/bench_smtp_e2e.py --no-peer           # refmail only (e.g. under py-spy)

Each server delivers into one mbox file on the same disk, durable before its 250 (refmail:
its store's append, write + fsync + index; aiosmtpd: ``peers.AiosmtpdServer``, write + flush +
fsync of the mbox).  ``--workdir`` should be on the disk you care about (the default is under
the system temp directory, which is a real disk on Debian, not tmpfs).

For every (message size, concurrent clients) pair, each client opens one connection, says
EHLO, then sends messages one transaction at a time (MAIL, RCPT, DATA, the content, each
reply awaited: no pipelining, so both servers see the same dialogue), until the run's message
count is reached; QUIT.  The clients run in ``min(clients, 4)`` processes (threads inside), so
the client side is not one GIL.  Figures: messages/s over the wall time from the first MAIL to
the last 250, and each transaction's latency (MAIL sent to 250 received) at p50 and p99.
The count per run is ``--seconds`` times a first estimate of the rate, between
``--min-messages`` and ``--max-messages``.  All servers run at once and take turns on each cell
for ``--rounds`` rounds, each keeping its fastest: on a shared machine the fsync time drifts
over minutes, and turns expose every server to the same drift.  Every server's mbox is
checked to hold all the messages sent to it afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

import corpus  # noqa: E402 - after the path set-up above
import peers  # noqa: E402

from refmail._parse_py import dot_stuff  # noqa: E402 - (either twin: input preparation)
from refmail.auth import UserDB  # noqa: E402

USER, PASSWORD = "alice", "alice-pw"
RECIPIENT = f"{USER}@example.test"
SENDER = "bench@example.org"
MAX_CLIENT_PROCESSES = 4
DEFAULT_SIZES = (4096, 1 << 20)
DEFAULT_CLIENTS = (1, 8, 32)


def make_message(size: int, number: int) -> bytes:
    """A message of about ``size`` octets from the shared corpus generator, dot-stuffed for
    DATA (RFC 5321 4.5.2): ``corpus.message("plain", size)`` below 64 KiB (text with lines
    starting with "." and "From "), ``"multipart"`` above (a text part and a base64
    attachment), the same bytes on every run."""
    kind = "plain" if size < 65536 else "multipart"
    return dot_stuff(corpus.message(kind, size, seed=corpus.SEED + number))


class ReplyReader:
    """SMTP replies off a socket: ``read()`` returns the code of the next complete reply."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> int:
        while True:
            start = 0
            while True:
                end = self.buffer.find(b"\r\n", start)
                if end < 0:
                    break
                if self.buffer[start + 3 : start + 4] != b"-":  # last line of the reply
                    code = int(self.buffer[start : start + 3])
                    self.buffer = self.buffer[end + 2 :]
                    return code
                start = end + 2
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk


def one_client(address: tuple[str, int], content: bytes, count: int) -> list[float]:
    """One connection sending ``count`` messages; the latency of each transaction."""
    latencies: list[float] = []
    payload = content + b".\r\n"
    with socket.create_connection(address, timeout=120) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = ReplyReader(sock)
        assert replies.read() == 220
        sock.sendall(b"EHLO bench.test\r\n")
        assert replies.read() == 250
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
            assert replies.read() == 250
            sock.sendall(b"RCPT TO:<" + RECIPIENT.encode() + b">\r\n")
            assert replies.read() == 250
            sock.sendall(b"DATA\r\n")
            assert replies.read() == 354
            sock.sendall(payload)
            code = replies.read()
            assert code == 250, code
            latencies.append(time.perf_counter() - started)
        sock.sendall(b"QUIT\r\n")
        replies.read()
    return latencies


def client_process(
    address: tuple[str, int],
    content: bytes,
    counts: list[int],
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    """Threads for ``counts`` connections; puts (start, end, latencies) on ``results``."""
    out: list[list[float]] = [[] for _ in counts]
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        try:
            out[slot] = one_client(address, content, counts[slot])
        except BaseException as exc:  # reported to the parent below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(counts))]
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.perf_counter()
    if errors:
        results.put(("error", repr(errors[0])))
    else:
        results.put((started, finished, [x for part in out for x in part]))


@dataclass(frozen=True)
class Result:
    server: str
    size: int
    clients: int
    messages: int
    seconds: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def drive(address: tuple[str, int], size: int, clients: int, messages: int) -> tuple:
    """``messages`` transactions over ``clients`` connections; (seconds, latencies)."""
    messages = max(messages, clients)
    per_client = [messages // clients + (i < messages % clients) for i in range(clients)]
    processes = min(clients, MAX_CLIENT_PROCESSES)
    groups = [per_client[i::processes] for i in range(processes)]
    content = make_message(size, 1)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=client_process, args=(address, content, g, barrier, results))
        for g in groups
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    failed = [o[1] for o in outcomes if o[0] == "error"]
    if failed:
        raise RuntimeError(f"a client failed: {failed[0]}")
    started = min(o[0] for o in outcomes)
    finished = max(o[1] for o in outcomes)
    latencies = [x for o in outcomes for x in o[2]]
    return finished - started, latencies


def mbox_messages(path: Path) -> int:
    """Messages in an mbox: lines starting "From " (mboxrd quotes any other)."""
    with open(path, "rb") as f:
        data = f.read()
    return data.startswith(b"From ") + data.count(b"\nFrom ")


# ---------------------------------------------------------------------------- servers


def refmail_data(workdir: Path) -> Path:
    """A fresh data directory: SMTP only, user alice, domain example.test, limits for 32."""
    data = workdir / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    (data / "refmail.toml").write_text(
        'services = ["smtp"]\ndomains = ["example.test"]\nhostname = "refmail.test"\n'
        "[ports]\nsmtp = 0\n[limits]\nmax_connections_per_ip = 200\nmax_connections = 400\n",
        encoding="utf-8",
    )
    UserDB(data / "users").add(USER, PASSWORD)
    return data


def make_refmail(
    workdir: Path, pure_twin: bool = False, repo: Path = REPO
) -> tuple[peers.Peer, Path]:
    data = refmail_data(workdir)
    server = peers.RefmailServe(data, "smtp", pure_twin=pure_twin, repo=repo)
    return server, data / "mail" / USER / "INBOX"


def make_aiosmtpd(workdir: Path) -> tuple[peers.Peer, Path]:
    peer_dir = workdir
    if peer_dir.exists():
        shutil.rmtree(peer_dir)
    server = peers.AiosmtpdServer(peer_dir)
    return server, server.mbox


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def measure(
    contenders: list[tuple[str, Callable[[Path], tuple[peers.Peer, Path]]]],
    workdir: Path,
    sizes: list[int],
    clients_list: list[int],
    args: argparse.Namespace,
) -> list[Result]:
    """All contenders run at once (fresh servers per message size), taking turns on each
    cell for ``--rounds`` rounds; each keeps its fastest round.  Taking turns matters on a
    shared machine: the disk's fsync time drifts over minutes, and turns give every server
    the same drift."""
    results = []
    for size in sizes:
        with ExitStack() as running:
            servers = []
            for name, make in contenders:
                server, mbox = make(workdir / slug(name))
                running.enter_context(server)
                servers.append([name, server.address, mbox, 0])
            for clients in clients_list:
                counts = []
                for entry in servers:  # a short probe sets the count: about --seconds a run
                    probe = max(clients, 4 if size > 65536 else 16)
                    seconds, _ = drive(entry[1], size, clients, probe)
                    entry[3] += probe
                    target = int(args.seconds * probe / max(seconds, 1e-6))
                    counts.append(max(args.min_messages, min(args.max_messages, target), clients))
                best: dict[str, Result] = {}
                for _ in range(args.rounds):
                    for entry, count in zip(servers, counts, strict=True):
                        name, address = entry[0], entry[1]
                        seconds, latencies = drive(address, size, clients, count)
                        entry[3] += count
                        result = Result(
                            name,
                            size,
                            clients,
                            count,
                            seconds,
                            percentile(latencies, 0.5),
                            percentile(latencies, 0.99),
                        )
                        if name not in best or result.rate > best[name].rate:
                            best[name] = result
                for result in best.values():
                    results.append(result)
                    print(format_row(result), flush=True)
        for name, _, mbox, delivered in servers:
            stored = mbox_messages(mbox)
            if stored != delivered:
                raise RuntimeError(f"{name}: {stored} messages in {mbox}, {delivered} sent")
    return results


def size_label(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def format_row(r: Result) -> str:
    return (
        f"{r.server:<22} {size_label(r.size):>7} {r.clients:>3} clients {r.messages:>6} msgs "
        f"{r.rate:>8.1f} msg/s  p50 {r.p50 * 1e3:7.2f} ms  p99 {r.p99 * 1e3:7.2f} ms"
    )


def ratio_table(results: list[Result], base: str, peer: str) -> str:
    """refmail / peer: throughput ratio (above 1 is faster) and latency ratios (below 1)."""
    index = {(r.server, r.size, r.clients): r for r in results}
    lines = [
        f"SMTP {base} / {peer}",
        f"{'size':>7} {'clients':>7} {'msg/s':>10} {'peer msg/s':>10} {'ratio':>6} "
        f"{'p50 ms':>8} {'peer p50':>8} {'p99 ms':>8} {'peer p99':>8}",
    ]
    for (server, size, clients), mine in index.items():
        other = index.get((peer, size, clients))
        if server != base or other is None:
            continue
        lines.append(
            f"{size_label(size):>7} {clients:>7} {mine.rate:>10.1f} {other.rate:>10.1f} "
            f"{mine.rate / other.rate:>6.2f} {mine.p50 * 1e3:>8.2f} {other.p50 * 1e3:>8.2f} "
            f"{mine.p99 * 1e3:>8.2f} {other.p99 * 1e3:>8.2f}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--clients", type=int, nargs="+", default=list(DEFAULT_CLIENTS))
    parser.add_argument("--seconds", type=float, default=2.5, help="target time per run")
    parser.add_argument("--rounds", type=int, default=2, help="turns per cell; the best counts")
    parser.add_argument("--min-messages", type=int, default=32)
    parser.add_argument("--max-messages", type=int, default=3000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-smtp"
    )
    parser.add_argument("--no-peer", action="store_true", help="refmail only")
    parser.add_argument("--pure-twin", action="store_true", help="also refmail on the pure twin")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also refmail from this checkout (e.g. `git archive OLD | tar -x -C DIR` plus the "
        "built .so), measured right after the current one: before/after under the same load",
    )


def run(args: argparse.Namespace) -> list[Result]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    contenders: list[tuple[str, Callable[[Path], tuple[peers.Peer, Path]]]] = [
        ("refmail", make_refmail)
    ]
    if args.pure_twin:
        contenders.append(("refmail (pure twin)", lambda w: make_refmail(w, pure_twin=True)))
    if args.baseline is not None:
        contenders.append(("refmail baseline", lambda w: make_refmail(w, repo=args.baseline)))
    if not args.no_peer:
        contenders.append(("aiosmtpd", make_aiosmtpd))
    return measure(contenders, args.workdir, args.sizes, args.clients, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = run(args)
    if args.baseline is not None:
        print()
        print(ratio_table(results, "refmail", "refmail baseline"))
    if not args.no_peer:
        print()
        print(ratio_table(results, "refmail", "aiosmtpd"))


if __name__ == "__main__":
    main()
