"""Fixtures for the stage handlers' unit tests: a real SQLite idempotency store in the test's own folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.store.sqlite_store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "idem.sqlite3", ttl_seconds=3600)
    yield s
    s.close()
