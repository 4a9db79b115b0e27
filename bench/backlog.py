"""Sections 3 and 4: drain a backlog of invoices through the four real processes, delivery to e-mail."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import queue_depths, wait_consumers
from bench.rig import CLIENTS, rig

# A portal without a limiter (self-hosted, rateLimiterOptions off): the client-side limit must not be the cap.
UNLIMITED = "1000000"
PER_INVOICE_CALLS = (
    "GET /api/2.0/files/file/{file_id}",
    "PUT /api/2.0/files/fileops/move",
    "GET /api/2.0/files/fileops",
)


@dataclass
class BacklogResult:
    """One backlog run: how many invoices, how fast they drained, and the DocSpace calls they cost."""

    invoices: int
    concurrency: int
    drained: int
    steady_per_s: float  # e-mails/s between the 10th and the 90th percentile of arrivals
    overall_per_s: float  # e-mails/s from DocSpace's first call to the last e-mail
    wall_s: float  # consumers started -> last e-mail
    api_calls: Counter[str]
    rejected_429: int
    rss_peak_mb: dict[str, float]
    rss_end_mb: dict[str, float]
    mails_per_invoice: Counter[int] = field(default_factory=Counter)  # how many invoices got 0, 1, 2... e-mails
    pipeline_per_invoice: Counter[int] = field(default_factory=Counter)
    moves_per_invoice: Counter[int] = field(default_factory=Counter)
    deliveries_failed: int = 0
    left_in_queues: dict[str, int] = field(default_factory=dict)
    replicas: int = 1

    @property
    def calls_per_invoice(self) -> float:
        return sum(self.api_calls.values()) / max(self.drained, 1)

    @property
    def steady_calls_per_invoice(self) -> float:
        """Calls each invoice makes once every cache is warm: read the file, move it, poll the move.

        The rest (a room's path lookup, its Incoming folder found or created) is paid once per room and process,
        so it grows with replicas and shrinks with the backlog; the steady drain is bounded by these three.
        """
        return sum(self.api_calls[key] for key in PER_INVOICE_CALLS) / max(self.drained, 1)

    @property
    def exactly_once(self) -> bool:
        n = self.invoices
        return (
            self.mails_per_invoice == Counter({1: n})
            and self.pipeline_per_invoice == Counter({1: n})
            and self.moves_per_invoice == Counter({1: n})
            and not any(self.left_in_queues.values())
        )


def run(
    invoices: int,
    concurrency: int,
    *,
    latency: float = 0.02,
    portal_limit: bool = False,
    shares: tuple[int, int] = (60, 1360),
    replicas: int = 1,
    redis_url: str | None = None,
    timeout: float = 1200,
    code: Path | None = None,
) -> BacklogResult:
    """Queue ``invoices`` uploads' webhooks (two each: file.created + file.uploaded) behind the ingress, then start
    the classifier, mover and notifier and time the drain to the last e-mail.

    ``replicas`` runs the classifier and the mover that many times; with ``redis_url`` the processes keep their
    claims and one shared DocSpace limit in Redis instead of SQLite and per-process ``shares``. ``code`` runs
    every process from another checkout (``bench/baseline.py``); the simulator and the counting stay this one's."""
    with rig("bench", redis_url=redis_url, code=code) as r:
        sim, mail, pipeline, procs = r.sim, r.mail, r.pipeline, r.procs
        assert pipeline is not None
        uploads = r.numbered_clients()
        env = r.env(redis_url or r.sqlite_url(), CONCURRENCY=str(concurrency))
        r.start_ingress(env)
        for i in range(invoices):
            sim.upload_file(uploads[i % CLIENTS], f"Invoice-{i:05d}.pdf")
        if not sim.webhooks.wait_idle(timeout=max(120.0, invoices / 20)):
            raise RuntimeError("the simulator could not deliver the webhooks in time")
        failed = sum(1 for entry in sim.webhooks.log.values() if not 200 <= entry.status < 300)

        if portal_limit:
            sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=15, retry_after=1.0)
        sim.faults.add(path="/api/*", latency=latency)
        sim.reset_calls()
        classifier_share, mover_share = (str(s) for s in shares) if portal_limit else (UNLIMITED, UNLIMITED)
        started = time.monotonic()
        if not portal_limit:
            env["DOCSPACE_SHARED_RATE_LIMIT_PER_MINUTE"] = UNLIMITED
        for n in range(1, replicas + 1):
            suffix = "" if replicas == 1 else f"-{n}"
            r.start(
                f"classifier{suffix}",
                "consumers.classifier",
                {**env, "DOCSPACE_RATE_LIMIT_PER_MINUTE": classifier_share},
            )
            r.start(f"mover{suffix}", "consumers.mover", {**env, "DOCSPACE_RATE_LIMIT_PER_MINUTE": mover_share})
        r.start("notifier", "consumers.notifier", env)
        first = "" if replicas == 1 else "-1"
        wait_consumers(
            r.prefix,
            {
                "classifier": procs[f"classifier{first}"],
                "mover": procs[f"mover{first}"],
                "notifier.email": procs["notifier"],
                "notifier.pipeline": procs["notifier"],
            },
        )
        deadline = started + timeout
        while (mail.count() < invoices or pipeline.count() < invoices) and time.monotonic() < deadline:
            for proc in procs.values():
                proc.rss_mb()
            r.check_alive()
            time.sleep(0.5)
        arrivals = sorted(m.arrived for m in mail.mails)
        wall = (arrivals[-1] if arrivals else time.monotonic()) - started
        rss_end = {name: proc.rss_mb() for name, proc in procs.items()}
        time.sleep(2.0)  # room for a duplicate to show up
        sim.wait_idle(10)
        arrivals = sorted(m.arrived for m in mail.mails)
        return BacklogResult(
            invoices=invoices,
            concurrency=concurrency,
            drained=min(mail.count(), invoices),
            steady_per_s=steady_rate(arrivals),
            overall_per_s=drain_rate(min(sim.call_times(), default=None), arrivals),
            wall_s=wall,
            api_calls=Counter(sim.call_counts()),
            rejected_429=r.rejected[429],
            rss_peak_mb={name: proc.peak_rss_mb for name, proc in procs.items()},
            rss_end_mb=rss_end,
            mails_per_invoice=_histogram(mail.per_invoice(), invoices),
            pipeline_per_invoice=_histogram(pipeline.per_invoice(), invoices),
            moves_per_invoice=_histogram(r.moves, invoices),
            deliveries_failed=failed,
            left_in_queues={name: depth for name, depth in queue_depths(r.prefix).items() if depth},
            replicas=replicas,
        )


def steady_rate(arrivals: list[float]) -> float:
    """Arrivals a second between the 10th and the 90th percentile of sorted ``arrivals``: the drain once every
    process is up and before the last stragglers; 0.0 when there are too few to tell."""
    lo, hi = int(len(arrivals) * 0.1), max(int(len(arrivals) * 0.9) - 1, 0)
    if hi <= lo or arrivals[hi] <= arrivals[lo]:
        return 0.0
    return (hi - lo) / (arrivals[hi] - arrivals[lo])


def drain_rate(first_call: float | None, arrivals: list[float]) -> float:
    """Invoices a second from DocSpace's first call of the run to the last of sorted ``arrivals``: every call the
    invoices cost lies in between, the early ones too (a backlog's classifier runs ahead of its mover, and each
    room's lookups come first); 0.0 when nothing arrived."""
    if first_call is None or not arrivals or arrivals[-1] <= first_call:
        return 0.0
    return len(arrivals) / (arrivals[-1] - first_call)


def _histogram(per_key: Counter[str], expected: int) -> Counter[int]:
    """How many invoices were acted on 0, 1, 2... times (missing ones count as 0)."""
    counts = Counter(per_key.values())
    counts[0] += max(expected - len(per_key), 0)
    return +counts
