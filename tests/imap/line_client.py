"""A bare IMAP client on a socket, shared by the IDLE tests: it shows exactly what arrives
and when (no client library in between)."""

from __future__ import annotations

import socket


class LineClient:
    """A bare IMAP client on a socket, to see exactly what arrives and when."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buffer = b""

    def line(self, timeout: float = 10.0) -> bytes:
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def command(self, tag: str, text: str) -> list[bytes]:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def close(self) -> None:
        self.sock.close()
