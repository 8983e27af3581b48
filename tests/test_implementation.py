"""The suite must run against the implementation tox asked for: a compiled core that silently
failed to build or load would otherwise turn the "compiled" run into a second pure run."""

import os

import pytest

from refmail import parse


def test_expected_parsing_core_is_in_use() -> None:
    expected = os.environ.get("REFMAIL_EXPECT_IMPLEMENTATION")
    if not expected:
        pytest.skip("REFMAIL_EXPECT_IMPLEMENTATION not set (tox sets it)")
    assert parse.IMPLEMENTATION == expected


def test_no_extensions_forces_the_twin() -> None:
    if os.environ.get("REFMAIL_NO_EXTENSIONS"):
        assert parse.IMPLEMENTATION == "python"
        assert parse.next_line.__module__ == "refmail._parse_py"
    else:
        assert parse.IMPLEMENTATION in ("cython", "python")
