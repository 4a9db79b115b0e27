"""Console actions that need a dead-letter queue of their own: the login limit, replay by filter, purge.

Each test gets a console (``console``) on an empty journal and a topology nobody else uses, and makes the dead
letters it replays or purges itself, so emptying a queue here never takes the shared run's letters
(tests/browser/test_console.py) away from another test.
"""

from __future__ import annotations

import json

import pika
import pytest

from shared.broker.topology import MOVER
from tests.browser.conftest import Console
from tests.support.real_broker import BrokerKit


def dead_letter(broker: BrokerKit, stage: str, n: int, reason: str = "docspace_not_found") -> None:
    """A dead letter as the consumer loop leaves it: the body, the stage's failure headers."""
    connection = broker.connect()
    channel = connection.channel()
    channel.basic_publish(
        "",
        broker.topology.stage(stage).dead_letters,
        json.dumps({"invoice_id": f"{4700 + n}:1", "file_id": str(4700 + n)}).encode(),
        pika.BasicProperties(
            delivery_mode=2,
            message_id=f"{4700 + n}:1",
            content_type="application/json",
            headers={
                "x-stage": stage,
                "x-reason": reason,
                "x-error": "DocSpace answered 404",
                "x-attempts": 1,
                "x-file-id": str(4700 + n),
                "x-invoice-id": f"{4700 + n}:1",
                "x-original-routing-key": "invoice.detected",
            },
        ),
    )
    connection.close()


def test_failed_logins_are_limited(page, console: Console) -> None:
    for _ in range(3):
        console.login(page, "olga", "wrong-password")
    console.login(page, "olga")  # the right password, but too late: the limit holds until the window passes
    assert "Too many failed logins" in page.inner_text("main")


def test_replay_by_filter_counts_first_and_replays_only_what_was_confirmed(
    page, console: Console, broker: BrokerKit
) -> None:
    for n in range(3):
        dead_letter(broker, MOVER, n)
    dead_letter(broker, MOVER, 9, reason="bug")
    console.login(page, "olga")
    page.goto(f"{console.url}/dead-letters/replay?stage={MOVER}&reason=docspace_not_found")
    assert "Dry run: 3 dead letters" in page.inner_text("main")
    queues = broker.topology.stage(MOVER)
    assert broker.depth(queues.work) == 0  # a dry run changes nothing
    dead_letter(broker, MOVER, 5)  # arrives after the count: not part of what the operator confirmed
    page.click("button:has-text('Replay these 3')")
    assert "Replayed 3 dead letters" in page.inner_text("main")
    assert broker.depth(queues.work) == 3
    assert broker.depth(queues.dead_letters) == 2


def test_purge_needs_the_operator_and_the_stage_typed(page, console: Console, broker: BrokerKit) -> None:
    dead_letter(broker, MOVER, 1)
    dead_letter(broker, MOVER, 2)
    console.login(page, "olga")
    page.goto(f"{console.url}/dead-letters/purge?stage={MOVER}")
    page.fill("input[name=confirm]", "classifier")
    page.click("button:has-text('Delete 2 for good')")
    assert page.inner_text("h1").startswith("400")
    assert broker.depth(broker.topology.stage(MOVER).dead_letters) == 2
    page.goto(f"{console.url}/dead-letters/purge?stage={MOVER}")
    page.fill("input[name=confirm]", MOVER)
    page.click("button:has-text('Delete 2 for good')")
    assert "Deleted 2 dead letters" in page.inner_text("main")
    assert broker.depth(broker.topology.stage(MOVER).dead_letters) == 0


@pytest.mark.parametrize("path", ["/static/console.css"])
def test_assets_come_from_the_console_itself(page, console: Console, path: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    console.login(page, "victor")
    page.goto(f"{console.url}/health")
    assert f"{console.url}{path}" in requested
    assert all(url.startswith(console.url) for url in requested)
