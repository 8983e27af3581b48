"""The next hop for a recipient domain (RFC 5321 5.1).

In order: a fixed route for the domain (``[mta.routes]`` / ``--route DOMAIN=HOST:PORT``), the
smarthost (``config.mta.smarthost``), else the domain's MX records tried in preference order,
else its A/AAAA records as an implicit MX of preference 0.  A null MX (RFC 7505) or a domain
that does not exist fails permanently; a resolver that cannot answer now fails temporarily.

The resolver is passed in (anything with dnspython's ``resolve(qname, rdtype)``), so tests
answer from a fake and never touch the network; without one, dnspython's resolver asks
``config.nameservers`` on ``config.nameserver_port`` (default: the system's name servers).
Hosts found by MX, A/AAAA or an address literal are reached on ``config.mx_port`` (25).
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from refmail.config import MTAConfig

log = logging.getLogger(__name__)

#: RFC 5321 4.5.4 / 5.1: mail between MTAs goes to port 25.
SMTP_PORT = 25
#: RFC 5321 5.1: "a reasonable limit" on the MX hosts tried per domain; Postfix tries 5.
MAX_MX_HOSTS = 5
#: Seconds a lookup may take before it counts as a temporary failure.
DNS_LIFETIME = 30.0


class Resolver(Protocol):
    """The part of ``dns.resolver.Resolver`` used here."""

    def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


class RouteError(Exception):
    """No next hop: ``status`` is the RFC 3463 code, class 4 (retry) or 5 (bounce)."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass(frozen=True, slots=True)
class Hop:
    """One host to try: its name (for HELO, TLS and logs), the address to connect to
    (None: let the OS resolve ``host``) and the port."""

    host: str
    port: int = SMTP_PORT
    address: str | None = None

    @property
    def connect_to(self) -> str:
        return self.address or self.host

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        extra = f" [{self.address}]" if self.address and self.address != self.host else ""
        return f"{shown}:{self.port}{extra}"


@dataclass(frozen=True, slots=True)
class Route:
    """The hops for a domain, best first; ``smarthost`` routes may carry credentials and
    may require TLS (``config.mta.smarthost_tls``)."""

    hops: tuple[Hop, ...]
    smarthost: bool = False

    @property
    def key(self) -> tuple[tuple[Hop, ...], bool]:
        """Recipients whose routes share this key go in one transaction (one host)."""
        return self.hops, self.smarthost


def parse_host_port(text: str, default_port: int = SMTP_PORT) -> Hop:
    """``host:port``, ``[v6]:port``, ``host`` -> Hop; ValueError on a bad port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad host:port {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return Hop(host=host, port=port)


def _address_literal(domain: str, port: int = SMTP_PORT) -> Hop | None:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 4.1.3): deliver to that address."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return Hop(host=str(ipaddress.ip_address(inner)), port=port)
    except ValueError:
        raise RouteError("5.1.2", f"bad address literal {domain}") from None


def default_resolver(config: MTAConfig | None = None) -> Resolver:
    """dnspython's resolver: over ``config.nameservers`` when set, else the system's name
    servers (/etc/resolv.conf); on ``config.nameserver_port``."""
    import dns.resolver

    if config is not None and config.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(config.nameservers)
    else:
        resolver = dns.resolver.Resolver()
    if config is not None:
        resolver.port = config.nameserver_port
    resolver.lifetime = DNS_LIFETIME
    return resolver


class Router:
    """``route(domain) -> Route`` from the configuration, then DNS."""

    def __init__(self, config: MTAConfig, resolver: Resolver | None = None) -> None:
        self.config = config
        self.routes = {d.lower().rstrip("."): parse_host_port(h) for d, h in config.routes.items()}
        self.smarthost = parse_host_port(config.smarthost) if config.smarthost else None
        self._resolver = resolver

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:  # made on first use: a server with routes only needs none
            self._resolver = default_resolver(self.config)
        return self._resolver

    def route(self, domain: str) -> Route:
        """The next hop for ``domain``; RouteError (4.x.x or 5.x.x) when there is none."""
        name = domain.lower().rstrip(".")
        if name in self.routes:
            return Route((self.routes[name],))
        if self.smarthost is not None:
            return Route((self.smarthost,), smarthost=True)
        literal = _address_literal(name, self.config.mx_port)
        if literal is not None:
            return Route((literal,))
        return Route(tuple(self.mx_hops(name)))

    def mx_hops(self, domain: str) -> list[Hop]:
        """MX hosts in preference order, equal preferences shuffled (RFC 5321 5.1), each
        expanded to its addresses; no MX: the domain's own A/AAAA (implicit MX)."""
        records = self._lookup(domain, "MX")
        if records is None:  # no MX records: implicit MX of preference 0 (RFC 5321 5.1)
            implicit = self._addresses(domain, domain)
            if not implicit:
                raise RouteError("5.1.2", f"{domain} has no MX and no address records")
            return implicit
        mx = [(int(r.preference), str(r.exchange).rstrip(".").lower()) for r in records]
        if any(not host for _, host in mx):
            # RFC 7505 3: a single MX with "." is a null MX: the domain accepts no mail.
            raise RouteError("5.1.10", f"{domain} accepts no mail (null MX, RFC 7505)")
        random.shuffle(mx)  # then a stable sort: equal preferences stay in random order
        mx.sort(key=lambda pair: pair[0])
        hops: list[Hop] = []
        temporary: RouteError | None = None
        for _, host in mx[:MAX_MX_HOSTS]:
            try:
                hops.extend(self._addresses(host, host))
            except RouteError as exc:  # one bad MX host does not sink the others
                if not exc.permanent:
                    temporary = exc
                log.info("MX host %s of %s: %s", host, domain, exc.text)
        if not hops:
            if temporary is not None:
                raise temporary
            raise RouteError("5.4.4", f"no MX host of {domain} has an address")
        return hops

    def _addresses(self, host: str, domain: str) -> list[Hop]:
        hops: list[Hop] = []
        temporary: RouteError | None = None
        for rdtype in ("A", "AAAA"):
            try:
                records = self._lookup(host, rdtype)
            except RouteError as exc:
                if exc.permanent:
                    raise
                temporary = exc
                continue
            for record in records or ():
                hops.append(Hop(host=host, port=self.config.mx_port, address=str(record.address)))
        if not hops and temporary is not None:
            raise temporary
        return hops

    def _lookup(self, name: str, rdtype: str) -> list[Any] | None:
        """The records, or None for "name exists, no such records"; RouteError otherwise."""
        import dns.exception
        import dns.resolver

        try:
            return list(self.resolver.resolve(name, rdtype))
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NXDOMAIN:
            raise RouteError("5.1.2", f"{name}: no such domain") from None
        except dns.exception.Timeout:
            raise RouteError("4.4.3", f"{name}: DNS lookup timed out") from None
        except dns.exception.DNSException as exc:  # NoNameservers, YXDOMAIN, ...
            raise RouteError("4.4.3", f"{name}: DNS lookup failed: {exc}") from None
