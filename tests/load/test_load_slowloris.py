"""Slowloris: a client that dribbles bytes and never finishes a line is timed out like a
silent one, and does not hold up anyone else; a slow but real upload is not cut off."""

from __future__ import annotations

import threading
import time

import pytest
from load_helpers import connect, read_until

IDLE_TIMEOUT = 1.0


def dribble(sock, payload: bytes, every: float, stop: threading.Event) -> None:
    for i in range(len(payload)):
        if stop.wait(every):
            return
        try:
            sock.sendall(payload[i : i + 1])
        except OSError:
            return


@pytest.mark.parametrize("every", [0.3, 2.5], ids=["byte-per-0.3s", "byte-per-2.5s"])
@pytest.mark.parametrize(
    ("service", "greeting", "line", "goodbye"),
    [
        ("smtp", b"220 ", b"EHLO " + b"x" * 200, b"421 4.4.2"),
        # RFC 1939 3: on the autologout timer a POP3 server closes without a response.
        ("pop3", b"+OK", b"USER " + b"x" * 200, b""),
        ("imap", b"* OK", b"a LOGIN " + b"x" * 200, b"* BYE"),
    ],
    ids=["smtp", "pop3", "imap"],
)
def test_slowloris_is_timed_out_and_others_are_served(
    make_server, service, greeting, line, goodbye, every
) -> None:
    timeouts = {
        "smtp_idle_timeout": IDLE_TIMEOUT,
        "pop3_idle_timeout": IDLE_TIMEOUT,
        "imap_idle_timeout": IDLE_TIMEOUT,
    }
    server = make_server(limits=timeouts)
    address = server.address(service)
    slow = connect(address)
    assert read_until(slow, b"\r\n").startswith(greeting)
    stop = threading.Event()
    feeder = threading.Thread(target=dribble, args=(slow, line, every, stop), daemon=True)
    started = time.monotonic()
    feeder.start()
    try:
        # Meanwhile another client is served at once.
        with connect(address) as fast:
            fast_started = time.monotonic()
            assert read_until(fast, b"\r\n").startswith(greeting)
            assert time.monotonic() - fast_started < 0.5
        if goodbye:
            assert goodbye in read_until(slow, goodbye, timeout=10)
        slow.settimeout(10)
        assert slow.recv(100) == b""  # and closed
        elapsed = time.monotonic() - started
        # Timed out one idle period after its first byte, whatever the dribble rate.
        assert elapsed < IDLE_TIMEOUT + every + 1.0
    finally:
        stop.set()
        slow.close()


def test_slow_but_steady_message_upload_is_not_cut_off(make_server) -> None:
    """The timer restarts after every 512 octets of input (server.MIN_PROGRESS_OCTETS):
    a DATA transfer taking several idle periods in all goes through."""
    server = make_server(limits={"smtp_idle_timeout": IDLE_TIMEOUT})
    with connect(server.address("smtp")) as sock:
        read_until(sock, b"\r\n")
        sock.sendall(b"EHLO c.example.net\r\nMAIL FROM:<a@example.net>\r\n")
        sock.sendall(b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
        read_until(sock, b"354 ")
        sock.sendall(b"Subject: slow\r\n\r\n")
        line = b"y" * 70 + b"\r\n"
        started = time.monotonic()
        for _ in range(8):  # 4 s in all, 720 octets every 0.5 s
            sock.sendall(line * 10)
            time.sleep(0.5)
        assert time.monotonic() - started > 3 * IDLE_TIMEOUT
        sock.sendall(b".\r\n")
        assert b"250 2.0.0" in read_until(sock, b"250 2.0.0")
