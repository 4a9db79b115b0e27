"""The ``/_sim/...`` control surface, so a separate demo or test process can drive the simulator over HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import falcon

from simulator.control import SimulatorControl
from simulator.model import ApiError
from simulator.wire import JSON


def _doc(req: falcon.Request) -> dict[str, Any]:
    raw = req.bounded_stream.read()
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object")
    return doc


def _out(resp: falcon.Response, value: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.text = json.dumps(value)


class _Base:
    def __init__(self, sim: SimulatorControl) -> None:
        self.sim = sim


class Rooms(_Base):
    """``POST /_sim/rooms``: create a room."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = _doc(req)
        _out(resp, {"id": self.sim.create_room(doc["title"], room_type=int(doc.get("roomType", 5)))}, 201)


class Folders(_Base):
    """``POST /_sim/folders``: create a folder."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = _doc(req)
        _out(resp, {"id": self.sim.create_folder(doc["parentId"], doc["title"])}, 201)


class Files(_Base):
    """``POST /_sim/files``: upload a file (which fires its webhooks)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = _doc(req)
        fid = self.sim.upload_file(
            doc["folderId"], doc["title"], size=int(doc.get("size", 84_234)), chunked=bool(doc.get("chunked"))
        )
        _out(resp, self.sim.file(fid), 201)


class FileItem(_Base):
    """``/_sim/files/{file_id}``: read a file; PUT can lock or unlock it and save a new version."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, file_id: str) -> None:
        _out(resp, self.sim.file(file_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, file_id: str) -> None:
        doc = _doc(req)
        if "locked" in doc:
            self.sim.lock_file(file_id, bool(doc["locked"]))
        if doc.get("update", True):
            self.sim.update_file(file_id, size=doc.get("size"))
        _out(resp, self.sim.file(file_id))


class FolderItem(_Base):
    """``/_sim/folders/{folder_id}``: a folder's files and subfolders; PUT ``{"parentId": …}`` moves it there."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        _out(resp, {"files": self.sim.files_in(folder_id), "folders": self.sim.subfolders(folder_id)})

    def on_put(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        doc = _doc(req)
        if "parentId" not in doc:
            raise ApiError(400, "parentId is required")
        self.sim.move_folder(folder_id, doc["parentId"])
        _out(resp, {"files": self.sim.files_in(folder_id), "folders": self.sim.subfolders(folder_id)})


class Webhooks(_Base):
    """``POST /_sim/webhooks``: register a webhook."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = _doc(req)
        cid = self.sim.register_webhook(
            doc["url"],
            doc["secret"],
            triggers=doc.get("triggers"),
            name=doc.get("name", "invoice-router"),
            check=bool(doc.get("check", True)),
        )
        _out(resp, {"id": cid}, 201)


class WebhookItem(_Base):
    """``PUT /_sim/webhooks/{id}`` with ``ageDays``: make a webhook look that old (DocSpace's 3-day rule)."""

    def on_put(self, req: falcon.Request, resp: falcon.Response, config_id: str) -> None:
        doc = _doc(req)
        if doc.get("ageDays") is not None:
            self.sim.age_webhook(config_id, float(doc["ageDays"]))
        _out(resp, {"id": int(config_id)})


class Redeliver(_Base):
    """``POST /_sim/redeliver/{event_id}``: send a past delivery again."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, event_id: str) -> None:
        _out(resp, {"id": self.sim.redeliver(event_id)}, 201)


class Deliveries(_Base):
    """``GET /_sim/deliveries``: every webhook delivery attempt and its answer."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        out = [
            {
                "eventId": a.log_id,
                "retryCount": a.retry_count,
                "status": a.status,
                "response": a.response,
                "at": a.at.isoformat(),
                "headers": a.headers,
                # base64 so the exact signed bytes survive the trip
                "body": base64.b64encode(a.body).decode("ascii"),
            }
            for a in self.sim.deliveries(req.get_param("trigger"))
        ]
        _out(resp, out)


class Calls(_Base):
    """``/_sim/calls``: API calls counted per route; DELETE resets the counts."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = req.get_param("caller")
        _out(
            resp,
            {
                "counts": self.sim.call_counts(caller),
                "callers": self.sim.calls.callers(),
                "rateLimited": self.sim.call_count(caller=caller, rate_limited=True),
            },
        )

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.sim.reset_calls()
        _out(resp, {"counts": {}})


class ConsumeOperations(_Base):
    """``POST /_sim/operations/consume``: take the finished operations' once-only reports."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _out(resp, {"consumed": self.sim.consume_operation_reports()})


class WaitIdle(_Base):
    """``POST /_sim/wait-idle``: wait until queued moves have finished and webhook deliveries settled."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        timeout = float(_doc(req).get("timeout", 60.0))
        _out(resp, {"idle": self.sim.wait_idle(timeout)})


class FaultsResource(_Base):
    """``/_sim/faults``: read, configure and clear the injected faults."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _out(resp, self.sim.faults.describe())

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            self.sim.faults.configure(_doc(req))
        except TypeError as exc:
            raise ApiError(400, str(exc)) from None
        _out(resp, self.sim.faults.describe())

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.sim.faults.clear()
        _out(resp, self.sim.faults.describe())


class Info(_Base):
    """``GET /_sim``: the simulator's base URL, its well-known folder ids and its rooms."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _out(
            resp,
            {
                "baseUrl": self.sim.base_url,
                "roomsRootId": self.sim.rooms_root_id,
                "myDocumentsId": self.sim.my_documents_id,
                "rooms": self.sim.subfolders(self.sim.rooms_root_id),
            },
        )


def add_routes(app: falcon.App, sim: SimulatorControl) -> None:
    app.add_route("/_sim", Info(sim))
    app.add_route("/_sim/rooms", Rooms(sim))
    app.add_route("/_sim/folders", Folders(sim))
    app.add_route("/_sim/folders/{folder_id}", FolderItem(sim))
    app.add_route("/_sim/files", Files(sim))
    app.add_route("/_sim/files/{file_id}", FileItem(sim))
    app.add_route("/_sim/webhooks", Webhooks(sim))
    app.add_route("/_sim/webhooks/{config_id}", WebhookItem(sim))
    app.add_route("/_sim/redeliver/{event_id}", Redeliver(sim))
    app.add_route("/_sim/deliveries", Deliveries(sim))
    app.add_route("/_sim/calls", Calls(sim))
    app.add_route("/_sim/operations/consume", ConsumeOperations(sim))
    app.add_route("/_sim/wait-idle", WaitIdle(sim))
    app.add_route("/_sim/faults", FaultsResource(sim))
