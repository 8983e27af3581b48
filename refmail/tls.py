"""TLS: the server's ``ssl.SSLContext``, and a self-signed certificate made on first start.

The stdlib ``ssl`` defaults apply (``create_default_context``), with TLS 1.2 as the minimum
(DESIGN.md, "Authentication and TLS"; RFC 8996 deprecates 1.0/1.1).  When no certificate is
configured, one for the hostname is generated under ``DATA/tls/`` with ``cryptography`` and
reused on later starts; the log says how to install a real one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from refmail.config import Config

log = logging.getLogger(__name__)

#: A self-signed certificate lives this long; it is regenerated once expired.
SELF_SIGNED_DAYS = 825


def generate_self_signed(hostname: str, cert_path: Path, key_path: Path) -> None:
    """Write a self-signed certificate and its key (EC P-256) for ``hostname``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    for address in ("127.0.0.1", "::1"):
        alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _expired(cert_path: Path) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc <= dt.datetime.now(dt.UTC)


def certificate_paths(config: Config) -> tuple[Path, Path]:
    """The configured cert/key, or the self-signed pair (made now if missing or expired)."""
    if config.tls.cert is not None or config.tls.key is not None:
        if config.tls.cert is None or config.tls.key is None:
            raise ValueError("[tls] needs both cert and key")
        return config.tls.cert, config.tls.key
    cert_path, key_path = config.tls_dir / "cert.pem", config.tls_dir / "key.pem"
    if not (cert_path.exists() and key_path.exists()) or _expired(cert_path):
        generate_self_signed(config.hostname, cert_path, key_path)
        log.warning(
            "generated a self-signed certificate %s for %s; to use a real one, set "
            '[tls] cert = "/path/fullchain.pem" and key = "/path/privkey.pem" in %s',
            cert_path,
            config.hostname,
            config.data_dir / "refmail.toml",
        )
    return cert_path, key_path


def server_context(config: Config) -> ssl.SSLContext:
    """The server-side context: stdlib defaults, TLS 1.2 or newer."""
    cert_path, key_path = certificate_paths(config)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
