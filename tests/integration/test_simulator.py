"""The DocSpace simulator keeps the wire contract: webhooks (signing, retries, 410, HEAD check) and REST quirks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.docspace.delivery import parse_delivery
from simulator import DocSpaceSimulator
from simulator.webhooks.dotnet_json import stj_dumps
from simulator.webhooks.sender import sign
from tests.support.simulator_fixtures import FAST_RETRY_DELAYS, WatchedRoom, WebhookReceiver

SECRET = "Inv0ice-Secret!2026"
ROOT = Path(__file__).resolve().parents[2]


def verify(raw_body: bytes, header: str | None, secret: str) -> bool:
    """The receiver-side check from contract §1.2."""
    if not header or not header.lower().startswith("sha256="):
        return False
    got = header.split("=", 1)[1].strip().lower()
    want = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(got, want)


def api(sim: DocSpaceSimulator, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {sim.api_key}", **kw.pop("headers", {})}
    return requests.request(method, f"{sim.base_url}/api/2.0/{path}", headers=headers, timeout=10, **kw)


def admin(sim: DocSpaceSimulator, method: str, path: str, **kw: Any) -> Any:
    resp = requests.request(method, f"{sim.base_url}/_sim/{path}", timeout=10, **kw)
    assert resp.status_code < 300, resp.text
    return resp.json()


def upload_with_webhook(
    sim: DocSpaceSimulator, receiver: WebhookReceiver, title: str = "Invoice.pdf", *answers: int
) -> None:
    """Register ``receiver`` for uploads, let it answer ``answers`` first, upload ``title`` and wait for delivery."""
    sim.register_webhook(receiver.url, SECRET, triggers=["file.uploaded"])
    receiver.script(*answers)
    sim.upload_file(sim.create_room("R"), title, chunked=True)
    assert sim.wait_idle(10)


# --- webhook sender -------------------------------------------------------------------------------------


def test_the_signature_is_upper_case_hex_and_verifies(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    upload_with_webhook(docspace_sim, webhook_receiver)

    (post,) = webhook_receiver.posts()
    header = post.headers["x-docspace-signature-256"]
    hexpart = header.removeprefix("sha256=")
    assert header.startswith("sha256=") and hexpart == hexpart.upper() and len(hexpart) == 64
    assert verify(post.body, header, SECRET)
    assert not verify(post.body, header, "another secret")
    assert post.headers["content-type"] == "application/json; charset=utf-8"
    assert b" " not in post.body  # compact like System.Text.Json


def test_the_contract_test_vector_signs_identically() -> None:
    body = (ROOT / "tests" / "fixtures" / "docspace" / "file.created.json").read_bytes()
    secret = (ROOT / "tests" / "fixtures" / "docspace" / "file.created.secret").read_text().strip()
    expected = (ROOT / "tests" / "fixtures" / "docspace" / "file.created.sig").read_text().strip()
    assert sign(body, secret) == expected
    # Re-serialising the parsed fixture the simulator's way gives back the very bytes DocSpace sent.
    assert stj_dumps(json.loads(body)).encode() == body


def test_the_payload_is_the_file_entry_shape(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    docspace_sim.register_webhook(webhook_receiver.url, SECRET)
    room = docspace_sim.create_room("Client A")
    uploads = docspace_sim.create_folder(room, "Uploads")
    fid = docspace_sim.upload_file(uploads, "Invoice.pdf", chunked=True)
    assert docspace_sim.wait_idle(10)

    # Deliveries go out in parallel (order is not guaranteed, as in DocSpace): pick the upload's by its trigger.
    uploads_seen = [json.loads(p.body) for p in webhook_receiver.posts()]
    doc = next(d for d in uploads_seen if d["event"]["trigger"] == "file.uploaded")
    fixture = json.loads((ROOT / "tests" / "fixtures" / "docspace" / "file.created.json").read_bytes())
    assert set(doc) == {"event", "payload", "webhook"}
    assert set(doc["payload"]) == set(fixture["payload"]) - {"parentShared"}
    assert doc["payload"]["id"] == int(fid)
    assert doc["payload"]["parentId"] == doc["payload"]["folderIdDisplay"] == int(uploads)
    assert doc["payload"]["rootId"] == int(docspace_sim.rooms_root_id)  # the Rooms root, not the room
    assert doc["payload"]["rootFolderType"] == 14
    assert doc["event"]["trigger"] == "file.uploaded" and doc["event"]["triggerId"] == 256
    assert doc["event"]["createOn"].endswith("Z")
    assert doc["webhook"]["triggers"] == ["*"]


def test_non_ascii_and_html_characters_are_escaped(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    title = "Счёт <A&B> 'Co'+1.pdf"
    upload_with_webhook(docspace_sim, webhook_receiver, title)

    body = webhook_receiver.posts()[0].body
    assert body.isascii()
    for escaped in (b"\\u0421", b"\\u003C", b"\\u003E", b"\\u0026", b"\\u0027", b"\\u002B"):
        assert escaped in body
    assert json.loads(body)["payload"]["title"] == title


def test_a_simple_upload_fires_created_then_uploaded(watched_room: WatchedRoom) -> None:
    sim, posts = watched_room.sim, watched_room.receiver.posts
    fid = sim.upload_file(watched_room.room, "Invoice.pdf")
    assert sim.wait_idle(10)

    # Deliveries leave a thread pool in any order; the log (event) ids give the order DocSpace published in.
    events = sorted((json.loads(p.body)["event"] for p in posts()), key=lambda e: e["id"])
    assert [e["trigger"] for e in events] == ["file.created", "file.uploaded"]
    assert {json.loads(p.body)["payload"]["id"] for p in posts()} == {int(fid)}


def test_chunked_uploads_and_new_versions_fire_only_uploaded(watched_room: WatchedRoom) -> None:
    sim, room = watched_room.sim, watched_room.room
    fid = sim.upload_file(room, "Invoice.pdf", chunked=True)
    again = sim.upload_file(room, "Invoice.pdf")  # same title: a new version, same id
    assert sim.wait_idle(10)

    triggers = sorted(json.loads(p.body)["event"]["trigger"] for p in watched_room.receiver.posts())
    assert triggers == ["file.uploaded", "file.uploaded"]
    assert again == fid
    assert sim.file(fid)["version"] == 2


def test_update_and_move_fire_their_triggers(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.updated", "file.moved"])
    room = docspace_sim.create_room("R")
    target = docspace_sim.create_folder(room, "Incoming")
    fid = docspace_sim.upload_file(room, "a.pdf")
    docspace_sim.update_file(fid, size=12)
    resp = api(docspace_sim, "PUT", "files/fileops/move", json={"fileIds": [fid], "destFolderId": target})
    assert resp.status_code == 200
    assert docspace_sim.wait_idle(10)
    triggers = sorted(json.loads(p.body)["event"]["trigger"] for p in webhook_receiver.posts())
    assert triggers == ["file.moved", "file.updated"]


def test_a_receiver_answering_500_twice_gets_retries(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    upload_with_webhook(docspace_sim, webhook_receiver, "Invoice.pdf", 500, 500)

    posts = webhook_receiver.posts()
    assert len(posts) == 3
    docs = [json.loads(p.body) for p in posts]
    assert [d["webhook"].get("retryCount") for d in docs] == [None, 1, 2]
    assert len({d["event"]["id"] for d in docs}) == 1  # event.id is stable across retries
    assert len({p.body for p in posts}) == 3  # new bytes each time ...
    assert len({p.headers["x-docspace-signature-256"] for p in posts}) == 3  # ... so new signatures
    assert all(verify(p.body, p.headers["x-docspace-signature-256"], SECRET) for p in posts)
    assert "500 (Internal Server Error)" in docs[1]["webhook"]["lastFailureContent"]
    assert {"retryOn", "lastFailureOn"} <= set(docs[2]["webhook"])
    assert [parse_delivery(p.body).retry_count for p in posts] == [0, 1, 2]
    assert [a.status for a in docspace_sim.deliveries()] == [500, 500, 200]


def test_retries_follow_the_delays_and_then_stop(docspace_sim: DocSpaceSimulator) -> None:
    receiver = WebhookReceiver()
    try:
        receiver.default_status = 503
        docspace_sim.register_webhook(receiver.url, SECRET, triggers=["file.uploaded"])
        started = time.monotonic()
        docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf", chunked=True)
        assert docspace_sim.wait_idle(10)
        assert len(receiver.posts()) == 1 + len(FAST_RETRY_DELAYS)
        assert time.monotonic() - started >= sum(FAST_RETRY_DELAYS)
        listed = api(docspace_sim, "GET", "settings/webhook").json()["response"]
        assert listed[0]["configs"]["lastFailureContent"].startswith("Response status code")
    finally:
        receiver.close()


def test_410_deletes_the_webhook(docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver) -> None:
    docspace_sim.register_webhook(webhook_receiver.url, SECRET)
    webhook_receiver.default_status = 410
    room = docspace_sim.create_room("R")
    assert docspace_sim.wait_idle(10)
    assert len(webhook_receiver.posts()) == 6  # 410 is retried like any failure, then the config goes
    assert api(docspace_sim, "GET", "settings/webhook").json()["response"] == []
    docspace_sim.upload_file(room, "a.pdf")
    assert docspace_sim.wait_idle(10)
    assert len(webhook_receiver.posts()) == 6


def test_manual_redelivery_gets_a_new_event_id(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    upload_with_webhook(docspace_sim, webhook_receiver, "a.pdf")
    first = json.loads(webhook_receiver.posts()[0].body)

    new_id = admin(docspace_sim, "POST", f"redeliver/{first['event']['id']}")["id"]
    assert docspace_sim.wait_idle(10)

    second = json.loads(webhook_receiver.posts()[1].body)
    assert second["event"]["id"] == new_id != first["event"]["id"]
    assert second["event"]["createOn"] == first["event"]["createOn"]
    assert second["payload"] == first["payload"]


def test_registration_does_the_head_check(docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver) -> None:
    create = {"name": "invoice-router", "uri": webhook_receiver.url, "secretKey": SECRET, "enabled": True}
    webhook_receiver.head_status = 404
    resp = api(docspace_sim, "POST", "settings/webhook", json=create)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "webhook URL not available"

    webhook_receiver.head_status = 200
    resp = api(docspace_sim, "POST", "settings/webhook", json={**create, "triggers": 384})
    assert resp.status_code == 200, resp.text
    config = resp.json()["response"]
    assert (config["name"], config["uri"], config["enabled"], config["triggers"]) == (
        "invoice-router",
        webhook_receiver.url,
        True,
        384,
    )
    assert "secretKey" not in config
    assert [r.method for r in webhook_receiver.requests] == ["HEAD", "HEAD"]

    # Enabling checks again; disabling does not.
    webhook_receiver.head_status = 500
    body = {"id": config["id"], "name": "invoice-router", "uri": webhook_receiver.url}
    assert api(docspace_sim, "PUT", "settings/webhook/enable", json={**body, "enabled": False}).status_code == 200
    assert api(docspace_sim, "PUT", "settings/webhook/enable", json={**body, "enabled": True}).status_code == 400

    dup = api(docspace_sim, "POST", "settings/webhook", json=create)
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]["message"]
    deleted = api(docspace_sim, "DELETE", f"settings/webhook/{config['id']}")
    assert deleted.json()["response"]["id"] == config["id"]
    assert api(docspace_sim, "GET", "settings/webhook").json()["response"] == []


@pytest.mark.parametrize("secret", [None, "", "x" * 51])
def test_the_secret_is_required_and_short(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver, secret: str | None
) -> None:
    body = {"name": "n", "uri": webhook_receiver.url, "secretKey": secret, "enabled": True}
    resp = api(docspace_sim, "POST", "settings/webhook", json=body)
    assert resp.status_code == 400
    assert resp.json()["status"] == 1


def test_the_webhook_log_endpoint(docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver) -> None:
    cid = docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["file.uploaded"])
    webhook_receiver.script(500)
    room = docspace_sim.create_room("R")
    docspace_sim.upload_file(room, "a.pdf", chunked=True)
    docspace_sim.upload_file(room, "b.pdf", chunked=True)
    assert docspace_sim.wait_idle(10)

    resp = api(docspace_sim, "GET", "settings/webhooks/log", params={"configId": cid}).json()
    assert resp["total"] == 2
    rows = resp["response"]
    assert rows[0]["id"] > rows[1]["id"]  # newest first
    assert all(r["status"] == 200 and r["delivery"] for r in rows)
    assert json.loads(rows[0]["requestPayload"])["event"]["id"] == rows[0]["id"]
    failed = api(docspace_sim, "GET", "settings/webhooks/log", params={"groupStatus": 24}).json()
    assert failed["response"] == []


# --- REST API ---------------------------------------------------------------------------------------------


def test_the_envelopes(docspace_sim: DocSpaceSimulator) -> None:
    fid = docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf")
    ok = api(docspace_sim, "GET", f"files/file/{fid}").json()
    assert {"response", "count", "links", "status", "statusCode"} <= set(ok)
    assert (ok["count"], ok["status"], ok["statusCode"]) == (1, 0, 200)

    missing = api(docspace_sim, "GET", "files/file/1")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"message": "The required file was not found"},
        "status": 1,
        "statusCode": 404,
    }

    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        unauth = requests.get(f"{docspace_sim.base_url}/api/2.0/files/file/{fid}", headers=headers, timeout=5)
        assert unauth.status_code == 401 and unauth.content == b""


def test_fields_trims_the_response(docspace_sim: DocSpaceSimulator) -> None:
    fid = docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf")
    got = api(docspace_sim, "GET", f"files/file/{fid}", params={"fields": "id,title,folderId,version"}).json()
    assert set(got["response"]) == {"id", "title", "folderId", "version"}


def test_the_path_lists_root_room_and_folders(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("Client A")
    sub = docspace_sim.create_folder(room, "Uploads")
    path = api(docspace_sim, "GET", f"files/folder/{sub}/path").json()["response"]
    assert [p["title"] for p in path] == ["Rooms", "Client A", "Uploads"]
    assert [p.get("roomType") for p in path] == [None, 5, None]
    assert path[0]["rootFolderType"] == 14


def test_a_folder_moved_to_another_room_keeps_its_id_and_its_path_names_the_new_room(
    docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver
) -> None:
    docspace_sim.register_webhook(webhook_receiver.url, SECRET, triggers=["folder.moved"])
    a, b = docspace_sim.create_room("Client A"), docspace_sim.create_room("Client B")
    sub = docspace_sim.create_folder(a, "Uploads")
    inner = docspace_sim.create_folder(sub, "2026")

    moved = admin(docspace_sim, "PUT", f"folders/{sub}", json={"parentId": b})

    assert [f["id"] for f in moved["folders"]] == [int(inner)]
    path = api(docspace_sim, "GET", f"files/folder/{inner}/path").json()["response"]
    assert [p["title"] for p in path] == ["Rooms", "Client B", "Uploads", "2026"]
    assert docspace_sim.wait_idle(10)
    [post] = webhook_receiver.posts()
    assert json.loads(post.body)["event"]["trigger"] == "folder.moved"
    # A room, a move into its own subtree, and a plain folder straight into the Rooms root are refused.
    for folder, dest in ((a, b), (sub, inner), (sub, docspace_sim.rooms_root_id)):
        resp = requests.put(f"{docspace_sim.base_url}/_sim/folders/{folder}", json={"parentId": dest}, timeout=10)
        assert resp.status_code == 403, (folder, dest, resp.text)


def test_contents_filters_and_the_subtree_trap(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    docspace_sim.create_folder(room, "Incoming")
    docspace_sim.create_folder(docspace_sim.create_folder(room, "Old"), "Incoming")
    docspace_sim.upload_file(room, "Incoming.pdf")
    params = {"filterType": 2, "filterValue": "incom"}
    deep = api(docspace_sim, "GET", f"files/{room}", params=params).json()["response"]
    flat = api(docspace_sim, "GET", f"files/{room}", params={**params, "withSubFolders": "false"}).json()["response"]
    assert len(deep["folders"]) == 2 and deep["files"] == []  # withSubFolders defaults to true
    assert [f["parentId"] for f in flat["folders"]] == [int(room)]
    subs = api(docspace_sim, "GET", f"files/{room}/subfolders").json()["response"]
    assert sorted(f["title"] for f in subs) == ["Incoming", "Old"]


def test_creating_folders_has_no_uniqueness_check(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    a = api(docspace_sim, "POST", f"files/folder/{room}", json={"title": "Incoming"}).json()["response"]
    b = api(docspace_sim, "POST", f"files/folder/{room}", json={"title": "Incoming"}).json()["response"]
    assert a["id"] != b["id"] and a["parentId"] == b["parentId"] == int(room)
    assert api(docspace_sim, "POST", "files/folder/999999", json={"title": "x"}).status_code == 403


def move(sim: DocSpaceSimulator, **body: Any) -> requests.Response:
    return api(sim, "PUT", "files/fileops/move", json=body)


def poll(sim: DocSpaceSimulator, op_id: str, path: str = "files/fileops") -> list[dict[str, Any]]:
    return api(sim, "GET", path, params={"id": op_id}).json()["response"]


def test_a_finished_move_is_reported_exactly_once(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    dest = docspace_sim.create_folder(room, "Incoming")
    fid = docspace_sim.upload_file(room, "a.pdf")
    (op,) = move(docspace_sim, fileIds=[fid], destFolderId=dest, returnSingleOperation=True).json()["response"]
    assert (op["finished"], op["status"], op["Operation"], op["error"], op["processed"]) == (False, 0, 0, "", "0")
    assert docspace_sim.wait_idle(5)

    (done,) = poll(docspace_sim, op["id"], "files/fileops/Move")
    assert done["finished"] and done["status"] == 2 and done["progress"] == 100
    assert [f["id"] for f in done["files"]] == [int(fid)]
    assert [f["id"] for f in done["folders"]] == [int(dest)]
    assert poll(docspace_sim, op["id"]) == []  # dequeued by the first read


def test_delete_after_true_never_reports_the_finished_move(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    dest = docspace_sim.create_folder(room, "Incoming")
    fid = docspace_sim.upload_file(room, "a.pdf")
    (op,) = move(docspace_sim, fileIds=[fid], destFolderId=dest, deleteAfter=True, returnSingleOperation=True).json()[
        "response"
    ]
    assert docspace_sim.wait_idle(5)
    assert poll(docspace_sim, op["id"]) == []
    assert docspace_sim.file(fid)["folderId"] == int(dest)  # deleteAfter never meant "delete the source"


@pytest.mark.parametrize(("value", "moved"), [(None, False), ("skip", False), ("SKIP", False), (0, False), ("2", True)])
def test_conflict_values_and_the_skip_default(docspace_sim: DocSpaceSimulator, value: Any, moved: bool) -> None:
    room = docspace_sim.create_room("R")
    dest = docspace_sim.create_folder(room, "Incoming")
    docspace_sim.upload_file(dest, "a.pdf")
    fid = docspace_sim.upload_file(room, "a.pdf")
    body: dict[str, Any] = {"fileIds": [int(fid)], "destFolderId": str(dest), "returnSingleOperation": True}
    if value is not None:
        body["conflictResolveType"] = value
    (op,) = move(docspace_sim, **body).json()["response"]
    assert docspace_sim.wait_idle(5)
    (done,) = poll(docspace_sim, op["id"])
    assert done["error"] == ""
    assert ("files" in done) is moved
    assert docspace_sim.file(fid)["folderId"] == (int(dest) if moved else int(room))


def test_move_synchronous_checks(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    fid = docspace_sim.upload_file(room, "a.pdf")
    assert move(docspace_sim, fileIds=[fid], destFolderId=999999).status_code == 404
    assert move(docspace_sim, fileIds=[999999], destFolderId=room).status_code == 404
    denied = move(docspace_sim, fileIds=[fid], destFolderId=docspace_sim.rooms_root_id)
    assert denied.status_code == 403 and denied.json()["error"]["message"] == "Access denied"
    assert move(docspace_sim, fileIds=[fid], destFolderId=room, conflictResolveType="Rename").status_code == 400


def test_without_single_operation_a_move_returns_and_consumes_earlier_reports(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    dest = docspace_sim.create_folder(room, "Incoming")
    first = docspace_sim.upload_file(room, "a.pdf")
    second = docspace_sim.upload_file(room, "b.pdf")
    (op1,) = move(docspace_sim, fileIds=[first], destFolderId=dest, returnSingleOperation=True).json()["response"]
    assert docspace_sim.wait_idle(5)
    ops = move(docspace_sim, fileIds=[second], destFolderId=dest).json()["response"]
    assert ops[0]["id"] == op1["id"] and len(ops) == 2
    assert poll(docspace_sim, op1["id"]) == []


# --- faults and control surface ---------------------------------------------------------------------------


def test_faults_over_http(docspace_sim: DocSpaceSimulator) -> None:
    fid = docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf")
    admin(
        docspace_sim,
        "POST",
        "faults",
        json={"seed": 7, "rules": [{"method": "GET", "path": "/api/2.0/files/file/*", "burst_429": 1}]},
    )
    limited = api(docspace_sim, "GET", f"files/file/{fid}")
    assert limited.status_code == 429 and limited.content == b""
    for header in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in limited.headers
    assert api(docspace_sim, "GET", f"files/file/{fid}").status_code == 200

    admin(docspace_sim, "POST", "faults", json={"outage_seconds": 30})
    assert api(docspace_sim, "GET", f"files/file/{fid}").status_code == 503
    admin(docspace_sim, "DELETE", "faults")
    assert api(docspace_sim, "GET", f"files/file/{fid}").status_code == 200


def test_random_5xx_are_seedable(docspace_sim: DocSpaceSimulator) -> None:
    def run() -> list[int]:
        docspace_sim.faults.clear()
        docspace_sim.faults.seed(42)
        docspace_sim.faults.add(path="/api/2.0/files/folder/*", error_rate=0.5, error_status=502)
        return [api(docspace_sim, "GET", f"files/folder/{docspace_sim.rooms_root_id}").status_code for _ in range(12)]

    first = run()
    assert set(first) == {200, 502}
    assert run() == first


def test_the_rate_limiter_limits_concurrent_writes(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("R")
    docspace_sim.faults.set_rate_limit(max_concurrent_writes=1, retry_after=2)
    docspace_sim.faults.add(method="POST", path="/api/2.0/files/folder/*", latency=0.5)
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(
            pool.map(
                lambda _: api(docspace_sim, "POST", f"files/folder/{room}", json={"title": "x"}).status_code, [1, 2]
            )
        )
    assert codes == [200, 429]


def test_the_control_surface_over_http(docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver) -> None:
    admin(docspace_sim, "POST", "webhooks", json={"url": webhook_receiver.url, "secret": SECRET})
    room = admin(docspace_sim, "POST", "rooms", json={"title": "Demo"})["id"]
    folder = admin(docspace_sim, "POST", "folders", json={"parentId": room, "title": "Uploads"})["id"]
    file = admin(docspace_sim, "POST", "files", json={"folderId": folder, "title": "inv.pdf", "size": 2048})
    assert file["contentLength"] == "2 KB" and file["pureContentLength"] == 2048
    assert admin(docspace_sim, "PUT", f"files/{file['id']}", json={"size": 10})["version"] == 2
    assert admin(docspace_sim, "POST", "wait-idle", json={"timeout": 10}) == {"idle": True}
    deliveries = admin(docspace_sim, "GET", "deliveries", params={"trigger": "file.created"})
    assert len(deliveries) == 1
    assert verify(base64.b64decode(deliveries[0]["body"]), deliveries[0]["headers"]["x-docspace-signature-256"], SECRET)
    api(docspace_sim, "GET", f"files/folder/{folder}/path")
    assert admin(docspace_sim, "GET", "calls")["counts"] == {"GET /api/2.0/files/folder/{folder_id}/path": 1}
    assert admin(docspace_sim, "POST", "operations/consume") == {"consumed": 0}
    info = requests.get(f"{docspace_sim.base_url}/_sim", timeout=5).json()
    assert info["roomsRootId"] == docspace_sim.rooms_root_id
    assert [r["id"] for r in info["rooms"]] == [int(room)]


def test_the_cli_runs_a_seeded_simulator() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--api-key", "sk-cli", "--seed-demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        base_url = lines[0].rsplit(" ", 1)[1]
        assert base_url.startswith("http://127.0.0.1:")
        room_id = next(line for line in lines if line.startswith("demo room id:")).rsplit(" ", 1)[1]
        path = requests.get(
            f"{base_url}/api/2.0/files/folder/{room_id}/path", headers={"Authorization": "Bearer sk-cli"}, timeout=5
        ).json()["response"]
        assert path[-1]["title"] == "Acme Ltd" and path[-1]["roomType"] == 5
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
