"""The operator console in a real Chromium against a real console process, the real broker and a real journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest

from shared.broker.topology import MOVER
from shared.journal.record import Decision
from tests.browser.conftest import ROOT, Console
from tests.support.real_broker import BrokerKit

XSS = "<script>alert(1)</script>"


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
                "x-error": f"DocSpace answered 404 {XSS}",
                "x-attempts": 1,
                "x-file-id": str(4700 + n),
                "x-invoice-id": f"{4700 + n}:1",
                "x-original-routing-key": "invoice.detected",
            },
        ),
    )
    connection.close()


def csrf(page) -> str:
    return page.get_attribute("input[name=csrf]", "value")


def test_a_page_without_login_redirects_to_the_login_page(page, console: Console) -> None:
    page.goto(f"{console.url}/dead-letters")
    assert page.url.startswith(f"{console.url}/login?next=")
    assert page.is_visible("input[name=password]")


def test_a_wrong_password_fails_and_the_right_one_lands_where_the_user_was_going(page, console: Console) -> None:
    page.goto(f"{console.url}/clients")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "not-her-password")
    page.click("button[type=submit]")
    assert "Wrong user name or password." in page.inner_text("main")
    assert "/login" in page.url
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "operator-password-1")
    page.click("button[type=submit]")
    assert page.url == f"{console.url}/clients"
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_failed_logins_are_limited(page, console: Console) -> None:
    for _ in range(3):
        console.login(page, "olga", "wrong-password")
    console.login(page, "olga")  # the right password, but too late: the limit holds until the window passes
    assert "Too many failed logins" in page.inner_text("main")


def test_a_viewer_sees_no_replay_and_cannot_post_one(page, console: Console, broker: BrokerKit) -> None:
    dead_letter(broker, MOVER, 1)
    console.login(page, "victor")
    page.goto(f"{console.url}/dead-letters")
    assert "docspace_not_found" in page.inner_text("main")
    assert page.locator("form[action='/dead-letters/replay'] button").count() == 0
    answer = page.request.post(
        f"{console.url}/dead-letters/replay", form={"csrf": csrf(page), "stage": MOVER, "id": "", "count": "1"}
    )
    assert answer.status == 403
    assert broker.depth(broker.topology.stage(MOVER).dead_letters) == 1


def test_a_post_without_the_csrf_token_is_refused(page, console: Console, broker: BrokerKit) -> None:
    dead_letter(broker, MOVER, 1)
    console.login(page, "olga")
    page.goto(f"{console.url}/dead-letters")
    answer = page.request.post(f"{console.url}/dead-letters/replay", form={"stage": MOVER, "count": "1"})
    assert answer.status == 403
    forged = page.request.post(f"{console.url}/dead-letters/replay", form={"csrf": "0" * 64, "stage": MOVER})
    assert forged.status == 403
    assert broker.depth(broker.topology.stage(MOVER).dead_letters) == 1
    assert broker.depth(broker.topology.stage(MOVER).work) == 0


def test_a_dead_letter_replayed_from_the_page_is_republished_once_and_recorded_with_the_user(
    page, console: Console, broker: BrokerKit
) -> None:
    dead_letter(broker, MOVER, 1)
    dead_letter(broker, MOVER, 2)
    audit = broker.bind_probe(broker.topology.journal_exchange)
    console.login(page, "olga")
    page.goto(f"{console.url}/dead-letters")
    first_row = page.locator("tbody tr", has_text="4701:1")
    first_row.locator("button", has_text="Replay").click()
    assert "Replayed 1 dead letter" in page.inner_text("main")
    assert "Recorded with your name" in page.inner_text("main")
    queues = broker.topology.stage(MOVER)
    replayed = broker.get_all(queues.work)
    assert [props.message_id for props, _ in replayed] == ["4701:1"]
    assert broker.depth(queues.dead_letters) == 1  # the other one stays
    record = Decision.from_bytes(broker.get(audit)[1])
    assert (record.stage, record.outcome, record.actor, record.invoice_id) == (MOVER, "replayed", "olga", "4701:1")
    assert '"user":"olga"' in console.log() and '"action":"replay"' in console.log()


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


def _day(console: Console) -> list[Decision]:
    """A morning as the stages record it: two invoices through every stage, a photo skipped, one dead letter."""
    now = datetime.now(UTC)
    at = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=1, microsecond=0))
    decisions = []
    for n, title in ((1, "Invoice-2026-0042.pdf"), (2, f"Invoice {XSS}.pdf")):
        file_id, invoice = str(9000 + n), f"{9000 + n}:1"
        decisions += [
            Decision.make("ingress", "accepted", at=at, file_id=file_id, event_id=f"ev{n}", title=title),
            Decision.make(
                "classifier", "accepted", at=at, file_id=file_id, invoice_id=invoice, client="Acme Ltd", title=title
            ),
            Decision.make("mover", "received", at=at, file_id=file_id, invoice_id=invoice, folder="Acme/Incoming"),
            Decision.make("notifier.email", "emailed", at=at, file_id=file_id, invoice_id=invoice, manager="a@x.io"),
            Decision.make("notifier.pipeline", "pipeline_called", at=at, file_id=file_id, invoice_id=invoice),
        ]
    decisions += [
        Decision.make("ingress", "accepted", at=at, file_id="9003", event_id="ev3", title="Team photo.jpg"),
        Decision.make("classifier", "ignored", at=at, file_id="9003", reason="not_an_invoice", rule="*.pdf only"),
        Decision.make("ingress", "accepted", at=at, file_id="9004", event_id="ev4", title="Invoice-0044.pdf"),
        Decision.make("classifier", "accepted", at=at, file_id="9004", invoice_id="9004:1"),
        Decision.make("mover", "dead_lettered", at=at, file_id="9004", invoice_id="9004:1", reason="docspace_denied"),
    ]
    console.journal.insert(decisions)
    return decisions


def test_today_shows_the_funnel_the_journal_recorded_and_each_number_opens_its_list(page, console: Console) -> None:
    _day(console)
    console.login(page, "victor")
    page.goto(f"{console.url}/today")
    numbers = {key: page.inner_text(f"#funnel-{key}") for key in ("deliveries", "files", "invoices", "moved")}
    assert numbers == {"deliveries": "4", "files": "4", "invoices": "3", "moved": "2"}
    assert page.inner_text("#funnel-emailed") == page.inner_text("#funnel-pipeline") == "2"
    assert "not_an_invoice" in page.inner_text("main") and "docspace_denied" in page.inner_text("main")
    if os.environ.get("CONSOLE_DOCS_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "images" / "console-today.png"), full_page=True)
    page.click("#funnel-invoices")
    rows = page.locator("tbody tr")
    assert rows.count() == 3
    assert XSS in page.inner_text("main")  # the title as text, never as markup


def test_a_title_is_found_its_trace_shows_every_decision_and_a_script_in_it_is_only_text(
    page, console: Console
) -> None:
    _day(console)
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    console.login(page, "victor")
    page.goto(f"{console.url}/find")
    page.fill("input[name=q]", "<script>")
    page.click("button:has-text('Find')")
    assert page.locator("#timeline tbody tr").count() == 5
    stages = page.locator("#timeline tbody tr td:nth-child(2)").all_inner_texts()
    assert stages == ["ingress", "classifier", "mover", "notifier.email", "notifier.pipeline"]
    assert "arrived" in page.inner_text("#verdict")
    assert XSS in page.inner_text("h2")
    assert page.locator("main script").count() == 0 and dialogs == []


def test_a_skipped_file_shows_its_reason(page, console: Console) -> None:
    _day(console)
    console.login(page, "victor")
    page.goto(f"{console.url}/find?q=Team+photo")
    verdict = page.inner_text("#verdict")
    assert "skipped" in verdict and "not_an_invoice" in verdict and "*.pdf only" in verdict


def test_every_page_renders_for_an_operator(page, console: Console, broker: BrokerKit) -> None:
    _day(console)
    dead_letter(broker, MOVER, 1)
    console.login(page, "olga")
    shots = os.environ.get("CONSOLE_PAGE_SHOTS")
    for path in ("/today", "/find?q=Invoice", "/find?q=9001", "/dead-letters", "/health", "/clients"):
        answer = page.goto(f"{console.url}{path}")
        assert answer.status == 200, path
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["referrer-policy"] == "no-referrer"
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{shots}/{path.strip('/').replace('/', '_').replace('?', '_')}.png", full_page=True)


@pytest.mark.parametrize("path", ["/static/console.css"])
def test_assets_come_from_the_console_itself(page, console: Console, path: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    console.login(page, "victor")
    page.goto(f"{console.url}/health")
    assert f"{console.url}{path}" in requested
    assert all(url.startswith(console.url) for url in requested)


@pytest.fixture
def journal_writer(console: Console, broker: BrokerKit, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m consumers.journal`` on the console's journal: what the console records lands in the store."""
    env = {**os.environ, **broker.env(), "JOURNAL_URL": f"sqlite:///{tmp_path / 'journal.sqlite3'}"}
    env.update(LOG_FORMAT="json", JOURNAL_BATCH_WAIT="0.05", METRICS_PORT="0")
    with (tmp_path / "journal.log").open("wb") as log:
        writer = subprocess.Popen(
            [sys.executable, "-m", "consumers.journal"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    yield writer
    writer.send_signal(signal.SIGTERM)
    try:
        writer.wait(10)
    except subprocess.TimeoutExpired:
        writer.kill()


def test_a_replay_shows_in_the_file_s_trace_with_the_operator_s_name(
    page, console: Console, broker: BrokerKit, journal_writer: subprocess.Popen[bytes]
) -> None:
    dead_letter(broker, MOVER, 1)
    console.login(page, "olga")
    page.goto(f"{console.url}/dead-letters")
    page.locator("tbody tr", has_text="4701:1").locator("button", has_text="Replay").click()
    assert "Recorded with your name" in page.inner_text("main")
    deadline = time.monotonic() + 20
    while True:  # the journal writer stores what the console published, in its next batch
        page.goto(f"{console.url}/find?q=4701")
        if page.locator("#timeline").count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    row = page.locator("#timeline tbody tr", has_text="replayed")
    assert row.count() == 1 and "by olga" in row.inner_text() and "docspace_not_found" in row.inner_text()
