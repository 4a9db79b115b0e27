"""The reconciler's DocSpace calls against the simulator: the webhook (find, enable with DocSpace's HEAD check),
failed deliveries paged by ``groupStatus``, a room's subtree newest first; and the simulator behaving like DocSpace
where the reconciler depends on it (disabling after 3 days, counting each caller's calls)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.docspace.admin import PortalAdmin
from shared.docspace.client import DocSpaceClient
from shared.docspace.errors import DocSpaceRejected
from shared.docspace.transport import HttpOptions
from shared.docspace.webhooks import ListedFile, LoggedDelivery, find_pipeline_webhook
from simulator import DocSpaceSimulator
from tests.support.simulator_fixtures import WebhookReceiver

SECRET = "Admin-Test-Secret!1"


@pytest.fixture
def admin(docspace_sim: DocSpaceSimulator) -> Iterator[PortalAdmin]:
    client = DocSpaceClient(
        docspace_sim.base_url, docspace_sim.api_key, http=HttpOptions(user_agent="invoice-pipeline/reconciler")
    )
    yield PortalAdmin(client.transport)
    client.close()


def test_the_webhook_is_found_and_a_disabled_one_enabled_once_docspace_can_reach_it(
    docspace_sim: DocSpaceSimulator, admin: PortalAdmin, webhook_receiver: WebhookReceiver
) -> None:
    other = docspace_sim.register_webhook("http://127.0.0.1:9/elsewhere", SECRET, check=False)
    config_id = docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.created", "file.uploaded"])
    docspace_sim.webhooks.enable(config_id, False)
    found = find_pipeline_webhook(admin.list_webhooks(), path="/docspace/webhook")
    assert found is not None and found.id == str(config_id) and not found.enabled
    by_id = find_pipeline_webhook(admin.list_webhooks(), path="/x", config_id=str(other))
    assert by_id is not None and by_id.id == str(other)

    webhook_receiver.head_status = 503  # the ingress is not answering yet
    with pytest.raises(DocSpaceRejected, match="webhook URL not available"):
        admin.enable_webhook(found)
    webhook_receiver.head_status = 200
    enabled = admin.enable_webhook(found)
    assert enabled.enabled and docspace_sim.webhooks.get(config_id).secret == SECRET  # the secret is kept
    assert [r.method for r in webhook_receiver.requests] == ["HEAD", "HEAD", "HEAD"]  # create, refused, enabled


def test_failed_deliveries_are_paged_newest_first_with_their_bodies(
    docspace_sim: DocSpaceSimulator, admin: PortalAdmin, webhook_receiver: WebhookReceiver
) -> None:
    config_id = docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.created", "file.uploaded"])
    room = docspace_sim.create_room("Acme")
    webhook_receiver.default_status = 503
    failed = [docspace_sim.upload_file(room, f"Invoice-{i}.pdf") for i in range(3)]
    assert docspace_sim.wait_idle(10)
    webhook_receiver.default_status = 200
    delivered = docspace_sim.upload_file(room, "Invoice-ok.pdf")
    assert docspace_sim.wait_idle(10)

    page = admin.failed_deliveries(str(config_id))
    rows = [r for r in page if isinstance(r, LoggedDelivery)]
    assert len(rows) == len(page) == 6  # two triggers per simple upload; the delivered upload is not among them
    assert [r.id for r in rows] == sorted((r.id for r in rows), reverse=True)
    assert {r.status for r in rows} == {503} and {r.trigger for r in rows} == {128, 256}
    files = {r.request_payload.split('"payload":{"id":', 1)[1].split(",", 1)[0] for r in rows}
    assert files == {str(f) for f in failed} and str(delivered) not in files
    assert admin.failed_deliveries(str(config_id), start=2, count=2) == rows[2:4]


def test_a_rooms_subtree_is_listed_newest_change_first_and_paged(
    docspace_sim: DocSpaceSimulator, admin: PortalAdmin
) -> None:
    room = docspace_sim.create_room("Acme")
    deep = docspace_sim.create_folder(docspace_sim.create_folder(room, "Uploads"), "2026")
    ids = []
    for i in range(5):
        ids.append(docspace_sim.upload_file(deep if i % 2 else room, f"Invoice-{i}.pdf"))
        time.sleep(0.01)
    docspace_sim.update_file(ids[1])  # an edit makes it the most recent change
    elsewhere = docspace_sim.upload_file(docspace_sim.create_room("Other"), "Invoice-x.pdf")

    page = admin.files_by_date(room)
    listed = [f for f in page if isinstance(f, ListedFile)]
    assert len(listed) == len(page)
    assert [f.id for f in listed] == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert elsewhere not in [f.id for f in listed]
    first = listed[0]
    assert (first.version, first.extension, first.folder_id, first.root_folder_type) == (2, ".pdf", str(deep), 14)
    assert first.created is not None and first.updated is not None and first.updated > first.created
    assert [f.id for f in listed[1:3]] == [ids[4], ids[3]]
    assert admin.files_by_date(room, start=1, count=2) == listed[1:3]


def test_the_simulator_disables_a_webhook_untrusted_for_three_days_even_when_nothing_answers(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    config_id = docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.uploaded"])
    room = docspace_sim.create_room("Acme")
    webhook_receiver.close()  # connection refused: status 0, an HttpRequestException all the same
    docspace_sim.upload_file(room, "Invoice-1.pdf", chunked=True)
    assert docspace_sim.wait_idle(10)
    assert docspace_sim.webhooks.get(config_id).enabled  # created just now: still trusted

    docspace_sim.age_webhook(config_id, days=4)
    docspace_sim.upload_file(room, "Invoice-2.pdf", chunked=True)
    assert docspace_sim.wait_idle(10)
    assert not docspace_sim.webhooks.get(config_id).enabled
    docspace_sim.upload_file(room, "Invoice-3.pdf", chunked=True)  # disabled: no delivery, no log row
    assert docspace_sim.wait_idle(10)
    assert len(docspace_sim.webhooks.log) == 2


def test_the_simulator_counts_each_callers_calls_and_429s(docspace_sim: DocSpaceSimulator, admin: PortalAdmin) -> None:
    stage = DocSpaceClient(
        docspace_sim.base_url, docspace_sim.api_key, http=HttpOptions(user_agent="invoice-pipeline/classifier")
    )
    try:
        room = docspace_sim.create_room("Acme")
        admin.files_by_date(room)
        admin.files_by_date(room)
        stage.folder_title(room)
        docspace_sim.faults.add(path="/api/2.0/files/folder/*", burst_429=1, retry_after=0)
        stage.folder_title(room)  # a 429, then the client's retry
    finally:
        stage.close()
    assert docspace_sim.call_count(caller="invoice-pipeline/reconciler") == 2
    assert docspace_sim.call_count(caller="invoice-pipeline/classifier") == 3
    assert docspace_sim.call_count(caller="invoice-pipeline/classifier", rate_limited=True) == 1
    assert docspace_sim.call_count(caller="invoice-pipeline/reconciler", rate_limited=True) == 0
    assert docspace_sim.call_counts("invoice-pipeline/reconciler") == {"GET /api/2.0/files/{folder_id}": 2}
    assert len(docspace_sim.call_times("invoice-pipeline/reconciler")) == 2
