"""Where the journal lives: the ``JournalStore`` port, what its queries return, and the one failure it raises.

Two adapters implement it, run through one contract (tests/journal_store_contract.py): SQLite (WAL, the default,
``shared/journal/sqlite_store.py``) and PostgreSQL (``shared/journal/postgres_store.py``). Both insert
idempotently on the decision id, keep one summary row per file (title, first and last decision, count) so that
search by title is an index lookup over files rather than over decisions, and count per-minute rollups of the
decisions they actually inserted (a duplicate never counts twice).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from shared.core.reraise import reraise_as
from shared.journal.record import Decision

P = ParamSpec("P")
R = TypeVar("R")

MatchedBy = Literal["file_id", "invoice_id", "event_id", "title"]
# Title search below this length cannot use a trigram index; it still works, over the (much smaller) files table.
TRIGRAM = 3
# Decisions read for an exact id, deduplicated by file in Python: no DISTINCT, which lets PostgreSQL's planner walk
# the whole file index for its sort order instead of the id's own index (seen: 38 ms instead of 0.1 at 100k rows).
ID_ROWS = 1000


class JournalUnavailable(Exception):
    """The journal's database did not answer (down, locked too long): try again later; nothing was half-written."""


@dataclass(frozen=True)
class Match:
    """A file (or, for a decision without a file, an event) that a search term found, with a summary to choose by."""

    file_id: str | None
    event_id: str | None
    title: str | None
    first_at: datetime
    last_at: datetime
    decisions: int
    matched_by: MatchedBy


@dataclass(frozen=True)
class Rollup:
    """How many decisions of one stage, outcome and reason were made in one minute (UTC, floored)."""

    minute: datetime
    stage: str
    outcome: str
    reason: str
    count: int


class JournalStore(Protocol):
    """The journal's database: written by the one journal writer, read by ``trace`` and the console."""

    def insert(self, decisions: Sequence[Decision]) -> int:
        """Store the batch in one transaction; decisions already stored are skipped. Returns how many were new."""
        ...

    def find(self, term: str, *, limit: int = 20) -> list[Match]:
        """Files whose file id, invoice id or event id is ``term``, else whose title contains it, newest first."""
        ...

    def timeline(self, *, file_id: str | None = None, event_id: str | None = None) -> list[Decision]:
        """Every decision about the file (or, without one, the event), oldest first."""
        ...

    def prune(self, older_than: datetime, *, batch: int = 10_000) -> int:
        """Delete at most ``batch`` decisions made before ``older_than`` (and files and rollups past it)."""
        ...

    def rollups(self, since: datetime, until: datetime | None = None) -> list[Rollup]:
        """Per-minute counts from ``since`` (inclusive) to ``until`` (exclusive), oldest first."""
        ...

    def totals(self, since: datetime, until: datetime) -> dict[tuple[str, str, str], int]:
        """The rollups from ``since`` to ``until`` added up per (stage, outcome, reason), in the database."""
        ...

    def decisions(
        self, since: datetime, until: datetime, *, stage: str, outcome: str, reason: str | None = None, limit: int = 100
    ) -> list[Decision]:
        """The decisions behind a rollup's count: made in [since, until), newest first, at most ``limit``.

        ``reason=None`` takes every reason; ``""`` only decisions without one (as rollups count them).
        """
        ...

    def by_client(self, since: datetime, until: datetime, *, stage: str, outcome: str) -> dict[str, int]:
        """Decisions of one stage and outcome made in [since, until), counted per client (``""``: none named).

        Read from the decisions themselves (the rollups know no client): its cost grows with the window's rows.
        """
        ...

    def client_decisions(
        self, since: datetime, until: datetime, *, stage: str, outcome: str, client: str, limit: int = 100
    ) -> list[Decision]:
        """The decisions behind one of :meth:`by_client`'s counts, newest first, at most ``limit``."""
        ...

    def files_seen(self, since: datetime, until: datetime) -> int:
        """Files whose first decision was made in [since, until): each file once, however many deliveries named it."""
        ...

    def close(self) -> None: ...


def like_pattern(fragment: str) -> str:
    """``%fragment%`` for LIKE/ILIKE with ``\\`` as the escape: a ``%`` or ``_`` in a title fragment is literal."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class DecisionsQuery:
    """What ``JournalStore.decisions`` and ``client_decisions`` ask for, and their SELECT: one for both adapters,
    which differ only in their placeholder, how they store a time and how they read a record's client."""

    since: datetime
    until: datetime
    stage: str
    outcome: str
    reason: str | None
    limit: int
    client: str | None = None

    def sql(self, table: str, mark: str, stored: Callable[[datetime], object], client: str) -> tuple[str, list[object]]:
        """The statement over ``table`` with the driver's placeholder ``mark`` (``?``, ``%s``) and its arguments,
        the times as ``stored`` turns them into the adapter's column type; ``client`` is the adapter's SQL for a
        record's client (``""`` when it names none)."""
        # ``table``, ``mark`` and ``client`` are the adapters' constants; every value is an argument.
        query = f"SELECT record FROM {table} WHERE at >= {mark} AND at < {mark}"  # noqa: S608
        query += f" AND stage = {mark} AND outcome = {mark}"
        args: list[object] = [stored(self.since), stored(self.until), self.stage, self.outcome]
        if self.reason is not None:
            query += f" AND coalesce(reason, '') = {mark}"
            args.append(self.reason)
        if self.client is not None:
            query += f" AND {client} = {mark}"
            args.append(self.client)
        return f"{query} ORDER BY at DESC LIMIT {mark}", [*args, max(self.limit, 1)]


class RollupDecisions(ABC):
    """``JournalStore.decisions`` and ``client_decisions`` written once for the SQL adapters: each runs the
    :class:`DecisionsQuery`."""

    def decisions(
        self, since: datetime, until: datetime, *, stage: str, outcome: str, reason: str | None = None, limit: int = 100
    ) -> list[Decision]:
        return self._select_decisions(DecisionsQuery(since, until, stage, outcome, reason, limit))

    def client_decisions(
        self, since: datetime, until: datetime, *, stage: str, outcome: str, client: str, limit: int = 100
    ) -> list[Decision]:
        return self._select_decisions(DecisionsQuery(since, until, stage, outcome, None, limit, client))

    @abstractmethod
    def _select_decisions(self, chosen: DecisionsQuery) -> list[Decision]:
        """Run ``chosen`` in the adapter's database, newest first."""


def client_counts_sql(table: str, client: str, mark: Callable[[str], str]) -> str:
    """``by_client``'s SELECT over ``table``, for an index on (stage, outcome, ``client``, at): ``mark(name)`` is the
    driver's named placeholder (``:since``, ``%(since)s``) for ``since``, ``until``, ``stage`` and ``outcome``.

    A GROUP BY would walk every entry of the stage and outcome in the index (the whole retention: 1.5 million at
    10 million rows), or every decision of the window: this skips from one client to the next in the index (a
    recursive "loose index scan", one lookup per client the journal knows), then counts each client's window as
    an index range. Clients with none in the window come back as 0 (``client_counts`` drops them).
    """
    where = f"stage = {mark('stage')} AND outcome = {mark('outcome')}"
    # ``table``, ``client`` and what ``mark`` returns are the adapters' constants; every value is an argument.
    return f"""
WITH RECURSIVE clients(client) AS (
    SELECT (SELECT min({client}) FROM {table} WHERE {where})
    UNION ALL
    SELECT (SELECT min({client}) FROM {table} WHERE {where} AND {client} > clients.client)
    FROM clients WHERE clients.client IS NOT NULL
)
SELECT client, (SELECT count(*) FROM {table} WHERE {where} AND {client} = clients.client
                AND at >= {mark("since")} AND at < {mark("until")})
FROM clients WHERE client IS NOT NULL
"""  # noqa: S608


def client_counts(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """``by_client``'s answer from its ``(client, count)`` rows, in either adapter's types; a count of 0 is left out."""
    return {str(client): int(n) for client, n in rows if n}


def floor_minute(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60 * 60)


def timeline_key(file_id: str | None, event_id: str | None) -> tuple[Literal["file_id", "event_id"], str]:
    """The column and value a timeline reads by: the file when there is one, else the event."""
    if file_id is not None:
        return "file_id", file_id
    if event_id is not None:
        return "event_id", event_id
    raise ValueError("timeline needs a file id or an event id")


def collect_matches(
    rows: Sequence[Sequence[Any]],
    matched_by: MatchedBy,
    summary_of: Callable[[str | None, str | None], Sequence[Any] | None],
    when: Callable[[Any], datetime],
) -> list[Match]:
    """One match per file (or per file-less event) among ``(file_id, event_id)`` rows, newest first.

    ``summary_of(file_id, event_id)`` reads ``(title, first_at, last_at, decisions)`` in the adapter's own SQL;
    ``when`` turns the adapter's stored time into a datetime.
    """
    found: dict[tuple[str | None, str | None], Match] = {}
    for file_id, event_id in rows:
        key = (file_id, None if file_id is not None else event_id)
        if key in found:
            continue
        summary = summary_of(*key)
        if summary is None or summary[1] is None:
            continue
        found[key] = Match(
            file_id=file_id,
            event_id=key[1],
            title=summary[0],
            first_at=when(summary[1]),
            last_at=when(summary[2]),
            decisions=int(summary[3]),
            matched_by=matched_by,
        )
    return sorted(found.values(), key=lambda m: m.last_at, reverse=True)


def unavailable_on(
    error: type[Exception], database: str, before: Callable[[Any], None] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an adapter's methods: its driver's ``error`` leaves as ``JournalUnavailable``, naming ``database``."""
    return reraise_as(
        error, lambda exc: JournalUnavailable(f"the journal's {database} failed: {type(exc).__name__}: {exc}"), before
    )
