"""The webhook side of the simulator: configs, a DocSpace-like signed sender with retries, and the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import http
import itertools
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from simulator.state import OWNER_ID, ApiError, event_datetime

# WebhookTrigger flags (contract §2.1).
TRIGGERS: dict[str, int] = {
    "user.created": 1, "user.invited": 2, "user.updated": 4, "user.deleted": 8,
    "group.created": 16, "group.updated": 32, "group.deleted": 64,
    "file.created": 128, "file.uploaded": 256, "file.updated": 512, "file.trashed": 1024,
    "file.deleted": 2048, "file.restored": 4096, "file.copied": 8192, "file.moved": 16384,
    "folder.created": 32768, "folder.updated": 65536, "folder.trashed": 131072, "folder.deleted": 262144,
    "folder.restored": 524288, "folder.copied": 1048576, "folder.moved": 2097152,
    "room.created": 4194304, "room.updated": 8388608, "room.archived": 16777216, "room.deleted": 33554432,
    "room.restored": 67108864, "room.copied": 134217728, "form.submit": 268435456,
    "form.filled.out": 536870912, "form.stopped": 1073741824, "agent.created": 2147483648,
    "agent.updated": 4294967296, "agent.deleted": 8589934592, "file.downloaded": 17179869184,
    "folder.downloaded": 34359738368,
}  # fmt: skip
TRUSTED_DAYS = 3
TIMEOUT_MESSAGE = "The request was canceled due to the configured HttpClient.Timeout"


def triggers_mask(triggers: int | str | Sequence[str] | None) -> int:
    """Names (or a mask) to the config's bitmask; 0 means all."""
    if triggers is None:
        return 0
    if isinstance(triggers, int):
        return triggers
    if isinstance(triggers, str):
        triggers = [t.strip() for t in triggers.split(",") if t.strip()]
    mask = 0
    for name in triggers:
        if name == "*":
            return 0
        if name not in TRIGGERS:
            raise ApiError(400, "Trigger is not available")
        mask |= TRIGGERS[name]
    return mask


def trigger_names(mask: int) -> list[str]:
    return ["*"] if mask == 0 else [n for n, v in TRIGGERS.items() if mask & v]


def stj_dumps(value: Any) -> str:
    """Serialise like System.Text.Json's default encoder: compact, non-ASCII and HTML-sensitive chars escaped."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _stj_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_stj_string(str(k))}:{stj_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(stj_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_HTML = set("<>&'+`\"")


def _stj_string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif code < 0x20 or code > 0x7E or ch in _HTML:
            units = ch.encode("utf-16-be")
            for i in range(0, len(units), 2):
                out.append(f"\\u{units[i]:02X}{units[i + 1]:02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def sign(body: bytes, secret: str) -> str:
    """The header value DocSpace sends: lowercase prefix, UPPERCASE hex (.NET Convert.ToHexString)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().upper()


@dataclass
class WebhookConfig:
    """A registered webhook: where it posts, its secret and its trigger mask."""

    id: int
    name: str
    uri: str
    secret: str
    enabled: bool = True
    ssl: bool = False
    triggers: int = 0
    target_id: str | None = None
    created_on: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified_on: datetime | None = None
    last_failure_on: datetime | None = None
    last_failure_content: str | None = None
    last_success_on: datetime | None = None

    def dto(self, employee: dict[str, Any]) -> dict[str, Any]:
        def d(v: datetime | None) -> str | None:
            return v.isoformat() if v else None

        out = {
            "id": self.id,
            "name": self.name,
            "uri": self.uri,
            "enabled": self.enabled,
            "ssl": self.ssl,
            "triggers": self.triggers,
            "targetId": self.target_id,
            "createdBy": employee,
            "createdOn": d(self.created_on),
            "modifiedOn": d(self.modified_on),
            "lastFailureOn": d(self.last_failure_on),
            "lastFailureContent": self.last_failure_content,
            "lastSuccessOn": d(self.last_success_on),
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Attempt:
    """One POST as the receiver saw it (kept for tests and the demo)."""

    log_id: int
    retry_count: int
    body: bytes
    headers: dict[str, str]
    status: int
    response: str
    at: datetime


@dataclass
class LogEntry:
    """A ``webhooks_logs`` row: one event for one config; its id is ``event.id``."""

    id: int
    config_id: int
    config_name: str
    trigger: str
    event: dict[str, Any]
    payload: dict[str, Any]
    creation_time: datetime
    status: int = 0
    delivery: datetime | None = None
    request_payload: str = ""
    request_headers: str = ""
    response_payload: str = ""
    response_headers: str = ""
    attempts: list[Attempt] = field(default_factory=list)

    def dto(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "configName": self.config_name,
            "trigger": TRIGGERS.get(self.trigger, 0),
            "creationTime": self.creation_time.isoformat(),
            "method": "",
            "route": "",
            "requestHeaders": self.request_headers,
            "requestPayload": self.request_payload,
            "responseHeaders": self.response_headers,
            "responsePayload": self.response_payload,
            "status": self.status,
        }
        if self.delivery:
            out["delivery"] = self.delivery.isoformat()
        return out


def group_of(status: int) -> int:
    """groupStatus flag of a log status: NotSent=1, 2xx=2, 3xx=4, 4xx=8, 5xx=16."""
    if status == 0:
        return 1
    return {2: 2, 3: 4, 4: 8, 5: 16}.get(status // 100, 16)


class WebhookSender:
    """Configs, publishing and delivery: the role of DocSpace's WebhookPublisher + WebhookSender."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
        threads: int = 4,
        send_timeout: float = 30.0,
        head_timeout: float = 10.0,
        employee: Any = None,
    ) -> None:
        self.retry_delays = tuple(retry_delays)
        self.send_timeout = send_timeout
        self.head_timeout = head_timeout
        self._employee = employee or (lambda uid: {"id": uid})
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sim-webhook")
        self._http = requests.Session()
        self._config_ids = itertools.count(2621)
        self._log_ids = itertools.count(138769)
        self.configs: dict[int, WebhookConfig] = {}
        self.log: dict[int, LogEntry] = {}

    # --- configs ---------------------------------------------------------------------------------------

    def head_check(self, uri: str) -> None:
        """DocSpace's URL check on create/update/enable: HEAD must answer 2xx within 10 s, no redirects."""
        try:
            resp = self._http.head(uri, timeout=self.head_timeout, allow_redirects=False)
            ok = 200 <= resp.status_code < 300
        except requests.RequestException:
            ok = False
        if not ok:
            raise ApiError(400, "webhook URL not available")

    def create(
        self,
        *,
        name: str,
        uri: str,
        secret: str,
        triggers: int = 0,
        enabled: bool = False,
        ssl: bool = False,
        target_id: str | None = None,
        check: bool = True,
    ) -> WebhookConfig:
        name, uri = (name or "").strip(), (uri or "").strip()
        if not name or len(name) > 50:
            raise ApiError(400, "The name field is required and must be at most 50 characters")
        if not uri.lower().startswith(("http://", "https://")):
            raise ApiError(400, "The uri field must be an absolute http(s) URL")
        if ssl and not uri.lower().startswith("https://"):
            raise ApiError(400, "ssl requires an https URL")
        if not secret or len(secret) > 50:
            raise ApiError(400, "The secretKey field is required and must be at most 50 characters")
        with self._lock:
            if any(c.name == name and c.uri == uri for c in self.configs.values()):
                raise ApiError(400, "Webhook with the same name and uri already exists")
        if check:
            self.head_check(uri)
        with self._lock:
            cfg = WebhookConfig(
                id=next(self._config_ids),
                name=name,
                uri=uri,
                secret=secret,
                enabled=enabled,
                ssl=ssl,
                triggers=triggers,
                target_id=target_id,
            )
            self.configs[cfg.id] = cfg
            return cfg

    def get(self, config_id: Any) -> WebhookConfig:
        with self._lock:
            try:
                return self.configs[int(config_id)]
            except (KeyError, TypeError, ValueError):
                raise ApiError(404, "Webhook not found") from None

    def update(self, config_id: Any, *, check: bool = True, **changes: Any) -> WebhookConfig:
        cfg = self.get(config_id)
        uri = changes.get("uri") or cfg.uri
        secret = changes.get("secret")
        if secret is not None and len(secret) > 50:
            raise ApiError(400, "The secretKey field must be at most 50 characters")
        if check:
            self.head_check(uri)
        with self._lock:
            cfg.uri = uri
            if changes.get("name"):
                cfg.name = changes["name"]
            if secret:  # an empty secret keeps the old one
                cfg.secret = secret
            for key in ("enabled", "ssl", "triggers", "target_id"):
                if changes.get(key) is not None:
                    setattr(cfg, key, changes[key])
            cfg.modified_on = datetime.now(UTC)
            return cfg

    def enable(self, config_id: Any, enabled: bool, *, check: bool = True) -> WebhookConfig:
        cfg = self.get(config_id)
        if enabled and check:
            self.head_check(cfg.uri)
        with self._lock:
            cfg.enabled = enabled
            cfg.modified_on = datetime.now(UTC)
            return cfg

    def age(self, config_id: Any, days: float) -> WebhookConfig:
        """Move the config's creation and last success ``days`` into the past (see DocSpace's 3-day rule)."""
        cfg = self.get(config_id)
        with self._lock:
            then = datetime.now(UTC) - timedelta(days=days)
            cfg.created_on = then
            if cfg.last_success_on is not None:
                cfg.last_success_on = then
            return cfg

    def delete(self, config_id: Any) -> WebhookConfig:
        cfg = self.get(config_id)
        with self._lock:
            self.configs.pop(cfg.id, None)
        return cfg

    def last_status(self, config_id: int) -> int:
        with self._lock:
            done = [e for e in self.log.values() if e.config_id == config_id and e.delivery]
            return max(done, key=lambda e: e.delivery or datetime.min.replace(tzinfo=UTC)).status if done else 0

    # --- publishing ------------------------------------------------------------------------------------

    def publish(self, trigger: str, payload: dict[str, Any], *, acting_user: str = OWNER_ID) -> list[int]:
        """Queue one delivery per matching config; returns the new log (event) ids."""
        bit = TRIGGERS.get(trigger, 0)
        created = datetime.now(UTC)
        ids = []
        with self._lock:
            for cfg in list(self.configs.values()):
                if not cfg.enabled or (cfg.triggers and not cfg.triggers & bit):
                    continue
                if cfg.target_id is not None and str(cfg.target_id) != str(payload.get("id")):
                    continue
                event = {"id": 0, "createOn": event_datetime(created), "createBy": acting_user, "trigger": trigger}
                if bit:
                    event["triggerId"] = bit
                ids.append(self._queue(cfg, trigger, event, payload))
        return ids

    def redeliver(self, log_id: Any) -> int:
        """A manual retry: a new log row (so a new ``event.id``) with the old event and payload."""
        with self._lock:
            try:
                old = self.log[int(log_id)]
            except (KeyError, TypeError, ValueError):
                raise ApiError(404, "Webhook log entry not found") from None
            cfg = self.configs.get(old.config_id)
            if cfg is None:
                raise ApiError(404, "Webhook not found")
            return self._queue(cfg, old.trigger, dict(old.event), old.payload)

    def _queue(self, cfg: WebhookConfig, trigger: str, event: dict[str, Any], payload: dict[str, Any]) -> int:
        entry = LogEntry(
            id=next(self._log_ids),
            config_id=cfg.id,
            config_name=cfg.name,
            trigger=trigger,
            event={**event},
            payload=payload,
            creation_time=datetime.now(UTC),
        )
        entry.event["id"] = entry.id
        self.log[entry.id] = entry
        self._in_flight += 1
        self._pool.submit(self._deliver, entry.id)
        return entry.id

    # --- sending ---------------------------------------------------------------------------------------

    def _body(
        self, cfg: WebhookConfig, entry: LogEntry, retry: int, last_failure: tuple[datetime, str] | None
    ) -> bytes:
        hook: dict[str, Any] = {"id": cfg.id, "name": cfg.name, "url": cfg.uri, "triggers": trigger_names(cfg.triggers)}
        if cfg.target_id:
            hook["target"] = {"id": cfg.target_id, "type": entry.trigger.split(".", 1)[0]}
        if retry:
            hook["retryCount"] = retry
            hook["retryOn"] = event_datetime(datetime.now(UTC))
            if last_failure:
                hook["lastFailureOn"] = event_datetime(last_failure[0])
                hook["lastFailureContent"] = last_failure[1]
            if cfg.last_success_on:
                # Read back from the database with an unspecified kind: no trailing Z (contract §1.3).
                hook["lastSuccessOn"] = cfg.last_success_on.strftime("%Y-%m-%dT%H:%M:%S")
        return stj_dumps({"event": entry.event, "payload": entry.payload, "webhook": hook}).encode("utf-8")

    def _deliver(self, log_id: int) -> None:
        try:
            self._deliver_all(log_id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _deliver_all(self, log_id: int) -> None:
        last_failure: tuple[datetime, str] | None = None
        status = 0
        for retry in range(len(self.retry_delays) + 1):
            if retry and self._stop.wait(self.retry_delays[retry - 1]):
                return
            with self._lock:
                entry = self.log[log_id]
                cfg = self.configs.get(entry.config_id)
                if cfg is None or not cfg.enabled:
                    return  # deleted or disabled meanwhile: pending attempts are dropped
                body = self._body(cfg, entry, retry, last_failure)
                secret = cfg.secret
                uri = cfg.uri
            headers = {
                "Accept": "*/*",
                "Content-Type": "application/json; charset=utf-8",
                "x-docspace-signature-256": sign(body, secret),
            }
            ok, status, text, resp_headers = self._post(uri, body, headers)
            at = datetime.now(UTC)
            with self._lock:
                entry.attempts.append(Attempt(log_id, retry, body, headers, status, text, at))
                entry.status = status
                entry.request_payload = body.decode("utf-8")
                entry.request_headers = json.dumps(headers)
                entry.response_payload = text
                entry.response_headers = json.dumps(resp_headers)
                if ok:
                    entry.delivery = at
                    cfg.last_success_on = at
                    return
                last_failure = (at, text)
        with self._lock:
            cfg = self.configs.get(entry.config_id)
            if cfg is None:
                return
            if status == 410:
                self.configs.pop(cfg.id, None)  # 410 Gone deletes the webhook
                return
            cfg.last_failure_on, cfg.last_failure_content = last_failure or (datetime.now(UTC), "")
            trusted_since = cfg.last_success_on or cfg.created_on
            # An HttpRequestException (any non-2xx answer, or no answer at all: connection refused, DNS, TLS;
            # status 0) disables a webhook untrusted for 3 days; a timeout (recorded as 500) does not
            # (contract §1.5).
            timed_out = (last_failure or (None, ""))[1].startswith(TIMEOUT_MESSAGE)
            if not timed_out and datetime.now(UTC) - trusted_since > timedelta(days=TRUSTED_DAYS):
                cfg.enabled = False

    def _post(self, uri: str, body: bytes, headers: dict[str, str]) -> tuple[bool, int, str, dict[str, str]]:
        try:
            resp = self._http.post(uri, data=body, headers=headers, timeout=self.send_timeout, allow_redirects=False)
        except requests.Timeout as exc:
            return False, 500, f"{TIMEOUT_MESSAGE}: {exc}", {}
        except requests.RequestException as exc:
            return False, 0, f"Connection failed: {exc}", {}
        if 200 <= resp.status_code < 300:
            return True, resp.status_code, resp.text, dict(resp.headers)
        try:
            phrase = http.HTTPStatus(resp.status_code).phrase
        except ValueError:
            phrase = ""
        message = f"Response status code does not indicate success: {resp.status_code} ({phrase})."
        return False, resp.status_code, message, dict(resp.headers)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no delivery is pending or retrying; False on timeout."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def attempts(self, *, trigger: str | None = None) -> list[Attempt]:
        with self._lock:
            out = [a for e in self.log.values() if trigger in (None, e.trigger) for a in e.attempts]
        return sorted(out, key=lambda a: a.at)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
