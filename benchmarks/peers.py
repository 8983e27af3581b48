"""The servers the end-to-end benchmarks compare: refmail itself and aiosmtpd.

Each is a child process on 127.0.0.1 and a free port, started by ``start()`` (or ``with``) and
stopped by ``stop()``; ``address`` is where it listens.

- ``RefmailServe(data_dir, service)``: ``python -m refmail serve`` over ``data_dir`` (which
  holds its ``refmail.toml``), the port read from its banner; ``repo=`` runs another checkout
  (an older commit, for before/after figures).
- ``AiosmtpdServer(workdir)``: ``python benchmarks/peers.py aiosmtpd --mbox FILE --port N``,
  an ``aiosmtpd.controller``-less asyncio SMTP server (``pip install aiosmtpd``) whose handler
  appends each message to one mbox file with the durability refmail gives its own deliveries:
  a ``From_`` line, mboxrd quoting (``>From `` escaping, RFC 4155), LF line ends, then
  ``write`` + ``flush`` + ``os.fsync`` before the 250 reply.  The handler runs on the event
  loop, as aiosmtpd's handlers do, so fsyncs are serialized the way a one-file mbox
  serializes them anyway.

Dovecot (IMAP and POP3) is ``benchmarks/dovecot.py``'s ``DovecotServer``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import dovecot  # noqa: E402 - after the path set-up above

START_TIMEOUT = 60.0


def wait_for_banner(address: tuple[str, int], prefix: bytes, proc: subprocess.Popen) -> None:
    """Until a connection to ``address`` is greeted with ``prefix`` (or the child died)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(address, timeout=2) as sock:
                if sock.recv(200).startswith(prefix):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered {prefix!r} on {address} in {START_TIMEOUT} s")


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Peer:
    """Start/stop as a context manager; subclasses set ``proc`` and ``address`` in start()."""

    proc: subprocess.Popen | None = None
    address: tuple[str, int] | None = None

    def start(self) -> tuple[str, int]:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- refmail


class RefmailServe(Peer):
    """``python -m refmail serve --data DATA``; ``service``'s port is read from the banner."""

    def __init__(
        self, data_dir: Path, service: str, *, pure_twin: bool = False, repo: Path = REPO
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.service = service
        self.pure_twin = pure_twin
        #: The checkout whose ``refmail`` package runs (``-m`` imports it from the cwd).
        self.repo = repo.resolve()

    def start(self) -> tuple[str, int]:
        env = dict(os.environ)
        env.pop("REFMAIL_NO_EXTENSIONS", None)
        if self.pure_twin:
            env["REFMAIL_NO_EXTENSIONS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refmail", "serve", "--data", str(self.data_dir)],
            cwd=self.repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # one log line per delivery would drown the table
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.match(rf"{self.service}\s+(\S+):(\d+)", line)
            if found:
                self.address = (found.group(1), int(found.group(2)))
            if line.startswith("refmail ready"):
                break
        if self.address is None:
            self.stop()
            raise RuntimeError(f"refmail did not announce a {self.service} port")
        return self.address

    @property
    def version(self) -> str:
        from refmail import parse

        return f"refmail ({'pure twin' if self.pure_twin else parse.IMPLEMENTATION})"


# ---------------------------------------------------------------------------- aiosmtpd


class AiosmtpdServer(Peer):
    """aiosmtpd appending to ``workdir/mbox`` with an fsync per message (module doc)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self.mbox = self.workdir / "mbox"

    def start(self) -> tuple[str, int]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = dovecot.free_port()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "aiosmtpd", "--mbox", str(self.mbox), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.address = ("127.0.0.1", port)
        wait_for_banner(self.address, b"220", self.proc)
        return self.address

    @property
    def version(self) -> str:
        import aiosmtpd

        return f"aiosmtpd {aiosmtpd.__version__}"


#: mboxrd (RFC 4155 and the mboxrd convention): every ">*From " at a line start gets one more
#: ">".  Anchored on LF, not ``^`` under MULTILINE (ten times slower on a 1 MiB body).
MBOXRD_FROM_AFTER_LF = re.compile(rb"\n(>*From )")
MBOXRD_FROM_AT_START = re.compile(rb">*From ")


def mboxrd_quote(body: bytes) -> bytes:
    """``body`` (LF line ends) with its From lines quoted the mboxrd way."""
    if b"From " not in body:
        return body
    body = MBOXRD_FROM_AFTER_LF.sub(rb"\n>\1", body)
    return b">" + body if MBOXRD_FROM_AT_START.match(body) else body


def serve_aiosmtpd(mbox: Path, port: int) -> None:
    """The aiosmtpd side: one SMTP server on the event loop, the handler below."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class MboxHandler:
        """Appends every message to one mbox file, durable (fsync) before the 250."""

        def __init__(self, path: Path) -> None:
            self.file = open(path, "ab")  # noqa: SIM115 - open for the server's life

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            content = envelope.original_content or envelope.content
            body = mboxrd_quote(content.replace(b"\r\n", b"\n"))
            sender = envelope.mail_from or "MAILER-DAEMON"
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
            entry = f"From {sender} {stamp}\n".encode() + body
            if not entry.endswith(b"\n"):
                entry += b"\n"
            self.file.write(entry + b"\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            return "250 Message accepted for delivery"

    async def main() -> None:
        handler = MboxHandler(mbox)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.test", data_size_limit=64 * 2**20),
            host="127.0.0.1",
            port=port,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run one peer server in the foreground")
    sub = parser.add_subparsers(dest="peer", required=True)
    aio = sub.add_parser("aiosmtpd")
    aio.add_argument("--mbox", type=Path, required=True)
    aio.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve_aiosmtpd(args.mbox, args.port)
