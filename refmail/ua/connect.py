"""Where the user agent connects and how it trusts the server (DESIGN.md, "Listeners").

``--server HOST`` with ``--port-base N`` derives the submission and IMAP ports as ``serve``
does (N + 587, N + 143); ``--smtp HOST:PORT`` and ``--imap HOST:PORT`` name any other server.
TLS: STARTTLS whenever the server offers it (RFC 3207, RFC 3501 6.2.1).  The certificate is
verified against ``--cafile``, or ``DATA/tls/cert.pem`` when ``--data`` is given (the
self-signed certificate ``serve`` made); with neither, a loopback server is trusted without
verification (the traffic never leaves this machine) and any other server must present a
certificate the system trusts.  Credentials are never sent in plaintext to a non-loopback host.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path

from refmail.config import DEFAULT_PORT_BASE, STANDARD_PORTS

log = logging.getLogger(__name__)

#: Seconds to wait for the server on connect and on each reply.
CLIENT_TIMEOUT = 60.0


class UAError(Exception):
    """Something the user should be told in one line; the command exits 1."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UAError(f"expected HOST:PORT, not {text!r}")
    return Endpoint(host, int(port))


def endpoint(
    explicit: str | None, server: str | None, port_base: int | None, service: str
) -> Endpoint:
    """The submission or IMAP endpoint from the flags."""
    if explicit:
        return parse_endpoint(explicit)
    base = DEFAULT_PORT_BASE if port_base is None else port_base
    return Endpoint(server or "127.0.0.1", base + STANDARD_PORTS[service])


def tls_context(target: Endpoint, cafile: Path | None) -> ssl.SSLContext:
    """The context STARTTLS uses for ``target`` (see the module docstring)."""
    if cafile is not None:
        if not cafile.exists():
            raise UAError(f"{cafile}: no such certificate file")
        return ssl.create_default_context(cafile=str(cafile))
    if target.loopback:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context()


def cafile_from(cafile: Path | None, data: Path | None) -> Path | None:
    if cafile is not None:
        return cafile
    if data is not None:
        return data / "tls" / "cert.pem"
    return None


def open_smtp(target: Endpoint, context: ssl.SSLContext, user: str, password: str) -> smtplib.SMTP:
    """Connected, STARTTLS'd when offered, logged in (RFC 6409 submission, RFC 4954 AUTH)."""
    try:
        smtp = smtplib.SMTP(target.host, target.port, timeout=CLIENT_TIMEOUT)
    except (OSError, smtplib.SMTPException) as exc:
        raise UAError(f"cannot connect to {target}: {exc}") from None
    try:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        elif not target.loopback:
            raise UAError(f"{target} offers no STARTTLS; not sending the password in clear")
        smtp.login(user, password)
    except smtplib.SMTPAuthenticationError:
        smtp.close()
        raise UAError(f"login as {user} refused by {target}") from None
    except smtplib.SMTPNotSupportedError:
        smtp.close()
        raise UAError(f"{target} does not offer AUTH") from None
    except ssl.SSLError as exc:
        smtp.close()
        raise UAError(f"TLS with {target} failed: {exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        smtp.close()
        raise UAError(f"{target}: {exc}") from None
    except UAError:
        smtp.close()
        raise
    return smtp


def open_imap(target: Endpoint, context: ssl.SSLContext, user: str, password: str) -> imaplib.IMAP4:
    """Connected, STARTTLS'd when offered (RFC 3501 6.2.1), logged in (6.2.3)."""
    try:
        imap = imaplib.IMAP4(target.host, target.port, timeout=CLIENT_TIMEOUT)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise UAError(f"cannot connect to {target}: {exc}") from None
    try:
        if "STARTTLS" in imap.capabilities:
            imap.starttls(ssl_context=context)
        elif not target.loopback:
            raise UAError(f"{target} offers no STARTTLS; not sending the password in clear")
        imap.login(user, password)
    except ssl.SSLError as exc:
        _close_imap(imap)
        raise UAError(f"TLS with {target} failed: {exc}") from None
    except imaplib.IMAP4.error as exc:
        _close_imap(imap)
        raise UAError(f"login as {user} refused by {target}: {_text(exc)}") from None
    except OSError as exc:
        _close_imap(imap)
        raise UAError(f"{target}: {exc}") from None
    except UAError:
        _close_imap(imap)
        raise
    return imap


def _close_imap(imap: imaplib.IMAP4) -> None:
    try:
        imap.shutdown()
    except OSError:
        pass


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
