"""Two refmail processes on 127.0.0.1 with different local domains, relaying to each other
as real servers do: ``a`` serves example.test (alice, bob), ``b`` serves remote.test
(carol).  ``a`` routes remote.test to ``b``'s SMTP port (``[mta.routes]``), with retries of
seconds.  Covered: delivery while ``b`` is up; queueing while it is down and delivery once it
is back; a DSN into the sender's INBOX for an unknown remote user; the queue surviving a
SIGTERM and a SIGKILL of the sending server."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_helpers import Instance, wait_for


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    """``(a, b)``, both running; ``b`` first, so ``a`` knows the port to route to."""
    a = Instance(
        tmp_path,
        "a",
        hostname="mx.example.test",
        domains=("example.test",),
        users={"alice": "alice-pw", "bob": "bob-pw"},
    )
    b = Instance(
        tmp_path, "b", hostname="mx.remote.test", domains=("remote.test",), users={"carol": "c-pw"}
    )
    try:
        b.start()
        host, port = b.address("smtp")
        a.start(mta={"routes": {"remote.test": f"{host}:{port}"}})
        yield a, b
    finally:
        a.close()
        b.close()


def logs(*instances: Instance) -> str:
    return "\n".join(i.describe() for i in instances)


def subjects(instance: Instance, user: str) -> list[str]:
    return [str(m["Subject"]) for m in instance.inbox(user)]


def restart_on_same_port(b: Instance, port: int) -> None:
    """Bring ``b`` back with its SMTP listener where ``a``'s route points."""
    b.start(ports={"smtp": port})
    assert b.address("smtp")[1] == port


def test_delivery_and_bounce_for_an_unknown_remote_user(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    a.submit("alice", "alice@example.test", ["carol@remote.test", "nobody@remote.test"], "across")
    wait_for(lambda: subjects(b, "carol") == ["across"], why=lambda: logs(a, b))
    (got,) = b.inbox("carol")
    assert got["Return-Path"] == "<alice@example.test>"
    received = got.get_all("Received")
    assert len(received) == 2  # b's own, then a's (RFC 5321 4.4: newest first)
    assert "by mx.remote.test" in received[0] and "from mx.example.test" in received[0]
    assert "by mx.example.test" in received[1] and "with ESMTPA" in received[1]
    # nobody@remote.test: b says 550 5.1.1 at RCPT, a bounces a DSN to alice (RFC 3464).
    wait_for(lambda: len(a.inbox("alice")) == 1, why=lambda: logs(a, b))
    (bounce,) = a.inbox("alice")
    assert bounce["Return-Path"] == "<>"
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    notice, status, original = bounce.iter_parts()
    assert "nobody@remote.test" in notice.get_content()
    per_recipient = status.get_payload()[1]
    assert per_recipient["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert "Subject: across" in original.as_string()
    wait_for(lambda: a.queued() == [], why=lambda: logs(a))


def test_queued_while_the_receiver_is_down_then_delivered(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    port = b.address("smtp")[1]
    assert b.stop(signal.SIGTERM) == 0
    a.submit("alice", "alice@example.test", ["carol@remote.test"], "while down")
    wait_for(
        lambda: any(e.get("attempts", 0) >= 2 for e in a.queued()), why=lambda: logs(a)
    )  # retried on the seconds schedule, still queued
    (envelope,) = a.queued()
    (rcpt,) = envelope["recipients"]
    assert rcpt["state"] == "pending" and rcpt["status"].startswith("4.4.1"), rcpt
    assert a.inbox("alice") == []  # no DSN for a temporary failure (no delay warning set)
    restart_on_same_port(b, port)
    wait_for(lambda: subjects(b, "carol") == ["while down"], why=lambda: logs(a, b))
    wait_for(lambda: a.queued() == [], why=lambda: logs(a))
    assert a.inbox("alice") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_queue_survives_a_restart_of_the_sender(
    pair: tuple[Instance, Instance], signum: int
) -> None:
    a, b = pair
    port = b.address("smtp")[1]
    b.stop()
    a.submit("alice", "alice@example.test", ["carol@remote.test"], "survivor")
    wait_for(lambda: any(e.get("attempts", 0) >= 1 for e in a.queued()), why=lambda: logs(a))
    status = a.stop(signum)
    assert status == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
    (envelope,) = a.queued()  # on disk while a is down
    assert envelope["recipients"][0]["state"] == "pending"
    restart_on_same_port(b, port)
    a.start(mta={"routes": {"remote.test": f"127.0.0.1:{port}"}})
    wait_for(lambda: subjects(b, "carol") == ["survivor"], why=lambda: logs(a, b))
    wait_for(lambda: a.queued() == [], why=lambda: logs(a))
    assert len(b.inbox("carol")) == 1


def test_user_agents_on_both_sides(pair: tuple[Instance, Instance]) -> None:
    """``python -m refmail send`` on a, then ``inbox`` and ``read`` on b, as processes."""
    a, b = pair
    status, out, err = a.ua(
        "send",
        "alice",
        *("--to", "carol@remote.test", "--subject", "from the terminal"),
        stdin="Dear Carol,\nhello from example.test.\n",
    )
    assert status == 0, err
    assert "carol@remote.test" in out
    wait_for(lambda: len(b.inbox("carol")) == 1, why=lambda: logs(a, b))
    status, out, err = b.ua("inbox", "carol")
    assert status == 0, err
    first, summary = out.splitlines()
    assert summary == "INBOX: 1 message(s)"
    assert "from the terminal" in first and "alice@mx.example.test" in first
    status, out, err = b.ua("read", "carol", "1")
    assert status == 0, err
    assert "Subject: from the terminal" in out
    assert "Dear Carol,\nhello from example.test." in out
