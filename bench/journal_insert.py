"""``python -m bench.journal_insert``: what the journal's client index costs an insert, SQLite and PostgreSQL.

Inserts the same decisions (batches of 100, as the journal writer does; 40 clients) into a new store with its
whole schema and into one without ``decisions_client``, alternating, and prints each round's decisions per second.
PostgreSQL runs against ``JOURNAL_BENCH_POSTGRES_URL`` (the local ``test`` database by default) in schemas of its
own, dropped afterwards. Not a unit test: a measurement to run by hand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.journal.postgres_store import PostgresJournalStore
from shared.journal.record import Decision
from shared.journal.sqlite_store import SqliteJournalStore
from shared.journal.store import JournalStore

POSTGRES_URL = os.environ.get("JOURNAL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 3, tzinfo=UTC)
BATCH = 100
STAGES = ("classifier", "mover", "notifier.email")


def batches(count: int) -> list[list[Decision]]:
    return [
        [
            Decision(
                decision_id=f"{n:032x}",
                stage=STAGES[n % len(STAGES)],
                outcome="accepted",
                file_id=str(n // 6),
                event_id=f"ev{n}",
                client=f"Client {n % 40:02d}",
                attempt=1,
                process="bench",
                host="bench",
                at=T0 + timedelta(seconds=n),
            )
            for n in range(k * BATCH, (k + 1) * BATCH)
        ]
        for k in range(count)
    ]


def sqlite_store(with_index: bool) -> JournalStore:
    store = SqliteJournalStore(Path(tempfile.mkdtemp(prefix="journal-insert-")) / "journal.sqlite3")
    if not with_index:
        store._db.execute("DROP INDEX decisions_client")
    return store


def postgres_store(with_index: bool) -> JournalStore:
    store = PostgresJournalStore(POSTGRES_URL, schema=f"bench_insert_{uuid.uuid4().hex[:10]}")
    if not with_index:
        with store._transaction() as conn:
            conn.execute(store._q("DROP INDEX {s}.decisions_client"))
    return store


def rate(store: JournalStore, work: list[list[Decision]]) -> float:
    started = time.perf_counter()
    try:
        for batch in work:
            store.insert(batch)
    finally:
        if isinstance(store, PostgresJournalStore):
            store.drop()
        store.close()
    return len(work) * BATCH / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_insert", description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000, help="decisions per round (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    work = batches(args.decisions // BATCH)
    backends = {"sqlite": sqlite_store, "postgresql": postgres_store}
    chosen = list(backends) if args.backend == "both" else [args.backend]
    print(f"load average {'/'.join(f'{n:.1f}' for n in os.getloadavg())} (1/5/15 min)")
    for name in chosen:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for with_index in (False, True):
                rates[with_index].append(rate(backends[name](with_index), work))
        for with_index, values in rates.items():
            label = f"{name}, {'with' if with_index else 'without'} decisions_client"
            rounds = ", ".join(f"{v:,.0f}" for v in values)
            print(f"{label:<42} median {statistics.median(values):>8,.0f} decisions/s ({rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
