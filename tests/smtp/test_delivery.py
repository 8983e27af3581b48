"""Local delivery (address resolution, trace fields) and the outbound spool."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from email.utils import format_datetime, localtime

import pytest

from refmail.delivery import received_header, rfc5322_date, strip_headers, trace_name
from refmail.mta.spool import Spool
from refmail.store.mboxfmt import new_entry, parse_entry


@pytest.mark.parametrize(
    "address, user",
    [
        ("jones@foo.com", "jones"),
        ("JONES@FOO.COM", "jones"),
        ("jones@example.test.", "jones"),
        ('"jones"@foo.com', "jones"),
        ("green@foo.com", None),
        ("jones@xyz.com", None),
        ("jones%xyz.com@foo.com", None),
        ("jones@foo.com@xyz.com", None),
        ("jones@[127.0.0.1]", None),
        ("jones", None),
        ("postmaster", "alice"),
        ("PostMaster@example.test", "alice"),
        ("postmaster@xyz.com", None),
    ],
)
def test_resolve(world, address, user):
    assert world.delivery.resolve(address) == user


def test_local_address_classification(world):
    delivery = world.delivery
    assert delivery.is_local_address("green@foo.com")  # local, unknown user: 550 5.1.1
    assert delivery.is_local_address("postmaster")
    for foreign in ("x@xyz.com", "x%y@foo.com", "x!y@foo.com", "a@[10.0.0.1]", "jones"):
        assert not delivery.is_local_address(foreign)
    assert delivery.is_local_domain("FOO.COM.") and not delivery.is_local_domain("[127.0.0.1]")


def test_deliver_one_copy_per_user(world):
    received = received_header(
        helo="bar.com",
        peer_ip="192.0.2.1",
        hostname="mx.foo.com",
        protocol="ESMTP",
        message_id="ABC",
        recipient=None,
    )
    done = world.delivery.deliver(
        b"Subject: x\r\n\r\nhi\r\n",
        ["jones", "brown", "jones"],
        return_path="s@bar.com",
        received=received,
    )
    assert [user for user, _ in done] == ["jones", "brown"]
    (message,) = world.inbox("jones")
    assert message.startswith(b"Return-Path: <s@bar.com>\r\nReceived: from bar.com ([192.0.2.1])")
    assert message.endswith(b"Subject: x\r\n\r\nhi\r\n")


def test_received_header_shape():
    header = received_header(
        helo="client.example",
        peer_ip="2001:db8::1",
        hostname="mx.foo.com",
        protocol="ESMTPSA",
        message_id="ID1",
        recipient="jones@foo.com",
        when=0,
    ).decode()
    assert header.startswith("Received: from client.example ([IPv6:2001:db8::1])\r\n")
    assert "\tby mx.foo.com (refmail) with ESMTPSA id ID1\r\n\tfor <jones@foo.com>; " in header
    assert header.endswith("1970\r\n") or "1970 " in header
    assert header.count("\r\n") == 3 and "\n" not in header.replace("\r\n", "")


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati"]
)
def test_the_received_date_is_email_utils_date(zone):
    """RFC 5322 3.3 date-time as ``email.utils.format_datetime(localtime())`` writes it (the
    fast formatter replaced it), in zones east and west with half- and quarter-hour offsets,
    on both sides of daylight saving changes."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        for when in (0, 1_000_000_000, 1_711_846_800, 1_730_000_000, 1_795_750_563, 2**31 + 7):
            moment = datetime.fromtimestamp(when, UTC)
            assert rfc5322_date(when) == format_datetime(localtime(moment)), (zone, when)
        assert rfc5322_date()[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_received_header_hiding_the_client():
    """hide_client_ip: no ``from`` clause, so neither HELO name nor address (RFC 5321 7.6)."""
    header = received_header(
        helo="secret-laptop.home",
        peer_ip=None,
        hostname="mx.foo.com",
        protocol="ESMTPSA",
        message_id="ID2",
        recipient="jones@foo.com",
        when=0,
    ).decode()
    assert header.startswith("Received: by mx.foo.com (refmail) with ESMTPSA id ID2\r\n")
    assert "\tfor <jones@foo.com>; " in header
    assert "secret" not in header and "from" not in header
    assert header.count("\r\n") == 2


def test_the_hostname_is_a_local_domain(world):
    """As Postfix's default mydestination: mail for user@hostname is local."""
    host = world.config.hostname
    assert world.delivery.is_local_domain(host.upper() + ".")
    assert world.delivery.resolve(f"jones@{host}") == "jones"


def test_trace_name_removes_line_breaks():
    assert trace_name("a\r\nX-Evil: 1") == "a??X-Evil:?1"
    assert trace_name("") == "unknown"
    assert len(trace_name("x" * 1000)) == 255


def test_strip_headers_keeps_body_and_other_fields():
    message = (
        b"Return-Path: <a@b>\r\n\tcontinued\r\nSubject: keep\r\nX-UID: 5\r\n\r\n"
        b"Return-Path: in the body stays\r\n"
    )
    assert strip_headers(message) == b"Subject: keep\r\n\r\nReturn-Path: in the body stays\r\n"
    assert strip_headers(b"Subject: x\r\n\r\nbody") == b"Subject: x\r\n\r\nbody"


def test_strip_headers_reads_lines_as_the_store_does():
    """Lines end at LF only, as the mbox store splits them: a bare CR does not start a
    field, so what is dropped here is what the store would take for that field."""
    message = (
        b"STATUS : RO\r\nX-Keywords: a\r\n b\r\nX-Note: x\rX-UID: 9\r\n"
        b"X-UID-Not: kept\r\n\r\nbody\r\n"
    )
    stripped = strip_headers(message)
    assert stripped == b"X-Note: x\rX-UID: 9\r\nX-UID-Not: kept\r\n\r\nbody\r\n"
    kept = parse_entry(
        new_entry(
            stripped, date=datetime(2026, 1, 1, tzinfo=UTC), uid=1, flags=(), old=False, base=None
        )[0]
    )
    assert kept.uid == 1 and kept.flags == frozenset()  # no field a sender wrote took hold


# ---------------------------------------------------------------- spool


def test_spool_roundtrip(tmp_path):
    woken: list[str] = []
    spool = Spool(tmp_path / "queue", on_enqueue=woken.append)
    assert spool.list() == []
    queue_id = spool.enqueue("a@foo.com", ["x@xyz.com", "y@xyz.com", "x@xyz.com"], b"msg\r\n")
    assert woken == [queue_id]
    (envelope,) = spool.list()
    assert envelope == spool.load(queue_id)
    assert envelope["sender"] == "a@foo.com"
    assert [r["address"] for r in envelope["recipients"]] == ["x@xyz.com", "y@xyz.com"]
    assert all(r["state"] == "pending" for r in envelope["recipients"])
    assert envelope["attempts"] == 0 and envelope["last_error"] is None
    assert envelope["next_attempt"] == envelope["first_queued"]
    assert spool.message(queue_id) == b"msg\r\n"
    envelope["attempts"] = 1
    spool.update(queue_id, envelope)
    assert spool.load(queue_id)["attempts"] == 1
    assert sorted(p.name for p in (tmp_path / "queue").iterdir()) == [
        f"{queue_id}.json",
        f"{queue_id}.msg",
    ]
    spool.delete(queue_id)
    assert spool.list() == [] and list((tmp_path / "queue").iterdir()) == []
    with pytest.raises(KeyError):
        spool.delete(queue_id)


def test_spool_rejects_foreign_ids(tmp_path):
    spool = Spool(tmp_path / "queue")
    for bad in ("../users", "abc", "", "0123456789ABCDEF/../x"):
        with pytest.raises(KeyError):
            spool.load(bad)
        with pytest.raises(KeyError):
            spool.delete(bad)


def test_spool_ignores_partial_entries(tmp_path):
    spool = Spool(tmp_path / "queue")
    queue_id = spool.enqueue("a@foo.com", ["x@xyz.com"], b"m")
    (tmp_path / "queue" / f"{queue_id}.json").unlink()  # a crash between the two renames
    assert spool.list() == []
    assert spool.orphans() == [queue_id]
    other = spool.enqueue("a@foo.com", ["x@xyz.com"], b"m")
    (tmp_path / "queue" / f"{other}.json").write_text("{not json")
    assert spool.list() == []
    (tmp_path / "queue" / f"{other}.json").write_text(json.dumps({"id": other}))
    assert [e["id"] for e in spool.list()] == [other]


def test_ids_are_unique_and_ordered(tmp_path):
    spool = Spool(tmp_path / "queue")
    ids = [spool.enqueue("", ["x@xyz.com"], b"m") for _ in range(20)]
    assert len(set(ids)) == 20
    assert [e["id"] for e in spool.list()] == sorted(ids)
