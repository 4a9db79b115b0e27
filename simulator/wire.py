"""DocSpace's HTTP conventions for the simulator: envelopes, case-insensitive bodies, auth, faults, call counting."""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import falcon

from simulator.faults import Faults
from simulator.model import ApiError

JSON = "application/json; charset=utf-8"


def send(req: falcon.Request, resp: falcon.Response, value: Any, *, total: int | None = None) -> None:
    """The success envelope ``{response, count, links, status:0, statusCode}`` (``?fields=`` applied)."""
    fields = req.get_param("fields")
    if fields:
        keep = {f.strip().lower() for f in fields.split(",") if f.strip()}

        def trim(obj: Any) -> Any:
            return {k: v for k, v in obj.items() if k.lower() in keep} if isinstance(obj, dict) else obj

        value = [trim(v) for v in value] if isinstance(value, list) else trim(value)
    body: dict[str, Any] = {
        "response": value,
        "count": len(value) if isinstance(value, list) else 1,
        "links": [{"href": req.url, "action": req.method}],
        "status": 0,
        "statusCode": 200,
    }
    if total is not None:
        body["total"] = total
    resp.status = 200
    resp.content_type = JSON
    resp.text = json.dumps(body)


def send_error(resp: falcon.Response, status: int, message: str) -> None:
    """The error envelope ``{error:{message}, status:1, statusCode}``."""
    resp.status = status
    resp.content_type = JSON
    resp.text = json.dumps({"error": {"message": message}, "status": 1, "statusCode": status})


def handle_api_error(req: falcon.Request, resp: falcon.Response, ex: ApiError, params: dict) -> None:
    send_error(resp, ex.status, ex.message)


def body(req: falcon.Request) -> dict[str, Any]:
    """The JSON body as a dict with lower-cased keys (ASP.NET binds request members case-insensitively)."""
    raw = req.bounded_stream.read()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return {str(k).lower(): v for k, v in doc.items()}


def bearer(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    token = header[7:] if header.lower().startswith("bearer ") else header
    return token.strip() or None


@dataclass(frozen=True)
class Call:
    """One API call: what was asked, by whom (its ``User-Agent``), when, and whether it was refused with 429."""

    method: str
    path: str
    template: str | None
    caller: str
    at: float
    rate_limited: bool = False


class CallLog:
    """Every API call the simulator received, for assertions like "the cache saved a path call".

    Calls are kept per caller (the ``User-Agent`` header), so a test can check one process's share of a key's
    calls, e.g. the reconciler's, while the stages use the same key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def add(
        self, method: str, path: str, template: str | None, caller: str = "", *, rate_limited: bool = False
    ) -> None:
        with self._lock:
            self.calls.append(Call(method, path, template, caller, time.monotonic(), rate_limited))

    def counts(self, caller: str | None = None) -> dict[str, int]:
        with self._lock:
            return dict(Counter(f"{c.method} {c.template or c.path}" for c in self.calls if caller in (None, c.caller)))

    def count(
        self,
        method: str | None = None,
        pattern: str | None = None,
        *,
        caller: str | None = None,
        rate_limited: bool | None = None,
    ) -> int:
        with self._lock:
            return sum(
                1
                for c in self.calls
                if method in (None, c.method)
                and caller in (None, c.caller)
                and rate_limited in (None, c.rate_limited)
                and (pattern is None or fnmatch.fnmatchcase(c.path, pattern) or c.template == pattern)
            )

    def times(self, caller: str | None = None) -> list[float]:
        """When each call arrived (monotonic seconds), oldest first: for checking a caller's rate."""
        with self._lock:
            return [c.at for c in self.calls if caller in (None, c.caller)]

    def callers(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(c.caller for c in self.calls))

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


class Gate:
    """Falcon middleware in front of ``/api/``: count the call, check the key, then apply faults."""

    def __init__(self, api_key: str, faults: Faults, calls: CallLog) -> None:
        self.api_key = api_key
        self.faults = faults
        self.calls = calls

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict) -> None:
        if not req.path.startswith("/api/"):
            return
        template = getattr(req, "uri_template", None)
        caller = req.get_header("User-Agent") or ""
        key = bearer(req)
        if key != self.api_key:
            # The default ASP.NET challenge: 401 with an empty body.
            self.calls.add(req.method, req.path, template, caller)
            resp.status = 401
            resp.data = b""
            resp.complete = True
            return
        latency, rejection = self.faults.check(req.method, req.path, template, key)
        self.calls.add(
            req.method, req.path, template, caller, rate_limited=rejection is not None and rejection.status == 429
        )
        if latency:
            time.sleep(latency)
        if rejection is not None:
            resp.set_headers(rejection.headers)
            if rejection.empty_body:
                resp.status = rejection.status
                resp.data = b""
            else:
                send_error(resp, rejection.status, rejection.message)
            resp.complete = True
            return
        req.context.admitted_write = req.method != "GET"
        req.context.key = key

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if getattr(req.context, "admitted_write", False):
            self.faults.release(req.method, req.context.key)
