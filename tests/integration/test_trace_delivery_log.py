"""``invoice-pipeline trace`` when the journal knows nothing: it searches DocSpace's delivery log (the simulator's,
over the real HTTP API) and says whether DocSpace delivered the file, failed to, or never sent it; ``--json`` keeps
its keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from tests.support.cli_env import use_broker
from tests.support.journal_support import sqlite_path
from tests.support.real_broker import BrokerKit
from tests.support.simulator_fixtures import WatchedRoom

KEYS = {"term", "matches", "timeline", "dead_letters", "delivery_log", "verdict"}
VERDICT_KEYS = {"state", "text", "stage", "reason", "since", "command"}


@pytest.fixture
def files(
    broker: BrokerKit, watched_room: WatchedRoom, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    sim, room = watched_room.sim, watched_room.room
    use_broker(monkeypatch, broker)
    monkeypatch.setenv("JOURNAL_URL", f"sqlite:///{sqlite_path(tmp_path)}")  # an empty journal
    monkeypatch.setenv("DOCSPACE_API_HOST", sim.base_url)
    monkeypatch.setenv("DOCSPACE_API_KEY", sim.api_key)
    delivered = sim.upload_file(room, "Invoice-0900.pdf")
    assert sim.wait_idle(20)
    watched_room.receiver.default_status = 503  # the ingress is down for the next upload: every retry fails
    failed = sim.upload_file(room, "Invoice-0901.pdf")
    assert sim.wait_idle(20)
    return {"delivered": delivered, "failed": failed}


def trace(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["trace", *argv, "--json"])
    out = capsys.readouterr().out
    found = json.loads(out)
    assert set(found) == KEYS and set(found["verdict"]) == VERDICT_KEYS, out  # scripts rely on these keys
    return code, found


def test_a_file_docspace_delivered_but_the_journal_lacks_is_found_in_the_delivery_log(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = trace(capsys, files["delivered"])

    assert code == 0
    assert found["verdict"]["state"] == "in_delivery_log"
    assert "DocSpace delivered it" in found["verdict"]["text"] and "answered 200" in found["verdict"]["text"]
    log = found["delivery_log"]
    assert log["searched"] is True and log["rows_searched"] >= 4
    assert {d["trigger"] for d in log["deliveries"]} == {"file.created", "file.uploaded"}
    assert {(d["file_id"], d["title"], d["status"]) for d in log["deliveries"]} == {
        (files["delivered"], "Invoice-0900.pdf", 200)
    }
    assert found["matches"] == [] and found["timeline"] == [] and found["dead_letters"] == []


def test_a_failed_delivery_found_by_title_says_the_reconciler_recovers_it(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = trace(capsys, "invoice-0901")

    assert code == 0
    verdict = found["verdict"]
    assert verdict["state"] == "in_delivery_log" and "DocSpace could not deliver it" in verdict["text"]
    assert "HTTP 503" in verdict["text"] and verdict["command"] == "invoice-pipeline reconcile"
    assert {d["file_id"] for d in found["delivery_log"]["deliveries"]} == {files["failed"]}

    code = main(["trace", f"{files['failed']}:1"])  # an invoice id, in the table form
    out = capsys.readouterr().out
    assert code == 0 and "DocSpace's delivery log: the newest" in out and "HTTP 503" in out


def test_a_file_the_log_does_not_have_either_is_not_found_and_trace_says_where_it_looked(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = trace(capsys, "987654")

    assert code == 1
    text = found["verdict"]["text"]
    assert text.startswith("not found in the journal, the dead-letter queues and DocSpace's delivery log (the newest")
    assert "room scan" in text and found["verdict"]["command"] == "invoice-pipeline reconcile"
    assert found["delivery_log"]["deliveries"] == []


def test_without_docspace_settings_the_log_is_not_searched_and_the_verdict_is_as_before(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DOCSPACE_API_HOST")
    code, found = trace(capsys, files["delivered"])

    assert code == 1
    assert found["verdict"]["text"] == "not found in the journal and the dead-letter queues"
    assert found["delivery_log"]["searched"] is False
    assert "DOCSPACE_API_HOST" in found["delivery_log"]["note"]

    code, found = trace(capsys, files["delivered"], "--no-delivery-log")
    assert code == 1 and found["delivery_log"] is None
