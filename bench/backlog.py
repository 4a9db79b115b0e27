"""Sections 3 and 4: drain a backlog of invoices through the four real processes, delivery to e-mail."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.payload import SECRET
from bench.procs import LOG_DIR, Proc, delete_topology, free_port, queue_depths, wait_consumers, wait_http
from shared.redis_limiter import limiter_key
from simulator import DocSpaceSimulator
from standins.mail_catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver

CLIENTS = 10
PIPELINE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
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
    shares: tuple[int, int] = (480, 940),
    replicas: int = 1,
    redis_url: str | None = None,
    timeout: float = 1200,
) -> BacklogResult:
    """Queue ``invoices`` uploads' webhooks (two each: file.created + file.uploaded) behind the ingress, then start
    the classifier, mover and notifier and time the drain to the last e-mail.

    ``replicas`` runs the classifier and the mover that many times; with ``redis_url`` the processes keep their
    claims and one shared DocSpace limit in Redis instead of SQLite and per-process ``shares``."""
    sim = DocSpaceSimulator(threads=64, webhook_threads=8, move_delay=0.1, seed=7).start()
    moves: Counter[str] = Counter()
    rejected = Counter[int]()
    _count_moves_and_429s(sim, moves, rejected)
    mail = MailCatcher().start()
    pipeline = PipelineReceiver().start()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    run_dir = LOG_DIR / prefix.rstrip(".")
    run_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, Proc] = {}
    try:
        rooms = [sim.create_room(f"Client {i}") for i in range(CLIENTS)]
        uploads = [sim.create_folder(room, "Uploads") for room in rooms]
        rules = run_dir / "rules.toml"
        rules.write_text(
            "".join(
                f'[[clients]]\nname = "client{i}"\nroom_id = "{room}"\nmanager_email = "m{i}@client.example"\n\n'
                for i, room in enumerate(rooms)
            ),
            encoding="utf-8",
        )
        port = free_port()
        env = {
            "TOPOLOGY_PREFIX": prefix,
            "IDEMPOTENCY_URL": redis_url or f"sqlite:///{(run_dir / 'idempotency.sqlite3').resolve()}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DOCSPACE_WEBHOOK_SECRET": SECRET,
            "DOCSPACE_API_HOST": sim.base_url,
            "DOCSPACE_API_KEY": sim.api_key,
            "INVOICE_RULES_FILE": str(rules.resolve()),
            "SMTP_HOST": mail.host,
            "SMTP_PORT": str(mail.port),
            "MAIL_FROM": "invoices@pipeline.example",
            "PIPELINE_URL": pipeline.url,
            "PIPELINE_SECRET": PIPELINE_SECRET,
            "CONCURRENCY": str(concurrency),
        }
        probe_port = free_port()  # the ingress's internal port: its /readyz (the consumers get none here)
        procs["ingress"] = Proc(f"{prefix}ingress", "ingress", {**env, "METRICS_PORT": str(probe_port)})
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", procs["ingress"])
        sim.register_webhook(
            f"http://127.0.0.1:{port}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"]
        )
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
            procs[f"classifier{suffix}"] = Proc(
                f"{prefix}classifier{suffix}",
                "consumers.classifier",
                {**env, "DOCSPACE_RATE_LIMIT_PER_MINUTE": classifier_share},
            )
            procs[f"mover{suffix}"] = Proc(
                f"{prefix}mover{suffix}", "consumers.mover", {**env, "DOCSPACE_RATE_LIMIT_PER_MINUTE": mover_share}
            )
        procs["notifier"] = Proc(f"{prefix}notifier", "consumers.notifier", env)
        first = "" if replicas == 1 else "-1"
        wait_consumers(
            prefix,
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
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited: see {proc.log_path}")
            time.sleep(0.5)
        arrivals = sorted(m.arrived for m in mail.mails)
        wall = (arrivals[-1] if arrivals else time.monotonic()) - started
        rss_end = {name: proc.rss_mb() for name, proc in procs.items()}
        time.sleep(2.0)  # room for a duplicate to show up
        sim.wait_idle(10)
        arrivals = sorted(m.arrived for m in mail.mails)
        lo, hi = int(len(arrivals) * 0.1), max(int(len(arrivals) * 0.9) - 1, 0)
        steady = (hi - lo) / (arrivals[hi] - arrivals[lo]) if hi > lo and arrivals[hi] > arrivals[lo] else 0.0
        return BacklogResult(
            invoices=invoices,
            concurrency=concurrency,
            drained=min(mail.count(), invoices),
            steady_per_s=steady,
            wall_s=wall,
            api_calls=Counter(sim.call_counts()),
            rejected_429=rejected[429],
            rss_peak_mb={name: proc.peak_rss_mb for name, proc in procs.items()},
            rss_end_mb=rss_end,
            mails_per_invoice=_histogram(mail.per_invoice(), invoices),
            pipeline_per_invoice=_histogram(pipeline.per_invoice(), invoices),
            moves_per_invoice=_histogram(moves, invoices),
            deliveries_failed=failed,
            left_in_queues={name: depth for name, depth in queue_depths(prefix).items() if depth},
            replicas=replicas,
        )
    finally:
        for proc in procs.values():
            proc.stop()
        mail.stop()
        pipeline.stop()
        sim.stop()
        delete_topology(prefix)
        if redis_url is not None:
            forget_redis_keys(redis_url, prefix, sim)


def forget_redis_keys(redis_url: str, prefix: str, sim: DocSpaceSimulator) -> None:
    """Delete a run's claims and its limit from Redis, so the next run starts clean."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"invoice-pipeline:{prefix}*"))
        keys += list(client.scan_iter(match=limiter_key(sim.base_url, sim.api_key) + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _histogram(per_key: Counter[str], expected: int) -> Counter[int]:
    """How many invoices were acted on 0, 1, 2... times (missing ones count as 0)."""
    counts = Counter(per_key.values())
    counts[0] += max(expected - len(per_key), 0)
    return +counts


def _count_moves_and_429s(sim: DocSpaceSimulator, moves: Counter[str], rejected: Counter[int]) -> None:
    """Wrap the simulator's event sink and fault check (the benchmark's instruments, not product code)."""
    fire = sim.portal.on_event

    def on_event(trigger: str, payload: dict[str, Any]) -> None:
        if trigger == "file.moved":
            moves[str(payload.get("id"))] += 1
        fire(trigger, payload)

    sim.portal.on_event = on_event
    check = sim.faults.check

    def counted_check(method: str, path: str, template: str | None, key: str) -> Any:
        latency, rejection = check(method, path, template, key)
        if rejection is not None:
            rejected[rejection.status] += 1
        return latency, rejection

    # Counts the simulator's rejections by wrapping its own check on this instance (Faults has no hook for it).
    sim.faults.check = counted_check  # type: ignore[method-assign]
