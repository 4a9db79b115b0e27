"""``invoice-pipeline reconcile`` against the simulator and the real broker: history is left alone, ``--since``
announces exactly what ``--dry-run`` lists, and ``doctor`` shows the last run."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.cli import main
from ops.cli_common import EXIT_PROBLEM
from simulator import DocSpaceSimulator
from tests.support.cli_env import use_portal
from tests.support.real_broker import BrokerKit
from tests.support.rules_file import write_rules
from tests.support.simulator_fixtures import WatchedRoom


@dataclass(frozen=True)
class ReconcileCli:
    """The simulated portal's Uploads folder, set up for the command, and a probe on the events exchange."""

    sim: DocSpaceSimulator
    broker: BrokerKit
    uploads: str
    probe: str

    def announced(self) -> list[str]:
        return [str(json.loads(body)["payload"]["id"]) for _props, body in self.broker.get_all(self.probe)]


@pytest.fixture
def cli(broker: BrokerKit, watched_room: WatchedRoom, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReconcileCli:
    sim, room = watched_room.sim, watched_room.room
    uploads = sim.create_folder(room, "Uploads")
    rules = write_rules(tmp_path, {"acme": (room, "anna@acme.example")})
    use_portal(monkeypatch, broker, sim, rules, RECONCILE_GRACE="0", DOCSPACE_WEBHOOK_SECRET=watched_room.secret)
    return ReconcileCli(sim, broker, uploads, broker.bind_probe(broker.topology.events_exchange))


def test_history_is_left_alone_and_since_announces_exactly_what_the_dry_run_lists(
    cli: ReconcileCli, capsys: pytest.CaptureFixture[str]
) -> None:
    old = [cli.sim.upload_file(cli.uploads, f"Invoice-2025-{i}.pdf") for i in range(3)]
    cli.sim.upload_file(cli.uploads, "Team photo.jpg")
    assert cli.sim.wait_idle(10)
    time.sleep(1.1)  # the first run starts strictly after these uploads (DocSpace's times have whole seconds)

    assert main(["reconcile"]) == 0  # the first run: the history floor
    assert main(["reconcile"]) == 0
    time.sleep(0.5)
    assert cli.announced() == []
    out = capsys.readouterr().out
    assert "0 invoices announced by the room scan" in out

    assert main(["reconcile", "--since", "1h", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    would = set(re.findall(r"│ file\s+│ (\d+)\s+│.*would announce", listed))
    assert would == {str(f) for f in old}, listed
    time.sleep(0.5)
    assert cli.announced() == []  # a dry run sends nothing

    assert main(["reconcile", "--since", "1h"]) == 0
    done = capsys.readouterr().out
    assert set(re.findall(r"│ file\s+│ (\d+)\s+│.*announced", done)) == would
    assert sorted(cli.announced()) == sorted(would)

    assert main(["reconcile", "--since", "1h"]) == 0  # announced once: never again
    assert cli.announced() == []

    assert main(["doctor"]) in (0, 1)  # the verdict depends on parts this test does not set up
    report = capsys.readouterr().out
    assert re.search(r"reconciler\s+│\s+ok\s+│\s+last run", report), report


def test_reconcile_stops_at_its_call_cap_says_so_and_a_second_run_goes_on(
    cli: ReconcileCli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile"]) == 0  # the first run: the history floor
    uploaded = {cli.sim.upload_file(cli.uploads, f"Invoice-{i:03d}.pdf") for i in range(300)}
    assert cli.sim.wait_idle(30)
    time.sleep(1.1)
    capsys.readouterr()

    # The webhook, a page of the log and three of the room's four pages: the cap stops it, loudly.
    assert main(["reconcile", "--max-calls", "5"]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert "stopped: call_cap: stopped after 5 DocSpace calls" in " ".join(out.split()), out
    assert main(["reconcile"]) == 0  # goes on from where the capped run stopped
    announced = cli.announced()
    assert sorted(announced) == sorted(uploaded)  # each once
