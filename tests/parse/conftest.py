"""The ``parse_impl`` fixture: every parser test runs against the pure twin and the compiled
core.  The compiled parameter is skipped only when the extension is not built; whether it
should have been is ``tests/test_implementation.py``'s business (REFMAIL_EXPECT_IMPLEMENTATION).
"""

from __future__ import annotations

from types import ModuleType

import pytest
from parse_twins_check import load_compiled

from refmail import _parse_py

IMPLEMENTATIONS = ("python", "cython")


@pytest.fixture(scope="session", params=IMPLEMENTATIONS)
def parse_impl(request: pytest.FixtureRequest) -> ModuleType:
    """One implementation of ``refmail/_parse.pyi``: ``_parse_py`` or the compiled ``_parse``.

    Session-scoped: the modules are stateless, and hypothesis tests may use it.
    """
    if request.param == "python":
        return _parse_py
    compiled = load_compiled()
    if compiled is None:
        pytest.skip("refmail._parse is not built (python setup.py build_ext --inplace)")
    return compiled
