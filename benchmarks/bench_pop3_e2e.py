"""POP3 end to end over loopback: refmail against Dovecot's POP3, one maildrop each.

    python benchmarks/bench_pop3_e2e.py                      # 10,000 messages, both servers
    python benchmarks/bench_pop3_e2e.py --messages 1000 --repeat 5
    python benchmarks/bench_pop3_e2e.py --no-dovecot         # refmail only

One maildrop of the first ``--messages`` messages of the shared corpus (``corpus.mailbox()``:
plain, multipart with attachments, non-ASCII headers, long threads; lines starting with "." or
"From ") is given to each server: refmail's delivered through its store
(``bench_imap_e2e.deliver``, made once and kept under ``--workdir``, or ``--pristine``: the
same delivered data the IMAP benchmark uses) and copied for the run; Dovecot's (Debian's
``dovecot-pop3d``, ``dovecot.DovecotServer`` with ``protocol="pop3"``) the same messages as
an mboxrd INBOX.
Each server is started, one session warms it (Dovecot builds its index there), then the best
of ``--repeat`` sessions is taken for:

- ``login``: USER/PASS then QUIT (refmail checks a scrypt hash, Dovecot's passwd-file here a
  {PLAIN} one, so this row mostly compares password hashing, not POP3);
- ``STAT+UIDL``: after a login, STAT and UIDL of every message, QUIT (a client's poll);
- ``RETR all``: one session RETRs every message, pipelined 64 at a time (RFC 2449 PIPELINING,
  both servers announce it), the octets counted.

Neither run deletes anything.  Dovecot needs root here (``dovecot -F`` drops to its users);
without it or the package, only refmail is measured and the table says why.
"""

from __future__ import annotations

import argparse
import poplib
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

import bench_imap_e2e  # noqa: E402 - after the path set-up above
import bench_pop3  # noqa: E402
import corpus  # noqa: E402
import dovecot  # noqa: E402
import peers  # noqa: E402

USER, PASSWORD = bench_pop3.USER, bench_pop3.PASSWORD
STEPS = ("login", "STAT+UIDL", "RETR all")


def maildrop(count: int) -> list[bytes]:
    """The first ``count`` messages of the shared corpus."""
    return corpus.mailbox()[:count]


def refmail_data(workdir: Path, messages: list[bytes], pristine: Path | None = None) -> Path:
    """A copy, for this run, of the delivered data (``pristine``, else delivered once under
    ``workdir``), serving POP3 only."""
    pristine = pristine or workdir / f"delivered-{len(messages)}"
    took = bench_imap_e2e.deliver(pristine, messages)
    if took:
        print(f"refmail: delivered {len(messages)} messages in {took:.1f} s", flush=True)
    data = workdir / "refmail"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(pristine, data)
    (data / "refmail.toml").write_text('services = ["pop3"]\n[ports]\npop3 = 0\n', encoding="utf-8")
    return data


def dovecot_inbox(messages: list[bytes]) -> bytes:
    """The messages as an mboxrd file with LF line ends (as both servers store them)."""
    return corpus.mbox_bytes(messages)


def login(address: tuple[str, int]) -> tuple[poplib.POP3, float]:
    """A logged-in poplib client and the seconds USER/PASS took (refmail checks a scrypt
    hash, the Dovecot config a {PLAIN} password: the login figures differ by that)."""
    started = time.perf_counter()
    client = poplib.POP3(*address, timeout=120)
    client.user(USER)
    client.pass_(PASSWORD)
    return client, time.perf_counter() - started


def login_only(address: tuple[str, int], expected: int) -> float:
    client, took = login(address)
    client.quit()
    return took


def stat_uidl(address: tuple[str, int], expected: int) -> float:
    """STAT and UIDL of every message after the login, then QUIT (timed without the login)."""
    client, _ = login(address)
    started = time.perf_counter()
    count, _ = client.stat()
    _, listing, _ = client.uidl()
    client.quit()
    took = time.perf_counter() - started
    assert count == expected == len(listing), (count, expected, len(listing))
    return took


def retr_all(address: tuple[str, int], expected: int, total_octets: int) -> float:
    with socket.create_connection(address, timeout=120) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
        reader.readline()
        assert reader.readline().startswith(b"+OK"), "login failed"
        started = time.perf_counter()
        octets = 0
        for first in range(1, expected + 1, bench_pop3.PIPELINE_DEPTH):
            batch = range(first, min(first + bench_pop3.PIPELINE_DEPTH, expected + 1))
            sock.sendall(b"".join(b"RETR %d\r\n" % n for n in batch))
            octets += bench_pop3.read_multiline_replies(sock, len(batch))
        took = time.perf_counter() - started
        sock.sendall(b"QUIT\r\n")
    # Each reply is the message (CRLF, dot-stuffed, maybe with added headers) plus framing.
    assert octets >= total_octets, (octets, total_octets)
    return took


@dataclass(frozen=True)
class Result:
    server: str
    step: str
    seconds: float


def measure(
    name: str, server: peers.Peer | dovecot.DovecotServer, messages: list[bytes], repeat: int
) -> list[Result]:
    total = sum(len(m) for m in messages)
    with server:
        address = server.address
        stat_uidl(address, len(messages))  # warm: Dovecot indexes the mbox here
        retr_all(address, len(messages), total)
        best = {
            "login": min(login_only(address, len(messages)) for _ in range(repeat)),
            "STAT+UIDL": min(stat_uidl(address, len(messages)) for _ in range(repeat)),
            "RETR all": min(retr_all(address, len(messages), total) for _ in range(repeat)),
        }
    results = [Result(name, step, seconds) for step, seconds in best.items()]
    for r in results:
        print(f"{r.server:<22} {r.step:<11} {r.seconds * 1e3:9.1f} ms", flush=True)
    return results


def ratio_table(results: list[Result], base: str, peer: str, messages: int) -> str:
    index = {(r.server, r.step): r.seconds for r in results}
    lines = [
        f"POP3 {base} / {peer} ({messages} messages; time ratio: below 1 is faster)",
        f"{'step':<11} {'ms':>9} {'peer ms':>9} {'ratio':>6}",
    ]
    for step in STEPS:
        if (base, step) in index and (peer, step) in index:
            mine, other = index[(base, step)], index[(peer, step)]
            lines.append(f"{step:<11} {mine * 1e3:>9.1f} {other * 1e3:>9.1f} {mine / other:>6.2f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=corpus.COUNT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "refmail-bench-pop3-e2e"
    )
    parser.add_argument("--no-dovecot", action="store_true", help="refmail only")
    parser.add_argument(
        "--pristine", type=Path, help="refmail data with these messages delivered (copied)"
    )


def run(args: argparse.Namespace) -> tuple[list[Result], str | None]:
    """The results, and why Dovecot was skipped (None when it ran)."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    messages = maildrop(args.messages)
    data = refmail_data(args.workdir, messages, args.pristine)
    results = measure("refmail", peers.RefmailServe(data, "pop3"), messages, args.repeat)
    skipped = "--no-dovecot" if args.no_dovecot else dovecot.available("pop3")
    if skipped is None:
        server = dovecot.DovecotServer(
            args.workdir / "dovecot", USER, PASSWORD, dovecot_inbox(messages), protocol="pop3"
        )
        results += measure("dovecot", server, messages, args.repeat)
    return results, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    results, skipped = run(args)
    print()
    if skipped is None:
        print(ratio_table(results, "refmail", "dovecot", args.messages))
    else:
        print(f"Dovecot skipped: {skipped}")


if __name__ == "__main__":
    main()
