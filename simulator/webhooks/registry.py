"""Webhook configs and their delivery log: triggers, the config CRUD with DocSpace's checks, the log's rows."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from simulator.model import ApiError

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


class WebhookRegistry:
    """Configs and the delivery log: the ``webhooks_config`` and ``webhooks_logs`` tables of DocSpace."""

    def __init__(self, *, head_timeout: float = 10.0, employee: Any = None) -> None:
        self.head_timeout = head_timeout
        self._employee = employee or (lambda uid: {"id": uid})
        self._lock = threading.RLock()
        self._http = requests.Session()
        self._config_ids = itertools.count(2621)
        self._log_ids = itertools.count(138769)
        self.configs: dict[int, WebhookConfig] = {}
        self.log: dict[int, LogEntry] = {}

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
