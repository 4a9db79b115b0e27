"""Fast takeover: a mover killed while it holds four invoices loses them to the next worker within one lease.

The claim lease is renewed while its worker lives (default 15 s, a beat every 5 s), so a dead worker's claims lapse
within 15 s; the redelivered invoices wait in the parking queue exactly until then, not up a retry ladder.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from shared.broker.topology import MOVER
from shared.store.sqlite_store import SqliteStore
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from tests.e2e.pipeline import outside_world_env, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit

pytestmark = pytest.mark.e2e

SECRET = "takeover-Webhook-Secret!1"
HELD = 4
TAKEOVER_LIMIT = 30.0


def test_a_killed_movers_four_invoices_are_moved_and_announced_once_within_thirty_seconds(
    broker: BrokerKit, docspace_sim: DocSpaceSimulator, smtp_server: MailCatcher, tmp_path: Path
) -> None:
    sim = docspace_sim
    room = sim.create_room("Acme Ltd")
    uploads = sim.create_folder(room, "Uploads")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "anna@acme.example"\n', encoding="utf-8"
    )
    env = {
        **outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp_server),
        "DOCSPACE_TIMEOUT": "60",
        "CONCURRENCY": str(HELD),
        # CLAIM_LEASE_SECONDS is left at its default: the test is about what an operator gets out of the box.
    }
    moved = sim.portal.moves  # file id -> times DocSpace moved it
    # The mover's first look for the room's Incoming folder hangs: it holds its four claims and has written nothing.
    stall = sim.faults.add(method="GET", path=f"/api/2.0/files/{room}", latency=120)
    with running_pipeline(broker, env, tmp_path) as pipeline:
        sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        files = [sim.upload_file(uploads, f"Invoice-{n}.pdf") for n in range(HELD)]
        assert wait_until(
            lambda: (
                pipeline.metric("classifier", "stage_messages_total", outcome="accepted") >= HELD
                and broker.depth(broker.topology.stage(MOVER).work) == 0
            ),
            timeout=30,
        ), pipeline.logs.dump(40)
        # Every one of the four is claimed and waiting on DocSpace: its claim is in the store, its worker holds it.
        # The mover claims the upload (file id and payload.modifiedOn) the classifier decided on.
        claims = SqliteStore(tmp_path / "idempotency.sqlite3", ttl_seconds=60)
        payloads = [json.loads(attempt.body)["payload"] for attempt in sim.deliveries()]
        modified_on = {str(p["id"]): p["modifiedOn"] for p in payloads}
        assert wait_until(
            lambda: (
                all(claims.lease_left(f"mover:upload:{f}@{modified_on[str(f)]}") is not None for f in files)
                and pipeline.metric("mover", "stage_messages_in_flight") == HELD
            ),
            timeout=30,
        ), pipeline.logs.dump(40)
        claims.close()
        assert not smtp_server.mails and not moved

        pipeline.supervisor.kill("mover", signal.SIGKILL)
        killed_at = time.monotonic()
        sim.faults.remove(stall)

        assert wait_until(lambda: len(smtp_server.mails) >= HELD, timeout=60), pipeline.logs.dump(60)
        takeover = time.monotonic() - killed_at
        pipeline.wait_until_quiet(broker)  # any late duplicate has been handled by now
        mails = smtp_server.per_invoice()
        assert mails == {f"{file_id}:v1": 1 for file_id in files}
        assert moved == {file_id: 1 for file_id in files}
        assert takeover < TAKEOVER_LIMIT, f"took {takeover:.1f}s"
        # They waited for the dead worker's lease in the parking queue, not on the retry ladder.
        waits = pipeline.logs.events("mover", "message_handled", outcome="deferred", reason="in_progress_elsewhere")
        assert waits and not pipeline.logs.events("mover", "message_handled", outcome="retried")
        assert broker.depth(broker.topology.stage(MOVER).dead_letters) == 0
    print(f"takeover: {HELD} invoices of a SIGKILLed mover announced {takeover:.1f}s after the kill")
