"""The SQLite journal's lookups use its indexes, so `trace` stays fast at millions of decisions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shared.journal.sqlite_store import SqliteJournalStore


def _plan(path: Path, query: str, *args: object) -> str:
    db = sqlite3.connect(path)
    try:
        return " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", args))
    finally:
        db.close()


def test_every_lookup_trace_makes_is_an_index_search_not_a_scan(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    SqliteJournalStore(path).close()
    timeline = _plan(path, "SELECT record FROM decisions WHERE file_id = ? ORDER BY at, seq", "4711")
    assert "SEARCH decisions USING INDEX decisions_file (file_id=?)" in timeline, timeline
    for column in ("invoice_id", "event_id"):
        plan = _plan(path, f"SELECT file_id, event_id FROM decisions WHERE {column} = ? LIMIT 1000", "x")  # noqa: S608
        assert f"USING INDEX decisions_{column.removesuffix('_id')}" in plan, plan
    title = _plan(
        path,
        "SELECT f.file_id FROM titles t JOIN files f ON f.file_id = t.file_id WHERE titles MATCH ?"
        " ORDER BY f.last_at DESC LIMIT 20",
        '"voice"',
    )
    assert "SCAN t VIRTUAL TABLE INDEX" in title and "SEARCH f USING INDEX" in title, title
    prune = _plan(path, "SELECT seq FROM decisions WHERE at < ? ORDER BY at LIMIT 10", 0.0)
    assert "USING COVERING INDEX decisions_at" in prune or "USING INDEX decisions_at" in prune, prune
