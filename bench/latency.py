"""Section 6: upload to inbox at a busy portal's steady rate, and how fast a killed mover's work is taken over.

The pipeline runs first; then invoices are uploaded at a steady rate and each one's time is taken from DocSpace's
first successful delivery of its webhook to the manager's e-mail arriving. DocSpace answers every call after a
fixed latency and enforces its limits (1,500 requests/min, 15 concurrent writes, 429 + Retry-After).
"""

from __future__ import annotations

import signal
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.backlog import CLIENTS, PIPELINE_SECRET, _count_moves_and_429s, _histogram, forget_redis_keys
from bench.payload import SECRET
from bench.procs import (
    LOG_DIR,
    REDIS_URL,
    Proc,
    delete_topology,
    free_port,
    queue_depths,
    wait_consumers,
    wait_http,
)
from simulator import DocSpaceSimulator
from standins.mail_catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver


@dataclass
class LatencyResult:
    """One steady-rate run: each invoice's time from DocSpace's delivery to the e-mail, and the exactly-once tally."""

    replicas: int
    rate: float
    invoices: int  # measured; ``warm`` more went before them
    warm: int
    latencies: list[float]  # seconds, delivery -> e-mail, one per invoice that arrived
    rejected_429: int
    mails_per_invoice: Counter[int] = field(default_factory=Counter)
    moves_per_invoice: Counter[int] = field(default_factory=Counter)
    left_in_queues: dict[str, int] = field(default_factory=dict)

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
) -> LatencyResult:
    """``rate`` uploads a second for ``seconds``, every stage running ``replicas`` times on one shared limit.

    The first ``warmup`` seconds at the same rate are not measured: processes that have just started, and each
    room's first invoice in each process (its path lookup, its Incoming folder found or created), say nothing
    about the steady state. They are still checked for exactly-once.
    """
    invoices = round(rate * seconds)
    warm = round(rate * warmup)
    sim = DocSpaceSimulator(threads=64, webhook_threads=8, move_delay=0.1, seed=7).start()
    moves: Counter[str] = Counter()
    rejected = Counter[int]()
    _count_moves_and_429s(sim, moves, rejected)
    mail = MailCatcher().start()
    pipeline = PipelineReceiver().start()
    prefix = f"lat{uuid.uuid4().hex[:6]}."
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
            "IDEMPOTENCY_URL": redis_url,
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
        }
        probe_port = free_port()  # the ingress's internal port: its /readyz
        procs["ingress"] = Proc(f"{prefix}ingress", "ingress", {**env, "METRICS_PORT": str(probe_port)})
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", procs["ingress"])
        sim.register_webhook(
            f"http://127.0.0.1:{port}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"]
        )
        sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=15, retry_after=1.0)
        sim.faults.add(path="/api/*", latency=latency)
        for n in range(1, replicas + 1):
            for stage, module in (
                ("classifier", "consumers.classifier"),
                ("mover", "consumers.mover"),
                ("notifier", "consumers.notifier"),
            ):
                procs[f"{stage}-{n}"] = Proc(f"{prefix}{stage}-{n}", module, env)
        wait_consumers(
            prefix,
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
        while mail.count() < warm + invoices and time.monotonic() < deadline:
            for proc in procs.values():
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited: see {proc.log_path}")
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
            invoices=invoices,
            warm=warm,
            latencies=latencies,
            rejected_429=rejected[429],
            mails_per_invoice=_histogram(mail.per_invoice(), warm + invoices),
            moves_per_invoice=_histogram(moves, warm + invoices),
            left_in_queues={name: depth for name, depth in queue_depths(prefix).items() if depth},
        )
    finally:
        for proc in procs.values():
            proc.stop()
        mail.stop()
        pipeline.stop()
        sim.stop()
        delete_topology(prefix)
        forget_redis_keys(redis_url, prefix, sim)


@dataclass
class TakeoverResult:
    """How long after a mover's SIGKILL the invoices it held were e-mailed, and how often each was."""

    held: int
    seconds: float  # SIGKILL -> the last of the held invoices e-mailed
    mails_per_invoice: Counter[int]


def takeover(*, held: int = 4) -> TakeoverResult:
    """A mover holding ``held`` invoices (each claimed, waiting on DocSpace) is SIGKILLed and started again, as a
    process manager would; the clock runs from the kill to the last of them e-mailed. Default lease (15 s)."""
    sim = DocSpaceSimulator(threads=32, move_delay=0.1, seed=7).start()
    mail = MailCatcher().start()
    prefix = f"tko{uuid.uuid4().hex[:6]}."
    run_dir = LOG_DIR / prefix.rstrip(".")
    run_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, Proc] = {}
    try:
        room = sim.create_room("Acme Ltd")
        uploads = sim.create_folder(room, "Uploads")
        rules = run_dir / "rules.toml"
        rules.write_text(
            f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "anna@acme.example"\n', encoding="utf-8"
        )
        port, metrics = free_port(), free_port()
        env = {
            "TOPOLOGY_PREFIX": prefix,
            "IDEMPOTENCY_URL": f"sqlite:///{(run_dir / 'idempotency.sqlite3').resolve()}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DOCSPACE_WEBHOOK_SECRET": SECRET,
            "DOCSPACE_API_HOST": sim.base_url,
            "DOCSPACE_API_KEY": sim.api_key,
            "DOCSPACE_TIMEOUT": "60",
            "INVOICE_RULES_FILE": str(rules.resolve()),
            "SMTP_HOST": mail.host,
            "SMTP_PORT": str(mail.port),
            "MAIL_FROM": "invoices@pipeline.example",
            "CONCURRENCY": str(held),
        }
        probe_port = free_port()  # the ingress's internal port: its /readyz
        procs["ingress"] = Proc(f"{prefix}ingress", "ingress", {**env, "METRICS_PORT": str(probe_port)})
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", procs["ingress"])
        sim.register_webhook(
            f"http://127.0.0.1:{port}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"]
        )
        procs["classifier"] = Proc(f"{prefix}classifier", "consumers.classifier", {**env, "METRICS_PORT": str(metrics)})
        procs["mover"] = Proc(f"{prefix}mover", "consumers.mover", env)
        procs["notifier"] = Proc(f"{prefix}notifier", "consumers.notifier", env)
        wait_consumers(
            prefix, {"classifier": procs["classifier"], "mover": procs["mover"], "notifier.email": procs["notifier"]}
        )
        # The mover's first look for the room's Incoming folder hangs: it holds its claims and has written nothing.
        stall = sim.faults.add(method="GET", path=f"/api/2.0/files/{room}", latency=120)
        for i in range(held):
            sim.upload_file(uploads, f"Invoice-{i}.pdf")
        deadline = time.monotonic() + 60
        while _accepted(metrics) < held or queue_depths(prefix).get(f"{prefix}mover", 0):
            if time.monotonic() > deadline:
                raise RuntimeError("the mover never took the invoices")
            time.sleep(0.1)
        time.sleep(1.0)
        procs["mover"].process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        procs["mover"].process.wait(10)
        sim.faults.remove(stall)
        procs["mover-restarted"] = Proc(f"{prefix}mover-restarted", "consumers.mover", env)
        while mail.count() < held and time.monotonic() < killed + 120:
            time.sleep(0.05)
        seconds = time.monotonic() - killed
        time.sleep(2)
        return TakeoverResult(held, seconds, _histogram(mail.per_invoice(), held))
    finally:
        for proc in procs.values():
            proc.stop()
        mail.stop()
        sim.stop()
        delete_topology(prefix)


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
