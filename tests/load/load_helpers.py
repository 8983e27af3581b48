"""Helpers of the load tests (imported by this unique name, never from a conftest)."""

from __future__ import annotations

import resource
import socket
import time

import pytest


def raise_fd_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards the hard one; skip when the hard one is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed} descriptors needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def read_until(sock: socket.socket, marker: bytes, timeout: float = 20.0) -> bytes:
    """Read until ``marker`` appears (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s; got {data[-300:]!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data[-300:]!r}")
        data += chunk
    return data


def connect(address: tuple[str, int], timeout: float = 20.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)
