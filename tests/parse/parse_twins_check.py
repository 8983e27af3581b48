"""The compiled core against the pure twin on one call (DESIGN.md, "The parsing core"): the
same result, or the same exception class with the same message.  Shared by the property tests
of ``tests/parse``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import pytest

from refmail import _parse_py


def load_compiled() -> ModuleType | None:
    """The compiled core, or None when it has not been built."""
    try:
        return importlib.import_module("refmail._parse")
    except ImportError:
        return None


compiled = load_compiled()
needs_compiled = pytest.mark.skipif(compiled is None, reason="refmail._parse is not built")


def outcome(function: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return "ok", function(*args)
    except Exception as exc:  # noqa: BLE001 - the class and message are what is compared
        return type(exc).__name__, str(exc)


def same(name: str, *args: object) -> None:
    assert compiled is not None
    python = outcome(getattr(_parse_py, name), *args)
    cython = outcome(getattr(compiled, name), *args)
    assert cython == python, args
