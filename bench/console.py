"""``python -m bench.console``: the operator console over a large journal: page server time, page weight, RSS.

Fills an SQLite journal with ``--rows`` decisions (five per invoice, spread over the last week), starts a real
``python -m console`` on loopback against it and the local broker, logs in, then requests each page ``--repeat``
times and prints p50/p95 (as the client on loopback sees them: an upper bound of the server's time), the page's
weight with its assets, and the console's resident memory. Not a unit test: a measurement to run by hand.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from console.auth import user_line
from shared.journal.record import Decision
from shared.journal.sqlite_store import SqliteJournalStore

ROOT = Path(__file__).resolve().parents[1]
STAGES = (
    ("ingress", "accepted"),
    ("classifier", "accepted"),
    ("mover", "received"),
    ("notifier.email", "emailed"),
    ("notifier.pipeline", "pipeline_called"),
)


def fill(store: SqliteJournalStore, rows: int, now: datetime, *, first: int = 0) -> None:
    """``rows`` more decisions, about files numbered from ``first`` on (a refill adds new files, no duplicates)."""
    files = rows // len(STAGES)
    batch: list[Decision] = []
    started = time.monotonic()
    for n in range(first, first + files):
        at = now - timedelta(seconds=(first + files - n) * 7 * 86400 / (first + files))
        file_id, title = str(100_000 + n), f"Invoice-2026-{n:07d}.pdf"
        skipped = n % 10 == 9  # one file in ten is a photo: ignored by the classifier
        for i, (stage, outcome) in enumerate(STAGES[:2] if skipped else STAGES):
            reason = "not_an_invoice" if skipped and stage == "classifier" else None
            batch.append(
                Decision.make(
                    stage,
                    "ignored" if reason else outcome,
                    at=at + timedelta(milliseconds=i * 300),
                    file_id=file_id,
                    invoice_id=None if stage == "ingress" or skipped else f"{file_id}:1",
                    event_id=f"ev{n}",
                    title=title,
                    reason=reason,
                    client="Acme Ltd",
                )
            )
        if len(batch) >= 5000:
            store.insert(batch)
            batch = []
            print(f"  file {n:,} ({time.monotonic() - started:.0f} s)", file=sys.stderr, end="\r")
    if batch:
        store.insert(batch)


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
    now = datetime.now(UTC)
    store = SqliteJournalStore(journal_file)
    have = store._db.execute("SELECT count(*) FROM decisions").fetchone()[0]  # a bench may peek
    if have < args.rows:
        print(f"filling {journal_file} with {args.rows - have:,} decisions...", file=sys.stderr)
        last_file = store._db.execute("SELECT max(CAST(file_id AS INTEGER)) FROM files").fetchone()[0]
        fill(store, args.rows - have, now, first=(last_file or 99_999) - 99_999)
    rows = store._db.execute("SELECT count(*) FROM decisions").fetchone()[0]
    store.close()

    password = secrets.token_urlsafe(12)
    users = workdir / "users"
    users.write_text(user_line("bench", "operator", password) + "\n")
    port = 18000 + secrets.randbelow(1000)
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
        last = 100_000 + 1000
        pages = {
            "today": "/today",
            "today (7 days)": "/today?window=7d",
            "a number's list": "/today/list?window=24h&of=classifier:accepted",
            "find a title fragment": "/find?q=2026-00001",
            "trace (file id)": f"/find?q={last}",
            "dead letters": "/dead-letters",
            "health": "/health",
            "clients": "/clients",
        }
        css = len(session.get(f"{url}/static/console.css").content) + len(
            session.get(f"{url}/static/favicon.svg").content
        )
        print(f"\nconsole over {rows:,} journal rows ({journal_file})\n")
        print(f"{'page':<24}{'p50 ms':>9}{'p95 ms':>9}{'weight KB':>11}")
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
            print(f"{name:<24}{statistics.median(times):>9.1f}{p95:>9.1f}{(size + css) / 1024:>11.1f}")
        print(f"\nconsole RSS: {rss_mib(process.pid):.0f} MiB")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
