"""Other next hops, live: a smarthost with AUTH (the other refmail's submission port, a user
there, TLS verified against its certificate), and MX routing through a DNS server on
127.0.0.1 (``[mta] nameservers``/``nameserver_port``; ``mx_port`` is the other refmail's SMTP
port): MX preference order, falling through to the next MX, null MX, A fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_server import DNSServer
from live_helpers import Instance, wait_for
from mta_receiver import Receiver


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    """Instances started by a test; all killed at its end."""
    made: list[Instance] = []
    yield made
    for instance in made:
        instance.close()


def sender_side(tmp_path: Path, name: str = "a") -> Instance:
    return Instance(
        tmp_path,
        name,
        hostname="mx.example.test",
        domains=("example.test",),
        users={"alice": "alice-pw"},
    )


def logs(*instances: Instance) -> str:
    return "\n".join(i.describe() for i in instances)


def test_smarthost_with_auth(tmp_path: Path, instances: list[Instance]) -> None:
    relay = Instance(
        tmp_path,
        "relay",
        hostname="relay.remote.test",
        domains=("remote.test",),
        users={"carol": "carol-pw", "gateway": "gateway-pw"},
    )
    instances.append(relay)
    # The relay lets its gateway user send for others' domains: a smarthost's job.
    relay.start(restrict_senders=False)
    host, port = relay.address("submission")
    smarthost = {
        "smarthost": f"{host}:{port}",
        "smarthost_user": "gateway",
        "smarthost_tls": "required",
        "smarthost_ca": str(relay.data_dir / "tls" / "cert.pem"),
    }
    a = sender_side(tmp_path)
    instances.append(a)
    a.start(mta={**smarthost, "smarthost_password": "gateway-pw"})
    a.submit("alice", "alice@example.test", ["carol@remote.test"], "via smarthost")
    wait_for(lambda: len(relay.inbox("carol")) == 1, why=lambda: logs(a, relay))
    (got,) = relay.inbox("carol")
    assert got["Subject"] == "via smarthost"
    assert got["Return-Path"] == "<alice@example.test>"
    # The relay's trace: a came over TLS and authenticated (RFC 3848 ESMTPSA).
    assert "with ESMTPSA" in got.get_all("Received")[0]
    wait_for(lambda: a.queued() == [], why=lambda: logs(a))

    # A wrong password: our configuration is at fault, not the message; it stays queued.
    a2 = sender_side(tmp_path, "a2")
    instances.append(a2)
    a2.start(mta={**smarthost, "smarthost_password": "wrong"})
    a2.submit("alice", "alice@example.test", ["carol@remote.test"], "bad login")
    wait_for(lambda: any(e.get("attempts", 0) >= 1 for e in a2.queued()), why=lambda: logs(a2))
    (rcpt,) = a2.queued()[0]["recipients"]
    assert rcpt["state"] == "pending" and rcpt["status"] == "4.7.0", rcpt
    assert "refused login" in rcpt["diagnostic"]
    assert a2.inbox("alice") == []
    assert len(relay.inbox("carol")) == 1


def test_mx_routing_through_a_local_name_server(tmp_path: Path, instances: list[Instance]) -> None:
    b = Instance(
        tmp_path,
        "b",
        hostname="mx.remote.test",
        domains=("pref.test", "fallback.test", "plain.test"),
        users={"carol": "carol-pw"},
    )
    instances.append(b)
    b.start()
    port = b.address("smtp")[1]
    # MX 10 of pref.test: another SMTP server on the same port of 127.0.0.2.
    preferred = Receiver(address=("127.0.0.2", port)).start()
    dns = DNSServer(
        {
            "pref.test": {"MX": ["20 mx2.pref.test.", "10 mx1.pref.test."]},
            "mx1.pref.test": {"A": ["127.0.0.2"]},
            "mx2.pref.test": {"A": ["127.0.0.1"]},
            # MX 10 refuses connections (nothing on 127.0.0.3): the MX 20 host gets it.
            "fallback.test": {"MX": ["10 down.fallback.test.", "20 up.fallback.test."]},
            "down.fallback.test": {"A": ["127.0.0.3"]},
            "up.fallback.test": {"A": ["127.0.0.1"]},
            "nomail.test": {"MX": ["0 ."]},  # RFC 7505 null MX
            "plain.test": {"A": ["127.0.0.1"]},  # no MX: implicit MX (RFC 5321 5.1)
        }
    ).start()
    try:
        a = sender_side(tmp_path)
        instances.append(a)
        a.start(mta={"nameservers": ["127.0.0.1"], "nameserver_port": dns.port, "mx_port": port})
        for rcpt in ("carol@pref.test", "carol@fallback.test", "carol@plain.test", "x@nomail.test"):
            a.submit("alice", "alice@example.test", [rcpt], f"to {rcpt}")
        wait_for(lambda: a.queued() == [], why=lambda: logs(a, b))
        wait_for(lambda: len(b.inbox("carol")) == 2, why=lambda: logs(a, b))
        assert sorted(str(m["Subject"]) for m in b.inbox("carol")) == [
            "to carol@fallback.test",
            "to carol@plain.test",
        ]
        (first,) = preferred.messages
        assert first.recipients == ["carol@pref.test"]
        assert b"Subject: to carol@pref.test" in first.data
        wait_for(lambda: len(a.inbox("alice")) == 1, why=lambda: logs(a))
        (bounce,) = a.inbox("alice")
        per_recipient = bounce.get_payload()[1].get_payload()[1]
        assert per_recipient["Final-Recipient"] == "rfc822; x@nomail.test"
        assert per_recipient["Status"] == "5.1.10"
        assert ("nomail.test", "A") not in dns.queries  # a null MX ends the lookup
        assert ("plain.test", "MX") in dns.queries and ("plain.test", "A") in dns.queries
    finally:
        preferred.stop()
        dns.stop()
