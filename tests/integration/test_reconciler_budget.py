"""The reconciler's budget: with 50 watched rooms it never takes more than its share of the API key, the simulator
answers it no 429, and a scan its budget cannot finish goes on next cycle until every room is covered."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ops.logs import LogCollector
from ops.supervisor import ChildSpec, Supervisor, python_module
from simulator import DocSpaceSimulator
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.simulator_fixtures import WebhookReceiver

ROOMS = 50
KEY_LIMIT = 6000  # requests/min: DocSpace's 1,500 scaled up 4x, so the test takes seconds, not minutes
SHARE = 0.05
CALLER = "invoice-pipeline/reconciler"


def test_fifty_rooms_never_take_more_than_the_reconcilers_share(
    broker: BrokerKit, docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    sim = docspace_sim
    sim.faults.set_rate_limit(requests_per_minute=KEY_LIMIT, max_concurrent_writes=15)
    folders, rules = [], []
    for i in range(ROOMS):
        room = sim.create_room(f"Client {i}")
        folders.append(sim.create_folder(room, "Uploads"))
        rules.append(f'[[clients]]\nname = "c{i}"\nroom_id = "{room}"\nmanager_email = "m{i}@client.example"\n')
    (tmp_path / "rules.toml").write_text("\n".join(rules), encoding="utf-8")
    sim.register_webhook(webhook_receiver.url, "Budget-Secret!1", triggers=["file.created", "file.uploaded"])
    probe = broker.bind_probe(broker.topology.events_exchange)
    interval = 3.0
    per_minute = int(KEY_LIMIT * SHARE)  # 300: five calls a second
    per_cycle = int(per_minute * interval / 60)  # 15: the webhook, the log and 13 rooms
    env = {
        **broker.env(),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "DOCSPACE_API_HOST": sim.base_url,
        "DOCSPACE_API_KEY": sim.api_key,
        "INVOICE_RULES_FILE": str(tmp_path / "rules.toml"),
        "DOCSPACE_SHARED_RATE_LIMIT_PER_MINUTE": str(KEY_LIMIT),
        "RECONCILE_BUDGET_SHARE": str(SHARE),
        "RECONCILE_INTERVAL": str(interval),
        "RECONCILE_GRACE": "1",
        "LOG_FORMAT": "json",
    }
    logs = LogCollector()
    supervisor = Supervisor(
        [ChildSpec("reconciler", python_module("consumers.reconciler"), env)], on_line=logs.add, restart=False
    ).start()
    try:
        assert wait_until(lambda: bool(logs.events("reconciler", "reconcile_done")), 20), logs.dump()
        files = {sim.upload_file(folder, "Invoice-2026-11.pdf") for folder in folders}
        sim.reset_calls()
        started = time.monotonic()
        announced: set[str] = set()

        def all_announced() -> bool:
            announced.update(str(json.loads(body)["payload"]["id"]) for _p, body in broker.get_all(probe))
            return announced >= files

        assert wait_until(all_announced, 60, interval=0.5), logs.dump(40)
        took = time.monotonic() - started
        time.sleep(interval)  # one more cycle
        all_announced()
    finally:
        supervisor.stop()

    assert announced == files  # every room covered, each invoice announced once
    times = sim.call_times(CALLER)
    # Never above its share: in any window, at most the window's worth of its rate plus the limiter's burst of one
    # second's worth (so a real 60-second window holds at most 300 + 5 of the key's 6,000).
    rate, window = per_minute / 60, 10.0
    busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert busiest <= rate * window + rate, busiest
    assert len(times) <= rate * (times[-1] - times[0]) + rate + 1
    assert sim.call_count(caller=CALLER, rate_limited=True) == 0
    assert sim.call_count(rate_limited=True) == 0
    cycles = logs.events("reconciler", "reconcile_done")
    assert max(c["calls"] for c in cycles) <= per_cycle
    assert logs.events("reconciler", "room_scan_continues_next_cycle")  # the budget cut a scan; it went on
    print(
        f"\n{len(times)} reconciler calls, busiest {window:g}s window {busiest} (share: {per_minute}/min), "
        f"0 429s, all {ROOMS} rooms' invoices announced in {took:.1f}s over {len(cycles)} cycles"
    )
