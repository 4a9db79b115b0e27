"""The decision journal under load: ``trace`` over millions of rows (SQLite and PostgreSQL), how soon a decision
is visible to ``trace``, and what the journal costs the pipeline (journal on vs off, same run).

Rows are generated in bulk, straight into the store's own schema (made by the store itself, so the queries run on
exactly the tables and indexes production has): executemany into SQLite, COPY into PostgreSQL, the secondary
indexes built after the load. Six decisions per file, as an invoice makes them (ingress, classifier, mover, two
notifiers, one retry), spread over 30 days (the default retention).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import backlog, baseline, ingress_bench
from bench.payload import delivery
from bench.procs import AMQP_URL, LOG_DIR, Proc, delete_topology, topology
from ops.trace import trace
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.journal.broker import BrokerJournal
from shared.journal.postgres_store import PostgresJournalStore
from shared.journal.record import Decision
from shared.journal.sqlite_store import SqliteJournalStore
from shared.journal.store import JournalStore

POSTGRES_URL = os.environ.get("JOURNAL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PER_FILE = 6
SPAN = timedelta(days=30)
STORY = (  # (stage, outcome, reason, attempt): one invoice's decisions
    ("ingress", "accepted", None, 1),
    ("classifier", "accepted", None, 1),
    ("mover", "retried", "docspace_timeout", 1),
    ("mover", "received", None, 2),
    ("notifier.email", "emailed", None, 1),
    ("notifier.pipeline", "pipeline_called", None, 1),
)
SAMPLES = 200
LAST_ENV: dict[str, dict[str, str]] = {}  # backend -> the settings that reach the journal section J last measured
NULL = "\\N"  # COPY's text format
CHUNK = 50_000


@dataclass
class QueryResult:
    """``trace`` against one store holding ``rows`` decisions."""

    backend: str
    rows: int
    load_s: float
    by_file_ms: list[float] = field(default_factory=list)
    by_fragment_ms: list[float] = field(default_factory=list)  # a fragment of one file's title
    by_broad_fragment_ms: list[float] = field(default_factory=list)  # a fragment 10 files share: the table
    command_s: list[float] = field(default_factory=list)  # the whole `invoice-pipeline trace FILE_ID`, wall time
    command_cpu_s: list[float] = field(default_factory=list)  # its CPU time (user + system): what load cannot inflate
    import_s: list[float] = field(default_factory=list)  # of which: starting Python, importing what trace imports
    size_mb: float = 0.0


@dataclass
class VisibilityResult:
    """How long from a stage's ``record()`` to the decision being readable by ``trace``."""

    backend: str
    rate: float
    seconds: float
    published: int
    seen: int
    latencies_ms: list[float]


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- bulk rows -----------------------------------------------------------------------------------------------


def file_id(n: int) -> str:
    return str(1_000_000 + n)


def title(n: int) -> str:
    return f"Invoice-2026-{n:07d}.pdf"


def _rows(files: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    """Each file's six decisions as (decision_id, at, stage, outcome, reason, file, invoice, event, record JSON)."""
    step = SPAN.total_seconds() / max(files, 1)
    for n in range(files):
        fid, at0 = file_id(n), start.timestamp() + n * step
        invoice, event = f"{fid}:1", f"{n:08x}-ev"
        for k, (stage, outcome, reason, attempt) in enumerate(STORY):
            at = at0 + k * 2.0
            ident = f"{n:024x}{k:08x}"
            when = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
            extra = f',"title":"{title(n)}"' if k == 0 else ""
            why = f',"reason":"{reason}"' if reason else ""
            record = (
                f'{{"schema_version":1,"decision_id":"{ident}","stage":"{stage}","outcome":"{outcome}"{why},'
                f'"file_id":"{fid}","invoice_id":"{invoice}","event_id":"{event}"{extra},"attempt":{attempt},'
                f'"process":"bench","host":"bench","at":"{when}"}}'
            )
            yield ident, at, stage, outcome, reason, fid, invoice, event, record


def load_sqlite(path: Path, rows: int) -> float:
    """Fill an SQLite journal with ``rows`` decisions; returns the seconds it took."""
    started = time.monotonic()
    SqliteJournalStore(path).close()  # the store's own schema
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL").fetchall()
    for name, _sql in indexes:
        db.execute(f"DROP INDEX {name}")
    files = rows // PER_FILE
    start = datetime.now(UTC) - SPAN
    batch: list[tuple[Any, ...]] = []
    db.execute("BEGIN")
    for row in _rows(files, start):
        batch.append(row)
        if len(batch) >= CHUNK:
            _sqlite_insert(db, batch)
            batch = []
    _sqlite_insert(db, batch)
    step = SPAN.total_seconds() / max(files, 1)
    summaries = (
        (file_id(n), title(n), start.timestamp() + n * step, start.timestamp() + n * step + 10, PER_FILE)
        for n in range(files)
    )
    db.executemany("INSERT INTO files (file_id, title, first_at, last_at, decisions) VALUES (?, ?, ?, ?, ?)", summaries)
    db.executemany("INSERT INTO titles (title, file_id) VALUES (?, ?)", ((title(n), file_id(n)) for n in range(files)))
    db.execute("COMMIT")
    for _name, statement in indexes:
        db.execute(statement)
    db.close()
    return time.monotonic() - started


def _sqlite_insert(db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO decisions (decision_id, at, stage, outcome, reason, file_id, invoice_id, event_id, record)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )


def load_postgres(url: str, schema: str, rows: int) -> float:
    """Fill a PostgreSQL journal (its own schema) with ``rows`` decisions by COPY; returns the seconds it took."""
    started = time.monotonic()
    PostgresJournalStore(url, schema=schema).close()  # the store's own schema, pg_trgm index included
    s = sql.Identifier(schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND indexname NOT LIKE '%%_pkey'"
            " AND indexname NOT LIKE '%%_key'",
            (schema,),
        ).fetchall()
        for name, _definition in indexes:
            conn.execute(sql.SQL("DROP INDEX {}.{}").format(s, sql.Identifier(name)))
        files = rows // PER_FILE
        start = datetime.now(UTC) - SPAN
        columns = "decision_id, at, stage, outcome, reason, file_id, invoice_id, event_id, record"
        with conn.cursor() as cur, cur.copy(sql.SQL(f"COPY {{}}.decisions ({columns}) FROM STDIN").format(s)) as copy:
            chunk: list[str] = []
            for ident, at, stage, outcome, reason, fid, invoice, event, record in _rows(files, start):
                when = datetime.fromtimestamp(at, UTC).isoformat()
                why = reason or NULL
                chunk.append(f"{ident}\t{when}\t{stage}\t{outcome}\t{why}\t{fid}\t{invoice}\t{event}\t{record}\n")
                if len(chunk) >= CHUNK:
                    copy.write("".join(chunk).encode())
                    chunk = []
            copy.write("".join(chunk).encode())
        step = SPAN.total_seconds() / max(files, 1)
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {}.files (file_id, title, first_at, last_at, decisions) FROM STDIN").format(s)
            ) as copy,
        ):
            chunk = []
            for n in range(files):
                first = datetime.fromtimestamp(start.timestamp() + n * step, UTC)
                last = first + timedelta(seconds=10)
                chunk.append(f"{file_id(n)}\t{title(n)}\t{first.isoformat()}\t{last.isoformat()}\t{PER_FILE}\n")
                if len(chunk) >= CHUNK:
                    copy.write("".join(chunk).encode())
                    chunk = []
            copy.write("".join(chunk).encode())
        for _name, definition in indexes:
            conn.execute(definition)
        conn.execute(sql.SQL("ANALYZE {}.decisions").format(s))
        conn.execute(sql.SQL("ANALYZE {}.files").format(s))
    return time.monotonic() - started


# --- (a) trace over many rows --------------------------------------------------------------------------------


def _timed_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure_trace(store: JournalStore, result: QueryResult, env: dict[str, str]) -> QueryResult:
    files = result.rows // PER_FILE
    rng = random.Random(20)
    now = datetime.now(UTC)
    picks = [rng.randrange(files) for _ in range(SAMPLES)]
    for n in picks[:10]:  # warm the connection and the first pages, as a second trace would find them
        trace(file_id(n), store=store, now=now)
    for n in picks:
        found = trace(file_id(n), store=store, now=now)
        assert len(found.timeline) == PER_FILE, (n, found)
    result.by_file_ms = [_timed_ms(lambda n=n: trace(file_id(n), store=store, now=now)) for n in picks]  # type: ignore[misc]
    result.by_fragment_ms = [_timed_ms(lambda n=n: trace(f"2026-{n:07d}", store=store, now=now)) for n in picks]  # type: ignore[misc]
    result.by_broad_fragment_ms = [
        _timed_ms(lambda n=n: trace(f"2026-{n // 10:06d}", store=store, now=now))  # type: ignore[misc]
        for n in picks
    ]
    cli = shutil.which("invoice-pipeline", path=str(Path(sys.executable).parent)) or "invoice-pipeline"
    for n in picks[:7]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([cli, "trace", file_id(n)], env={**os.environ, **env}, capture_output=True, check=False)
        result.command_s.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.command_cpu_s.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from ops.cli import build_app; build_app('trace')"], check=True)
        result.import_s.append(time.perf_counter() - started)
    return result


def query_sqlite(rows: int, workdir: Path, *, keep: bool = False) -> QueryResult:
    """``keep``: leave the file for the next run and reuse one that holds ``rows`` decisions (loading 10 million
    takes minutes); opening it through the store migrates its schema first, as production's would be."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"journal-{rows}.sqlite3"
    if keep and path.exists() and _sqlite_rows(path) == rows // PER_FILE * PER_FILE:
        load_s = float("nan")
    else:
        for f in workdir.glob(f"journal-{rows}.sqlite3*"):
            f.unlink()
        load_s = load_sqlite(path, rows)
    store = SqliteJournalStore(path)
    LAST_ENV["SQLite"] = {"JOURNAL_URL": f"sqlite:///{path.resolve()}"}
    size = sum(f.stat().st_size for f in workdir.glob(f"journal-{rows}.sqlite3*")) / 1e6
    try:
        result = QueryResult("SQLite", rows, load_s, size_mb=size)
        return measure_trace(store, result, {"JOURNAL_URL": f"sqlite:///{path.resolve()}"})
    finally:
        store.close()
        if not keep:
            for f in workdir.glob(f"journal-{rows}.sqlite3*"):
                f.unlink()


def _sqlite_rows(path: Path) -> int:
    db = sqlite3.connect(str(path))
    try:
        return int(db.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        db.close()


def query_postgres(rows: int, url: str = POSTGRES_URL, *, keep: bool = False) -> QueryResult:
    """``keep``: leave the schema (``bench_journal_keep_<rows>``) for the next run and reuse it when it holds
    ``rows`` decisions; the store's constructor migrates it first."""
    schema = f"bench_journal_keep_{rows}" if keep else f"bench_journal_{uuid.uuid4().hex[:8]}"
    try:
        if keep and _postgres_rows(url, schema) == rows // PER_FILE * PER_FILE:
            load_s = float("nan")
        else:
            _drop_schema(url, schema)
            load_s = load_postgres(url, schema, rows)
        store = PostgresJournalStore(url, schema=schema)
        LAST_ENV["PostgreSQL"] = {"JOURNAL_URL": url, "JOURNAL_SCHEMA": schema}
        with psycopg.connect(url) as conn:
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
        try:
            result = QueryResult("PostgreSQL", rows, load_s, size_mb=float(size[0] or 0) / 1e6 if size else 0.0)
            return measure_trace(store, result, {"JOURNAL_URL": url, "JOURNAL_SCHEMA": schema})
        finally:
            store.close()
    finally:
        if not keep:
            _drop_schema(url, schema)


def _postgres_rows(url: str, schema: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            return -1
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}.decisions").format(sql.Identifier(schema))).fetchone()
        return int(found[0]) if found else -1


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --- (a') trace before and after a change, side by side ---------------------------------------------------------

_CLI = "import sys; from ops.cli import main; sys.exit(main())"
_FRAGMENTS = """
import json, random, sys, time
from datetime import UTC, datetime
from ops.trace import trace
from shared.journal.wiring import open_journal_store
store = open_journal_store(sys.argv[1], schema=sys.argv[2])
rng, now, out = random.Random(int(sys.argv[3])), datetime.now(UTC), []
picks = [rng.randrange(int(sys.argv[4])) for _ in range(int(sys.argv[5]))]
for n in picks[:5]:
    trace(f"2026-{n:07d}", store=store, now=now)
for n in picks:
    started = time.perf_counter()
    found = trace(f"2026-{n:07d}", store=store, now=now)
    out.append((time.perf_counter() - started) * 1000)
    assert len(found.timeline) == 6
print(json.dumps(out))
"""


@dataclass
class BeforeAfter:
    """The whole command and the title-fragment trace, the code of ``commit`` and this checkout's, alternately."""

    backend: str
    commit: str
    command_s: dict[str, list[float]] = field(default_factory=dict)  # "before"/"now" -> wall seconds
    command_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    fragment_ms: dict[str, list[float]] = field(default_factory=dict)


def before_and_after(backend: str, env: dict[str, str], rows: int, *, commit: str, runs: int = 5) -> BeforeAfter:
    """``invoice-pipeline trace FILE_ID`` ``runs`` times and 100 traces by a title fragment, from a checkout of
    ``commit`` (``bench/baseline.py``) and from this one, alternating, against the same journal (``env``)."""
    result = BeforeAfter(backend, commit)
    files = rows // PER_FILE
    with baseline.worktree(commit) as before:
        sides = {"before": before, "now": Path.cwd()}
        for k in range(runs):
            for side, tree in sides.items():
                usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", _CLI, "trace", file_id(k * 7919 % files)],
                    cwd=tree,
                    env={**os.environ, **env},
                    capture_output=True,
                    check=False,
                )
                result.command_s.setdefault(side, []).append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
                result.command_cpu_s.setdefault(side, []).append(cpu)
                assert done.returncode == 0, done.stderr.decode()[-2000:]
        for seed in (1, 2):
            for side, tree in sides.items():
                args = [env["JOURNAL_URL"], env.get("JOURNAL_SCHEMA", "invoice_journal"), str(seed), str(files), "100"]
                printed = subprocess.run(
                    [sys.executable, "-c", _FRAGMENTS, *args], cwd=tree, capture_output=True, text=True, check=True
                ).stdout
                result.fragment_ms.setdefault(side, []).extend(json.loads(printed))
    return result


def before_after_rows(results: list[BeforeAfter]) -> list[str]:
    out = [
        f"{'store':>10} {'code':>16} | {'whole command wall':>18} {'CPU':>6} | {'title fragment p50':>18} {'p95':>7}"
    ]
    for r in results:
        for side in ("before", "now"):
            label = f"{side} ({r.commit})" if side == "before" else "now"
            out.append(
                f"{r.backend:>10} {label:>16} | {statistics.median(r.command_s[side]):>17.2f}s "
                f"{statistics.median(r.command_cpu_s[side]):>5.2f}s | "
                f"{p(r.fragment_ms[side], 0.5):>16.1f}ms {p(r.fragment_ms[side], 0.95):>5.1f}ms"
            )
    out.append("(medians of the command's runs; fragment p50/p95 of 200 traces; both sides alternate, same journal)")
    return out


# --- (b) from record() to visible ----------------------------------------------------------------------------


def visibility(backend: str, *, rate: float, seconds: float, workdir: Path) -> VisibilityResult:
    """A real journal writer (``python -m consumers.journal``, default batching) behind a ``BrokerJournal``
    publishing ``rate`` records/s; a reader polls the store every 20 ms and notes when each record appears."""
    prefix = f"bench-journal-{uuid.uuid4().hex[:6]}."
    schema = f"bench_visible_{uuid.uuid4().hex[:8]}"
    path = workdir / f"visible-{uuid.uuid4().hex[:6]}.sqlite3"
    url = f"sqlite:///{path.resolve()}" if backend == "SQLite" else POSTGRES_URL
    store: JournalStore = SqliteJournalStore(path) if backend == "SQLite" else PostgresJournalStore(url, schema=schema)
    store.close()
    env = {"TOPOLOGY_PREFIX": prefix, "JOURNAL_URL": url, "JOURNAL_SCHEMA": schema, "METRICS_PORT": "0"}
    writer = Proc(f"journal-writer-{backend.lower()}", "consumers.journal", env)
    publisher = Publisher(connection_parameters(AMQP_URL, name="bench-journal"), topology=topology(prefix)).start()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    reader = threading.Thread(target=_poll, args=(backend, url, schema, path, seen, stop), daemon=True)
    journal: BrokerJournal | None = None
    try:
        assert publisher.wait_connected(15), "no broker"
        time.sleep(3)  # the writer is up and consuming
        reader.start()
        journal = BrokerJournal(publisher, topology(prefix).journal_exchange, process="bench")
        interval, started = 1.0 / rate, time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            due = started + n * interval
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            stage, outcome, reason, attempt = STORY[n % PER_FILE]
            decision = Decision.make(
                stage, outcome, reason=reason, attempt=attempt, file_id=file_id(n // PER_FILE), event_id=f"v{n}"
            )
            sent[decision.decision_id] = time.monotonic()
            journal.record(decision)
            n += 1
        deadline = time.monotonic() + 30
        while len(seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        if journal is not None:
            journal.close()
        publisher.stop()
        writer.stop()
        delete_topology(prefix)
        if backend == "SQLite":
            for f in workdir.glob(path.name + "*"):
                f.unlink()
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    latencies = [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen]
    return VisibilityResult(backend, rate, seconds, len(sent), len(latencies), latencies)


def _poll(backend: str, url: str, schema: str, path: Path, seen: dict[str, float], stop: threading.Event) -> None:
    last = 0
    if backend == "SQLite":
        db = sqlite3.connect(str(path))
        query = "SELECT seq, decision_id FROM decisions WHERE seq > ? ORDER BY seq"

        def fetch(after: int) -> list[Any]:
            return db.execute(query, (after,)).fetchall()
    else:
        conn = psycopg.connect(url, autocommit=True)
        pg_query = sql.SQL("SELECT seq, decision_id FROM {}.decisions WHERE seq > %s ORDER BY seq").format(
            sql.Identifier(schema)
        )

        def fetch(after: int) -> list[Any]:
            return conn.execute(pg_query, (after,)).fetchall()

    while not stop.is_set():
        now = time.monotonic()
        for seq, ident in fetch(last):
            seen.setdefault(ident, now)
            last = max(last, seq)
        time.sleep(0.02)


# --- (c) the journal's cost ---------------------------------------------------------------------------------

# The setting that switches every process's journal off (CommonSettings.journal_enabled), as NAME=value; the
# environment variable overrides it only to try another switch.
JOURNAL_OFF_ENV = os.environ.get("JOURNAL_BENCH_OFF_ENV", "JOURNAL_ENABLED=false")


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """Every process the rigs start inherits this process's environment: set for one run, then restored."""
    before = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class CostRun:
    """One end-to-end backlog and one ingress load, with the journal on or off."""

    journal: str
    e2e_per_s: float
    records: int  # journal messages the run left in the journal queue (no writer runs: all of them), batches of records
    ingress_rps: float
    ingress_p99_ms: float
    once: bool


def cost(*, invoices: int, seconds: float, rounds: int = 2) -> list[CostRun]:
    """Journal on and off alternately, ``rounds`` times each, in one run (the machine's load drifts: alternating
    spreads the drift over both). End to end: a backlog of ``invoices`` drained at concurrency 16; ingress: wrk
    at 16 connections for ``seconds``."""
    name, _, value = JOURNAL_OFF_ENV.partition("=")
    runs: list[CostRun] = []
    body = delivery()
    for _ in range(rounds):
        for label, extra in (("on", {}), ("off", {name: value})):
            with environment(extra):
                result = backlog.run(invoices, 16)
                with ingress_bench.server("ingress") as (url, _proc):
                    load = ingress_bench.measure(url, 16, seconds, body)
            records = sum(depth for queue, depth in result.left_in_queues.items() if queue.endswith("journal"))
            # No writer runs, so the journal queue keeps every record: not an invoice left behind.
            invoices_left = {q: depth for q, depth in result.left_in_queues.items() if not q.endswith("journal")}
            once = dataclasses.replace(result, left_in_queues=invoices_left).exactly_once
            runs.append(CostRun(label, result.steady_per_s, records, load.rps, load.p99_ms, once))
    return runs


def cost_rows(*, quick: bool) -> list[str]:
    runs = cost(invoices=300 if quick else 2000, seconds=5.0 if quick else 10.0, rounds=1 if quick else 2)
    # The journal queue's depth after the run (no writer): messages, each a batch of records.
    out = [f"{'journal':>7} | {'e2e inv/s':>9} {'messages':>8} | {'ingress req/s':>13} {'p99':>7} | once"]
    for r in runs:
        out.append(
            f"{r.journal:>7} | {r.e2e_per_s:>9.1f} {r.records:>8} | {r.ingress_rps:>13.0f} "
            f"{r.ingress_p99_ms:>5.1f}ms | {'yes' if r.once else 'NO'}"
        )
    on = [r for r in runs if r.journal == "on"]
    off = [r for r in runs if r.journal == "off"]
    if not any(r.records for r in on):
        out.append("not measured: the stages published no journal records (the journal is not wired into them yet)")
        return out
    if any(r.records for r in off):
        out.append(f"not measured: {JOURNAL_OFF_ENV} did not switch the journal off (set JOURNAL_BENCH_OFF_ENV)")
        return out
    e2e = statistics.mean(r.e2e_per_s for r in on) / statistics.mean(r.e2e_per_s for r in off)
    ingress = statistics.mean(r.ingress_rps for r in on) / statistics.mean(r.ingress_rps for r in off)
    good = e2e >= 0.95 and ingress >= 0.95
    out.append(
        f"journal on / off: end to end {e2e:.2f}x, ingress {ingress:.2f}x "
        f"({'PASS' if good else 'MISS'}: the journal costs <= 5% of each); load average now {_load()}"
    )
    return out


def summary_rows(queries: list[QueryResult], visible: list[VisibilityResult]) -> list[str]:
    out: list[str] = []
    if queries:
        out.append(
            f"{'store':>10} {'rows':>10} {'load s':>7} {'MB':>6} | {'by file id p50':>14} {'p95':>7} | "
            f"{'title fragment p50':>18} {'p95':>7} | {'10-file fragment p95':>20} | {'whole command':>13}"
        )
        for r in queries:
            out.append(
                f"{r.backend:>10} {r.rows:>10,} {r.load_s:>7.0f} {r.size_mb:>6.0f} | "
                f"{p(r.by_file_ms, 0.5):>12.1f}ms {p(r.by_file_ms, 0.95):>5.1f}ms | "
                f"{p(r.by_fragment_ms, 0.5):>16.1f}ms {p(r.by_fragment_ms, 0.95):>5.1f}ms | "
                f"{p(r.by_broad_fragment_ms, 0.95):>18.1f}ms | "
                f"{statistics.median(r.command_s):>5.2f}s (max {max(r.command_s):.2f})"
            )
        good = all(
            p(r.by_file_ms, 0.95) <= 50 and p(r.by_fragment_ms, 0.95) <= 100 and max(r.command_s) <= 1.0
            for r in queries
        )
        imports = [t for r in queries for t in r.import_s]
        if imports:
            out.append(
                f"of the whole command: starting Python and importing what `trace` imports, median "
                f"{statistics.median(imports):.2f} s; the command's CPU time (user + system), median "
                + ", ".join(f"{r.backend} {statistics.median(r.command_cpu_s):.2f} s" for r in queries)
                + f"; load average now {_load()}"
            )
        out.append(
            f"targets: by file id p95 <= 50 ms, by title fragment p95 <= 100 ms, whole command <= 1 s: "
            f"{'PASS' if good else 'MISS'} (p95 of {SAMPLES} traces of random files; the command 7 times)"
        )
    for v in visible:
        out.append(
            f"decision -> visible to trace ({v.backend}, {v.rate:.0f} records/s for {v.seconds:.0f} s, real writer): "
            f"p50 {p(v.latencies_ms, 0.5):.0f} ms, p99 {p(v.latencies_ms, 0.99):.0f} ms, "
            f"max {max(v.latencies_ms, default=float('nan')):.0f} ms; {v.seen}/{v.published} seen "
            f"({'PASS' if v.seen == v.published and p(v.latencies_ms, 0.99) <= 5000 else 'MISS'}: p99 <= 5 s)"
        )
    return out


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def workdir() -> Path:
    path = LOG_DIR / "journal"
    path.mkdir(parents=True, exist_ok=True)
    return path
