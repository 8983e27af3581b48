"""MTA fixtures: ``world`` (a data directory with its store, delivery and spool; see
mta_helpers.World) and ``receiver`` (test SMTP receivers on 127.0.0.1 as next hops)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mta_helpers import World
from mta_receiver import Behaviour, Receiver


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    data = tmp_path / "data"
    data.mkdir()
    w = World(data)
    yield w
    w.close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """``receiver(Behaviour(...))`` -> a started test SMTP receiver; stopped afterwards."""
    started: list[Receiver] = []

    def start(behaviour: Behaviour | None = None) -> Receiver:
        r = Receiver(behaviour).start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()
