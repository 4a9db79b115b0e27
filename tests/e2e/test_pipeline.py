"""The whole pipeline: four real processes, the real broker, the DocSpace simulator, real SMTP and a real receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.pipeline import OutsideWorld, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit

pytestmark = pytest.mark.e2e

SECRET = "e2e-Webhook-Secret!1"


def test_invoices_are_moved_mailed_and_sent_once_and_the_rest_left_alone(
    broker: BrokerKit, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    acme = sim.create_room("Acme Ltd")
    deep = sim.create_folder(sim.create_folder(sim.create_folder(acme, "Uploads"), "2026"), "November")
    globex = sim.create_room("Globex")
    globex_incoming = sim.create_folder(globex, "Eingang")
    elsewhere = sim.create_room("Not a client")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
[[clients]]
name = "acme"
room_id = {acme}
manager_email = "anna@acme.example"

[[clients]]
name = "globex"
room_id = "{globex}"
manager_email = "bob@globex.example"
incoming_folder_id = "{globex_incoming}"
""",
        encoding="utf-8",
    )
    env = world.env(secret=SECRET, rules=rules)
    with running_pipeline(broker, env, tmp_path) as pipeline:
        ingress_url, logs = pipeline.url, pipeline.logs
        sim.register_webhook(
            ingress_url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded", "file.updated"]
        )
        # A simple upload fires both file.created and file.uploaded.
        invoice = sim.upload_file(deep, "INVOICE-Müller-№7.pdf")
        photo = sim.upload_file(deep, "Team photo.jpg")
        stray = sim.upload_file(elsewhere, "Invoice-1.pdf")
        globex_invoice = sim.upload_file(globex, "invoice 2026-11.pdf")

        assert world.smtp.wait_for(2, timeout=30), logs.dump()
        assert world.receiver.wait_for(2, timeout=30), logs.dump()
        # Wait for the second trigger of each upload (retried while the first held the claim) to be dropped.
        assert wait_until(lambda: len(logs.events("classifier", "message_handled", reason="duplicate")) >= 2, 20)
        sim.update_file(invoice)  # file.updated: not a trigger the classifier takes
        assert wait_until(lambda: len(logs.events("classifier", "message_handled", reason="wrong_trigger")) >= 1, 20)
        assert sim.wait_idle(10)
        pipeline.wait_until_quiet(broker)  # any duplicate has been handled (and dropped) by now

        # Moved once, into the right Incoming folders.
        acme_incoming = [f for f in sim.subfolders(acme) if f["title"] == "Incoming"]
        assert len(acme_incoming) == 1
        assert str(sim.file(invoice)["folderId"]) == str(acme_incoming[0]["id"])
        assert [f["title"] for f in sim.files_in(acme_incoming[0]["id"])] == ["INVOICE-Müller-№7.pdf"]
        assert str(sim.file(globex_invoice)["folderId"]) == str(globex_incoming)
        assert str(sim.file(photo)["folderId"]) == str(deep)
        assert str(sim.file(stray)["folderId"]) == str(elsewhere)
        assert sim.call_count("PUT", "/api/2.0/files/fileops/move") == 2

        # One e-mail each, to each client's own manager.
        mails = {tuple(m.rcpt_tos): m.message for m in world.smtp.mails}
        assert len(world.smtp.mails) == 2, logs.dump()
        assert set(mails) == {("anna@acme.example",), ("bob@globex.example",)}
        assert "INVOICE-Müller-№7.pdf" in mails[("anna@acme.example",)]["Subject"]

        # One pipeline call each, signed, keyed by the invoice id.
        assert len(world.receiver.calls) == 2
        called = {json.loads(r.body)["file_id"]: r for r in world.receiver.calls}
        assert set(called) == {str(invoice), str(globex_invoice)}
        assert called[str(invoice)].headers["webhook-id"] == f"{invoice}:v1"
        assert called[str(invoice)].headers["webhook-signature"].startswith("v1,")

        # What was left alone, and why, is in the classifier's log.
        decisions = logs.events("classifier", "message_handled")
        reasons = [(d.get("title"), d.get("reason")) for d in decisions]
        assert ("Team photo.jpg", "not_an_invoice") in reasons
        assert ("Invoice-1.pdf", "no_watched_room") in reasons
        assert any(d["reason"] == "wrong_trigger" and d["trigger"] == "file.updated" for d in decisions)
        accepted = [d for d in decisions if d["outcome"] == "accepted"]
        assert sorted(d["title"] for d in accepted) == ["INVOICE-Müller-№7.pdf", "invoice 2026-11.pdf"]
        assert len([d for d in decisions if d.get("reason") == "duplicate"]) == 2  # the second trigger of each

        # Nothing failed anywhere.
        for stage in ("classifier", "mover", "notifier.email", "notifier.pipeline"):
            assert broker.depth(broker.topology.stage(stage).dead_letters) == 0, stage

        # Every process counted what happened: 4 simple uploads (2 triggers each) and 1 update were delivered.
        delivered = len({json.loads(a.body)["event"]["id"] for a in sim.deliveries() if a.status == 200})
        assert delivered == 9
        assert pipeline.metric("ingress", "ingress_deliveries_total", outcome="accepted") == delivered
        assert pipeline.metric("ingress", "ingress_deliveries_total", outcome="bad_signature") == 0

        def counted(process: str, stage: str, outcome: str, reason: str | None = None) -> float:
            labels = {"stage": stage, "outcome": outcome} | ({"reason": reason} if reason is not None else {})
            return pipeline.metric(process, "stage_messages_total", **labels)

        assert counted("classifier", "classifier", "accepted") == 2
        assert counted("classifier", "classifier", "ignored", "duplicate") == 2
        assert counted("classifier", "classifier", "ignored", "not_an_invoice") == 2
        assert counted("classifier", "classifier", "ignored", "no_watched_room") == 2
        assert counted("classifier", "classifier", "ignored", "wrong_trigger") == 1
        assert counted("mover", "mover", "received") == 2
        assert counted("notifier", "notifier.email", "emailed") == 2
        assert counted("notifier", "notifier.pipeline", "pipeline_called") == 2
        assert counted("classifier", "classifier", "dead_lettered") == 0
        assert pipeline.metric("notifier", "invoice_end_to_end_seconds_count", side="email") == 2
        assert pipeline.metric("notifier", "invoice_end_to_end_seconds_count", side="pipeline") == 2
