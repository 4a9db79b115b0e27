"""Every file has a story: the real pipeline records its decisions, the real journal writer stores them (SQLite and
PostgreSQL), and `invoice-pipeline trace` tells each file's verdict, with every decision once, although the writer
was killed, its database was away for 30 s and the ingress for two minutes; a writer stopped for five minutes costs
the invoices nothing, and the journal then catches up.

These tests mostly wait (marked ``long``: `make test` runs them in a lane beside the rest). DocSpace's retry
schedule is the simulator's fast one (1.55 s in all) and the reconciler runs every 2 s, so the reconciler recovers
what the ingress outage made DocSpace give up on well within it.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from shared.journal.record import Decision
from shared.journal.store import JournalStore
from shared.journal.wiring import open_journal_store
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from tests.e2e.pipeline import OutsideWorld, RunningPipeline, assert_exactly_once, outside_world_env, running_pipeline
from tests.support.journal_support import new_schema, postgres_url, sqlite_path
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.long]

SECRET = "journal-Webhook-Secret!1"
MANAGER = "anna@acme.example"
DB_OUTAGE = 30.0
INGRESS_OUTAGE = 120.0
WRITER_STOPPED = 300.0
# While the writer is stopped, a batch of invoices every minute: the pipeline's pace must not depend on the journal.
BATCHES, BATCH = 4, 10
# What each process logs for a decision, as the journal should hold it: (stage, outcome, reason) by log event.
INGRESS_EVENTS = {
    "delivery_accepted": ("accepted", None),
    "delivery_replayed": ("replay_refused", "seen_recently"),
    "delivery_spooled": ("spooled", "broker_unavailable"),
}


@dataclass
class JournalBackend:
    """Where the journal lives (``url`` as the writer is told), how a test reads it, and how its outage is made."""

    kind: str
    url: str
    read_url: str
    schema: str
    outage: Callable[[float], Any]

    def open(self) -> JournalStore:
        return open_journal_store(self.read_url, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalBackend]:
    if request.param == "sqlite":
        path = sqlite_path(tmp_path)
        url = f"sqlite:///{path}"
        yield JournalBackend("sqlite", url, url, "invoice_journal", lambda seconds: _write_locked(path, seconds))
        return
    direct = postgres_url()
    proxy = TcpProxy("127.0.0.1", 5432)  # the writer reaches PostgreSQL only through it
    db = JournalBackend("postgresql", proxy.proxied(direct), direct, new_schema(), lambda s: _cut(proxy, s))
    try:
        yield db
    finally:
        proxy.close()
        store = db.open()
        store.drop()  # type: ignore[attr-defined]  # the PostgreSQL adapter's test clean-up
        store.close()


@contextmanager
def _write_locked(path: Path, seconds: float) -> Iterator[None]:
    """SQLite "down" for writing: another connection holds the write lock; readers still read (WAL)."""
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        yield
    finally:
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def _cut(proxy: TcpProxy, seconds: float) -> Iterator[None]:
    """PostgreSQL unreachable for the writer: its connection dropped, new ones refused."""
    proxy.down()
    started = time.monotonic()
    try:
        yield
    finally:
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        proxy.up()


def _rules(sim: DocSpaceSimulator, tmp_path: Path) -> tuple[str, Path]:
    room = sim.create_room("Acme Ltd")
    uploads = sim.create_folder(room, "Uploads")
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "{MANAGER}"\n', encoding="utf-8")
    return uploads, rules


def _env(sim: DocSpaceSimulator, smtp: MailCatcher, receiver: PipelineReceiver, rules: Path, db: JournalBackend):
    return {
        **outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp, receiver=receiver),
        "JOURNAL_URL": db.url,
        "JOURNAL_SCHEMA": db.schema,
        "JOURNAL_BATCH_WAIT": "0.1",
        # The reconciler at test speed: failed deliveries are taken from DocSpace's log a second after they fail;
        # the room scan leaves every file to the webhook path (its grace outlasts the test).
        "RECONCILE_INTERVAL": "2",
        "RECONCILE_LOG_SETTLE": "1",
        "RECONCILE_GRACE": "600",
        "RECONCILE_BUDGET_SHARE": "0.2",
    }


def _logged(pipeline: RunningPipeline, file_id: str) -> set[tuple[str, str, str | None, str | None]]:
    """Every decision the processes logged about the file, as (stage, outcome, reason, event id)."""
    made: set[tuple[str, str, str | None, str | None]] = set()
    for record in pipeline.logs.events(None, "message_handled", file_id=file_id):
        if record["outcome"] != "requeued":
            reason = record.get("dead_letter_reason") or record.get("reason")
            made.add((record["stage"], record["outcome"], reason, record.get("event_id")))
    for event, (outcome, reason) in INGRESS_EVENTS.items():
        for record in pipeline.logs.events("ingress", event, file_id=file_id):
            made.add(("ingress", outcome, reason, record.get("event_id")))
    for record in pipeline.logs.events(None, "delivery_recovered", file_id=file_id):
        made.add(("reconciler", "recovered", record["source"], None))
    return made


def _journalled(timeline: list[Decision]) -> set[tuple[str, str, str | None, str | None]]:
    return {(d.stage, d.outcome, d.reason, None if d.stage == "reconciler" else d.event_id) for d in timeline}


def _timeline(db: JournalBackend, file_id: str) -> list[Decision]:
    store = db.open()
    try:
        return store.timeline(file_id=file_id)
    finally:
        store.close()


def _assert_whole_story(
    pipeline: RunningPipeline, db: JournalBackend, file_id: str, timeout: float = 60, *, replays: int = 0
) -> None:
    """The file's timeline holds every decision the processes logged, each once, the operator's ``replays`` (made
    by the command line, which the processes do not log), and nothing else."""
    assert wait_until(lambda: _journalled(_timeline(db, file_id)) >= _logged(pipeline, file_id), timeout), (
        file_id,
        sorted(_logged(pipeline, file_id) - _journalled(_timeline(db, file_id)), key=str),
    )
    timeline = _timeline(db, file_id)
    operator = [d for d in timeline if d.stage == "operator"]
    assert [d.outcome for d in operator] == ["replayed"] * replays, (file_id, operator)
    assert _journalled([d for d in timeline if d.stage != "operator"]) == _logged(pipeline, file_id), file_id
    # Once each: no decision stored twice, whatever was redelivered to the writer or made again by a stage.
    keys = collections.Counter((d.stage, d.outcome, d.reason, d.event_id, d.attempt) for d in timeline)
    assert max(keys.values()) == 1, keys.most_common(2)


def _trace(capsys: pytest.CaptureFixture[str], term: str) -> dict[str, Any]:
    assert main(["trace", term, "--json", "--no-dlq"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


def _cli_env(monkeypatch: pytest.MonkeyPatch, broker: BrokerKit, db: JournalBackend) -> None:
    for name, value in {**broker.env(), "JOURNAL_URL": db.read_url, "JOURNAL_SCHEMA": db.schema}.items():
        monkeypatch.setenv(name, value)


def _recovered(pipeline: RunningPipeline, file_id: str) -> Callable[[], bool]:
    """A probe: the reconciler has recovered the file's delivery from DocSpace's log."""
    return lambda: bool(pipeline.logs.events("reconciler", "delivery_recovered", file_id=file_id))


def _handled(pipeline: RunningPipeline, stage: str, file_id: str, outcome: str) -> Callable[[], bool]:
    return lambda: bool(pipeline.logs.events(stage, "message_handled", file_id=file_id, outcome=outcome))


def _delete(sim: DocSpaceSimulator, file_id: str) -> None:
    """A user deletes the file (the simulator has no API for it: its state, under its lock)."""
    with sim.portal.lock:
        del sim.portal.files[int(file_id)]


@pytest.mark.timeout(900)
def test_trace_tells_every_file_s_story_although_the_writer_died_and_its_database_was_away(
    broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    smtp_server: MailCatcher,
    pipeline_receiver: PipelineReceiver,
    backend: JournalBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = docspace_sim
    uploads, rules = _rules(sim, tmp_path)
    env = _env(sim, smtp_server, pipeline_receiver, rules, backend)
    with running_pipeline(broker, env, tmp_path, reconcilers=1) as pipeline:
        logs = pipeline.logs
        ingress = TcpProxy("127.0.0.1", int(pipeline.url.rsplit(":", 1)[1]))  # DocSpace's only way in
        try:
            assert wait_until(lambda: bool(logs.events(None, "reconcile_done")), 30), logs.dump(60)
            sim.register_webhook(
                f"http://127.0.0.1:{ingress.port}/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"]
            )
            files = {
                "invoice": sim.upload_file(uploads, "Invoice-2026-0042.pdf"),
                "photo": sim.upload_file(uploads, "Team photo.jpg"),
                "unknown": sim.upload_file(uploads, "Invoice-2026-0042.xyz"),
            }
            # The writer dies while records flow (SIGKILL: nothing flushed); the supervisor starts it again.
            assert wait_until(lambda: bool(logs.events("classifier", "message_handled")), 20), logs.dump(60)
            pipeline.supervisor.kill("journal")
            assert smtp_server.wait_for(1, timeout=30), logs.dump(60)
            files["clash"] = sim.upload_file(uploads, "Invoice-2026-0042.pdf")  # the same name again, same folder
            assert smtp_server.wait_for(2, timeout=30), logs.dump(60)
            assert wait_until(lambda: len(logs.events("journal", "batch_consumer_started")) >= 2, 30), logs.dump(60)

            with backend.outage(DB_OUTAGE):
                # A file deleted between its classification and its move.
                pipeline.supervisor.pause("mover")
                files["deleted"] = sim.upload_file(uploads, "Invoice-2026-0044.pdf")
                assert wait_until(_handled(pipeline, "classifier", files["deleted"], "accepted"), 20), logs.dump(60)
                _delete(sim, files["deleted"])
                pipeline.supervisor.resume("mover")
                assert wait_until(_handled(pipeline, "mover", files["deleted"], "dead_lettered"), 30), logs.dump(60)
                # A move DocSpace fails: dead-lettered now, replayed by the operator below.
                sim.fail_next_move("Simulated move failure")
                files["replayed"] = sim.upload_file(uploads, "Invoice-2026-0045.pdf")
                assert wait_until(_handled(pipeline, "mover", files["replayed"], "dead_lettered"), 30), logs.dump(60)
                # Meanwhile the journal holds none of it: its database is away.
                assert _timeline(backend, files["deleted"]) == []

            # The ingress unreachable: DocSpace gives up on the delivery, the reconciler recovers it from its log.
            ingress.down()
            down_at = time.monotonic()
            files["outage"] = sim.upload_file(uploads, "Invoice-2026-0046.pdf")
            assert wait_until(_recovered(pipeline, files["outage"]), 30), logs.dump(60)
            # Half-way through, another upload: recovered as well, while the ingress is still away.
            time.sleep(max(0.0, down_at + INGRESS_OUTAGE / 2 - time.monotonic()))
            files["late_outage"] = sim.upload_file(uploads, "Invoice-2026-0047.pdf")
            assert wait_until(_recovered(pipeline, files["late_outage"]), 30), logs.dump(60)
            assert time.monotonic() - down_at < INGRESS_OUTAGE, "the outage ended before the test could look"
            time.sleep(max(0.0, down_at + INGRESS_OUTAGE - time.monotonic()))
            ingress.up()

            _cli_env(monkeypatch, broker, backend)
            assert main(["dlq", "replay", "--stage", "mover", "--reason", "docspace_move_failed"]) == 0
            capsys.readouterr()
            assert smtp_server.wait_for(5, timeout=30), logs.dump(60)
            assert sim.wait_idle(10)
            pipeline.wait_until_quiet(broker)
        finally:
            ingress.close()

        # Each file's timeline holds every decision once: nothing lost to the kill or the outage, nothing doubled.
        for name, file_id in files.items():
            _assert_whole_story(pipeline, backend, file_id, replays=1 if name == "replayed" else 0)
        assert pipeline.supervisor.restarts("journal") == 1

        verdicts = {name: _trace(capsys, file_id) for name, file_id in files.items()}
        for name in ("invoice", "clash", "outage", "late_outage", "replayed"):
            verdict = verdicts[name]["verdict"]
            assert verdict["state"] == "arrived", (name, verdict)
            assert f"in Acme Ltd/Incoming, e-mailed to {MANAGER}" in verdict["text"] and "pipeline 2" in verdict["text"]
        for name, reason in (("photo", "not_an_invoice"), ("unknown", "extension_not_allowed")):
            verdict = verdicts[name]["verdict"]
            assert (verdict["state"], verdict["reason"]) == ("skipped", reason), verdicts[name]
            assert "(rule: acme: " in verdict["text"]
        deleted = verdicts["deleted"]["verdict"]
        assert (deleted["state"], deleted["stage"], deleted["reason"]) == (
            "dead_lettered",
            "mover",
            "docspace_not_found",
        )
        assert deleted["command"] == "invoice-pipeline dlq replay --stage mover --reason docspace_not_found"
        story = [(d["stage"], d["outcome"], d.get("reason")) for d in verdicts["replayed"]["timeline"]]
        assert (
            story.index(("mover", "dead_lettered", "docspace_move_failed"))
            < story.index(("operator", "replayed", "docspace_move_failed"))
            < story.index(("mover", "received", "moved (operation)"))
        )
        for name in ("outage", "late_outage"):
            outage = [(d["stage"], d["outcome"], d.get("reason")) for d in verdicts[name]["timeline"]]
            assert ("reconciler", "recovered", "delivery_log") in outage, name
        # A fragment that names two files (the clash) offers both to choose from.
        assert main(["trace", "Invoice-2026-0042.pdf", "--json", "--no-dlq"]) == 0
        choices = json.loads(capsys.readouterr().out)["matches"]
        assert {m["file_id"] for m in choices} == {files["invoice"], files["clash"]}


@pytest.mark.timeout(900)
def test_a_writer_stopped_for_five_minutes_costs_the_invoices_nothing_and_the_journal_catches_up(
    broker: BrokerKit, world: OutsideWorld, tmp_path: Path
) -> None:
    sim, smtp_server, pipeline_receiver = world.sim, world.smtp, world.receiver
    uploads, rules = _rules(sim, tmp_path)
    url = f"sqlite:///{sqlite_path(tmp_path)}"
    db = JournalBackend("sqlite", url, url, "invoice_journal", lambda _s: None)
    env = _env(sim, smtp_server, pipeline_receiver, rules, db)
    with running_pipeline(broker, env, tmp_path) as pipeline:
        sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        pipeline.supervisor.pause("journal")
        stopped_at = time.monotonic()
        files: list[str] = []
        for batch in range(BATCHES):
            # The invoices do not wait for the journal: each minute's batch arrives within seconds, as it would
            # with the writer running, while the records pile up in the journal queue.
            time.sleep(max(0.0, stopped_at + 60 * batch - time.monotonic()))
            first = len(files) + 1
            files += [sim.upload_file(uploads, f"Invoice-2026-{n:04d}.pdf") for n in range(first, first + BATCH)]
            assert smtp_server.wait_for(len(files), timeout=30), pipeline.logs.dump(60)
            assert pipeline_receiver.wait_for(len(files), timeout=30), pipeline.logs.dump(60)
        assert sim.wait_idle(10)
        pipeline.wait_until_quiet(broker)
        assert time.monotonic() - stopped_at < WRITER_STOPPED, "the writer came back before the test could look"
        assert_exactly_once(sim, files, smtp_server, pipeline_receiver, pipeline, broker)
        # The records piled up in the journal queue (in batches: a message holds many), none of them written.
        assert broker.depth(broker.topology.journal_queue) > 0
        assert not any(_timeline(db, file_id) for file_id in files)
        time.sleep(max(0.0, stopped_at + WRITER_STOPPED - time.monotonic()))

        pipeline.supervisor.resume("journal")
        for file_id in files:
            _assert_whole_story(pipeline, db, file_id)
        assert wait_until(lambda: broker.depth(broker.topology.journal_queue) == 0, 30)
        # Exactly once, still: catching up replayed nothing into the pipeline.
        assert_exactly_once(sim, files, smtp_server, pipeline_receiver, pipeline, broker)
