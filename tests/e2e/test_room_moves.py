"""A folder moved from one client's room to another's: past the room TTL, the new client gets its invoices."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from tests.e2e.pipeline import outside_world_env, running_pipeline
from tests.support.real_broker import BrokerKit

pytestmark = pytest.mark.e2e

SECRET = "e2e-Webhook-Secret!1"
ROOM_TTL = 2.0


def _incoming(sim: DocSpaceSimulator, room: str) -> str:
    [folder] = [f for f in sim.subfolders(room) if f["title"] == "Incoming"]
    return str(folder["id"])


def test_a_folder_moved_to_another_clients_room_routes_to_the_new_client_after_the_ttl(
    broker: BrokerKit, docspace_sim: DocSpaceSimulator, smtp_server: MailCatcher, tmp_path: Path
) -> None:
    sim = docspace_sim
    acme, globex = sim.create_room("Acme Ltd"), sim.create_room("Globex")
    shared = sim.create_folder(acme, "Scans")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
[[clients]]
name = "acme"
room_id = "{acme}"
manager_email = "anna@acme.example"

[[clients]]
name = "globex"
room_id = "{globex}"
manager_email = "bob@globex.example"
""",
        encoding="utf-8",
    )
    env = outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp_server) | {
        "ROOM_CACHE_TTL_SECONDS": str(ROOM_TTL)
    }
    with running_pipeline(broker, env, tmp_path) as pipeline:
        sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        # The classifier and the mover learn that Scans is in Acme's room.
        before = sim.upload_file(shared, "Invoice-A-1.pdf")
        assert smtp_server.wait_for(1, timeout=30), pipeline.logs.dump()
        assert sim.file(before)["folderId"] == int(_incoming(sim, acme))

        # Someone drags the folder into Globex's room: same folder id, another client.
        sim.move_folder(shared, globex)
        time.sleep(ROOM_TTL + 0.5)  # past the TTL of what the pipeline remembers about Scans
        after = sim.upload_file(shared, "Invoice-G-1.pdf")

        assert len(smtp_server.wait_for(2, timeout=30)) == 2, pipeline.logs.dump()
        assert sim.wait_idle(10)
        pipeline.wait_until_quiet(broker)

        # The new client's manager is told, and the file lands in the new room's Incoming, not the old one's.
        recipients = {m.message["Subject"]: tuple(m.rcpt_tos) for m in smtp_server.mails}
        assert len(recipients) == 2, recipients
        assert [r for s, r in recipients.items() if "Invoice-G-1.pdf" in s] == [("bob@globex.example",)]
        assert [r for s, r in recipients.items() if "Invoice-A-1.pdf" in s] == [("anna@acme.example",)]
        assert str(sim.file(after)["folderId"]) == _incoming(sim, globex)
        assert [f["title"] for f in sim.files_in(_incoming(sim, acme))] == ["Invoice-A-1.pdf"]
        for stage in ("classifier", "mover", "notifier.email"):
            assert broker.depth(broker.topology.stage(stage).dead_letters) == 0, stage
