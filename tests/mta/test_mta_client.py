"""The delivery client against a test receiver on 127.0.0.1: per-recipient results,
extension checks (SIZE, 8BITMIME, SMTPUTF8), next-host fallback, STARTTLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from mta_helpers import FAST, HOSTNAME, message
from mta_receiver import Behaviour, Receiver, by_local_part

from refmail.mta.client import SmarthostPolicy, SMTPClient, reply_outcome
from refmail.mta.routes import Hop, Route
from refmail.tls import generate_self_signed

Start = Callable[..., Receiver]


def client(**kwargs: object) -> SMTPClient:
    return SMTPClient(helo_name=HOSTNAME, timeouts=FAST, **kwargs)  # type: ignore[arg-type]


def route_to(*receivers: Receiver, smarthost: bool = False) -> Route:
    return Route(tuple(Hop("127.0.0.1", r.port) for r in receivers), smarthost=smarthost)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_transaction_per_host_with_per_recipient_results(receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=by_local_part))
    rcpts = ["carol@remote.test", "temp@remote.test", "bad@remote.test", "dave@remote.test"]
    results = client().send(route_to(r), "alice@example.test", rcpts, message("one"))
    assert results["carol@remote.test"].kind == "delivered"
    assert results["dave@remote.test"].kind == "delivered"
    assert results["temp@remote.test"].kind == "temporary"
    assert results["temp@remote.test"].status == "4.2.0"
    assert results["bad@remote.test"].kind == "permanent"
    assert results["bad@remote.test"].code == 550
    assert results["bad@remote.test"].diagnostic == "smtp; 550 5.1.1 no such user"
    assert len(r.messages) == 1 and len(r.sessions) == 1
    got = r.messages[0]
    assert got.sender == "alice@example.test"
    assert got.recipients == ["carol@remote.test", "dave@remote.test"]
    assert got.data == message("one")
    assert f"SIZE={len(message('one'))}" in got.mail_params


def test_dot_stuffing_round_trip(receiver: Start) -> None:
    r = receiver()
    body = ".leading dot\r\n..two\r\n.\r\nend"  # no final CRLF: one is added
    results = client().send(route_to(r), "a@example.test", ["x@remote.test"], message(body=body))
    assert results["x@remote.test"].kind == "delivered"
    assert r.messages[0].data == message(body=body) + b"\r\n"


def test_data_refusal_applies_to_all_accepted(receiver: Start) -> None:
    r = receiver(Behaviour(data_reply=(554, "5.7.1 spam")))
    results = client().send(
        route_to(r), "a@example.test", ["x@remote.test", "y@remote.test"], message()
    )
    assert {o.kind for o in results.values()} == {"permanent"}
    assert results["y@remote.test"].status == "5.7.1"


def test_mail_from_refused(receiver: Start) -> None:
    r = receiver(Behaviour(mail_reply=(451, "4.3.0 try later")))
    results = client().send(route_to(r), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "temporary"
    r2 = receiver(Behaviour(mail_reply=(553, "5.7.1 sender rejected")))
    results = client().send(route_to(r2), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "permanent"


def test_too_big_for_next_hop_is_permanent_5_3_4(receiver: Start) -> None:
    r = receiver(Behaviour(extensions=["SIZE 100", "8BITMIME"]))
    results = client().send(
        route_to(r), "a@example.test", ["x@remote.test"], message(body="x" * 200)
    )
    assert results["x@remote.test"].kind == "permanent"
    assert results["x@remote.test"].status == "5.3.4"
    assert r.messages == []
    assert not any(c.startswith("MAIL") for c in r.sessions[0].commands)


def test_size_zero_means_no_limit(receiver: Start) -> None:
    r = receiver(Behaviour(extensions=["SIZE 0"]))
    results = client().send(
        route_to(r), "a@example.test", ["x@remote.test"], message(body="x" * 200)
    )
    assert results["x@remote.test"].kind == "delivered"


def test_8bit_needs_8bitmime(receiver: Start) -> None:
    eight_bit = message(body="Grüße\r\n")
    plain = receiver(Behaviour(extensions=["SIZE 100000"]))
    results = client().send(route_to(plain), "a@example.test", ["x@remote.test"], eight_bit)
    assert results["x@remote.test"].kind == "permanent"
    assert results["x@remote.test"].status == "5.6.3"
    assert plain.messages == []
    capable = receiver(Behaviour(extensions=["8BITMIME"]))
    results = client().send(route_to(capable), "a@example.test", ["x@remote.test"], eight_bit)
    assert results["x@remote.test"].kind == "delivered"
    assert "BODY=8BITMIME" in capable.messages[0].mail_params
    assert capable.messages[0].data == eight_bit


def test_utf8_address_needs_smtputf8(receiver: Start) -> None:
    plain = receiver(Behaviour(extensions=["8BITMIME"]))
    results = client().send(route_to(plain), "a@example.test", ["jürgen@remote.test"], message())
    assert results["jürgen@remote.test"].status == "5.6.7"
    assert results["jürgen@remote.test"].kind == "permanent"
    capable = receiver(Behaviour(extensions=["8BITMIME", "SMTPUTF8"]))
    results = client().send(route_to(capable), "a@example.test", ["jürgen@remote.test"], message())
    assert results["jürgen@remote.test"].kind == "delivered"
    assert capable.messages[0].recipients == ["jürgen@remote.test"]
    assert "SMTPUTF8" in capable.messages[0].mail_params


def test_next_host_after_connection_failure(receiver: Start) -> None:
    r = receiver()
    route = Route((Hop("127.0.0.1", closed_port()), Hop("127.0.0.1", r.port)))
    results = client().send(route, "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "delivered"
    assert len(r.messages) == 1


def test_unreachable_is_temporary() -> None:
    route = Route((Hop("127.0.0.1", closed_port()),))
    results = client().send(route, "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "temporary"
    assert results["x@remote.test"].status == "4.4.1"


def test_554_greeting(receiver: Start) -> None:
    busy = receiver(Behaviour(greeting=(421, "4.3.2 busy")))
    refusing = receiver(Behaviour(greeting=(554, "5.7.1 no service")))
    results = client().send(route_to(busy), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "temporary"
    results = client().send(route_to(refusing), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "permanent"


def test_bad_addresses_never_reach_the_wire(receiver: Start) -> None:
    r = receiver()
    results = client().send(route_to(r), "a@example.test", ["x@remote.test\r\nRSET"], message())
    assert results["x@remote.test\r\nRSET"].kind == "permanent"
    assert r.sessions == []


def tls_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed("localhost", cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def test_starttls_when_offered(receiver: Start, tmp_path: Path) -> None:
    context, _ = tls_context(tmp_path)
    r = receiver(Behaviour(tls_context=context))
    results = client().send(route_to(r), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "delivered"
    assert r.messages[0].tls
    commands = [c.upper() for c in r.sessions[0].commands]
    assert commands[0].startswith("EHLO") and commands[1] == "STARTTLS"
    assert commands[2].startswith("EHLO")  # RFC 3207 4.2: EHLO again after TLS


def test_smarthost_requiring_tls_without_starttls_defers(receiver: Start) -> None:
    r = receiver()
    smart = client(smarthost=SmarthostPolicy(tls_required=True))
    results = smart.send(
        route_to(r, smarthost=True), "a@example.test", ["x@remote.test"], message()
    )
    assert results["x@remote.test"].kind == "temporary"
    assert r.messages == []


def test_smarthost_tls_verified_against_its_certificate(receiver: Start, tmp_path: Path) -> None:
    server_context, cert = tls_context(tmp_path)
    r = receiver(Behaviour(tls_context=server_context))
    trusting = ssl.create_default_context(cafile=str(cert))
    smart = client(smarthost=SmarthostPolicy(tls_required=True, context=trusting))
    results = smart.send(
        route_to(r, smarthost=True), "a@example.test", ["x@remote.test"], message()
    )
    assert results["x@remote.test"].kind == "delivered"
    assert r.messages[0].tls
    untrusting = client(smarthost=SmarthostPolicy(tls_required=True))  # system CAs only
    results = untrusting.send(
        route_to(r, smarthost=True), "a@example.test", ["y@remote.test"], message()
    )
    assert results["y@remote.test"].kind == "temporary"
    assert len(r.messages) == 1


def test_reply_outcome_parses_enhanced_codes() -> None:
    assert reply_outcome(550, b"5.1.1 <x>: no such user", "h").status == "5.1.1"
    assert reply_outcome(550, b"no such user", "h").status == "5.0.0"
    assert reply_outcome(450, b"5.1.1 mismatched class", "h").status == "4.0.0"
    assert reply_outcome(250, b"2.0.0 ok", None).kind == "delivered"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_opportunistic_tls_falls_back_to_plaintext(receiver: Start, tmp_path: Path) -> None:
    """RFC 7435: a failed handshake with an MX is retried in plaintext on a new connection."""
    context, _ = tls_context(tmp_path)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    r = receiver(Behaviour(tls_context=context))
    results = client().send(route_to(r), "a@example.test", ["x@remote.test"], message())
    assert results["x@remote.test"].kind == "delivered"
    assert len(r.sessions) == 2 and not r.messages[0].tls
