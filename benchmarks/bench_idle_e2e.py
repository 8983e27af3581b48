"""IMAP IDLE notification latency with many idle clients: refmail against Dovecot.

    python benchmarks/bench_idle_e2e.py                        # 500 clients, 20 deliveries
    python benchmarks/bench_idle_e2e.py --clients 100 --deliveries 5 --messages 1000
    python benchmarks/bench_idle_e2e.py --no-dovecot           # refmail only

Both servers serve the same INBOX: the first ``--messages`` messages of the shared corpus
(``corpus.mailbox()``), for refmail delivered through its store (``bench_imap_e2e.deliver``,
kept and copied per run), for Dovecot as an mboxrd file (Debian's dovecot-imapd, mbox storage,
``dovecot -F`` from the config of ``benchmarks/dovecot.py`` plus the settings below).

``--clients`` connections each LOGIN, SELECT INBOX and IDLE (RFC 2177), set up from 16
threads; then, ``--deliveries`` times, one more connection APPENDs a corpus message to INBOX
(RFC 3501 6.3.11; the same delivery path for both servers, and the one both treat as an
ordinary change of the mailbox by another session) and one client process, one epoll loop
over all the sockets, notes when each idle client reads its ``* n EXISTS`` line.  Latency =
that moment minus the moment the APPEND's last octet was sent (so it includes the APPEND
itself: the write, its fsync for refmail, the index update); the APPEND's own round trip
(last octet sent to tagged OK) is reported beside it.  The next delivery waits until every
client has been told, or ``--timeout`` (a client not told in time is counted as missed).
Figures: p50, p99 and max over all (client, delivery) pairs.

Fairness settings:
- Dovecot wakes an IDLE session through inotify on the mbox and its index files (one inotify
  instance per imap process, one process per connection, Dovecot's default); its fallback is a
  poll every ``mailbox_idle_check_interval`` (left at the default, 30 s, so a wake-up by the
  fallback would show as a 30 s latency).  The kernel allows 128 inotify instances per user by
  default, fewer than 500 imap processes: when run as root with a lower limit, the script
  raises ``fs.inotify.max_user_instances`` to ``clients + 100`` for the run and puts the old
  value back after (else Dovecot's sessions past the 128th fall back to the 30 s poll; the
  report says which happened).  Dovecot's limits are raised for ``clients`` connections:
  ``default_process_limit``, ``default_client_limit``, ``mail_max_userip_connections``.
  Dovecot waits a fixed 500 ms after a change before it tells an IDLE session
  (``NOTIFY_DELAY_MSECS`` in ``src/lib-storage/mailbox-watch.c``, to batch changes; not a
  setting), so its latencies start at 500 ms.  ``mbox_write_locks = fcntl`` (no dotlock):
  nothing but Dovecot touches its mbox here, and with Debian's ``fcntl dotlock`` the sessions
  syncing the changed mbox at once wait seconds on the dotlock (p99 8 s with 100 clients).
- refmail wakes its IDLE sessions from the store's change notification within the process.
  Its limits: ``max_connections`` and ``max_connections_per_ip`` raised for ``clients``.
  Its user's scrypt cost is lowered to 16 in the run's copy (500 logins at full cost take
  ~40 s of CPU; logins are not what is measured).
- The file descriptor limit of this process is raised to what ``clients`` needs
  (``resource.setrlimit``).
"""

from __future__ import annotations

import argparse
import re
import resource
import selectors
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

import bench_imap_e2e  # noqa: E402 - after the path set-up above
import corpus  # noqa: E402
import dovecot  # noqa: E402
import peers  # noqa: E402

from refmail.auth import hash_password  # noqa: E402

USER, PASSWORD = bench_imap_e2e.USER, bench_imap_e2e.PASSWORD
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
EXISTS = re.compile(rb"\* (\d+) EXISTS\r\n")
SETUP_THREADS = 16

DOVECOT_EXTRA = """\
# bench_idle_e2e: room for {clients} IDLE connections of one user from one address.
default_process_limit = {limit}
default_client_limit = {limit2}
mail_max_userip_connections = {limit}
# The fallback poll when no inotify event came (Dovecot's default); inotify wakes it first.
mailbox_idle_check_interval = 30 secs
# Only Dovecot touches this mbox: fcntl locks are enough.  With the dotlock of Debian's
# default (fcntl dotlock) hundreds of sessions syncing at once retry the dotlock for seconds.
mbox_write_locks = fcntl
"""


class DovecotIdle(dovecot.DovecotServer):
    """``dovecot.DovecotServer`` with limits for many connections (module doc)."""

    def __init__(self, workdir: Path, inbox: bytes, clients: int) -> None:
        extra = DOVECOT_EXTRA.format(
            clients=clients, limit=clients + 100, limit2=2 * (clients + 100) + 100
        )
        super().__init__(workdir, USER, PASSWORD, inbox, extra_config=extra)
        self.clients = clients


# ---------------------------------------------------------------------------- client side


class Conn:
    """A blocking IMAP connection with a line reader (set-up and the APPENDer)."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        """Send ``tag text``; the lines up to the tagged reply, which must be OK."""
        self.sock.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), line
                return lines

    def login_select(self) -> int:
        self.command(b"a", b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
        for line in self.command(b"b", b"SELECT INBOX"):
            found = EXISTS.match(line)
            if found:
                return int(found.group(1))
        raise AssertionError("SELECT gave no EXISTS")

    def idle(self) -> None:
        self.sock.sendall(b"c IDLE\r\n")
        while not self.line().startswith(b"+"):
            pass


def raise_fd_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = clients * 2 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


@dataclass
class IdleResult:
    server: str
    clients: int
    deliveries: int
    setup_seconds: float
    latencies: list[float] = field(default_factory=list)
    appends: list[float] = field(default_factory=list)
    missed: int = 0
    note: str = ""

    def pct(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def measure(
    name: str,
    address: tuple[str, int],
    clients: int,
    deliveries: list[bytes],
    timeout: float,
) -> IdleResult:
    """Set up ``clients`` IDLE sessions, deliver, time the notifications (module doc)."""
    warm = Conn(address, timeout)  # the first SELECT builds Dovecot's index: not in the set-up
    count = warm.login_select()
    warm.command(b"z", b"LOGOUT")
    warm.sock.close()

    started = time.perf_counter()

    def open_one(_: int) -> Conn:
        conn = Conn(address, 120.0)
        assert conn.login_select() == count
        conn.idle()
        return conn

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        idlers = list(pool.map(open_one, range(clients)))
    result = IdleResult(name, clients, len(deliveries), time.perf_counter() - started)
    print(f"{name}: {clients} clients idling after {result.setup_seconds:.1f} s", flush=True)

    appender = Conn(address, timeout)
    appender.command(b"a", b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for conn in idlers:
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        buffers[conn.sock.fileno()] = conn.buffer
    try:
        for number, message in enumerate(deliveries, 1):
            expected = count + number
            tag = b"d%d" % number
            appender.sock.sendall(tag + b" APPEND INBOX {%d}\r\n" % len(message))
            assert appender.line().startswith(b"+"), "no continuation for APPEND"
            appender.sock.sendall(message + b"\r\n")
            sent = time.perf_counter()
            waiting = {conn.sock.fileno() for conn in idlers}
            deadline = sent + timeout
            append_done = None
            appender.sock.setblocking(False)
            selector.register(appender.sock, selectors.EVENT_READ, None)
            while (waiting or append_done is None) and time.perf_counter() < deadline:
                for key, _ in selector.select(max(0.0, deadline - time.perf_counter())):
                    if key.data is None:  # the APPENDer's tagged reply
                        appender.buffer += appender.sock.recv(65536)
                        if tag + b" " in appender.buffer and appender.buffer.endswith(b"\r\n"):
                            append_done = time.perf_counter()
                            assert tag + b" OK" in appender.buffer, appender.buffer
                            appender.buffer = b""
                        continue
                    sock = key.fileobj
                    fd = sock.fileno()
                    chunk = sock.recv(65536)
                    now = time.perf_counter()
                    if not chunk:
                        raise ConnectionError(f"{name}: an idle client was disconnected")
                    data = buffers[fd] + chunk
                    if fd in waiting:
                        for found in EXISTS.finditer(data):
                            if int(found.group(1)) >= expected:
                                waiting.discard(fd)
                                result.latencies.append(now - sent)
                                break
                    buffers[fd] = data[data.rfind(b"\r\n") + 2 :] if b"\r\n" in data else data
            selector.unregister(appender.sock)
            appender.sock.settimeout(timeout)
            result.missed += len(waiting)
            if append_done is not None:
                result.appends.append(append_done - sent)
            time.sleep(0.05)
    finally:
        selector.close()
        for conn in idlers:
            conn.sock.close()
        appender.sock.close()
    return result


# ---------------------------------------------------------------------------- servers


def refmail_copy(pristine: Path, data_dir: Path, clients: int) -> Path:
    """A copy of the delivered data with room for ``clients`` and a cheap password hash."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    shutil.copytree(pristine, data_dir)
    (data_dir / "refmail.toml").write_text(
        'services = ["imap"]\n[ports]\nimap = 0\n[limits]\n'
        f"max_connections = {2 * clients + 100}\nmax_connections_per_ip = {2 * clients + 100}\n",
        encoding="utf-8",
    )
    (data_dir / "users").write_text(f"{USER}:{hash_password(PASSWORD, cost=16)}\n")
    return data_dir


class InotifyLimit:
    """Raise ``fs.inotify.max_user_instances`` to at least ``want`` for a ``with`` block."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.old: int | None = None
        self.note = ""

    def __enter__(self) -> InotifyLimit:
        try:
            current = int(INOTIFY.read_text())
        except OSError:
            self.note = "inotify instance limit unknown"
            return self
        if current >= self.want:
            self.note = f"inotify instances per user: {current}"
            return self
        try:
            INOTIFY.write_text(f"{self.want}\n")
            self.old = current
            self.note = f"inotify instances per user raised {current} -> {self.want} for the run"
        except OSError as exc:
            self.note = (
                f"inotify instances per user: {current} (could not raise: {exc}); Dovecot's "
                f"sessions past that fall back to the 30 s poll"
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.old is not None:
            INOTIFY.write_text(f"{self.old}\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument(
        "--messages", type=int, default=corpus.COUNT, help="messages in INBOX before"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per delivery")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-idle"
    )
    parser.add_argument(
        "--pristine",
        type=Path,
        help="a refmail data dir with the corpus delivered by bench_imap_e2e.deliver "
        "(default: made under --workdir)",
    )
    parser.add_argument("--no-dovecot", action="store_true", help="refmail only")


def run(args: argparse.Namespace) -> tuple[list[IdleResult], str | None]:
    """The results, and why Dovecot was skipped (None when it ran)."""
    raise_fd_limit(args.clients)
    args.workdir.mkdir(parents=True, exist_ok=True)
    mailbox = corpus.mailbox()
    messages = mailbox[: args.messages]
    # Deliveries: corpus messages from the end (not in the INBOX when --messages < count).
    deliveries = mailbox[-args.deliveries :]
    pristine = args.pristine or args.workdir / f"delivered-{args.messages}"
    took = bench_imap_e2e.deliver(pristine, messages)
    if took:
        print(f"refmail: delivered {len(messages)} messages in {took:.1f} s", flush=True)
    results = []
    server = peers.RefmailServe(
        refmail_copy(pristine, args.workdir / "refmail", args.clients), "imap"
    )
    with server:
        results.append(measure("refmail", server.address, args.clients, deliveries, args.timeout))
    skipped = "--no-dovecot" if args.no_dovecot else dovecot.available()
    if skipped is None:
        with InotifyLimit(args.clients + 100) as limit:
            peer = DovecotIdle(
                args.workdir / "dovecot", bench_imap_e2e.dovecot_inbox(messages), args.clients
            )
            try:
                address = peer.start()
                result = measure("dovecot", address, args.clients, deliveries, args.timeout)
            finally:
                peer.stop()
            result.note = limit.note
            if "exceeded" in peer_log(peer):
                result.note += "; Dovecot logged an inotify limit warning"
            results.append(result)
    for result in results:
        print(format_result(result), flush=True)
    return results, skipped


def peer_log(peer: dovecot.DovecotServer) -> str:
    path = peer.workdir / "dovecot.log"
    return path.read_text(errors="replace") if path.exists() else ""


def format_result(r: IdleResult) -> str:
    appends = sorted(r.appends)
    append_p50 = appends[len(appends) // 2] * 1e3 if appends else float("nan")
    line = (
        f"{r.server:<10} {r.clients} clients x {r.deliveries} deliveries: "
        f"p50 {r.pct(0.5) * 1e3:.2f} ms  p99 {r.pct(0.99) * 1e3:.2f} ms  "
        f"max {max(r.latencies, default=0) * 1e3:.2f} ms  missed {r.missed}  "
        f"(APPEND p50 {append_p50:.2f} ms; set-up {r.setup_seconds:.1f} s)"
    )
    return line + (f"  [{r.note}]" if r.note else "")


def ratio_table(results: list[IdleResult], base: str = "refmail", peer: str = "dovecot") -> str:
    index = {r.server: r for r in results}
    mine, other = index.get(base), index.get(peer)
    if mine is None or other is None:
        return "IDLE: " + "; ".join(format_result(r) for r in results)
    lines = [
        f"IDLE {base} / {peer}: {mine.clients} idle clients, {mine.deliveries} APPENDs, latency "
        "from the APPEND sent to each client's EXISTS (ms; below 1 is faster)",
        f"{'figure':<12} {'ms':>9} {'peer ms':>9} {'ratio':>6}",
    ]
    figures = {
        "p50": (mine.pct(0.5), other.pct(0.5)),
        "p99": (mine.pct(0.99), other.pct(0.99)),
        "max": (max(mine.latencies, default=0), max(other.latencies, default=0)),
        "APPEND p50": (
            sorted(mine.appends)[len(mine.appends) // 2] if mine.appends else 0,
            sorted(other.appends)[len(other.appends) // 2] if other.appends else 0,
        ),
    }
    for label, (a, b) in figures.items():
        ratio = f"{a / b:>6.2f}" if b else f"{'-':>6}"
        lines.append(f"{label:<12} {a * 1e3:>9.2f} {b * 1e3:>9.2f} {ratio}")
    lines.append(
        f"missed: {mine.missed} / {other.missed}; set-up of the clients: "
        f"{mine.setup_seconds:.1f} s / {other.setup_seconds:.1f} s"
    )
    if other.note:
        lines.append(f"({other.note})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    results, skipped = run(args)
    print()
    print(ratio_table(results))
    if skipped:
        print(f"Dovecot skipped: {skipped}")


if __name__ == "__main__":
    main()
