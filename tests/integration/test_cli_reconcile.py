"""``invoice-pipeline reconcile`` against the simulator and the real broker: history is left alone, ``--since``
announces exactly what ``--dry-run`` lists, and ``doctor`` shows the last run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ops.cli import main
from ops.cli_common import EXIT_PROBLEM
from simulator import DocSpaceSimulator
from tests.support.cli_env import use_broker
from tests.support.real_broker import BrokerKit
from tests.support.simulator_fixtures import WebhookReceiver

SECRET = "Reconcile-Cli-Secret!1"


@pytest.fixture
def cli_env(
    broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    webhook_receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> dict[str, str]:
    use_broker(monkeypatch, broker)
    room = docspace_sim.create_room("Acme Ltd")
    uploads = docspace_sim.create_folder(room, "Uploads")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = {room}\nmanager_email = "anna@acme.example"\n', encoding="utf-8"
    )
    docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.created", "file.uploaded"])
    for name, value in {
        "DOCSPACE_API_HOST": docspace_sim.base_url,
        "DOCSPACE_API_KEY": docspace_sim.api_key,
        "INVOICE_RULES_FILE": str(rules),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "RECONCILE_GRACE": "0",
        "DOCSPACE_WEBHOOK_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    return {"room": room, "uploads": uploads}


def _announced(broker: BrokerKit, probe: str) -> list[str]:
    return [str(json.loads(body)["payload"]["id"]) for _props, body in broker.get_all(probe)]


def test_history_is_left_alone_and_since_announces_exactly_what_the_dry_run_lists(
    cli_env: dict[str, str],
    broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    old = [docspace_sim.upload_file(cli_env["uploads"], f"Invoice-2025-{i}.pdf") for i in range(3)]
    docspace_sim.upload_file(cli_env["uploads"], "Team photo.jpg")
    assert docspace_sim.wait_idle(10)
    time.sleep(1.1)  # the first run starts strictly after these uploads (DocSpace's times have whole seconds)

    assert main(["reconcile"]) == 0  # the first run: the history floor
    assert main(["reconcile"]) == 0
    time.sleep(0.5)
    assert _announced(broker, probe) == []
    out = capsys.readouterr().out
    assert "0 invoices announced by the room scan" in out

    assert main(["reconcile", "--since", "1h", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    would = set(re.findall(r"│ file\s+│ (\d+)\s+│.*would announce", listed))
    assert would == {str(f) for f in old}, listed
    time.sleep(0.5)
    assert _announced(broker, probe) == []  # a dry run sends nothing

    assert main(["reconcile", "--since", "1h"]) == 0
    done = capsys.readouterr().out
    assert set(re.findall(r"│ file\s+│ (\d+)\s+│.*announced", done)) == would
    assert sorted(_announced(broker, probe)) == sorted(would)

    assert main(["reconcile", "--since", "1h"]) == 0  # announced once: never again
    assert _announced(broker, probe) == []

    assert main(["doctor"]) in (0, 1)  # the verdict depends on parts this test does not set up
    report = capsys.readouterr().out
    assert re.search(r"reconciler\s+│\s+ok\s+│\s+last run", report), report


def test_reconcile_stops_at_its_call_cap_says_so_and_a_second_run_goes_on(
    cli_env: dict[str, str],
    broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    assert main(["reconcile"]) == 0  # the first run: the history floor
    uploaded = {docspace_sim.upload_file(cli_env["uploads"], f"Invoice-{i:03d}.pdf") for i in range(300)}
    assert docspace_sim.wait_idle(30)
    time.sleep(1.1)
    capsys.readouterr()

    # The webhook, a page of the log and three of the room's four pages: the cap stops it, loudly.
    assert main(["reconcile", "--max-calls", "5"]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert "stopped: call_cap: stopped after 5 DocSpace calls" in " ".join(out.split()), out
    assert main(["reconcile"]) == 0  # goes on from where the capped run stopped
    announced = _announced(broker, probe)
    assert sorted(announced) == sorted(uploaded)  # each once
