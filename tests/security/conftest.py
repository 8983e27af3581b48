"""Security-test fixtures: users hashed at the throwaway test cost, so the many logins these
tests make cost milliseconds (the hash cost is not what is tested here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from refmail_testing import USERS

from refmail.auth import TEST_SCRYPT_N, UserDB


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    db = UserDB(path / "users")
    for name, password in USERS.items():
        db.add(name, password, cost=TEST_SCRYPT_N)
    return path
