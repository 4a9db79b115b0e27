"""DocSpace calls per invoice in steady state: the move and its poll, nothing else, with one replica and with three.

The signed delivery names the upload (title, folder, modifiedOn), so the classifier reads no file; the move's own
report names the version, so the mover reads none either; the room and Incoming lookups are remembered (and, with
Redis, shared by the replicas). What is left per invoice is the move and one poll of its operation.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from standins.redis_keys import forget_redis_keys
from tests.e2e.pipeline import OutsideWorld, running_pipeline
from tests.support.real_broker import BrokerKit
from tests.support.rules_file import write_rules

pytestmark = pytest.mark.e2e

SECRET = "calls-Webhook-Secret!1"
REDIS_URL = "redis://127.0.0.1:6379/15"
INVOICES = 300
ROOMS = 3
MOVE = "PUT /api/2.0/files/fileops/move"
POLL = "GET /api/2.0/files/fileops"
FILE_READ = "GET /api/2.0/files/file/{file_id}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("replicas", [1, 3])
def test_an_invoice_costs_at_most_two_docspace_calls_in_steady_state(
    replicas: int, broker: BrokerKit, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    rooms = [sim.create_room(f"Client {n}") for n in range(ROOMS)]
    uploads = [sim.create_folder(room, "Uploads") for room in rooms]
    # Incoming by name: each room's folder is found (and remembered) by the mover, the costlier configuration.
    rules = write_rules(tmp_path, {f"client{n}": (room, f"m{n}@client.example") for n, room in enumerate(rooms)})
    env = world.env(secret=SECRET, rules=rules)
    env["CONCURRENCY"] = "4"
    if replicas > 1:
        env["IDEMPOTENCY_URL"] = REDIS_URL
        forget_redis_keys(REDIS_URL, broker.topology.prefix, sim)
    try:
        with running_pipeline(broker, env, tmp_path, replicas=replicas) as pipeline:
            sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
            # Warm-up: one invoice per room, so the room and Incoming lookups are made (once, shared) and remembered.
            warm = [str(sim.upload_file(folder, f"Invoice-warm-{n}.pdf")) for n, folder in enumerate(uploads)]
            assert world.smtp.wait_for(ROOMS, timeout=60), pipeline.logs.dump(40)
            pipeline.wait_until_quiet(broker)
            sim.reset_calls()

            files = [str(sim.upload_file(uploads[n % ROOMS], f"Invoice-{n:04d}.pdf")) for n in range(INVOICES)]
            assert world.smtp.wait_for(ROOMS + INVOICES, timeout=300), pipeline.logs.dump(40)
            assert sim.wait_idle(30)
            pipeline.wait_until_quiet(broker)

            calls = Counter(sim.call_counts())
            per_invoice = sum(calls.values()) / INVOICES
            print(f"{replicas} replica(s): {per_invoice:.3f} DocSpace calls per invoice: {dict(calls)}")
            assert per_invoice <= 2.0, dict(calls)
            assert calls[MOVE] == INVOICES
            assert calls[FILE_READ] == 0  # neither the classifier nor the mover read a file
            assert calls[POLL] <= INVOICES
            world.assert_exactly_once(warm + files, pipeline, broker)
    finally:
        if replicas > 1:
            forget_redis_keys(REDIS_URL, broker.topology.prefix, sim)
