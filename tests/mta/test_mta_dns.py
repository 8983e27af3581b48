"""Routing with dnspython's real resolver against a DNS server on 127.0.0.1 (``dns_server``):
``[mta] nameservers``/``nameserver_port`` point the router at it, ``mx_port`` is the port of
the hosts it finds.  RFC 5321 5.1 (MX preference, implicit MX), RFC 7505 (null MX)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from dns_server import DNSServer

from refmail.config import MTAConfig, load_config
from refmail.mta.routes import Hop, RouteError, Router

ZONE = {
    "remote.test": {"MX": ["20 mx2.remote.test.", "10 mx1.remote.test.", "30 mx3.remote.test."]},
    "mx1.remote.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
    "mx2.remote.test": {"A": ["127.0.0.3"]},
    "mx3.remote.test": {},  # exists, no address: skipped, the others still tried
    "nomail.test": {"MX": ["0 ."]},
    "plain.test": {"A": ["127.0.0.4"]},
}


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    server = DNSServer(ZONE).start()
    yield server
    server.stop()


def router(server: DNSServer, **settings: object) -> Router:
    config = MTAConfig(nameservers=("127.0.0.1",), nameserver_port=server.port, **settings)  # type: ignore[arg-type]
    return Router(config)


def test_mx_hosts_in_preference_order_on_mx_port(dns_server: DNSServer) -> None:
    route = router(dns_server, mx_port=2525).route("Remote.Test")
    assert route.hops == (
        Hop("mx1.remote.test", 2525, "127.0.0.2"),
        Hop("mx1.remote.test", 2525, "::1"),
        Hop("mx2.remote.test", 2525, "127.0.0.3"),
    )
    assert ("remote.test", "MX") in dns_server.queries


def test_null_mx_fails_permanently_without_address_lookups(dns_server: DNSServer) -> None:
    with pytest.raises(RouteError) as info:
        router(dns_server).route("nomail.test")
    assert info.value.status == "5.1.10" and info.value.permanent
    assert [q for q in dns_server.queries if q[0] == "nomail.test"] == [("nomail.test", "MX")]


def test_no_mx_falls_back_to_the_domains_address(dns_server: DNSServer) -> None:
    route = router(dns_server).route("plain.test")
    assert route.hops == (Hop("plain.test", 25, "127.0.0.4"),)
    assert ("plain.test", "A") in dns_server.queries


def test_unknown_domain_is_permanent(dns_server: DNSServer) -> None:
    with pytest.raises(RouteError) as info:
        router(dns_server).route("nowhere.test")
    assert info.value.status == "5.1.2"


def test_unreachable_name_server_is_temporary() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound and silent: queries time out
        config = MTAConfig(nameservers=("127.0.0.1",), nameserver_port=port)
        r = Router(config)
        r.resolver.lifetime = 1.0  # type: ignore[attr-defined]
        with pytest.raises(RouteError) as info:
            r.route("remote.test")
    assert info.value.status == "4.4.3" and not info.value.permanent


def test_dns_settings_from_refmail_toml(tmp_path) -> None:
    (tmp_path / "refmail.toml").write_text(
        '[mta]\nnameservers = ["127.0.0.1", "::1"]\nnameserver_port = 5353\nmx_port = 2525\n'
    )
    mta = load_config(data_dir=tmp_path).mta
    assert mta.nameservers == ("127.0.0.1", "::1")
    assert (mta.nameserver_port, mta.mx_port) == (5353, 2525)
    assert (MTAConfig().nameservers, MTAConfig().nameserver_port, MTAConfig().mx_port) == (
        (),
        53,
        25,
    )
