"""Section 6: upload to inbox at a busy portal's steady rate, and how fast a killed mover's work is taken over.

The pipeline runs first; then invoices are uploaded at a steady rate and each one's time is taken from DocSpace's
first successful delivery of its webhook to the manager's e-mail arriving. DocSpace answers every call after a
fixed latency and enforces its limits (1,500 requests/min, 15 concurrent writes, 429 + Retry-After).
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.backlog import _histogram
from bench.procs import REDIS_URL, queue_depths, wait_consumers
from bench.rig import CLIENTS, rig
from shared.config.settings import StageSettings
from standins.ports import free_port


@dataclass
class LatencyResult:
    """One steady-rate run: each invoice's time from DocSpace's delivery to the e-mail, and the exactly-once tally."""

    replicas: int
    rate: float
    concurrency: int  # each stage process's CONCURRENCY
    invoices: int  # measured; ``warm`` more went before them
    warm: int
    latencies: list[float]  # seconds, delivery -> e-mail, one per invoice that arrived
    rejected_429: int
    mails_per_invoice: Counter[int] = field(default_factory=Counter)
    moves_per_invoice: Counter[int] = field(default_factory=Counter)
    pipeline_per_invoice: Counter[int] = field(default_factory=Counter)
    left_in_queues: dict[str, int] = field(default_factory=dict)
    api_calls: Counter[str] = field(default_factory=Counter)  # DocSpace calls by endpoint, warm-up included

    @property
    def calls_per_invoice(self) -> float:
        return sum(self.api_calls.values()) / max(self.invoices + self.warm, 1)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def exactly_once(self) -> bool:
        n = self.invoices + self.warm
        return (
            self.mails_per_invoice == Counter({1: n})
            and self.moves_per_invoice == Counter({1: n})
            and self.pipeline_per_invoice == Counter({1: n})
            and not any(self.left_in_queues.values())
        )

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else float("nan")


def steady(
    *,
    rate: float = 5.0,
    seconds: float = 120.0,
    replicas: int = 1,
    latency: float = 0.05,
    warmup: float = 15.0,
    redis_url: str = REDIS_URL,
    concurrency: int | None = None,
) -> LatencyResult:
    """``rate`` uploads a second for ``seconds``, every stage running ``replicas`` times on one shared limit.

    The first ``warmup`` seconds at the same rate are not measured: processes that have just started, and each
    room's first invoice in each process (its path lookup, its Incoming folder found or created), say nothing
    about the steady state. They are still checked for exactly-once. ``concurrency`` sets each stage's
    ``CONCURRENCY`` (default: the product's).
    """
    concurrency = concurrency or StageSettings.model_fields["concurrency"].default
    invoices = round(rate * seconds)
    warm = round(rate * warmup)
    with rig("lat", redis_url=redis_url) as r:
        sim, mail, pipeline, procs = r.sim, r.mail, r.pipeline, r.procs
        assert pipeline is not None
        uploads = r.numbered_clients()
        env = r.env(redis_url, CONCURRENCY=str(concurrency))
        r.start_ingress(env)
        sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=15, retry_after=1.0)
        sim.faults.add(path="/api/*", latency=latency)
        for n in range(1, replicas + 1):
            for stage, module in (
                ("classifier", "consumers.classifier"),
                ("mover", "consumers.mover"),
                ("notifier", "consumers.notifier"),
            ):
                r.start(f"{stage}-{n}", module, env)
        wait_consumers(
            r.prefix,
            {
                "classifier": procs["classifier-1"],
                "mover": procs["mover-1"],
                "notifier.email": procs["notifier-1"],
                "notifier.pipeline": procs["notifier-1"],
            },
        )
        files: list[str] = []
        started = time.monotonic()
        for i in range(warm + invoices):
            pause = started + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            files.append(sim.upload_file(uploads[i % CLIENTS], f"Invoice-{i:05d}.pdf"))
        deadline = time.monotonic() + 300
        while (mail.count() < warm + invoices or pipeline.count() < warm + invoices) and time.monotonic() < deadline:
            r.check_alive()
            time.sleep(0.5)
        time.sleep(2.0)  # room for a duplicate to show up
        sim.wait_idle(10)
        delivered: dict[str, float] = {}
        for entry in list(sim.webhooks.log.values()):
            if entry.delivery is not None:
                file_id = str(entry.payload.get("id"))
                at = entry.delivery.timestamp()
                delivered[file_id] = min(delivered.get(file_id, at), at)
        first_mail: dict[str, float] = {}  # invoice id -> wall-clock time its first notice arrived
        for m in mail.mails:
            first_mail.setdefault(m.invoice_id or "?", m.received_at.timestamp())
        latencies = [
            first_mail[f"{file_id}:v1"] - delivered[file_id]
            for file_id in files[warm:]
            if f"{file_id}:v1" in first_mail and file_id in delivered
        ]
        return LatencyResult(
            replicas=replicas,
            rate=rate,
            concurrency=concurrency,
            invoices=invoices,
            warm=warm,
            latencies=latencies,
            rejected_429=r.rejected[429],
            mails_per_invoice=_histogram(mail.per_invoice(), warm + invoices),
            moves_per_invoice=_histogram(r.moves, warm + invoices),
            pipeline_per_invoice=_histogram(pipeline.per_invoice(), warm + invoices),
            left_in_queues={name: depth for name, depth in queue_depths(r.prefix).items() if depth},
            api_calls=Counter(sim.call_counts()),
        )


@dataclass
class TakeoverResult:
    """How long after a mover's SIGKILL the invoices it held were e-mailed, and how often each was."""

    held: int
    seconds: float  # SIGKILL -> the last of the held invoices e-mailed
    mails_per_invoice: Counter[int]


def takeover(*, held: int = 4) -> TakeoverResult:
    """A mover holding ``held`` invoices (each claimed, waiting on DocSpace) is SIGKILLed and started again, as a
    process manager would; the clock runs from the kill to the last of them e-mailed. Default lease (15 s)."""
    # No pipeline receiver and no counters: this run times the e-mails after a kill, nothing else.
    with rig("tko", threads=32, webhook_threads=4, pipeline=False, counted=False) as r:
        sim, mail, procs = r.sim, r.mail, r.procs
        (room,), (uploads,) = r.clients([("acme", "Acme Ltd", "anna@acme.example")])
        metrics = free_port()
        env = r.env(r.sqlite_url(), DOCSPACE_TIMEOUT="60", CONCURRENCY=str(held))
        r.start_ingress(env)
        r.start("classifier", "consumers.classifier", {**env, "METRICS_PORT": str(metrics)})
        r.start("mover", "consumers.mover", env)
        r.start("notifier", "consumers.notifier", env)
        wait_consumers(
            r.prefix, {"classifier": procs["classifier"], "mover": procs["mover"], "notifier.email": procs["notifier"]}
        )
        # The mover's first look for the room's Incoming folder hangs: it holds its claims and has written nothing.
        stall = sim.faults.add(method="GET", path=f"/api/2.0/files/{room}", latency=120)
        for i in range(held):
            sim.upload_file(uploads, f"Invoice-{i}.pdf")
        deadline = time.monotonic() + 60
        while _accepted(metrics) < held or queue_depths(r.prefix).get(f"{r.prefix}mover", 0):
            if time.monotonic() > deadline:
                raise RuntimeError("the mover never took the invoices")
            time.sleep(0.1)
        time.sleep(1.0)
        procs["mover"].process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        procs["mover"].process.wait(10)
        sim.faults.remove(stall)
        r.start("mover-restarted", "consumers.mover", env)
        while mail.count() < held and time.monotonic() < killed + 120:
            time.sleep(0.05)
        seconds = time.monotonic() - killed
        time.sleep(2)
        return TakeoverResult(held, seconds, _histogram(mail.per_invoice(), held))


def _accepted(port: int) -> float:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "stage_messages_total" and sample.labels.get("outcome") == "accepted"
    )
