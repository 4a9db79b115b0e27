"""The end-to-end benchmarks' rig: simulator, mail catcher, pipeline receiver, rooms, env, processes, clean-up."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.payload import SECRET
from bench.procs import LOG_DIR, Proc, delete_topology, wait_http
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from standins.ports import free_port
from standins.redis_keys import forget_redis_keys

CLIENTS = 10
PIPELINE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Rig:
    """One run's stand-ins, topology prefix and processes; every process started here is stopped by ``rig()``."""

    sim: DocSpaceSimulator
    mail: MailCatcher
    pipeline: PipelineReceiver | None
    prefix: str
    run_dir: Path
    port: int = field(default_factory=free_port)  # the ingress's public port, where DocSpace delivers
    procs: dict[str, Proc] = field(default_factory=dict)
    moves: Counter[str] = field(default_factory=Counter)  # file id -> how often DocSpace moved it
    rejected: Counter[int] = field(default_factory=Counter)  # status -> how often DocSpace rejected a call
    code: Path | None = None  # the source tree the processes run from; None: this checkout

    def clients(self, clients: Sequence[tuple[str, str, str]]) -> tuple[list[str], list[str]]:
        """A room with an Uploads folder per (name, room title, manager e-mail), and the rules file for them."""
        rooms = [self.sim.create_room(title) for _, title, _ in clients]
        uploads = [self.sim.create_folder(room, "Uploads") for room in rooms]
        self.rules_file.write_text(
            "\n".join(
                f'[[clients]]\nname = "{name}"\nroom_id = "{room}"\nmanager_email = "{email}"\n'
                for (name, _, email), room in zip(clients, rooms, strict=True)
            ),
            encoding="utf-8",
        )
        return rooms, uploads

    def numbered_clients(self, n: int = CLIENTS) -> list[str]:
        """``n`` client rooms (``client0``... with ``m0@client.example``...); their Uploads folders."""
        _, uploads = self.clients([(f"client{i}", f"Client {i}", f"m{i}@client.example") for i in range(n)])
        return uploads

    @property
    def rules_file(self) -> Path:
        return self.run_dir / "rules.toml"

    def sqlite_url(self) -> str:
        return f"sqlite:///{(self.run_dir / 'idempotency.sqlite3').resolve()}"

    def env(self, idempotency_url: str, **extra: str) -> dict[str, str]:
        """Every process's settings for this run (the pipeline's only when the rig has a pipeline receiver)."""
        env = {
            "TOPOLOGY_PREFIX": self.prefix,
            "IDEMPOTENCY_URL": idempotency_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DOCSPACE_WEBHOOK_SECRET": SECRET,
            "DOCSPACE_API_HOST": self.sim.base_url,
            "DOCSPACE_API_KEY": self.sim.api_key,
            "INVOICE_RULES_FILE": str(self.rules_file.resolve()),
            "SMTP_HOST": self.mail.host,
            "SMTP_PORT": str(self.mail.port),
            "MAIL_FROM": "invoices@pipeline.example",
        }
        if self.pipeline is not None:
            env |= {"PIPELINE_URL": self.pipeline.url, "PIPELINE_SECRET": PIPELINE_SECRET}
        return env | extra

    def start(self, name: str, module: str, env: dict[str, str]) -> Proc:
        """``python -m module``, from ``self.code`` (another checkout) when the rig runs other code."""
        self.procs[name] = Proc(f"{self.prefix}{name}", module, env, cwd=self.code)
        return self.procs[name]

    def start_ingress(self, env: dict[str, str]) -> None:
        """The ingress, ready (its /readyz on an internal port), and DocSpace's webhook pointed at it."""
        probe_port = free_port()
        ingress = self.start("ingress", "ingress", {**env, "METRICS_PORT": str(probe_port)})
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", ingress)
        self.sim.register_webhook(
            f"http://127.0.0.1:{self.port}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"]
        )

    def check_alive(self) -> None:
        """Raise if any process has exited: a benchmark must not wait out its deadline on a dead stage."""
        for proc in self.procs.values():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited: see {proc.log_path}")


@contextmanager
def rig(
    tag: str,
    *,
    threads: int = 64,
    webhook_threads: int = 8,
    pipeline: bool = True,
    counted: bool = True,
    redis_url: str | None = None,
    code: Path | None = None,
) -> Iterator[Rig]:
    """A rig under a fresh ``<tag><hex>.`` prefix; afterwards its processes, stand-ins, topology (and with
    ``redis_url`` its Redis keys) are gone. ``counted`` counts DocSpace's rejections (the simulator its moves);
    ``code`` runs the processes from another checkout of the project (``bench/baseline.py``)."""
    sim = DocSpaceSimulator(threads=threads, webhook_threads=webhook_threads, move_delay=0.1, seed=7).start()
    rejected: Counter[int] = Counter()
    if counted:
        _count_429s(sim, rejected)
    mail = MailCatcher().start()
    receiver = PipelineReceiver().start() if pipeline else None
    prefix = f"{tag}{uuid.uuid4().hex[:6]}."
    run_dir = LOG_DIR / prefix.rstrip(".")
    run_dir.mkdir(parents=True, exist_ok=True)
    the_rig = Rig(sim, mail, receiver, prefix, run_dir, moves=sim.portal.moves, rejected=rejected, code=code)
    try:
        yield the_rig
    finally:
        for proc in the_rig.procs.values():
            proc.stop()
        mail.stop()
        if receiver is not None:
            receiver.stop()
        sim.stop()
        delete_topology(prefix)
        if redis_url is not None:
            forget_redis_keys(redis_url, prefix, sim)


def _count_429s(sim: DocSpaceSimulator, rejected: Counter[int]) -> None:
    """Wrap the simulator's fault check (the benchmark's instrument, not product code)."""
    check = sim.faults.check

    def counted_check(method: str, path: str, template: str | None, key: str) -> Any:
        latency, rejection = check(method, path, template, key)
        if rejection is not None:
            rejected[rejection.status] += 1
        return latency, rejection

    # Counts the simulator's rejections by wrapping its own check on this instance (Faults has no hook for it).
    sim.faults.check = counted_check  # type: ignore[method-assign]
