"""Routing (RFC 5321 5.1, RFC 7505) with a fake resolver: no test touches the network."""

from __future__ import annotations

import dns.exception
import dns.resolver
import pytest
from mta_helpers import FakeResolver

from refmail.config import MTAConfig
from refmail.mta.routes import Hop, RouteError, Router, parse_host_port


def test_mx_in_preference_order_then_addresses() -> None:
    resolver = FakeResolver(
        {
            ("remote.test", "MX"): ["20 mx2.remote.test.", "10 mx1.remote.test."],
            ("mx1.remote.test", "A"): ["192.0.2.1"],
            ("mx1.remote.test", "AAAA"): ["2001:db8::1"],
            ("mx2.remote.test", "A"): ["192.0.2.2"],
        }
    )
    route = Router(MTAConfig(), resolver).route("Remote.Test.")
    assert route.hops == (
        Hop("mx1.remote.test", 25, "192.0.2.1"),
        Hop("mx1.remote.test", 25, "2001:db8::1"),
        Hop("mx2.remote.test", 25, "192.0.2.2"),
    )
    assert not route.smarthost


def test_equal_preferences_are_all_tried() -> None:
    resolver = FakeResolver(
        {
            ("remote.test", "MX"): ["10 a.remote.test.", "10 b.remote.test.", "5 c.remote.test."],
            ("a.remote.test", "A"): ["192.0.2.1"],
            ("b.remote.test", "A"): ["192.0.2.2"],
            ("c.remote.test", "A"): ["192.0.2.3"],
        }
    )
    hops = Router(MTAConfig(), resolver).route("remote.test").hops
    assert hops[0].host == "c.remote.test"
    assert {h.host for h in hops[1:]} == {"a.remote.test", "b.remote.test"}


def test_no_mx_falls_back_to_address_records() -> None:
    """RFC 5321 5.1: no MX -> the domain itself as an implicit MX."""
    resolver = FakeResolver(
        {("remote.test", "A"): ["192.0.2.7"], ("remote.test", "AAAA"): ["2001:db8::7"]}
    )
    hops = Router(MTAConfig(), resolver).route("remote.test").hops
    assert [h.address for h in hops] == ["192.0.2.7", "2001:db8::7"]
    assert all(h.host == "remote.test" and h.port == 25 for h in hops)


def test_null_mx_is_permanent() -> None:
    """RFC 7505: MX 0 "." means the domain accepts no mail: 5.1.10, no address lookups."""
    resolver = FakeResolver({("nomail.test", "MX"): ["0 ."]})
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), resolver).route("nomail.test")
    assert info.value.status == "5.1.10" and info.value.permanent
    assert resolver.queries == [("nomail.test", "MX")]


def test_nxdomain_is_permanent_and_timeout_temporary() -> None:
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), FakeResolver({})).route("nowhere.test")
    assert info.value.permanent and info.value.status == "5.1.2"
    slow = FakeResolver({("slow.test", "MX"): dns.exception.Timeout()})
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), slow).route("slow.test")
    assert not info.value.permanent and info.value.status == "4.4.3"
    broken = FakeResolver({("broken.test", "MX"): dns.resolver.NoNameservers()})
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), broken).route("broken.test")
    assert not info.value.permanent


def test_mx_host_without_address_is_skipped() -> None:
    resolver = FakeResolver(
        {
            ("remote.test", "MX"): ["10 gone.remote.test.", "20 ok.remote.test."],
            ("ok.remote.test", "A"): ["192.0.2.9"],
        }
    )
    hops = Router(MTAConfig(), resolver).route("remote.test").hops
    assert hops == (Hop("ok.remote.test", 25, "192.0.2.9"),)
    lonely = FakeResolver({("remote.test", "MX"): ["10 gone.remote.test."]})
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), lonely).route("remote.test")
    assert info.value.permanent


def test_domain_without_mx_or_address_is_permanent() -> None:
    resolver = FakeResolver({("bare.test", "TXT"): ['"v=spf1 -all"']})
    with pytest.raises(RouteError) as info:
        Router(MTAConfig(), resolver).route("bare.test")
    assert info.value.permanent


def test_fixed_route_and_smarthost_win_over_dns() -> None:
    resolver = FakeResolver({})
    config = MTAConfig(routes={"Remote.Test": "127.0.0.1:2525"}, smarthost="relay.test:587")
    router = Router(config, resolver)
    assert router.route("remote.test").hops == (Hop("127.0.0.1", 2525),)
    smart = router.route("other.test")
    assert smart.hops == (Hop("relay.test", 587),) and smart.smarthost
    assert resolver.queries == []


def test_address_literal() -> None:
    router = Router(MTAConfig(), FakeResolver({}))
    assert router.route("[192.0.2.5]").hops == (Hop("192.0.2.5", 25),)
    assert router.route("[IPv6:2001:db8::5]").hops == (Hop("2001:db8::5", 25),)
    with pytest.raises(RouteError):
        router.route("[not-an-ip]")


@pytest.mark.parametrize(
    ("text", "hop"),
    [
        ("host.test:2525", Hop("host.test", 2525)),
        ("host.test", Hop("host.test", 25)),
        ("[::1]:2525", Hop("::1", 2525)),
        ("127.0.0.1:1", Hop("127.0.0.1", 1)),
    ],
)
def test_parse_host_port(text: str, hop: Hop) -> None:
    assert parse_host_port(text) == hop


@pytest.mark.parametrize("text", ["host:0", "host:65536", ":25", "host:x", "[::1]x"])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)
