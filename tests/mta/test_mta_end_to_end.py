"""Two live refmail servers on 127.0.0.1: alice submits to a user of the other server, whose
domain is routed to its SMTP port; the scheduler relays it, or bounces it into alice's INBOX."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mta_helpers import inbox

from refmail.auth import UserDB
from refmail.config import STANDARD_PORTS, MTAConfig, load_config
from refmail.mta.scheduler import Scheduler
from refmail.server import Server


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Server]:
    """A second refmail server for the domain remote.test, with the user carol."""
    data = tmp_path / "remote"
    data.mkdir()
    UserDB(data / "users").add("carol", "carol-pw")
    config = load_config(
        data_dir=data,
        hostname="mx.remote.test",
        domains=("remote.test",),
        ports={service: 0 for service in STANDARD_PORTS},
        services=("smtp",),
    )
    server = Server(config)
    server.start()
    yield server
    server.stop()


def submit(server: Server, sender: str, recipients: list[str], body: bytes) -> None:
    context = ssl.create_default_context(cafile=str(server.cert_path))
    with smtplib.SMTP(*server.address("submission"), timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.login("alice", "alice-pw")
        smtp.sendmail(sender, recipients, body)


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_relay_to_another_refmail_and_bounce(
    make_server: Callable[..., Server], remote: Server
) -> None:
    host, port = remote.address("smtp")
    local = make_server(mta=MTAConfig(routes={"remote.test": f"{host}:{port}"}, retry=(1,)))
    scheduler = getattr(local, "scheduler", None)  # once server.py runs one itself
    if scheduler is None:
        scheduler = Scheduler(local.config, local.spool, local.delivery)
        local.spool.on_enqueue = scheduler.wake
        scheduler.start()
    try:
        body = (
            b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: across\r\n\r\n"
            b"Hello Carol.\r\n.leading dot\r\n"
        )
        submit(local, "alice@example.test", ["carol@remote.test", "nobody@remote.test"], body)
        wait_for(lambda: not local.spool.list())
        (got,) = inbox(remote.config.data_dir, "carol")
        assert got["Subject"] == "across"
        assert got["Return-Path"] == "<alice@example.test>"
        assert ".leading dot" in got.get_content()
        assert len(got.get_all("Received")) == 2  # ours, then the remote's (RFC 5321 4.4)
        (bounce,) = inbox(local.config.data_dir, "alice")
        assert bounce["Return-Path"] == "<>"
        assert bounce.get_content_type() == "multipart/report"
        status = list(bounce.iter_parts())[1].get_payload()[1]
        assert status["Final-Recipient"] == "rfc822; nobody@remote.test"
        assert status["Status"] == "5.1.1"
        assert status["Remote-MTA"] == "dns; 127.0.0.1"
    finally:
        scheduler.stop()
