"""The journal's stores for tests: a fresh SQLite file, or a fresh schema in the real PostgreSQL (CI never skips)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.journal.postgres_store import PostgresJournalStore
from shared.journal.record import Decision

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def postgres_url() -> str:
    """JOURNAL_TEST_URL, else the machine's PostgreSQL; fails under CI=true when it does not answer, else skips."""
    url = os.environ.get("JOURNAL_TEST_URL", DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"no PostgreSQL at {url.split('@')[-1]} ({type(exc).__name__})"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


def new_schema() -> str:
    return f"journal_t{uuid.uuid4().hex[:10]}"


def postgres_store(url: str) -> Iterator[PostgresJournalStore]:
    store = PostgresJournalStore(url, schema=new_schema())
    try:
        yield store
    finally:
        store.drop()
        store.close()


def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "journal.sqlite3"


def decision(
    stage: str = "classifier",
    outcome: str = "accepted",
    *,
    minutes: float = 0,
    file_id: str | None = "4711",
    **fields: Any,
) -> Decision:
    """A decision ``minutes`` after ``T0`` about ``file_id``."""
    return Decision.make(stage, outcome, at=T0 + timedelta(minutes=minutes), file_id=file_id, **fields)
