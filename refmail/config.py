"""Configuration: embedded defaults, then ``DATA/refmail.toml``, then command-line flags.

The result is one tree of frozen dataclasses handed to every component at construction; nothing
reads configuration from anywhere else (DESIGN.md).  ``load_config`` is the only entry point.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: Standard port of each service (DESIGN.md, "Listeners"); the listening port is base + this.
STANDARD_PORTS: Mapping[str, int] = {
    "smtp": 25,
    "submission": 587,
    "smtps": 465,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
}
#: Services whose connections start with TLS (implicit TLS, RFC 8314).
IMPLICIT_TLS = frozenset({"smtps", "pop3s", "imaps"})
DEFAULT_PORT_BASE = 10000


class ConfigError(ValueError):
    """The configuration file or a flag holds a value refmail cannot use."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit is a named setting with a safe default; past it the client gets its
    protocol's error and the server goes on (DESIGN.md, "Concurrency")."""

    max_connections: int = 200
    max_connections_per_ip: int = 30
    #: RFC 5321 4.5.3.2.7: a server SHOULD wait at least 5 minutes for the next command.
    smtp_idle_timeout: float = 300.0
    #: RFC 1939 3: an inactivity autologout timer of at least 10 minutes.
    pop3_idle_timeout: float = 600.0
    #: RFC 3501 5.4: at least 30 minutes of inactivity before autologout.
    imap_idle_timeout: float = 1800.0
    #: RFC 5321 4.5.3.1.4: 512 octets including CRLF.
    smtp_command_line: int = 512
    #: RFC 5321 4.5.3.1.6: 1000 octets including CRLF.
    smtp_text_line: int = 1000
    #: RFC 1870 SIZE, advertised in EHLO; 35 MiB as Postfix's message_size_limit order.
    message_size: int = 36_700_160
    #: RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
    recipients: int = 100
    #: The header section of a received message (RFC 5322 2.1): at most this many fields and
    #: octets, else 554 5.6.0.  RFC 5322 sets no bound; Postfix bounds one field at 100 KiB
    #: (header_size_limit), and a real header section is a few KiB with tens of fields.
    max_header_fields: int = 1000
    max_header_size: int = 262_144
    #: Failed AUTH/LOGIN/PASS attempts on one connection before it is closed.
    auth_failures_per_connection: int = 3
    #: First delay after a failed login, doubled per failure from the same address or user.
    auth_failure_delay: float = 1.0
    #: Failed logins counted for one address or one user name (within 15 minutes) after which
    #: every attempt from it or for it is refused for ``auth_lockout_seconds``; 0 disables.
    auth_lockout_failures: int = 10
    auth_lockout_seconds: float = 300.0
    #: RFC 2449 / RFC 1939 command line; RFC 2449 4 says 255 octets, we allow more for SASL.
    pop3_command_line: int = 8192
    imap_command_line: int = 65536
    imap_literal_size: int = 36_700_160


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """``cert``/``key`` configured: used as is.  Neither: ``DATA/tls/`` self-signed."""

    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True, slots=True)
class MTAConfig:
    """Outbound relay (DESIGN.md, "Listeners and the command-line contract")."""

    routes: Mapping[str, str] = field(default_factory=dict)
    smarthost: str | None = None
    smarthost_user: str | None = None
    smarthost_password: str | None = None
    smarthost_tls: str = "opportunistic"  # or "required"
    #: CA file to verify a smarthost's certificate with (None: the system's trust store).
    smarthost_ca: Path | None = None
    retry: tuple[int, ...] = (60, 300, 900, 1800, 3600, 7200, 14400)
    give_up_after: int = 5 * 24 * 3600  # RFC 5321 4.5.4.1: 4-5 days
    max_outbound_connections: int = 10
    #: Seconds after which the sender is told once that delivery is delayed (None: never).
    delay_warning_after: int | None = None
    #: Name servers (IP addresses) for MX/A lookups; empty: the system's (/etc/resolv.conf).
    nameservers: tuple[str, ...] = ()
    #: Their UDP/TCP port (RFC 1035 4.2: 53); tests point it at a server on loopback.
    nameserver_port: int = 53
    #: Port of MX and implicit-MX hosts (RFC 5321 4.5.4, 5.1: 25); tests use a free one.
    mx_port: int = 25


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("refmail-data")
    listen: str = "127.0.0.1"
    port_base: int = DEFAULT_PORT_BASE
    #: Per-service port overrides; ``0`` asks the OS for a free port (tests).
    ports: Mapping[str, int] = field(default_factory=dict)
    #: Services to start; default all of STANDARD_PORTS.
    services: tuple[str, ...] = tuple(STANDARD_PORTS)
    hostname: str = field(default_factory=socket.getfqdn)
    #: Local mail domains.  Empty means just ``hostname``.
    domains: tuple[str, ...] = ()
    #: User that receives postmaster@ each local domain (RFC 5321 4.5.1); None: the first user.
    postmaster: str | None = None
    #: Allow plaintext auth on non-TLS, non-loopback connections (DESIGN.md: off).
    allow_plaintext_auth: bool = False
    #: VRFY answers 252 (cannot verify) unless enabled (RFC 5321 3.5.3, 7.3).
    vrfy: bool = False
    #: An authenticated user may only use envelope senders that are their own addresses
    #: (``user@`` a local domain) or the null sender; else 553 5.7.1 (RFC 6409 6.1).
    restrict_senders: bool = True
    #: The Received field of mail from an authenticated user omits the client's HELO name
    #: and IP address (RFC 5321 7.6; Postfix sites do it with header_checks).
    hide_client_ip: bool = False
    limits: Limits = field(default_factory=Limits)
    tls: TLSConfig = field(default_factory=TLSConfig)
    mta: MTAConfig = field(default_factory=MTAConfig)

    @property
    def local_domains(self) -> tuple[str, ...]:
        """The configured domains (the first is the primary one), then the hostname.

        The hostname is always local, as in Postfix's default ``mydestination``: it is the name
        the greeting gives (RFC 5321 4.1.1.1) and the domain a UA falls back to for ``user@``,
        so mail from ``user@hostname`` can be answered and bounced to."""
        names = [d.lower().rstrip(".") for d in (*self.domains, self.hostname)]
        return tuple(dict.fromkeys(names))

    def port(self, service: str) -> int:
        """The port ``service`` listens on: an explicit override or base + standard port."""
        if service in self.ports:
            return self.ports[service]
        return self.port_base + STANDARD_PORTS[service]

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def users_file(self) -> Path:
        return self.data_dir / "users"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"


def _build(cls: type, table: Mapping[str, Any], where: str) -> Any:
    """Make a dataclass from a TOML table, refusing unknown keys (a typo must not pass)."""
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}")
        values[name] = value
    return values


def _from_toml(doc: Mapping[str, Any], base: Config) -> Config:
    top = dict(doc)
    limits = _build(Limits, top.pop("limits", {}), "[limits]")
    tls = _build(TLSConfig, top.pop("tls", {}), "[tls]")
    mta_table = dict(top.pop("mta", {}))
    routes = mta_table.pop("routes", {})
    mta = _build(MTAConfig, mta_table, "[mta]")
    ports = top.pop("ports", {})
    unknown_ports = set(ports) - set(STANDARD_PORTS)
    if unknown_ports:
        raise ConfigError(f"[ports]: unknown service {sorted(unknown_ports)[0]!r}")
    values = _build(Config, top, "refmail.toml")
    for key in ("domains", "services"):
        if key in values:
            values[key] = tuple(values[key])
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    for key in ("cert", "key"):
        if key in tls:
            tls[key] = Path(tls[key])
    if "smarthost_ca" in mta:
        mta["smarthost_ca"] = Path(mta["smarthost_ca"])
    if "retry" in mta:
        mta["retry"] = tuple(int(s) for s in mta["retry"])
    if "nameservers" in mta:
        mta["nameservers"] = tuple(str(s) for s in mta["nameservers"])
    return replace(
        base,
        **values,
        ports={**base.ports, **ports},
        limits=replace(base.limits, **limits),
        tls=replace(base.tls, **tls),
        mta=replace(base.mta, **mta, routes={**base.mta.routes, **routes}),
    )


def load_config(
    data_dir: Path | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> Config:
    """Defaults, then the TOML file (``config_file`` or ``DATA/refmail.toml`` if present),
    then ``overrides`` (the command-line flags that were given; None values are ignored).

    ``overrides`` may hold top-level Config fields plus ``routes`` (merged into mta.routes)
    and ``smarthost``.
    """
    config = Config()
    if data_dir is not None:
        config = replace(config, data_dir=Path(data_dir))
    path = config_file if config_file is not None else config.data_dir / "refmail.toml"
    if config_file is not None or path.exists():
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        config = _from_toml(doc, config)
        if data_dir is not None:  # the flag wins over the file
            config = replace(config, data_dir=Path(data_dir))
    routes = overrides.pop("routes", None)
    smarthost = overrides.pop("smarthost", None)
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in ("domains", "services"):
        if key in given:
            given[key] = tuple(given[key])
    config = replace(config, **given)
    if routes or smarthost:
        config = replace(
            config,
            mta=replace(
                config.mta,
                routes={**config.mta.routes, **(routes or {})},
                smarthost=smarthost or config.mta.smarthost,
            ),
        )
    unknown = set(config.services) - set(STANDARD_PORTS)
    if unknown:
        raise ConfigError(f"unknown service {sorted(unknown)[0]!r}")
    for service in config.services:
        if not 0 <= config.port(service) <= 65535:
            raise ConfigError(f"{service}: port {config.port(service)} is out of range")
    return config
