"""The generic connection handler: limits, timeouts, TLS, shutdown (DESIGN.md, "Concurrency")."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from refmail.server import Server


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def connect(server: Server, service: str = "smtp") -> socket.socket:
    return socket.create_connection(server.address(service), timeout=10)


def test_connections_per_ip_are_limited_and_the_server_goes_on(make_server) -> None:
    server = make_server(limits={"max_connections_per_ip": 2})
    first, second = connect(server), connect(server)
    assert read_line(first).startswith(b"220 ")
    assert read_line(second).startswith(b"220 ")
    third = connect(server)
    assert read_line(third).startswith(b"421 4.7.0")
    assert third.recv(100) == b""  # and closed
    third.close()
    first.sendall(b"QUIT\r\n")
    assert read_line(first).startswith(b"221")
    first.close()
    time.sleep(0.2)  # the handler thread releases the slot as it finishes
    fourth = connect(server)
    assert read_line(fourth).startswith(b"220 ")
    for s in (second, fourth):
        s.close()


def test_total_connections_are_limited_across_listeners(make_server) -> None:
    server = make_server(limits={"max_connections": 1})
    first = connect(server, "smtp")
    assert read_line(first).startswith(b"220 ")
    other = connect(server, "submission")
    assert read_line(other).startswith(b"421 ")
    other.close()
    first.close()


def test_idle_client_is_timed_out_with_421(make_server) -> None:
    server = make_server(limits={"smtp_idle_timeout": 0.5})
    sock = connect(server)
    assert read_line(sock).startswith(b"220 ")
    started = time.monotonic()
    assert read_line(sock).startswith(b"421 ")
    assert time.monotonic() - started < 5
    assert sock.recv(10) == b""
    sock.close()


def test_slow_client_does_not_block_others(make_server) -> None:
    server = make_server()
    slow = connect(server)
    assert read_line(slow).startswith(b"220 ")
    slow.sendall(b"EH")  # and nothing more
    fast = connect(server)
    assert read_line(fast).startswith(b"220 ")
    fast.sendall(b"NOOP\r\n")
    assert read_line(fast).startswith(b"250")
    fast.close()
    slow.close()


def test_implicit_tls_listener_speaks_tls_with_the_servers_certificate(server: Server) -> None:
    context = ssl.create_default_context(cafile=str(server.cert_path))
    context.check_hostname = False  # the certificate names the configured host, not 127.0.0.1
    with socket.create_connection(server.address("smtps"), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert read_line(tls).startswith(b"220 ")


def test_tls_below_1_2_is_refused(server: Server) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.TLSv1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    with socket.create_connection(server.address("smtps"), timeout=10) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                refused = tls.recv(10) == b""
        except (ssl.SSLError, OSError):
            refused = True
    assert refused


def test_garbage_on_the_tls_port_does_not_hurt_the_server(server: Server) -> None:
    with connect(server, "smtps") as sock:
        sock.sendall(b"EHLO plaintext.example\r\n" * 10)
        sock.settimeout(5)
        try:
            sock.recv(100)
        except OSError:
            pass
    with connect(server) as sock:
        assert read_line(sock).startswith(b"220 ")


def test_stop_says_goodbye_to_open_sessions(make_server) -> None:
    server = make_server()
    sock = connect(server)
    assert read_line(sock).startswith(b"220 ")
    server.stop()
    assert read_line(sock).startswith(b"421 ")
    sock.close()
