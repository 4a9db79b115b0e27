"""``python -m bench [--quick]``: measures the product beside its baselines in one run and prints a table."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backlog, calls, ingress_bench, journal_bench, wrk
from bench import latency as steady_latency
from bench.baseline import BEFORE_CALLS
from bench.procs import REDIS_URL

CONNECTION_LEVELS = (1, 16, 64)
CONCURRENCY_LEVELS = (1, 4, 16)
REPLICA_LEVELS = (1, 3)
BUSY_RATE = 11.0  # invoices/s: above what one key carried at three calls per invoice, 91% of it at two
# (replicas, CONCURRENCY): the default 4 and, for one replica, 8: a mover with 4 in flight at ~0.37 s an invoice
# (move, the operation's 0.1 s, a poll, at 50 ms a call) carries ~10.8 invoices/s, just under 11.
BUSY_LEVELS: tuple[tuple[int, int | None], ...] = ((1, None), (3, None), (1, 8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: short load runs, 500-invoice backlog")
    parser.add_argument("-n", "--invoices", type=int, help="backlog size at concurrency 16 (default 5000; quick 500)")
    parser.add_argument(
        "--sections",
        default="12345678JVC",
        help="which sections to run, e.g. 12 (ingress only), 34 (backlogs only), 56 (replicas, latency, takeover), "
        "78 (calls per invoice before and after issue 22, upload to inbox at 11 invoices/s); the journal's: "
        "J (trace over many rows), V (decision visible to trace), C (its cost, journal on vs off)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="how long sections 6 and 8 keep up their steady rate (default 120; quick 30)",
    )
    parser.add_argument(
        "--compare-invoices",
        type=int,
        help="backlog size of each section 7 run, old code and current (default 1000; quick 150)",
    )
    parser.add_argument(
        "--journal-rows",
        type=int,
        default=10_000_000,
        help="decisions in the journal for section J (default 10 million; quick 200,000)",
    )
    parser.add_argument(
        "--journal-keep",
        metavar="DIR",
        type=Path,
        help="section J: keep the generated journals (the SQLite file in DIR, a PostgreSQL schema "
        "bench_journal_keep_ROWS) and reuse them on the next run instead of loading them again",
    )
    parser.add_argument(
        "--journal-before",
        metavar="COMMIT",
        help="section J with --journal-keep: also run the trace command and the title-fragment trace from a checkout "
        "of COMMIT, alternately with this one, against the same kept journals",
    )
    parser.add_argument(
        "--journal-stores", default="sqlite,postgresql", help="stores for sections J and V: sqlite, postgresql or both"
    )
    args = parser.parse_args(argv)
    if not wrk.available() and set(args.sections) & {"1", "2", "C"}:
        print(f"bench: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    seconds = 5.0 if args.quick else 10.0
    n = args.invoices or (500 if args.quick else 5000)
    # At concurrency 1 a 5,000 backlog would take half an hour: the small levels drain a backlog sized to about a
    # minute, and every level is compared on its steady drain rate (10th to 90th percentile of arrivals).
    sizes = {1: max(min(n // 25, 200), 40), 4: max(min(n // 6, 800), 100), 16: n}
    limited_n = max(min(n // 3, 1500), 200) if not args.quick else 300
    shared_n = 300 if args.quick else 1000
    steady_seconds = args.seconds or (30.0 if args.quick else 120.0)
    warmup = min(15.0, steady_seconds / 4)
    compare_n = args.compare_invoices or (150 if args.quick else 1000)

    started = time.monotonic()
    out: list[str] = [f"load average at the start (1, 5, 15 min): {_load()}"]
    if "1" in args.sections:
        out += _section("1. Ingress vs minimal Falcon endpoint (signed 1 KiB POST, same waitress settings)")
        res = ingress_bench.throughput(seconds, CONNECTION_LEVELS)
        out += _ingress_table(res)
    if "2" in args.sections:
        out += _section("2. Ingress vs sample-style receiver (verifies, then GET file + PUT move inline), 16 conns")
        res2 = ingress_bench.against_docspace_latency(seconds)
        out += _latency_table(res2)
    if "3" in args.sections:
        out += _section("3. End to end, delivery -> e-mail, DocSpace API latency 20 ms, no portal rate limit")
        runs = [_timed(functools.partial(backlog.run, sizes[c], c)) for c in CONCURRENCY_LEVELS]
        out += _backlog_table(runs)
    if "4" in args.sections:
        out += _section("4. Same, portal enforcing DocSpace's limits (1,500 req/min per user, 15 writes, 429)")
        limited = backlog.run(limited_n, 16, portal_limit=True, shares=(60, 1360))
        out += _limit_table(limited)
    if "5" in args.sections:
        out += _section("5. One DocSpace limit shared in Redis: 1 vs 3 replicas of classifier and mover, same key")
        shared = [backlog.run(shared_n, 16, portal_limit=True, replicas=r, redis_url=REDIS_URL) for r in REPLICA_LEVELS]
        out += _shared_table(shared)
    if "6" in args.sections:
        out += _section(
            f"6. Upload to inbox at 5 invoices/s for {steady_seconds:.0f} s, DocSpace 50 ms per call, under its limits"
        )
        steady = [
            steady_latency.steady(rate=5.0, seconds=steady_seconds, replicas=r, warmup=warmup) for r in REPLICA_LEVELS
        ]
        out += _latency_rows(steady)
        out += _takeover_rows(steady_latency.takeover())
    if "7" in args.sections:
        out += _section(
            f"7. DocSpace calls per invoice at the portal's limit: before issue 22 ({BEFORE_CALLS}) and now, "
            f"{compare_n} invoices each"
        )
        out += _compare_table(calls.before_and_after(compare_n, REPLICA_LEVELS))
    if "8" in args.sections:
        out += _section(
            f"8. Upload to inbox at {BUSY_RATE:.0f} invoices/s for {steady_seconds:.0f} s, DocSpace 50 ms per call, "
            "one limit shared in Redis"
        )
        busy = [
            steady_latency.steady(rate=BUSY_RATE, seconds=steady_seconds, replicas=r, warmup=warmup, concurrency=c)
            for r, c in BUSY_LEVELS
        ]
        out += _latency_rows(busy)
        out += _busy_verdict(busy)
    out += _journal_sections(args, steady_seconds)
    out.append("")
    out.append(f"total bench time {time.monotonic() - started:.0f} s; 2 cores shared by broker, load and pipeline")
    out.append(f"load average at the end (1, 5, 15 min): {_load()}")
    print("\n".join(out))
    return 0


def _journal_sections(args: argparse.Namespace, steady_seconds: float) -> list[str]:
    out: list[str] = []
    stores = [s.strip().lower() for s in args.journal_stores.split(",") if s.strip()]
    if "J" in args.sections:
        rows = 200_000 if args.quick and args.journal_rows == 10_000_000 else args.journal_rows
        out += _section(f"J. trace over a journal of {rows:,} decisions ({rows // 6:,} files), generated in bulk")
        queries = []
        if "sqlite" in stores:
            queries.append(
                journal_bench.query_sqlite(
                    rows, args.journal_keep or journal_bench.workdir(), keep=args.journal_keep is not None
                )
            )
        if "postgresql" in stores:
            queries.append(journal_bench.query_postgres(rows, keep=args.journal_keep is not None))
        out += journal_bench.summary_rows(queries, [])
        if args.journal_before and args.journal_keep:
            out += journal_bench.before_after_rows(
                [
                    journal_bench.before_and_after(
                        q.backend, journal_bench.LAST_ENV[q.backend], rows, commit=args.journal_before
                    )
                    for q in queries
                ]
            )
    if "V" in args.sections:
        rate, seconds = 50.0, min(steady_seconds, 60.0)
        out += _section(f"V. A decision visible to trace: {rate:.0f} records/s (8 invoices/s x ~6 decisions)")
        visible = [
            journal_bench.visibility(name, rate=rate, seconds=seconds, workdir=journal_bench.workdir())
            for name in (("SQLite",) if "sqlite" in stores else ())
            + (("PostgreSQL",) if "postgresql" in stores else ())
        ]
        out += journal_bench.summary_rows([], visible)
    if "C" in args.sections:
        out += _section("C. The journal's cost: end to end and ingress throughput, journal on vs off, same run")
        out += journal_bench.cost_rows(quick=args.quick)
    return out


def _timed(run: Callable[[], backlog.BacklogResult]) -> backlog.BacklogResult:
    return run()


def _load() -> str:
    # The machine may be shared: the figures mean little without how busy it was.
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _ok(good: bool) -> str:
    return "PASS" if good else "MISS"


def _ingress_table(res: dict[str, dict[int, Any]]) -> list[str]:
    rows = [
        f"{'conns':>5} | {'minimal req/s':>13} {'p50':>7} {'p99':>7} | {'ingress req/s':>13} {'p50':>7} {'p99':>7} "
        f"{'non-2xx':>7} | {'ratio':>6} | target"
    ]
    for c, base in res["minimal"].items():
        ours = res["ingress"][c]
        target = "-" if c == 1 else _ok(ours.rps >= 0.6 * base.rps and ours.p99_ms < 50 and ours.errors == 0)
        rows.append(
            f"{c:>5} | {base.rps:>13.0f} {base.p50_ms:>5.1f}ms {base.p99_ms:>5.1f}ms | {ours.rps:>13.0f} "
            f"{ours.p50_ms:>5.1f}ms {ours.p99_ms:>5.1f}ms {ours.errors:>7} | {_ratio(ours.rps, base.rps):>6} | "
            f"{target}"
        )
    rows.append("target: ingress >= 0.6x minimal at 16 and 64 connections, p99 < 50 ms; 2xx only after the confirm")
    return rows


def _latency_table(res: dict[str, dict[float, Any]]) -> list[str]:
    rows = [f"{'DocSpace latency':>16} | {'ingress req/s':>13} {'p50':>7} {'p99':>8} | {'sample req/s':>12} {'p99':>8}"]
    for latency, ours in res["ingress"].items():
        sample = res["sample"][latency]
        rows.append(
            f"{latency * 1000:>14.0f}ms | {ours.rps:>13.0f} {ours.p50_ms:>5.1f}ms {ours.p99_ms:>6.1f}ms | "
            f"{sample.rps:>12.0f} {sample.p99_ms:>6.0f}ms"
        )
    (lo, hi) = sorted(res["ingress"])[0], sorted(res["ingress"])[-1]
    ours_growth = res["ingress"][hi].p99_ms / res["ingress"][lo].p99_ms
    sample_growth = res["sample"][hi].p99_ms / res["sample"][lo].p99_ms
    rows.append(
        f"p99 at {hi * 1000:.0f} ms / at {lo * 1000:.0f} ms: ingress {ours_growth:.2f}x "
        f"({_ok(0.8 <= ours_growth <= 1.2)}: within 20%), sample-style {sample_growth:.1f}x "
        f"({_ok(sample_growth > 1.2)}: grows with DocSpace)"
    )
    return rows


def _backlog_table(runs: list[backlog.BacklogResult]) -> list[str]:
    rows = [
        f"{'conc':>4} {'invoices':>8} | {'steady inv/s':>12} {'wall s':>7} | {'API calls/inv':>13} | "
        f"{'RSS MB peak: ingress classifier mover notifier':>46} | once"
    ]
    for r in runs:
        rss = " ".join(f"{r.rss_peak_mb[p]:>5.0f}" for p in ("ingress", "classifier", "mover", "notifier"))
        rows.append(
            f"{r.concurrency:>4} {r.invoices:>8} | {r.steady_per_s:>12.1f} {r.wall_s:>7.1f} | "
            f"{r.calls_per_invoice:>13.2f} | {rss:>46} | {_once(r)}"
        )
    first, last = runs[0], runs[-1]
    speedup = last.steady_per_s / first.steady_per_s if first.steady_per_s else 0.0
    rows.append(
        f"concurrency {last.concurrency} vs 1: {speedup:.1f}x ({_ok(speedup >= 10)}: >= 10x); "
        f"every process < 80 MB: {_ok(all(max(r.rss_peak_mb.values()) < 80 for r in runs))}"
    )
    rows += _once_details(runs)
    return rows


def _limit_table(r: backlog.BacklogResult) -> list[str]:
    calls = sum(r.api_calls.values())
    allowed_per_min = 1500 / r.calls_per_invoice if r.calls_per_invoice else 0.0
    drain_per_min = r.steady_per_s * 60
    rows = [
        f"invoices {r.invoices}, concurrency 16, client shares: classifier 60 + mover 1360 req/min (one API key)",
        f"drain {drain_per_min:.0f} invoices/min; the limit allows {allowed_per_min:.0f}/min at "
        f"{r.calls_per_invoice:.2f} calls/invoice -> {drain_per_min / allowed_per_min:.0%} "
        f"({_ok(drain_per_min >= 0.9 * allowed_per_min)}: >= 90%)",
        f"API calls {calls} ({r.calls_per_invoice:.2f}/invoice, {_ok(r.calls_per_invoice <= 4)}: <= 4); "
        f"429 answers {r.rejected_429} ({_ok(r.rejected_429 <= max(10, calls // 200))}: few, no storm)",
        "calls by endpoint: " + ", ".join(f"{k} {v}" for k, v in sorted(r.api_calls.items(), key=lambda kv: -kv[1])),
        "RSS MB peak: " + ", ".join(f"{k} {v:.0f}" for k, v in r.rss_peak_mb.items()) + f" | once: {_once(r)}",
    ]
    rows += _once_details([r])
    return rows


def _shared_table(runs: list[backlog.BacklogResult]) -> list[str]:
    rows = [
        "every process on one API key shares one limit in Redis: 1,450 req/min and 14 writes; concurrency 16",
        f"{'replicas':>8} {'invoices':>8} | {'drain inv/min':>13} {'allowed/min':>11} {'share':>6} | "
        f"{'429s':>5} {'calls/inv':>9} {'steady':>6} | once",
    ]
    for r in runs:
        allowed = _allowed_per_min(r)
        drain = r.steady_per_s * 60
        rows.append(
            f"{r.replicas:>8} {r.invoices:>8} | {drain:>13.0f} {allowed:>11.0f} {drain / allowed:>6.0%} | "
            f"{r.rejected_429:>5} {r.calls_per_invoice:>9.2f} {r.steady_calls_per_invoice:>6.2f} | {_once(r)}"
        )
    good = all(r.rejected_429 == 0 and r.steady_per_s * 60 >= 0.9 * _allowed_per_min(r) for r in runs)
    rows.append(
        "allowed = DocSpace's 1,500 req/min / the steady calls per invoice (read, move, poll; the once-per-room "
        "and per-process lookups come on top, more of them with more replicas)"
    )
    rows.append(f"target: zero 429s, a drain within 10% of what the limit allows, at each replica count: {_ok(good)}")
    rows += _once_details(runs)
    return rows


def _allowed_per_min(r: backlog.BacklogResult) -> float:
    return 1500 / r.steady_calls_per_invoice if r.steady_calls_per_invoice else 0.0


def _compare_table(runs: list[calls.Comparison]) -> list[str]:
    rows = [
        "same simulator, portal limit 1,500 req/min and 15 writes per key, concurrency 16, 10 rooms; 1 replica: "
        "SQLite and each process its default share; 3 replicas of classifier and mover: one limit in Redis (1,450)",
        f"{'replicas':>8} {'code':>7} {'shares':>9} | {'calls/inv':>9} {'per-inv':>7} | {'inv/min':>7} "
        f"{'allowed':>7} {'share':>5} | {'429s':>4} | once",
    ]
    for c in runs:
        for label, r, shares in (("before", c.before, c.before_shares), ("after", c.after, c.after_shares)):
            drain = r.overall_per_s * 60
            allowed = calls.allowed_per_minute(r.calls_per_invoice)
            rows.append(
                f"{c.replicas:>8} {label:>7} {shares[0]:>4}/{shares[1]:<4} | {r.calls_per_invoice:>9.3f} "
                f"{r.steady_calls_per_invoice:>7.3f} | {drain:>7.0f} {allowed:>7.0f} "
                f"{drain / allowed if allowed else 0:>5.0%} | {r.rejected_429:>4} | {_once(r)}"
            )
        rows.append(
            f"{c.replicas:>8} after/before: calls per invoice {c.calls_ratio:.2f}x, invoices/min {c.drain_ratio:.2f}x"
            f" ({_ok(c.after.steady_calls_per_invoice <= 2.0)}: <= 2.0 per-invoice calls)"
        )
    rows.append(
        "calls/inv: every DocSpace call over the invoices (room lookups included); per-inv: the file reads, moves "
        "and polls alone; inv/min: from DocSpace's first call to the last e-mail (a backlog's classifier runs "
        "ahead of its mover: the drain is taken over the whole run); shares: classifier/mover req/min with SQLite "
        "(Redis: one shared limit); allowed: 1,500 / calls/inv"
    )
    for c in runs:
        for label, r in (("before", c.before), ("after", c.after)):
            rows.append(
                f"  {c.replicas} replica(s) {label}: "
                + ", ".join(f"{k} {v}" for k, v in sorted(r.api_calls.items(), key=lambda kv: -kv[1]))
            )
    rows += _once_details([r for c in runs for r in (c.before, c.after)])
    return rows


def _busy_verdict(runs: list[steady_latency.LatencyResult]) -> list[str]:
    rows = ["target: p99 < 1 s, 0 429s, each invoice e-mailed, sent to the pipeline and moved once"]
    for r in runs:
        good = r.percentile(0.99) < 1.0 and r.rejected_429 == 0 and r.exactly_once
        rows.append(f"  replicas={r.replicas} concurrency={r.concurrency}: {_ok(good)}")
    return rows


def _latency_rows(runs: list[steady_latency.LatencyResult]) -> list[str]:
    rows = [
        f"{'replicas':>8} {'conc':>4} {'invoices':>8} | {'p50':>7} {'p99':>7} {'max':>7} | {'429s':>5} "
        f"{'calls/inv':>9} | once"
    ]
    for r in runs:
        rows.append(
            f"{r.replicas:>8} {r.concurrency:>4} {r.invoices:>8} | "
            f"{r.percentile(0.5):>6.2f}s {r.percentile(0.99):>6.2f}s "
            f"{max(r.latencies, default=float('nan')):>6.2f}s | {r.rejected_429:>5} {r.calls_per_invoice:>9.2f} | "
            f"{'yes' if r.exactly_once else 'NO'}"
        )
    rows.append(
        "from DocSpace's first successful delivery of an upload's webhook to the manager's e-mail arriving; "
        f"after {runs[0].warm} invoices of warm-up at the same rate (not measured, checked for exactly-once)"
    )
    for r in runs:
        rows.append(
            f"  replicas={r.replicas} concurrency={r.concurrency}: e-mails/invoice {dict(r.mails_per_invoice)}, "
            "pipeline calls/invoice "
            f"{dict(r.pipeline_per_invoice)}, moves/invoice {dict(r.moves_per_invoice)}, "
            f"messages left in queues {sum(r.left_in_queues.values())}"
        )
    return rows


def _takeover_rows(r: steady_latency.TakeoverResult) -> list[str]:
    once = r.mails_per_invoice == {1: r.held}
    return [
        f"takeover: a mover SIGKILLed while holding {r.held} invoices; all {r.held} e-mailed {r.seconds:.1f} s after "
        f"the kill (claim lease 15 s, renewed every 5 s) ({_ok(r.seconds < 30 and once)}: < 30 s, once each)"
    ]


def _once(r: backlog.BacklogResult) -> str:
    return "yes" if r.exactly_once else "NO"


def _once_details(runs: list[backlog.BacklogResult]) -> list[str]:
    rows = []
    for r in runs:
        rows.append(
            f"  c={r.concurrency} n={r.invoices}: e-mails/invoice {dict(r.mails_per_invoice)}, "
            f"moves/invoice {dict(r.moves_per_invoice)}, pipeline calls/invoice {dict(r.pipeline_per_invoice)}, "
            f"failed deliveries {r.deliveries_failed}, messages left in queues {sum(r.left_in_queues.values())}"
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
