"""A tiny SMTP receiver for tests: the next hop the MTA delivers to, on 127.0.0.1.

Its behaviour is data (``Behaviour``): the extensions it offers, its reply to each
recipient, to MAIL and to the end of DATA, and optionally STARTTLS.  Everything it receives
is recorded in ``Receiver.messages`` (and each connection in ``Receiver.sessions``).
"""

from __future__ import annotations

import re
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

RcptPolicy = Callable[[str], tuple[int, str]]


def accept_all(address: str) -> tuple[int, str]:
    return 250, "2.1.5 ok"


def by_local_part(address: str) -> tuple[int, str]:
    """``temp...@`` -> 451, ``bad...@`` -> 550, else 250."""
    local = address.split("@")[0].lower()
    if local.startswith("temp"):
        return 451, "4.2.0 mailbox busy, try later"
    if local.startswith("bad"):
        return 550, "5.1.1 no such user"
    return 250, "2.1.5 ok"


@dataclass
class Behaviour:
    extensions: list[str] = field(default_factory=lambda: ["8BITMIME", "SIZE 1000000"])
    greeting: tuple[int, str] = (220, "receiver.test ESMTP test receiver")
    mail_reply: tuple[int, str] = (250, "2.1.0 ok")
    rcpt: RcptPolicy = accept_all
    data_reply: tuple[int, str] = (250, "2.0.0 queued")
    tls_context: ssl.SSLContext | None = None


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_params: str
    tls: bool


@dataclass
class SessionLog:
    commands: list[str] = field(default_factory=list)
    tls: bool = False


class _Handler(socketserver.StreamRequestHandler):
    server: Receiver

    def reply(self, code: int, text: str | list[str]) -> None:
        lines = [text] if isinstance(text, str) else text
        out = "".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines)
        )
        self.wfile.write(out.encode("utf-8"))
        self.wfile.flush()

    def handle(self) -> None:
        behaviour = self.server.behaviour
        log = SessionLog()
        with self.server.lock:
            self.server.sessions.append(log)
        self.reply(*behaviour.greeting)
        if behaviour.greeting[0] != 220:
            return
        sender: str | None = None
        params = ""
        rcpts: list[str] = []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            log.commands.append(text)
            verb = text[:4].upper()
            if verb == "EHLO":
                extensions = list(behaviour.extensions)
                if behaviour.tls_context is not None and not log.tls:
                    extensions.append("STARTTLS")
                self.reply(250, ["receiver.test hello", *extensions])
            elif verb == "HELO":
                self.reply(250, "receiver.test hello")
            elif verb == "STAR" and behaviour.tls_context is not None and not log.tls:
                self.reply(220, "2.0.0 go ahead")
                self.request = behaviour.tls_context.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
                log.tls = True
                sender, rcpts = None, []
            elif verb == "MAIL":
                match = re.match(r"MAIL FROM:<(.*?)>(.*)", text, re.I)
                if match is None:
                    self.reply(501, "5.5.4 syntax")
                    continue
                if behaviour.mail_reply[0] != 250:
                    self.reply(*behaviour.mail_reply)
                    continue
                sender, params, rcpts = match.group(1), match.group(2).strip(), []
                self.reply(*behaviour.mail_reply)
            elif verb == "RCPT":
                match = re.match(r"RCPT TO:<(.*?)>", text, re.I)
                if match is None or sender is None:
                    self.reply(503, "5.5.1 need MAIL")
                    continue
                code, reply = behaviour.rcpt(match.group(1))
                if code == 250:
                    rcpts.append(match.group(1))
                self.reply(code, reply)
            elif verb == "DATA":
                if sender is None or not rcpts:
                    self.reply(503, "5.5.1 need RCPT")
                    continue
                self.reply(354, "go ahead")
                chunks: list[bytes] = []
                while True:
                    data_line = self.rfile.readline(100_000)
                    if not data_line or data_line == b".\r\n":
                        break
                    chunks.append(data_line[1:] if data_line.startswith(b".") else data_line)
                if not data_line:
                    return
                code, reply = behaviour.data_reply
                if code == 250:
                    with self.server.lock:
                        self.server.messages.append(
                            Received(sender, rcpts, b"".join(chunks), params, log.tls)
                        )
                self.reply(code, reply)
                sender, rcpts = None, []
            elif verb == "RSET":
                sender, rcpts = None, []
                self.reply(250, "2.0.0 ok")
            elif verb == "QUIT":
                self.reply(221, "2.0.0 bye")
                return
            elif verb == "NOOP":
                self.reply(250, "2.0.0 ok")
            else:
                self.reply(502, "5.5.1 not implemented")


class Receiver(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self, behaviour: Behaviour | None = None, address: tuple[str, int] = ("127.0.0.1", 0)
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.messages: list[Received] = []
        self.sessions: list[SessionLog] = []
        self.lock = threading.Lock()
        super().__init__(address, _Handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def hostport(self) -> str:
        return f"{self.server_address[0]}:{self.port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
