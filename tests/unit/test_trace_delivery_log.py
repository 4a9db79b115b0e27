"""``trace``'s look into DocSpace's delivery log, on a fake log: paging, matching a body, and the verdict it gives."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ops.delivery_log import WebhookChoice, search_delivery_log
from ops.trace import logged_verdict, trace, verdict
from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import FILE_UPLOADED, PAGE_SIZE, LoggedDelivery, UnreadableRow
from shared.journal.sqlite_store import SqliteJournalStore
from tests.support.journal_support import T0, decision

NOW = T0 + timedelta(hours=1)
HOOK = WebhookConfig(id="7", name="invoice-router", uri="https://pipe.example/docspace/webhook", enabled=True,
                     ssl=True, triggers=384, created_on=None, last_success_on=None, last_failure_on=None,
                     last_failure_content=None, last_status=None)  # fmt: skip


def row(n: int, *, file_id: int, title: str, status: int = 200) -> LoggedDelivery:
    body = {"event": {"id": f"ev{n}"}, "payload": {"id": file_id, "title": title}}
    return LoggedDelivery(n, FILE_UPLOADED, T0 + timedelta(minutes=n), status, json.dumps(body))


class FakeLog:
    """Implements ``WebhookLog`` over a list of rows, newest first, and records each page asked for."""

    def __init__(self, rows: list[LoggedDelivery | UnreadableRow]) -> None:
        self.rows = rows  # newest first
        self.calls: list[tuple[int, int]] = []

    def list_webhooks(self) -> list[WebhookConfig]:
        return [HOOK]

    def deliveries(
        self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> Sequence[LoggedDelivery | UnreadableRow]:
        assert config_id == "7"
        self.calls.append((start, count))
        return self.rows[start : start + count]


def test_the_log_is_read_page_by_page_up_to_the_bound_and_matched_by_id_invoice_event_or_title() -> None:
    rows: list[LoggedDelivery | UnreadableRow] = [
        row(n, file_id=n % 50, title=f"Invoice-{n % 50}.pdf") for n in range(250)
    ]
    rows.insert(3, UnreadableRow("junk"))
    log = FakeLog(rows)
    found = search_delivery_log("7", portal=log, webhook=WebhookChoice("/docspace/webhook"), max_rows=220)
    assert log.calls == [(0, 100), (100, 100), (200, 20)]
    assert found.searched and found.rows_searched == 220 and "webhook 7" in found.note
    assert {d.file_id for d in found.deliveries} == {"7"} and len(found.deliveries) == 5
    assert {
        d.file_id for d in search_delivery_log("7:2", portal=log, webhook=WebhookChoice("/docspace/webhook")).deliveries
    } == {"7"}
    assert [
        d.log_id
        for d in search_delivery_log(
            "ev12", portal=FakeLog(rows), webhook=WebhookChoice("/docspace/webhook")
        ).deliveries
    ] == [12]
    assert {
        d.file_id
        for d in search_delivery_log(
            "voice-49", portal=FakeLog(rows), webhook=WebhookChoice("/docspace/webhook")
        ).deliveries
    } == {"49"}
    short = FakeLog(rows[:30])
    assert search_delivery_log("x", portal=short, webhook=WebhookChoice("/docspace/webhook")).rows_searched == 30
    assert short.calls == [(0, 100)]  # a short page is the log's end
    missing = search_delivery_log("7", portal=log, webhook=WebhookChoice("/other/path"))
    assert not missing.searched and "not registered" in missing.note


def test_a_delivered_row_says_the_journal_lacks_it_and_a_failed_one_points_at_the_reconciler() -> None:
    log = search_delivery_log("3", portal=FakeLog([row(2, file_id=3, title="a.pdf", status=503)]),
                              webhook=WebhookChoice("/docspace/webhook"))  # fmt: skip
    failed = logged_verdict(log.deliveries, NOW)
    assert failed.state == "in_delivery_log" and failed.command == "invoice-pipeline reconcile"
    assert "could not deliver it: file.uploaded of file 3 at 09:02 UTC, HTTP 503" in failed.text
    log = search_delivery_log("3", portal=FakeLog([row(4, file_id=3, title="a.pdf", status=503),
                                                   row(2, file_id=3, title="a.pdf")]),
                              webhook=WebhookChoice("/docspace/webhook"))  # fmt: skip
    delivered = logged_verdict(log.deliveries, NOW)
    assert "DocSpace delivered it: file.uploaded of file 3 at 09:02 UTC, answered 200" in delivered.text


def test_trace_asks_the_log_only_when_the_journal_knows_nothing(tmp_path: object) -> None:
    store = SqliteJournalStore(f"{tmp_path}/j.sqlite3")
    store.insert([decision("ingress", "accepted", file_id="3")])
    asked: list[str] = []

    def log(term: str) -> object:
        asked.append(term)
        return search_delivery_log(term, portal=FakeLog([]), webhook=WebhookChoice("/docspace/webhook"))

    assert trace("3", store=store, now=NOW, delivery_log=log).delivery_log is None  # type: ignore[arg-type]
    nothing = trace("4", store=store, now=NOW, delivery_log=log)  # type: ignore[arg-type]
    assert asked == ["4"] and nothing.verdict is not None and nothing.verdict.state == "not_found"
    assert nothing.verdict.text.startswith("not found in the journal and DocSpace's delivery log (the newest 0")
    store.close()


def test_an_operator_s_records_give_their_own_verdicts() -> None:
    replayed = decision("operator", "replayed", minutes=5, reason="docspace_timeout", actor="anna",
                        operation="op-1", scope="mover.dlq", occurrence="op-1")  # fmt: skip
    found = verdict([decision("mover", "dead_lettered", reason="docspace_timeout"), replayed], now=NOW)
    assert found.state == "in_progress" and found.stage == "mover"
    assert found.text == "replayed from mover.dlq by anna at 09:05 UTC (operation op-1): back in mover's queue"
    operation = decision("operator", "replay", file_id=None, event_id="op-1", actor="anna", operation="op-1",
                         scope="stage=mover", count=12)  # fmt: skip
    found = verdict([operation], now=NOW)
    assert found.state == "operator_action"
    assert found.text == "anna replayed 12 dead letter(s) at 09:00 UTC (operation op-1): stage=mover"
    assert datetime.now(UTC) > found.since  # type: ignore[operator]


def test_a_fragment_several_files_deliveries_share_asks_for_one_file_id() -> None:
    rows: list[LoggedDelivery | UnreadableRow] = [row(n, file_id=n, title=f"Invoice-{n}.pdf") for n in range(3)]
    found = search_delivery_log("invoice", portal=FakeLog(rows), webhook=WebhookChoice("/docspace/webhook"))
    shown = logged_verdict(found.deliveries, NOW)
    assert (
        shown.text
        == "not in the journal; deliveries of 3 files in DocSpace's delivery log match: trace one by its file id"
    )
