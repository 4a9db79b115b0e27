"""DocSpace's daily write quota, spent: the invoices wait in the broker for the reset and then arrive, once each.

The issue's scenario: a portal that allows 10 writes per 60-second "day", 20 invoices, a retry ladder (1, 5, 10 s)
that would run out long before the reset. Two replicas of each stage share the limit through Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.broker.topology import STAGES, Topology
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.redis_keys import forget_redis_keys
from tests.conftest import BrokerFactory
from tests.e2e.pipeline import outside_world_env, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit

pytestmark = pytest.mark.e2e

SECRET = "quota-Webhook-Secret!1"
REDIS_URL = "redis://127.0.0.1:6379/15"
DAY = 60.0
WRITES_PER_DAY = 10
INVOICES = 20


@pytest.fixture
def quota_broker(broker_factory: BrokerFactory, docspace_sim: DocSpaceSimulator) -> Iterator[BrokerKit]:
    """The test's topology on a short ladder; its Redis keys (claims, and the simulator key's limit) deleted after."""
    broker = broker_factory(retry_delays=(1, 5, 10), delivery_limit=20)
    yield broker
    forget_redis_keys(REDIS_URL, broker.topology.prefix, docspace_sim)


def test_a_spent_daily_write_quota_parks_the_invoices_until_the_reset_and_loses_none(
    quota_broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    smtp_server: MailCatcher,
    tmp_path: Path,
) -> None:
    broker, sim = quota_broker, docspace_sim
    room = sim.create_room("Acme Ltd")
    uploads = sim.create_folder(room, "Uploads")
    incoming = sim.create_folder(room, "Incoming")  # known by id: every write the day allows is a move
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "anna@acme.example"\n'
        f'incoming_folder_id = "{incoming}"\n',
        encoding="utf-8",
    )
    moved = sim.portal.moves  # file id -> times DocSpace moved it
    env = {
        **outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp_server),
        "IDEMPOTENCY_URL": REDIS_URL,
        "DOCSPACE_TIMEOUT": "5",
        "DOCSPACE_DAILY_WRITE_QUOTA": str(WRITES_PER_DAY),
        "DOCSPACE_WRITE_QUOTA_PERIOD": str(DAY),
        "CONCURRENCY": "4",
    }
    with running_pipeline(broker, env, tmp_path, replicas=2) as pipeline:
        sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        sim.faults.set_rate_limit(writes_per_day=WRITES_PER_DAY, day_seconds=DAY)  # the first "day" starts now
        day_one = time.monotonic()
        files = [sim.upload_file(uploads, f"Invoice-{n:02d}.pdf") for n in range(INVOICES)]

        # Day one: ten moves, the other ten parked in the broker; reads go on (the classifier routes all 20).
        assert wait_until(lambda: len(smtp_server.mails) >= WRITES_PER_DAY, timeout=40), pipeline.logs.dump(60)
        detected = lambda: sum(  # noqa: E731 - a probe for wait_until
            pipeline.metric(name, "stage_messages_total", outcome="accepted")
            for name in ("classifier-1", "classifier-2")
        )
        assert wait_until(lambda: detected() >= INVOICES, timeout=30), pipeline.logs.dump(60)
        # The last of them may still be on its way into the parking queue (a worker between the 429 and the park).
        parked = lambda: broker.depth(broker.topology.stage("mover").parked)  # noqa: E731 - a probe
        assert wait_until(lambda: parked() == INVOICES - WRITES_PER_DAY, timeout=15), parked()
        assert time.monotonic() - day_one < DAY - 5, "day one ended before the test could look"
        assert len(smtp_server.mails) == WRITES_PER_DAY and sum(moved.values()) == WRITES_PER_DAY
        used = [pipeline.metric(name, "docspace_write_quota_used") for name in ("mover-1", "mover-2")]
        assert used == [WRITES_PER_DAY, WRITES_PER_DAY]  # one count for the key, whichever replica asks
        assert pipeline.metric("mover-1", "docspace_write_quota_limit") == WRITES_PER_DAY

        # Day two: the parked invoices come back at the reset and are moved, announced and e-mailed once.
        assert wait_until(lambda: len(smtp_server.mails) >= INVOICES, timeout=DAY + 30), pipeline.logs.dump(80)
        assert sim.wait_idle(10)
        pipeline.wait_until_quiet(broker)  # any late duplicate has been handled by now

        mails = smtp_server.per_invoice()
        assert mails == {f"{file_id}:v1": 1 for file_id in files}
        assert moved == {file_id: 1 for file_id in files}  # none moved twice, none moved but not announced
        for file_id in files:
            assert str(sim.file(file_id)["folderId"]) == str(incoming)
        topology: Topology = broker.topology
        for stage in STAGES:
            names = topology.stage(stage)
            assert broker.depth(names.dead_letters) == 0, (stage, pipeline.logs.dump(40))
            assert broker.depth(names.parked) == 0
        deferred = pipeline.logs.events(
            None, "message_handled", outcome="deferred", reason="docspace_write_quota_spent"
        )
        assert len(deferred) >= INVOICES - WRITES_PER_DAY
        assert not pipeline.logs.events(None, "message_handled", outcome="dead_lettered")
