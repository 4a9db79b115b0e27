"""``python -m bench.console``: the operator console over a large journal: page server time, page weight, RSS.

Loads an SQLite journal of about ``--rows`` decisions in bulk (six per invoice, two per skipped photo, 40
clients, spread over the last 30 days: the default retention), or reuses ``--journal``; starts a real
``python -m console`` on loopback against it and the local broker, logs in, waits for the background count of
today's invoices per client, then requests each page ``--repeat`` times and prints p50/p95 (as the client on
loopback sees them: an upper bound of the server's time), the page's weight with its assets, the console's resident
memory and the load average. Not a unit test: a measurement to run by hand.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from console.auth import user_line
from ops.today import arrivals, today, window
from shared.journal.sqlite_store import SqliteJournalStore
from standins.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SPAN = timedelta(days=30)  # JOURNAL_RETENTION_DAYS' default: what a full journal holds
CLIENTS = 40
CHUNK = 50_000
# One invoice's decisions (stage, outcome, reason, attempt, seconds after its delivery); one file in ten is a photo
# the classifier ignores, which makes two decisions.
INVOICE = (
    ("ingress", "accepted", None, 1, 0),
    ("classifier", "accepted", None, 1, 2),
    ("mover", "retried", "docspace_timeout", 1, 4),
    ("mover", "received", None, 2, 34),
    ("notifier.email", "emailed", None, 1, 36),
    ("notifier.pipeline", "pipeline_called", None, 1, 37),
)
PHOTO = (("ingress", "accepted", None, 1, 0), ("classifier", "ignored", "not_an_invoice", 1, 2))
FIRST_FILE = 100_000


def story(n: int) -> tuple[tuple[str, str, str | None, int, int], ...]:
    return PHOTO if n % 10 == 9 else INVOICE


def client_name(n: int) -> str:
    return f"Client {n % CLIENTS:02d}"


def _rows(files: int, start: float, step: float) -> Iterator[tuple[Any, ...]]:
    """Each file's decisions as the store's columns (id, at, stage, outcome, reason, file, invoice, event, record)."""
    for n in range(files):
        fid, at0, client = str(FIRST_FILE + n), start + n * step, client_name(n)
        invoice, event = f"{fid}:1", f"ev{n:08x}"
        for k, (stage, outcome, reason, attempt, after) in enumerate(story(n)):
            at = at0 + after
            ident = f"{n:024x}{k:08x}"
            when = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
            extra = f',"title":"Invoice-2026-{n:07d}.pdf"' if k == 0 else f',"client":"{client}"'
            why = f',"reason":"{reason}"' if reason else ""
            inv = "" if stage == "ingress" or outcome == "ignored" else invoice
            record = (
                f'{{"schema_version":1,"decision_id":"{ident}","stage":"{stage}","outcome":"{outcome}"{why},'
                f'"file_id":"{fid}"' + (f',"invoice_id":"{inv}"' if inv else "") + f',"event_id":"{event}"{extra},'
                f'"attempt":{attempt},"process":"bench","host":"bench","at":"{when}"}}'
            )
            yield ident, at, stage, outcome, reason, fid, inv or None, event, record


def load(path: Path, rows: int, now: datetime) -> tuple[int, float]:
    """A new SQLite journal of about ``rows`` decisions over the last 30 days, in the store's own schema (made by
    the store), written in bulk with the rollups and file summaries the store would keep; secondary indexes are
    built after the load. Returns the files and the seconds it took."""
    started = time.monotonic()
    SqliteJournalStore(path).close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-500000")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name='decisions'"
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f"DROP INDEX {name}")
    per_file = (9 * len(INVOICE) + len(PHOTO)) / 10
    files = int(rows / per_file)
    start = (now - SPAN).timestamp()
    step = (SPAN.total_seconds() - 60) / max(files, 1)
    rollups: Counter[tuple[int, str, str, str]] = Counter()
    insert = (
        "INSERT INTO decisions (decision_id, at, stage, outcome, reason, file_id, invoice_id, event_id, record)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    db.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    for row in _rows(files, start, step):
        batch.append(row)
        rollups[(int(row[1] // 60 * 60), row[2], row[3], row[4] or "")] += 1
        if len(batch) >= CHUNK:
            db.executemany(insert, batch)
            batch = []
            print(f"  {row[5]} ({time.monotonic() - started:.0f} s)", file=sys.stderr, end="\r")
    db.executemany(insert, batch)
    db.executemany(
        "INSERT INTO rollups (minute, stage, outcome, reason, count) VALUES (?, ?, ?, ?, ?)",
        ((*key, count) for key, count in rollups.items()),
    )
    db.executemany(
        "INSERT INTO files (file_id, title, first_at, last_at, decisions) VALUES (?, ?, ?, ?, ?)",
        (
            (str(FIRST_FILE + n), f"Invoice-2026-{n:07d}.pdf", start + n * step, start + n * step + story(n)[-1][4],
             len(story(n)))
            for n in range(files)
        ),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO titles (title, file_id) VALUES (?, ?)",
        ((f"Invoice-2026-{n:07d}.pdf", str(FIRST_FILE + n)) for n in range(files)),
    )
    db.execute("COMMIT")
    for _name, statement in indexes:
        db.execute(statement)
    db.close()
    return files, time.monotonic() - started


def background_counts(journal_file: Path, repeat: int) -> None:
    """What the console counts in the background, timed in this process: the 7-day window, today per client."""
    store = SqliteJournalStore(journal_file)
    try:
        for name, count in (
            ("today(7 days) [bg]", lambda: today(store, *window("7d", datetime.now(UTC))[:2])),
            ("arrivals(today) [bg]", lambda: arrivals(store, *window("today", datetime.now(UTC))[:2])),
        ):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                count()
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"{name:<26}{statistics.median(times):>9.1f}{p95:>9.1f}")
    finally:
        store.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="journal rows to fill (default 200,000)")
    parser.add_argument("--repeat", type=int, default=40, help="requests per page")
    parser.add_argument("--journal", type=Path, help="reuse (or keep) this SQLite journal file")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="console-bench-"))
    journal_file = args.journal or workdir / "journal.sqlite3"
    if not journal_file.exists():
        print(f"loading about {args.rows:,} decisions into {journal_file}...", file=sys.stderr)
        files, seconds = load(journal_file, args.rows, datetime.now(UTC))
        print(f"\nloaded {files:,} files in {seconds:.0f} s", file=sys.stderr)
    db = sqlite3.connect(f"file:{journal_file}?mode=ro", uri=True)
    rows = db.execute("SELECT max(seq) FROM decisions").fetchone()[0] or 0  # seq counts up from 1, never reused here
    newest = db.execute("SELECT file_id FROM files ORDER BY last_at DESC LIMIT 1").fetchone()
    last_file = newest[0] if newest else str(FIRST_FILE)
    db.close()

    password = secrets.token_urlsafe(12)
    users = workdir / "users"
    users.write_text(user_line("bench", "operator", password) + "\n")
    port = free_port()
    env = {
        **os.environ,
        "CONSOLE_PORT": str(port),
        "CONSOLE_USERS_FILE": str(users),
        "JOURNAL_URL": f"sqlite:///{journal_file}",
        "TOPOLOGY_PREFIX": "bench.console.",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "console"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        session = requests.Session()
        for _ in range(100):
            try:
                form = session.get(f"{url}/login", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        print(f"console RSS at start: {rss_mib(process.pid):.0f} MiB", file=sys.stderr)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        session.post(f"{url}/login", data={"csrf": token, "username": "bench", "password": password, "next": "/"})
        print(f"console RSS after a login: {rss_mib(process.pid):.0f} MiB", file=sys.stderr)
        counted = time.monotonic()
        # The console counts today's invoices per client and the 7-day window in the background: wait for both.
        for path, mark in (("/today", 'id="per-client"'), ("/today?window=7d", "counted in the background")):
            while mark not in session.get(f"{url}{path}", timeout=30).text:
                if time.monotonic() - counted > 120:
                    raise SystemExit(f"the console's background count for {path} did not arrive in 120 s")
                time.sleep(0.5)
        print(f"background counts ready after {time.monotonic() - counted:.1f} s", file=sys.stderr)
        pages = {
            "today": "/today",
            "today (7 days)": "/today?window=7d",
            "a number's list": "/today/list?window=24h&of=classifier:accepted",
            "a client's list (today)": f"/today/list?window=today&of=classifier:accepted&client={client_name(0)}",
            "find a title fragment": "/find?q=2026-00001",
            "trace (file id)": f"/find?q={last_file}",
            "dead letters": "/dead-letters",
            "health": "/health",
            "clients": "/clients",
        }
        css = len(session.get(f"{url}/static/console.css").content) + len(
            session.get(f"{url}/static/favicon.svg").content
        )
        loadavg = "/".join(f"{n:.1f}" for n in os.getloadavg())
        print(f"\nconsole over {rows:,} journal rows ({journal_file}); load average {loadavg} (1/5/15 min)\n")
        print(f"{'page':<26}{'p50 ms':>9}{'p95 ms':>9}{'weight KB':>11}")
        for name, path in pages.items():
            times, size = [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                answer = session.get(f"{url}{path}", timeout=30)
                times.append((time.perf_counter() - started) * 1000)
                size = len(answer.content)
                answer.raise_for_status()
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"{name:<26}{statistics.median(times):>9.1f}{p95:>9.1f}{(size + css) / 1024:>11.1f}")
        loadavg = "/".join(f"{n:.1f}" for n in os.getloadavg())
        print(f"\nconsole RSS: {rss_mib(process.pid):.0f} MiB; load average {loadavg} (1/5/15 min)")
        background_counts(journal_file, args.repeat // 4 or 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
