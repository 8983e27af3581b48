"""The scheduler over a real spool, store and local delivery, with test receivers as next hops
(fixed routes to 127.0.0.1): delivery, retry, bounce, give-up, restart, no bounce for a bounce."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from mta_helpers import FakeResolver, World, message
from mta_receiver import Behaviour, Receiver, by_local_part

Start = Callable[..., Receiver]


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def report_of(msg) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    """(report-type, [per-message fields, per-recipient fields...]) of a DSN."""
    assert msg.get_content_type() == "multipart/report"
    parts = list(msg.iter_parts())
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    return msg.get_param("report-type"), list(status.get_payload())


def test_delivers_and_removes_from_queue(world: World, receiver: Start) -> None:
    r = receiver()
    world.configure(routes={"remote.test": r.hostport})
    scheduler = world.scheduler(start=True)
    queue_id = world.spool.enqueue("alice@example.test", ["carol@remote.test"], message())
    wait_for(lambda: world.spool.list() == [] and not scheduler.busy)
    assert len(r.messages) == 1
    assert r.messages[0].recipients == ["carol@remote.test"]
    assert not (world.spool.queue_dir / f"{queue_id}.msg").exists()
    assert world.inbox("alice") == []  # no report for a delivered message


def test_one_transaction_for_recipients_sharing_a_host(world: World, receiver: Start) -> None:
    r = receiver()
    world.configure(routes={"remote.test": r.hostport, "other.test": r.hostport})
    world.scheduler(start=True)
    world.spool.enqueue("alice@example.test", ["a@remote.test", "b@other.test"], message())
    wait_for(lambda: world.spool.list() == [])
    assert len(r.messages) == 1 and len(r.sessions) == 1
    assert sorted(r.messages[0].recipients) == ["a@remote.test", "b@other.test"]


def test_5xx_bounces_that_recipient_4xx_retries(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=by_local_part))
    world.configure(routes={"remote.test": r.hostport}, retry=(3600,))
    scheduler = world.scheduler()
    rcpts = ["ok@remote.test", "bad@remote.test", "temp@remote.test"]
    queue_id = world.spool.enqueue("alice@example.test", rcpts, message("mixed"))
    scheduler.process(queue_id)
    envelope = world.spool.load(queue_id)
    states = {x["address"]: x["state"] for x in envelope["recipients"]}
    assert states == {
        "ok@remote.test": "delivered",
        "bad@remote.test": "failed",
        "temp@remote.test": "pending",
    }
    assert envelope["attempts"] == 1
    assert envelope["next_attempt"] >= envelope["last_attempt"] + 3600
    temp = next(x for x in envelope["recipients"] if x["address"] == "temp@remote.test")
    assert temp["last_error"].startswith("4.2.0")
    # The DSN for the one failure is in alice's INBOX, from MAILER-DAEMON with a null sender.
    (bounce,) = world.inbox("alice")
    assert bounce["Return-Path"] == "<>"
    assert bounce["From"].addresses[0].username == "MAILER-DAEMON"
    assert bounce["Auto-Submitted"] == "auto-replied"
    report_type, blocks = report_of(bounce)
    assert report_type == "delivery-status"
    assert blocks[0]["Reporting-MTA"] == "dns; mx.example.test"
    assert len(blocks) == 2
    assert blocks[1]["Final-Recipient"] == "rfc822; bad@remote.test"
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "5.1.1"
    assert "550 5.1.1" in blocks[1]["Diagnostic-Code"]
    headers = list(bounce.iter_parts())[2]
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: mixed" in headers.get_payload(decode=True)
    # The retry goes only to the pending recipient; the message then leaves the queue.
    r.behaviour.rcpt = lambda address: (250, "2.1.5 ok")
    scheduler.process(queue_id)
    assert world.spool.list() == []
    assert [m.recipients for m in r.messages] == [["ok@remote.test"], ["temp@remote.test"]]
    assert len(world.inbox("alice")) == 1  # no second report


def test_retry_runs_on_schedule_without_polling(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=lambda address: (451, "4.3.0 later")))
    world.configure(routes={"remote.test": r.hostport}, retry=(1,))
    world.scheduler(start=True)
    world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    wait_for(lambda: len(r.sessions) >= 1)
    r.behaviour.rcpt = lambda address: (250, "2.1.5 ok")
    started = time.monotonic()
    wait_for(lambda: world.spool.list() == [], timeout=10)
    assert time.monotonic() - started >= 0.5  # waited for the retry delay (1 s, with jitter)
    assert len(r.messages) == 1


def test_give_up_after_deadline(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=lambda address: (452, "4.2.2 mailbox full")))
    world.configure(routes={"remote.test": r.hostport}, retry=(1,), give_up_after=2)
    world.scheduler(start=True)
    world.spool.enqueue("bob@example.test", ["full@remote.test"], message("stuck"))
    wait_for(lambda: world.spool.list() == [], timeout=15)
    assert 2 <= len(r.sessions) <= 4
    (bounce,) = world.inbox("bob")
    _, blocks = report_of(bounce)
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "4.2.2"  # the last temporary error's status
    assert "452 4.2.2 mailbox full" in blocks[1]["Diagnostic-Code"]


def test_queue_survives_restart(world: World, receiver: Start) -> None:
    """A message queued while the next hop is down is delivered by a new Scheduler over the
    same directory (as after a server restart)."""
    r = receiver(Behaviour(greeting=(421, "4.3.2 not now")))
    world.configure(routes={"remote.test": r.hostport}, retry=(3600,))
    first = world.scheduler(start=True)
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message("later"))
    wait_for(lambda: world.spool.load(queue_id)["attempts"] == 1 and not first.busy)
    first.stop()
    assert world.spool.load(queue_id)["recipients"][0]["state"] == "pending"
    r.behaviour.greeting = (220, "receiver.test ready")
    second = world.scheduler(start=True)
    assert world.spool.list()  # not due for an hour: it waits...
    second.flush()  # ...unless flushed
    wait_for(lambda: world.spool.list() == [])
    assert len(r.messages) == 1


def test_no_bounce_for_a_bounce(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=lambda address: (550, "5.1.1 no such user")))
    world.configure(routes={"remote.test": r.hostport})
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue("", ["gone@remote.test"], message("a bounce"))
    scheduler.process(queue_id)
    assert world.spool.list() == []
    assert world.inbox("alice") == [] and world.inbox("bob") == []
    assert world.spool.list() == []  # nothing queued either


def test_bounce_to_foreign_sender_is_queued_with_null_sender(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=by_local_part))
    world.configure(routes={"remote.test": r.hostport})
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue("someone@remote.test", ["bad@remote.test"], message())
    scheduler.process(queue_id)
    (entry,) = world.spool.list()
    assert entry["sender"] == ""
    assert [x["address"] for x in entry["recipients"]] == ["someone@remote.test"]
    scheduler.process(entry["id"])
    assert world.spool.list() == []
    assert r.messages[0].sender == ""
    assert b"multipart/report" in r.messages[0].data


def test_permanent_extension_refusal_bounces(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(extensions=["SIZE 50"]))
    world.configure(routes={"remote.test": r.hostport})
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    scheduler.process(queue_id)
    assert world.spool.list() == []
    (bounce,) = world.inbox("alice")
    _, blocks = report_of(bounce)
    assert blocks[1]["Status"] == "5.3.4"


def test_route_failure_is_recorded(world: World) -> None:
    """A null MX domain bounces without any connection (RFC 7505)."""
    scheduler = world.scheduler(resolver=FakeResolver({("nomail.test", "MX"): ["0 ."]}))
    queue_id = world.spool.enqueue("alice@example.test", ["x@nomail.test"], message())
    scheduler.process(queue_id)
    (bounce,) = world.inbox("alice")
    _, blocks = report_of(bounce)
    assert blocks[1]["Status"] == "5.1.10"


def test_local_recipient_in_queue_is_delivered_locally(world: World) -> None:
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue(
        "x@remote.test", ["bob@example.org", "nobody@example.test"], message()
    )
    scheduler.process(queue_id)
    assert len(world.inbox("bob")) == 1
    assert world.spool.list()  # the bounce to x@remote.test is queued
    assert world.spool.list()[0]["sender"] == ""


def test_delay_warning_once(world: World, receiver: Start) -> None:
    r = receiver(Behaviour(rcpt=lambda address: (451, "4.3.0 later")))
    world.configure(routes={"remote.test": r.hostport}, retry=(3600,))
    scheduler = world.scheduler(delay_warning_after=0)
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    scheduler.process(queue_id)
    scheduler.process(queue_id)
    (warning,) = world.inbox("alice")
    assert "Delayed" in warning["Subject"]
    _, blocks = report_of(warning)
    assert blocks[1]["Action"] == "delayed"
    assert "Will-Retry-Until" in blocks[1]
    assert world.spool.load(queue_id)["recipients"][0]["state"] == "pending"


def test_deleted_while_queued_is_skipped(world: World, receiver: Start) -> None:
    r = receiver()
    world.configure(routes={"remote.test": r.hostport})
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    world.spool.delete(queue_id)
    scheduler.process(queue_id)
    assert r.sessions == []
    # An envelope left without its message (a delete racing an update) is cleaned up.
    other = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    (world.spool.queue_dir / f"{other}.msg").unlink()
    scheduler.process(other)
    assert world.spool.list() == []


def test_max_outbound_connections(world: World, receiver: Start) -> None:
    import threading

    gate = threading.Event()
    active = []
    peak = []
    lock = threading.Lock()

    def slow(address: str) -> tuple[int, str]:
        with lock:
            active.append(address)
            peak.append(len(active))
        gate.wait(5)
        with lock:
            active.remove(address)
        return 250, "2.1.5 ok"

    r = receiver(Behaviour(rcpt=slow))
    world.configure(routes={"remote.test": r.hostport}, max_outbound_connections=2)
    world.scheduler(start=True)
    for n in range(5):
        world.spool.enqueue("alice@example.test", [f"r{n}@remote.test"], message(f"m{n}"))
    wait_for(lambda: len(peak) >= 2)
    time.sleep(0.3)
    assert max(peak) == 2
    gate.set()
    wait_for(lambda: world.spool.list() == [])
    assert max(peak) <= 2 and len(r.messages) == 5


@pytest.mark.parametrize("attempts", [1, 2, 7, 20])
def test_next_retry_at_follows_schedule(world: World, attempts: int) -> None:
    world.configure(retry=(10, 20, 40))
    scheduler = world.scheduler()
    delay = scheduler.next_retry_at(attempts, 1000.0) - 1000.0
    expected = (10, 20, 40)[min(attempts, 3) - 1]
    assert expected <= delay <= expected * 1.1


def test_unexpected_error_holds_the_message(world: World, receiver: Start) -> None:
    """An envelope that cannot be processed is retried after retry[0], not in a hot loop."""
    r = receiver()
    world.configure(routes={"remote.test": r.hostport}, retry=(3600,))
    scheduler = world.scheduler()
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    path = world.spool.queue_dir / f"{queue_id}.json"
    path.write_text(path.read_text().replace('"recipients"', '"recipients_broken"'))
    calls = []
    real_process = scheduler.process

    def counting(queue_id: str) -> None:
        calls.append(queue_id)
        real_process(queue_id)

    scheduler.process = counting  # type: ignore[method-assign]
    scheduler.start()
    wait_for(lambda: calls and not scheduler.busy)
    time.sleep(0.5)
    assert len(calls) == 1
    assert r.sessions == []


def test_stale_envelope_is_cleaned_up_by_the_loop(world: World) -> None:
    """An envelope whose message is gone (a delete that raced an update) leaves the queue
    at the next look, not only when it falls due."""
    world.configure(retry=(3600,))
    queue_id = world.spool.enqueue("alice@example.test", ["x@remote.test"], message())
    envelope = world.spool.load(queue_id)
    envelope["next_attempt"] = time.time() + 3600
    world.spool.update(queue_id, envelope)
    (world.spool.queue_dir / f"{queue_id}.msg").unlink()
    world.scheduler(start=True)
    wait_for(lambda: world.spool.list() == [])
