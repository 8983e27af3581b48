"""Fuzz tests: hypothesis drives the real sessions and the parsing core through the checks in
``fuzz/refmail_fuzz.py`` and ``fuzz/parse_contracts.py`` (shared with the atheris targets).

``REFMAIL_FUZZ_EXAMPLES=N`` runs N examples per test instead of the small default, e.g.
``REFMAIL_FUZZ_EXAMPLES=5000 pytest tests/fuzz`` for a long run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
if str(FUZZ_DIR) not in sys.path:
    sys.path.insert(0, str(FUZZ_DIR))

import refmail_fuzz  # noqa: E402


@pytest.fixture(scope="session")
def worlds() -> Iterator[refmail_fuzz.Worlds]:
    """Fresh data directories copied from one template (on tmpfs when there is one)."""
    made = refmail_fuzz.Worlds()
    yield made
    made.close()
