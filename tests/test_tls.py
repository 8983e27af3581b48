"""TLS: a self-signed certificate on first start; a configured one is used as is."""

import dataclasses
import ssl
from pathlib import Path

from cryptography import x509

from refmail.config import TLSConfig, load_config
from refmail.tls import generate_self_signed, server_context


def test_self_signed_made_once_and_reused(tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path, hostname="mail.lab.test")
    context = server_context(config)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    cert_file = tmp_path / "tls" / "cert.pem"
    first = cert_file.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mail.lab.test" in names.get_values_for_type(x509.DNSName)
    assert (tmp_path / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    server_context(config)
    assert cert_file.read_bytes() == first


def test_configured_certificate_is_used_as_is(tmp_path: Path) -> None:
    cert, key = tmp_path / "mine.pem", tmp_path / "mine.key"
    generate_self_signed("configured.lab.test", cert, key)
    config = dataclasses.replace(
        load_config(data_dir=tmp_path / "data"), tls=TLSConfig(cert=cert, key=key)
    )
    server_context(config)
    assert not (tmp_path / "data" / "tls").exists()
