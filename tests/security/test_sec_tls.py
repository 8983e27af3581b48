"""TLS over real sockets: STARTTLS command injection (CVE-2011-0411) on SMTP, POP3 and IMAP;
TLS 1.2 as the minimum; the certificate reloaded on SIGHUP without dropping sessions."""

from __future__ import annotations

import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from security_helpers import greeted, read_until

from refmail.tls import generate_self_signed

#: The old versions are what these tests offer, to see them refused.
OLD_TLS = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")


def client_context(**versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for name, version in versions.items():
        setattr(context, name, version)
    return context


def one_packet(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` in one segment, as an attacker on the path would inject it."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(data)


def tls_read(sock: ssl.SSLSocket, *markers: bytes) -> bytes:
    return read_until(sock, *markers)  # type: ignore[arg-type]


# ---------------------------------------------------------------- CVE-2011-0411


def test_smtp_starttls_injection_is_discarded(server) -> None:
    sock = greeted(server.address("smtp"))
    sock.sendall(b"EHLO c.example.net\r\n")
    read_until(sock, b"\r\n250 ")
    one_packet(sock, b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.org>\r\n")
    assert read_until(sock, b"\r\n") == b"220 2.0.0 ready to start TLS\r\n"
    tls = client_context().wrap_socket(sock)
    with tls:
        tls.sendall(b"EHLO c.example.net\r\n")
        reply = tls_read(tls, b"\r\n250 ")
        assert reply.startswith(b"250-")  # the first thing heard is EHLO's answer
        tls.sendall(b"RCPT TO:<alice@example.test>\r\n")
        # The injected MAIL never ran: no transaction exists.
        assert tls_read(tls, b"\r\n").startswith(b"503 5.5.1")


def test_pop3_stls_injection_is_discarded(server) -> None:
    sock = greeted(server.address("pop3"))
    one_packet(sock, b"STLS\r\nUSER alice\r\n")
    assert read_until(sock, b"\r\n").startswith(b"+OK")
    tls = client_context().wrap_socket(sock)
    with tls:
        tls.sendall(b"PASS alice-pw\r\n")
        reply = tls_read(tls, b"\r\n")
        assert reply.startswith(b"-ERR"), reply  # the injected USER never ran
        tls.sendall(b"USER alice\r\nPASS alice-pw\r\n")
        assert tls_read(tls, b"maildrop").count(b"+OK") == 2


def test_imap_starttls_injection_is_discarded(server) -> None:
    sock = greeted(server.address("imap"))
    one_packet(sock, b"a STARTTLS\r\nb LOGIN alice alice-pw\r\n")
    assert read_until(sock, b"\r\n").startswith(b"a OK")
    tls = client_context().wrap_socket(sock)
    with tls:
        tls.sendall(b"c SELECT INBOX\r\nd NOOP\r\n")
        reply = tls_read(tls, b"d OK")
        assert b"b OK" not in reply and b"b NO" not in reply  # b was never answered
        assert b"c BAD" in reply or b"c NO" in reply  # still not authenticated


# ---------------------------------------------------------------- protocol versions


@OLD_TLS
@pytest.mark.parametrize("service", ["smtps", "pop3s", "imaps"])
def test_tls_1_2_accepted_1_1_refused_on_implicit_tls(server, service) -> None:
    ok = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with ok.wrap_socket(socket.create_connection(server.address(service), timeout=10)) as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.recv(100)
    old = client_context(
        minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1
    )
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # offer 1.0/1.1 even where the client won't
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError)):
        with old.wrap_socket(socket.create_connection(server.address(service), timeout=10)):
            pass


@OLD_TLS
def test_tls_1_1_refused_after_starttls(server) -> None:
    sock = greeted(server.address("imap"))
    sock.sendall(b"a STARTTLS\r\n")
    read_until(sock, b"a OK")
    old = client_context(
        minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1
    )
    with pytest.raises((ssl.SSLError, OSError)):
        old.wrap_socket(sock)
    sock.close()


# ---------------------------------------------------------------- SIGHUP reload


def peer_certificate(address: tuple[str, int]) -> bytes:
    raw = socket.create_connection(address, timeout=10)
    with client_context().wrap_socket(raw) as tls:
        cert = tls.getpeercert(binary_form=True)
        assert cert
        return cert


def test_sighup_reloads_the_certificate_and_keeps_sessions(serve_process, data_dir: Path):
    proc = serve_process()
    imaps = proc.address("imaps")
    before = peer_certificate(imaps)
    # Sessions open across the reload: one on implicit TLS, one upgraded by STARTTLS.
    held = client_context().wrap_socket(socket.create_connection(imaps, timeout=10))
    tls_read(held, b"\r\n")
    held.sendall(b"a LOGIN alice alice-pw\r\n")
    tls_read(held, b"a OK")
    plain = greeted(proc.address("smtp"))
    plain.sendall(b"STARTTLS\r\n")
    read_until(plain, b"\r\n")
    upgraded = client_context().wrap_socket(plain)
    # A renewal: new files in place, then SIGHUP.
    tls_dir = data_dir / "tls"
    generate_self_signed("renewed.example.test", tls_dir / "new-cert.pem", tls_dir / "new-key.pem")
    (tls_dir / "new-key.pem").replace(tls_dir / "key.pem")
    (tls_dir / "new-cert.pem").replace(tls_dir / "cert.pem")
    proc.proc.send_signal(signal.SIGHUP)
    expected = ssl.PEM_cert_to_DER_cert((tls_dir / "cert.pem").read_text())
    deadline = time.monotonic() + 10
    while (after := peer_certificate(imaps)) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    if after == before:
        pytest.fail(f"the certificate did not change; server log:\n{proc.stop()[2]}")
    assert after == expected
    assert peer_certificate(proc.address("pop3s")) == expected
    # STARTTLS on a new connection also gets the new certificate.
    fresh = greeted(proc.address("imap"))
    fresh.sendall(b"s STARTTLS\r\n")
    read_until(fresh, b"s OK")
    with client_context().wrap_socket(fresh) as tls:
        assert tls.getpeercert(binary_form=True) == expected
    # The sessions opened before the reload go on.
    held.sendall(b"b SELECT INBOX\r\n")
    selected = tls_read(held, b"b OK", b"b NO", b"b BAD")
    if b"b OK" not in selected:
        pytest.fail(f"{selected!r}; server log:\n{proc.stop()[2]}")
    upgraded.sendall(b"EHLO c.example.net\r\n")
    assert tls_read(upgraded, b"\r\n250 ").startswith(b"250-")
    held.close()
    upgraded.close()
    code, _, err = proc.stop()
    assert code == 0
    assert "reloaded" in err


def test_sighup_with_a_broken_certificate_keeps_the_old_one(serve_process, data_dir: Path):
    proc = serve_process()
    imaps = proc.address("imaps")
    before = peer_certificate(imaps)
    (data_dir / "tls" / "cert.pem").write_text("not a certificate\n")
    proc.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert peer_certificate(imaps) == before
    code, _, err = proc.stop()
    assert code == 0
    assert "reload failed" in err
