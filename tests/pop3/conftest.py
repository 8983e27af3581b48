"""POP3 session fixtures (see ``pop3_harness``): ``pop3``, and ``fed`` once per feed mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pop3_harness import FEED_MODES, Harness


@pytest.fixture
def pop3(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


@pytest.fixture(params=FEED_MODES)
def fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Like ``pop3``, once per feed mode."""
    harness = Harness(tmp_path, mode=request.param)
    yield harness
    harness.store.close()
