"""The journal in PostgreSQL (``JOURNAL_URL=postgresql://…``), the choice for several hosts; psycopg 3.

Its tables live in one schema (``JOURNAL_SCHEMA``). The title search uses a pg_trgm GIN index when the extension
can be created (it is "trusted" since PostgreSQL 13, so a database owner may); without it the search still works,
as a scan of the files table (one row per file, not per decision).

A GIN index answers ``title ILIKE '%fragment%'`` by intersecting the posting lists of every trigram of the
fragment, and a trigram most titles share (``inv``, ``pdf``, the year's) has a list as long as the table: at 1.67
million files ``2026-0123456`` read 1,648 index pages (20 ms), its word ``0123456`` alone 38 (0.9 ms). So the
search asks the index only for the fragment's rarest word, by the trigram frequencies PostgreSQL's own statistics
keep (``files_title_trigrams``, PostgreSQL 14 and later, refreshed by autovacuum's ANALYZE), and checks the whole
fragment on what that finds. A fragment that is one word, or whose every word is common, is searched as it is.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from shared.journal.record import Decision
from shared.journal.store import (
    ID_ROWS,
    TRIGRAM,
    DecisionsQuery,
    Match,
    MatchedBy,
    Rollup,
    RollupDecisions,
    client_counts,
    client_counts_sql,
    collect_matches,
    like_pattern,
    timeline_key,
    unavailable_on,
)

_ID_COLUMNS: tuple[MatchedBy, ...] = ("file_id", "invoice_id", "event_id")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A decision's client, as by_client counts it: records are stored without None fields, so "no client" is "".
# Queries must spell it exactly so, or the planner will not match it to the index on it.
_CLIENT = "coalesce(record->>'client', '')"

_SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE TABLE IF NOT EXISTS {s}.decisions (seq bigserial PRIMARY KEY, decision_id text NOT NULL UNIQUE,"
    " at timestamptz NOT NULL, stage text NOT NULL, outcome text NOT NULL, reason text, file_id text,"
    " invoice_id text, event_id text, record jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS decisions_file ON {s}.decisions (file_id, at)",
    "CREATE INDEX IF NOT EXISTS decisions_invoice ON {s}.decisions (invoice_id) WHERE invoice_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS decisions_event ON {s}.decisions (event_id) WHERE event_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS decisions_at ON {s}.decisions (at)",
    # A client's list and the count per client read this instead of every decision in the window. A journal made
    # before it gains it when a process first opens it (a migration; inserts wait while it is built).
    f"CREATE INDEX IF NOT EXISTS decisions_client ON {{s}}.decisions (stage, outcome, ({_CLIENT}), at)",
    "CREATE TABLE IF NOT EXISTS {s}.files (file_id text PRIMARY KEY, title text, first_at timestamptz NOT NULL,"
    " last_at timestamptz NOT NULL, decisions bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS files_last ON {s}.files (last_at)",
    "CREATE INDEX IF NOT EXISTS files_first ON {s}.files (first_at)",
    "CREATE TABLE IF NOT EXISTS {s}.rollups (minute timestamptz NOT NULL, stage text NOT NULL, outcome text NOT NULL,"
    " reason text NOT NULL, count bigint NOT NULL, PRIMARY KEY (minute, stage, outcome, reason))",
)
_TRIGRAM_INDEX = "CREATE INDEX IF NOT EXISTS files_title_trgm ON {s}.files USING gin (title gin_trgm_ops)"
# How common each trigram of the titles is: the planner's statistics over show_trgm(title), kept by ANALYZE.
_TRIGRAM_STATISTICS = "CREATE STATISTICS IF NOT EXISTS {s}.files_title_trigrams ON (show_trgm(title)) FROM {s}.files"
_TRIGRAM_FREQUENCIES = """
SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats_ext_exprs
WHERE statistics_schemaname = %s AND statistics_name = 'files_title_trigrams'
"""
# Above this summed frequency of its trigrams no word of the fragment is rare: the planner's own plan is best
# (walking the newest files until twenty match, when most titles do).
RARE_ENOUGH = 0.05
_BY_TITLE = "SELECT file_id, NULL FROM {s}.files WHERE title ILIKE %s ESCAPE '\\' ORDER BY last_at DESC LIMIT %s"
# MATERIALIZED: the whole fragment's ILIKE must not join the word's in the index condition (all its trigrams again).
_BY_RARE_WORD = """
WITH found AS MATERIALIZED (SELECT file_id, title, last_at FROM {s}.files WHERE title ILIKE %s ESCAPE '\\')
SELECT file_id, NULL FROM found WHERE title ILIKE %s ESCAPE '\\' ORDER BY last_at DESC LIMIT %s
"""
_WORD = re.compile(r"\w+")

_INSERT = """
INSERT INTO {s}.decisions (decision_id, at, stage, outcome, reason, file_id, invoice_id, event_id, record)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::jsonb[])
ON CONFLICT (decision_id) DO NOTHING
RETURNING decision_id
"""
_FILES = """
INSERT INTO {s}.files AS f (file_id, title, first_at, last_at, decisions) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (file_id) DO UPDATE SET title = coalesce(excluded.title, f.title),
    first_at = least(f.first_at, excluded.first_at), last_at = greatest(f.last_at, excluded.last_at),
    decisions = f.decisions + excluded.decisions
"""
_ROLLUPS = """
INSERT INTO {s}.rollups AS r (minute, stage, outcome, reason, count) VALUES (date_trunc('minute', %s), %s, %s, %s, %s)
ON CONFLICT (minute, stage, outcome, reason) DO UPDATE SET count = r.count + excluded.count
"""


def rarest_word(term: str, frequencies: dict[str, float]) -> str | None:
    """Of ``term``'s words (three characters or more), the one whose trigrams have the smallest summed frequency
    (a trigram the statistics do not list counts as 0: rarer than any they do); ``None`` when none is rare enough,
    or when the word would be ``term`` itself (asking for it is the plain search)."""
    best: tuple[float, int, str] | None = None
    for word in {w.lower() for w in _WORD.findall(term) if len(w) >= TRIGRAM}:
        # Both ends of the word are wildcards in '%word%': pg_trgm takes only its inner trigrams, unpadded.
        cost = sum(frequencies.get(word[i : i + TRIGRAM], 0.0) for i in range(len(word) - TRIGRAM + 1))
        if best is None or (cost, -len(word)) < best[:2]:
            best = (cost, -len(word), word)
    if best is None or best[0] > RARE_ENOUGH or best[2] == term.lower():
        return None
    return best[2]


def _without_trigram_index(error: psycopg.Error, hint: str, event: str = "journal_without_trigram_index") -> None:
    # Imported here, on this rare path: structlog (with the console renderer's imports) is a tenth of a second of
    # `invoice-pipeline trace`'s start-up, which otherwise logs nothing.
    import structlog

    structlog.get_logger(__name__).warning(event, error=str(error)[:200], hint=hint)


def _forget_connection(store: Any) -> None:
    store._forget_connection()


_guarded = unavailable_on(psycopg.Error, "PostgreSQL", before=_forget_connection)


class PostgresJournalStore(RollupDecisions):
    """One connection, reopened after any failure; every method is one transaction."""

    def __init__(self, url: str, *, schema: str = "invoice_journal", connect_timeout: int = 5) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError("JOURNAL_SCHEMA must be a lower-case SQL identifier (letters, digits, _)")
        self._url = url
        self._schema = sql.Identifier(schema)
        self._schema_name = schema
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self.trigram_index = False
        self.trigram_statistics = False
        self._create_schema()

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._schema)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=self._connect_timeout, autocommit=False)
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on the one connection, holding the lock: what every public method runs in."""
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                yield conn

    def _forget_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # it is broken already: a new one opens on the next call
                conn.close()

    @_guarded
    def _create_schema(self) -> None:
        with self._lock:
            conn = self._connection()
            # Two processes creating the same schema at once race on the catalog: an advisory lock orders them.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('invoice_journal_schema'))")
                for statement in _SCHEMA:
                    conn.execute(self._q(statement))
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('invoice_journal_schema'))")
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    conn.execute(self._q(_TRIGRAM_INDEX))
                self.trigram_index = True
            except psycopg.errors.InsufficientPrivilege as exc:
                _without_trigram_index(exc, "title search scans files")
            except psycopg.errors.UndefinedFile as exc:
                _without_trigram_index(exc, "pg_trgm is not installed")
            if self.trigram_index:
                self.trigram_statistics = self._create_trigram_statistics(conn)

    def _create_trigram_statistics(self, conn: psycopg.Connection[Any]) -> bool:
        """The statistics the title search picks its word by; an existing journal gains them here (a migration)."""
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('invoice_journal_schema'))")
                conn.execute(self._q(_TRIGRAM_STATISTICS))
        except (psycopg.errors.SyntaxError, psycopg.errors.FeatureNotSupported) as exc:
            # Before PostgreSQL 14 (no statistics on expressions): the search asks the index for the whole fragment.
            _without_trigram_index(
                exc, "before PostgreSQL 14: title search reads every trigram", "journal_without_trigram_statistics"
            )
            return False
        return True

    @_guarded
    def insert(self, decisions: Sequence[Decision]) -> int:
        if not decisions:
            return 0
        unique = list({d.decision_id: d for d in decisions}.values())
        with self._transaction() as conn:
            rows = conn.execute(
                self._q(_INSERT),
                (
                    [d.decision_id for d in unique],
                    [d.at for d in unique],
                    [d.stage for d in unique],
                    [d.outcome for d in unique],
                    [d.reason for d in unique],
                    [d.file_id for d in unique],
                    [d.invoice_id for d in unique],
                    [d.event_id for d in unique],
                    [Jsonb(d.model_dump(mode="json", exclude_none=True)) for d in unique],
                ),
            ).fetchall()
            inserted = {row[0] for row in rows}
            new = [d for d in unique if d.decision_id in inserted]
            self._summarise(conn, new)
        return len(new)

    def _summarise(self, conn: psycopg.Connection[Any], new: list[Decision]) -> None:
        files: dict[str, list[Any]] = {}
        counts: dict[tuple[datetime, str, str, str], int] = {}
        for d in sorted(new, key=lambda d: d.at):
            minute = d.at.replace(second=0, microsecond=0)
            key = (minute, d.stage, d.outcome, d.reason or "")
            counts[key] = counts.get(key, 0) + 1
            if d.file_id is None:
                continue
            row = files.setdefault(d.file_id, [d.file_id, None, d.at, d.at, 0])
            row[1] = d.title or row[1]
            row[3] = d.at
            row[4] += 1
        with conn.cursor() as cursor:
            if files:
                cursor.executemany(self._q(_FILES), [tuple(row) for row in files.values()])
            if counts:
                cursor.executemany(self._q(_ROLLUPS), [(*key, count) for key, count in counts.items()])

    @_guarded
    def find(self, term: str, *, limit: int = 20) -> list[Match]:
        term = term.strip()
        if not term:
            return []
        with self._transaction() as conn:
            for matched_by in _ID_COLUMNS:
                rows = conn.execute(
                    sql.SQL("SELECT file_id, event_id FROM {s}.decisions WHERE {c} = %s LIMIT %s").format(
                        s=self._schema, c=sql.Identifier(matched_by)
                    ),
                    (term, ID_ROWS),
                ).fetchall()
                if rows:
                    return self._matches(conn, rows, matched_by)
            word = self._rarest_word(conn, term) if self.trigram_statistics else None
            if word is None:
                rows = conn.execute(self._q(_BY_TITLE), (like_pattern(term), limit)).fetchall()
            else:
                query = self._q(_BY_RARE_WORD)
                rows = conn.execute(query, (like_pattern(word), like_pattern(term), limit)).fetchall()
            return self._matches(conn, rows, "title")

    def _rarest_word(self, conn: psycopg.Connection[Any], term: str) -> str | None:
        """The word of ``term`` whose trigrams the fewest titles share, when one is rare enough to be worth it."""
        row = conn.execute(_TRIGRAM_FREQUENCIES, (self._schema_name,)).fetchone()
        if row is None or row[0] is None:
            return None  # not analysed yet
        # The frequencies run three longer than the trigrams (their minimum, maximum and null share): zip drops them.
        return rarest_word(term, dict(zip(row[0], row[1], strict=False)))

    def _matches(self, conn: psycopg.Connection[Any], rows: list[Any], matched_by: MatchedBy) -> list[Match]:
        def summary_of(file_id: str | None, event_id: str | None) -> Any:
            if file_id is not None:
                return conn.execute(
                    self._q("SELECT title, first_at, last_at, decisions FROM {s}.files WHERE file_id = %s"),
                    (file_id,),
                ).fetchone()
            return conn.execute(
                self._q(
                    "SELECT NULL, min(at), max(at), count(*) FROM {s}.decisions WHERE event_id = %s AND file_id IS NULL"
                ),
                (event_id,),
            ).fetchone()

        return collect_matches(rows, matched_by, summary_of, lambda at: at)

    @_guarded
    def timeline(self, *, file_id: str | None = None, event_id: str | None = None) -> list[Decision]:
        column, value = timeline_key(file_id, event_id)
        query = sql.SQL("SELECT record FROM {s}.decisions WHERE {c} = %s ORDER BY at, seq").format(
            s=self._schema, c=sql.Identifier(column)
        )
        with self._transaction() as conn:
            rows = conn.execute(query, (value,)).fetchall()
        return [Decision.model_validate(row[0]) for row in rows]

    @_guarded
    def prune(self, older_than: datetime, *, batch: int = 10_000) -> int:
        with self._transaction() as conn:
            deleted = conn.execute(
                self._q(
                    "DELETE FROM {s}.decisions WHERE seq IN"
                    " (SELECT seq FROM {s}.decisions WHERE at < %s ORDER BY at LIMIT %s)"
                ),
                (older_than, batch),
            ).rowcount
            conn.execute(
                self._q(
                    "DELETE FROM {s}.files WHERE file_id IN (SELECT file_id FROM {s}.files WHERE last_at < %s LIMIT %s)"
                ),
                (older_than, batch),
            )
            conn.execute(self._q("DELETE FROM {s}.rollups WHERE minute < date_trunc('minute', %s)"), (older_than,))
        return int(deleted)

    @_guarded
    def totals(self, since: datetime, until: datetime) -> dict[tuple[str, str, str], int]:
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                rows = conn.execute(
                    self._q(
                        "SELECT stage, outcome, reason, sum(count) FROM {s}.rollups"
                        " WHERE minute >= date_trunc('minute', %s) AND minute < %s GROUP BY stage, outcome, reason"
                    ),
                    (since, until),
                ).fetchall()
        return {(s, o, r): int(n) for s, o, r, n in rows}

    @_guarded
    def _select_decisions(self, chosen: DecisionsQuery) -> list[Decision]:
        query, args = chosen.sql("{s}.decisions", "%s", stored=lambda when: when, client=_CLIENT)
        with self._transaction() as conn:
            rows = conn.execute(self._q(query), args).fetchall()
        return [Decision.model_validate(row[0]) for row in rows]

    @_guarded
    def rollups(self, since: datetime, until: datetime | None = None) -> list[Rollup]:
        with self._transaction() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT minute, stage, outcome, reason, count FROM {s}.rollups"
                    " WHERE minute >= date_trunc('minute', %s) AND (%s::timestamptz IS NULL OR minute < %s)"
                    " ORDER BY minute, stage, outcome, reason"
                ),
                (since, until, until),
            ).fetchall()
        return [Rollup(m, s, o, r, int(c)) for m, s, o, r, c in rows]

    @_guarded
    def by_client(self, since: datetime, until: datetime, *, stage: str, outcome: str) -> dict[str, int]:
        with self._transaction() as conn:
            rows = conn.execute(
                self._q(client_counts_sql("{s}.decisions", _CLIENT, lambda name: f"%({name})s")),
                {"since": since, "until": until, "stage": stage, "outcome": outcome},
            ).fetchall()
        return client_counts(rows)

    @_guarded
    def files_seen(self, since: datetime, until: datetime) -> int:
        with self._transaction() as conn:
            row = conn.execute(
                self._q("SELECT count(*) FROM {s}.files WHERE first_at >= %s AND first_at < %s"), (since, until)
            ).fetchone()
        return int(row[0]) if row is not None else 0

    def drop(self) -> None:
        """Remove the schema and everything in it (tests clean up their own schema with this)."""
        with self._transaction() as conn:
            conn.execute(self._q("DROP SCHEMA IF EXISTS {s} CASCADE"))

    def close(self) -> None:
        with self._lock:
            self._forget_connection()
