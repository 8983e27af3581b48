"""SMTP session fixtures (helpers in ``smtp_transcript``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_transcript import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "data")


@pytest.fixture
def make_world(tmp_path: Path):
    made: Iterator[int] = iter(range(1000))

    def make(**cfg) -> World:
        return World(tmp_path / f"data{next(made)}", **cfg)

    return make
