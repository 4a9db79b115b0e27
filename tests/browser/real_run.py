"""One real pipeline run on the DocSpace simulator for the browser tests: the day it makes, and what came of it.

The processes are the real ones (``tests/e2e/pipeline.py``: ingress, classifier, mover, notifier, the journal
writer and a reconciler) on the real broker under a topology of their own; DocSpace is the simulator, e-mail the
mail catcher, the downstream pipeline the receiver. The run uploads an office's morning: invoices for two clients,
a photo the classifier skips, an invoice whose title carries a script, one deleted before its move and one whose
move DocSpace fails (both dead-lettered in the mover). The console then runs over the journal the run filled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pika

from shared.broker.topology import Topology
from shared.journal.record import Decision
from shared.journal.sqlite_store import SqliteJournalStore
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from tests.e2e.pipeline import RunningPipeline, outside_world_env, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit, new_prefix
from tests.support.simulator_fixtures import FAST_RETRY_DELAYS

SECRET = "Console-Run-Secret!1"
XSS = "<script>alert(1)</script>"
MANAGERS = {"acme": "anna@acme.example", "globex": "bob@globex.example"}


@dataclass(frozen=True)
class Upload:
    """A file the run put into DocSpace, and what the pipeline should make of it."""

    name: str
    client: str
    title: str
    invoice: bool


# The morning, in upload order. "deleted" and "move_fails" are uploaded last, each staged (see _dead_letters).
UPLOADS = (
    Upload("acme_first", "acme", "Invoice-2026-0042.pdf", invoice=True),
    Upload("acme_second", "acme", "Invoice-2026-0043.pdf", invoice=True),
    Upload("globex", "globex", "INV-7781 Globex.pdf", invoice=True),
    Upload("script", "globex", f"{XSS} invoice.pdf", invoice=True),
    Upload("photo", "acme", "Team photo.jpg", invoice=False),
    Upload("deleted", "acme", "Invoice-2026-0044.pdf", invoice=True),
    Upload("move_fails", "globex", "INV-7782 Globex.pdf", invoice=True),
)


@dataclass
class RealRun:
    """The run: its broker topology, the outside world it talked to, the processes, and the files it uploaded."""

    broker: BrokerKit
    sim: DocSpaceSimulator
    smtp: MailCatcher
    receiver: PipelineReceiver
    pipeline: RunningPipeline
    env: dict[str, str]  # the settings the pipeline runs with; the console gets the same
    journal_path: Path
    files: dict[str, str] = field(default_factory=dict)  # upload name -> DocSpace file id

    def invoice_id(self, name: str) -> str:
        return f"{self.files[name]}:v1"

    def handled(self, stage: str, name: str, outcome: str) -> Callable[[], bool]:
        file_id = self.files[name]
        return lambda: bool(self.pipeline.logs.events(stage, "message_handled", file_id=file_id, outcome=outcome))

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until DocSpace, the stages and the journal writer have nothing left: every decision is stored."""
        assert self.sim.wait_idle(timeout)
        self.pipeline.wait_until_quiet(self.broker, timeout=timeout)
        queue = self.broker.topology.journal_queue
        caught_up = lambda: (  # noqa: E731
            self.broker.depth(queue) == 0 and self.pipeline.metric("journal", "journal_lag_seconds") == 0
        )
        # Twice, a moment apart: a batch the writer took just now may be in neither count for an instant.
        for _ in range(2):
            assert wait_until(caught_up, timeout), self.pipeline.logs.dump(40)
            time.sleep(0.3)

    def timeline(self, name: str) -> list[Decision]:
        store = SqliteJournalStore(self.journal_path)
        try:
            return store.timeline(file_id=self.files[name])
        finally:
            store.close()

    def moved(self) -> int:
        """Files DocSpace now holds in a client's Incoming folder."""
        count = 0
        for name, file_id in self.files.items():
            if name != "deleted" and self.sim.folder_title(self.sim.file(file_id)["folderId"]) == "Incoming":
                count += 1
        return count

    def funnel(self) -> dict[str, int]:
        """The funnel as the outside world saw the run: DocSpace's deliveries and folders, the mail, the calls."""
        uploaded = [upload for upload in UPLOADS if upload.name in self.files]
        return {
            "deliveries": sum(1 for attempt in self.sim.deliveries() if 200 <= attempt.status < 300),
            "files": len(uploaded),
            "invoices": sum(1 for upload in uploaded if upload.invoice),
            "moved": self.moved(),
            "emailed": self.smtp.count(),
            "pipeline": self.receiver.count(),
        }


def _rules(sim: DocSpaceSimulator, directory: Path) -> tuple[dict[str, str], Path]:
    """Two clients, each a room with an Uploads folder; Globex's invoices are named ``INV-...`` or say so."""
    folders, lines = {}, []
    for client, room_title, patterns in (
        ("acme", "Acme Ltd", '["invoice*"]'),
        ("globex", "Globex", '["inv-*", "*invoice*"]'),
    ):
        room = sim.create_room(room_title)
        folders[client] = sim.create_folder(room, "Uploads")
        lines.append(
            f'[[clients]]\nname = "{client}"\nroom_id = "{room}"\nmanager_email = "{MANAGERS[client]}"\n'
            f"title_patterns = {patterns}\n"
        )
    rules = directory / "rules.toml"
    rules.write_text("\n".join(lines), encoding="utf-8")
    return folders, rules


def _delete(sim: DocSpaceSimulator, file_id: str) -> None:
    """A user deletes the file (the simulator has no API for it: its state, under its lock)."""
    with sim.portal.lock:
        del sim.portal.files[int(file_id)]


def _morning(run: RealRun, folders: dict[str, str]) -> None:
    """Upload the morning and wait for each outcome the run is built to have."""
    sim, logs = run.sim, run.pipeline.logs
    plain = [upload for upload in UPLOADS if upload.name not in {"deleted", "move_fails"}]
    for upload in plain:
        run.files[upload.name] = sim.upload_file(folders[upload.client], upload.title)
    arrived = sum(1 for upload in plain if upload.invoice)
    assert run.smtp.wait_for(arrived, timeout=60) and run.receiver.wait_for(arrived, timeout=60), logs.dump(60)
    assert wait_until(run.handled("classifier", "photo", "ignored"), 30), logs.dump(60)
    _dead_letters(run, folders)


def _dead_letters(run: RealRun, folders: dict[str, str]) -> None:
    """One file deleted between its classification and its move; one whose move DocSpace fails."""
    sim, supervisor, logs = run.sim, run.pipeline.supervisor, run.pipeline.logs
    deleted = next(upload for upload in UPLOADS if upload.name == "deleted")
    supervisor.pause("mover")
    run.files["deleted"] = sim.upload_file(folders[deleted.client], deleted.title)
    assert wait_until(run.handled("classifier", "deleted", "accepted"), 30), logs.dump(60)
    _delete(sim, run.files["deleted"])
    supervisor.resume("mover")
    assert wait_until(run.handled("mover", "deleted", "dead_lettered"), 30), logs.dump(60)
    failing = next(upload for upload in UPLOADS if upload.name == "move_fails")
    sim.fail_next_move("Simulated move failure")  # the next move is this file's: nothing else is in flight now
    run.files["move_fails"] = sim.upload_file(folders[failing.client], failing.title)
    assert wait_until(run.handled("mover", "move_fails", "dead_lettered"), 30), logs.dump(60)


@contextmanager
def real_run(amqp_url: str, directory: Path) -> Iterator[RealRun]:
    """Start the outside world and the pipeline, run the morning, wait until the journal holds all of it."""
    topology = Topology(new_prefix(), retry_delays=(0.2, 0.4, 0.8))
    broker = BrokerKit(amqp_url, topology)
    with ExitStack() as stack:
        connection = broker.connect()
        topology.declare(connection.channel())
        connection.close()
        stack.callback(_delete_topology, amqp_url, topology)
        sim = DocSpaceSimulator(move_delay=0.03, retry_delays=FAST_RETRY_DELAYS, seed=1234).start()
        stack.callback(sim.stop)
        smtp = MailCatcher(None, host="127.0.0.1").start()
        stack.callback(smtp.close)
        receiver = PipelineReceiver(host="127.0.0.1", path="/hooks/invoice-received").start()
        stack.callback(receiver.stop)
        folders, rules = _rules(sim, directory)
        journal_path = directory / "journal.sqlite3"
        env = {
            **outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp, receiver=receiver),
            "JOURNAL_BATCH_WAIT": "0.1",
            # The reconciler at test speed, so Health shows its runs; its room scan leaves every file to the webhook.
            "RECONCILE_INTERVAL": "2",
            "RECONCILE_LOG_SETTLE": "1",
            "RECONCILE_GRACE": "600",
        }
        pipeline = stack.enter_context(running_pipeline(broker, env, directory, reconcilers=1))
        sim.register_webhook(f"{pipeline.url}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        run = RealRun(broker, sim, smtp, receiver, pipeline, env, journal_path)
        _morning(run, folders)
        run.settle()
        yield run


def _delete_topology(amqp_url: str, topology: Topology) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        topology.delete(connection.channel())
    finally:
        connection.close()
