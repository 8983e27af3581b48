"""POP3 on loopback against the real server (``python -m refmail serve``), 10,000 messages.

    python benchmarks/bench_pop3.py --fast            # quick figures
    python benchmarks/bench_pop3.py -o pop3.json      # pyperf's full run, saved

Two benchmarks over one maildrop of ``--messages`` seeded messages (sizes 300 octets to ~60 KiB,
some lines starting with "." or "From " so dot-stuffing and mboxrd quoting are exercised):

- ``pop3 login+STAT+UIDL``: poplib connects, USER/PASS (one scrypt check), STAT, UIDL of every
  message, QUIT; what a mail client does on each poll.
- ``pop3 RETR all``: one session RETRs every message, pipelined 64 at a time (RFC 2449
  PIPELINING) over a raw socket, so the figure is the server's, not poplib's line loop.

The corpus is delivered once through the store into ``--data`` (kept between runs); each pyperf
worker starts its own server on a free port and stops it at exit.
"""

from __future__ import annotations

import argparse
import atexit
import poplib
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyperf

#: Run from a checkout without installing: the repository root holds the package.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from refmail.auth import UserDB  # noqa: E402
from refmail.store import MailStore  # noqa: E402

USER, PASSWORD = "bench", "bench-pw"
SEED = 1939  # RFC 1939
PIPELINE_DEPTH = 64
TERMINATOR = b"\r\n.\r\n"
WORDS = "mail server pop3 retrieve message octets maildrop unique listing quit".split()


def make_message(rng: random.Random, number: int) -> bytes:
    """One plausible message: a header block and a body of 5 to ~1200 lines."""
    lines = [
        f"From: sender{rng.randrange(500)}@example.org",
        f"To: {USER}@example.test",
        f"Subject: benchmark message {number}",
        f"Message-ID: <{number}.{rng.randrange(10**9)}@example.org>",
        "Date: Fri, 27 Nov 2026 04:00:00 +0000",
        "",
    ]
    for _ in range(int(rng.lognormvariate(4.0, 1.2)) % 1200 + 5):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12)))
        roll = rng.random()
        if roll < 0.02:
            text = "." + text
        elif roll < 0.03:
            text = "From " + text
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n").encode()


def build_corpus(data_dir: Path, count: int) -> None:
    """Deliver ``count`` messages once; a marker file says the corpus is complete."""
    marker = data_dir / f".bench-pop3-{count}-{SEED}"
    if marker.exists():
        return
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / "refmail.toml").write_text(
        'services = ["pop3"]\n[ports]\npop3 = 0\n', encoding="utf-8"
    )
    UserDB(data_dir / "users").add(USER, PASSWORD)
    store = MailStore(data_dir / "mail")
    store.ensure_user(USER)
    rng = random.Random(SEED)
    started = time.perf_counter()
    octets = 0
    for number in range(1, count + 1):
        message = make_message(rng, number)
        octets += len(message)
        store.deliver(USER, message, mailbox="INBOX")
    store.close()
    took = time.perf_counter() - started
    print(f"corpus: {count} messages, {octets / 2**20:.1f} MiB, delivered in {took:.1f} s")
    marker.touch()


class LiveServer:
    """``python -m refmail serve`` in a subprocess; the POP3 port is read from its banner."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.address: tuple[str, int] | None = None

    def start(self) -> tuple[str, int]:
        if self.address is not None:
            return self.address
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refmail", "serve", "--data", str(self.data_dir.resolve())],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the server's log would drown pyperf's output
            text=True,
        )
        atexit.register(self.stop)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.match(r"pop3\s+(\S+):(\d+)", line)
            if found:
                self.address = (found.group(1), int(found.group(2)))
            if line.startswith("refmail ready"):
                break
        if self.address is None:
            raise RuntimeError("the server did not announce a POP3 port")
        return self.address

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def login_stat_uidl(server: LiveServer, expected: int) -> float:
    host, port = server.start()
    started = time.perf_counter()
    client = poplib.POP3(host, port, timeout=60)
    client.user(USER)
    client.pass_(PASSWORD)
    count, _ = client.stat()
    _, listing, _ = client.uidl()
    client.quit()
    took = time.perf_counter() - started
    assert count == expected == len(listing), (count, expected, len(listing))
    return took


def retr_all(server: LiveServer, expected: int) -> float:
    host, port = server.start()
    with socket.create_connection((host, port), timeout=60) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
        reader.readline()
        assert reader.readline().startswith(b"+OK"), "login failed"
        started = time.perf_counter()
        octets = 0
        for first in range(1, expected + 1, PIPELINE_DEPTH):
            batch = range(first, min(first + PIPELINE_DEPTH, expected + 1))
            sock.sendall(b"".join(b"RETR %d\r\n" % n for n in batch))
            octets += read_multiline_replies(sock, len(batch))
        took = time.perf_counter() - started
        sock.sendall(b"QUIT\r\n")
    assert octets > expected
    return took


def read_multiline_replies(sock: socket.socket, replies: int) -> int:
    """Read ``replies`` dot-terminated replies; a stuffed body never holds CRLF "." CRLF."""
    pending = b""
    octets = 0
    while replies:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        octets += len(chunk)
        pending += chunk
        found = pending.count(TERMINATOR)
        replies -= found
        if found:
            pending = pending[pending.rindex(TERMINATOR) + len(TERMINATOR) :]
        pending = pending[-(len(TERMINATOR) - 1) :] if replies else b""
    return octets


def main() -> None:
    def add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
        cmd.extend(["--messages", str(args.messages), "--data", str(args.data)])

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--messages", type=int, default=10_000)
    runner.argparser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-pop3"
    )
    args = runner.parse_args()
    build_corpus(args.data, args.messages)
    server = LiveServer(args.data)
    runner.metadata["messages"] = str(args.messages)

    def timed(step: Callable[[LiveServer, int], float], loops: int) -> float:
        return sum(step(server, args.messages) for _ in range(loops))

    runner.bench_time_func(
        f"pop3 login+STAT+UIDL ({args.messages} messages)",
        lambda loops: timed(login_stat_uidl, loops),
    )
    runner.bench_time_func(
        f"pop3 RETR all ({args.messages} messages)",
        lambda loops: timed(retr_all, loops),
    )


if __name__ == "__main__":
    main()
