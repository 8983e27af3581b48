"""Helpers of the security tests (imported by this unique name, never from a conftest)."""

from __future__ import annotations

import base64
import socket
import time

LOGIN_SERVICE = {"smtp": "submission", "pop3": "pop3", "imap": "imap"}


def read_until(sock: socket.socket, *markers: bytes, timeout: float = 10.0) -> bytes:
    """Read until one of ``markers`` appears; return everything read."""
    deadline = time.monotonic() + timeout
    data = b""
    while not any(m in data for m in markers):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"none of {markers!r} within {timeout}s; got {data[-300:]!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def connect(address: tuple[str, int], source: str | None = None) -> socket.socket:
    """A connection from ``source`` (any 127/8 address works on Linux loopback)."""
    return socket.create_connection(
        address, timeout=10, source_address=(source, 0) if source else None
    )


def greeted(address: tuple[str, int], source: str | None = None) -> socket.socket:
    sock = connect(address, source)
    read_until(sock, b"\r\n")
    return sock


def try_login(server, protocol: str, user: str, password: str, source: str | None = None):
    """One login over a fresh connection: ``(succeeded, seconds the answer took)``."""
    with greeted(server.address(LOGIN_SERVICE[protocol]), source) as sock:
        if protocol == "smtp":
            sock.sendall(b"EHLO c.example.net\r\n")
            read_until(sock, b"\r\n250 ")
            plain = base64.b64encode(f"\0{user}\0{password}".encode())
            started = time.monotonic()
            sock.sendall(b"AUTH PLAIN " + plain + b"\r\n")
            reply = read_until(sock, b"\r\n")
            return reply.startswith(b"235 "), time.monotonic() - started
        if protocol == "pop3":
            sock.sendall(f"USER {user}\r\n".encode())
            read_until(sock, b"\r\n")
            started = time.monotonic()
            sock.sendall(f"PASS {password}\r\n".encode())
            reply = read_until(sock, b"\r\n")
            return reply.startswith(b"+OK"), time.monotonic() - started
        started = time.monotonic()
        sock.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        reply = read_until(sock, b"a OK", b"a NO", b"a BAD")
        return b"a OK" in reply, time.monotonic() - started
