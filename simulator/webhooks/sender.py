"""The webhook sender: publishing to matching configs, signed POSTs with DocSpace's retries and disabling rules."""

from __future__ import annotations

import hashlib
import hmac
import http
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from simulator.dto import event_datetime
from simulator.model import OWNER_ID, ApiError
from simulator.webhooks.dotnet_json import stj_dumps
from simulator.webhooks.registry import TRIGGERS, Attempt, LogEntry, WebhookConfig, WebhookRegistry, trigger_names

TRUSTED_DAYS = 3
TIMEOUT_MESSAGE = "The request was canceled due to the configured HttpClient.Timeout"


def sign(body: bytes, secret: str) -> str:
    """The header value DocSpace sends: lowercase prefix, UPPERCASE hex (.NET Convert.ToHexString)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().upper()


class WebhookSender(WebhookRegistry):
    """Publishing and delivery over the registry: the role of DocSpace's WebhookPublisher + WebhookSender."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
        threads: int = 4,
        send_timeout: float = 30.0,
        head_timeout: float = 10.0,
        employee: Any = None,
    ) -> None:
        super().__init__(head_timeout=head_timeout, employee=employee)
        self.retry_delays = tuple(retry_delays)
        self.send_timeout = send_timeout
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sim-webhook")

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
