"""The simulated ``/api/2.0/settings/webhook*`` endpoints (contract §2.2-2.4), enough for the CLI."""

from __future__ import annotations

from typing import Any

import falcon

from simulator.model import OWNER_ID, ApiError
from simulator.portal import Portal
from simulator.webhooks.registry import TRIGGERS, group_of, triggers_mask
from simulator.webhooks.sender import WebhookSender
from simulator.wire import body, send


def _triggers(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return triggers_mask(value)


class WebhookConfigResource:
    """``settings/webhook``: list, create and update webhook configs."""

    def __init__(self, portal: Portal, sender: WebhookSender) -> None:
        self.portal, self.sender = portal, sender

    def _dto(self, cfg: Any) -> dict[str, Any]:
        return cfg.dto(self.portal.employee(OWNER_ID))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        configs = list(self.sender.configs.values())
        send(req, resp, [{"configs": self._dto(c), "status": self.sender.last_status(c.id)} for c in configs])

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = body(req)
        cfg = self.sender.create(
            name=str(doc.get("name") or ""),
            uri=str(doc.get("uri") or ""),
            secret=str(doc.get("secretkey") or ""),
            triggers=_triggers(doc.get("triggers")),
            enabled=bool(doc.get("enabled", False)),  # left out means false on the real server too
            ssl=bool(doc.get("ssl", False)),
            target_id=str(doc["targetid"]) if doc.get("targetid") is not None else None,
        )
        send(req, resp, self._dto(cfg))

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = body(req)
        if doc.get("id") is None:
            raise ApiError(400, "The id field is required")
        cfg = self.sender.update(
            doc["id"],
            name=doc.get("name"),
            uri=doc.get("uri"),
            secret=doc.get("secretkey"),
            enabled=doc.get("enabled"),
            ssl=doc.get("ssl"),
            triggers=_triggers(doc.get("triggers")) if "triggers" in doc else None,
        )
        send(req, resp, self._dto(cfg))


class WebhookEnableResource(WebhookConfigResource):
    """``PUT settings/webhook/enable``: switch a webhook on or off. Its DTO is the create request's, so ``name``
    and ``uri`` are ``[Required]`` here too (contract §2.2): a client that leaves them out gets DocSpace's 400."""

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = body(req)
        for field, label in (("id", "id"), ("name", "Name"), ("uri", "Uri")):
            if doc.get(field) in (None, ""):
                raise ApiError(400, f"The {label} field is required")
        send(req, resp, self._dto(self.sender.enable(doc["id"], bool(doc.get("enabled", False)))))


class WebhookItemResource(WebhookConfigResource):
    """``DELETE settings/webhook/{id}``: remove a webhook."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, config_id: str) -> None:
        send(req, resp, self._dto(self.sender.delete(config_id)))


class WebhookRetryResource(WebhookConfigResource):
    """``PUT webhook/{id}/retry`` (``id`` is a log id) and ``PUT webhook/retry`` with ``{ids}``."""

    def on_put(self, req: falcon.Request, resp: falcon.Response, config_id: str | None = None) -> None:
        if config_id is not None:
            new_id = self.sender.redeliver(config_id)
            send(req, resp, self.sender.log[new_id].dto())
            return
        out = []
        for log_id in body(req).get("ids") or []:
            try:
                out.append(self.sender.log[self.sender.redeliver(log_id)].dto())
            except ApiError:
                continue  # missing or foreign ids are skipped
        send(req, resp, out)


class WebhookLogResource:
    """``GET settings/webhooks/log``: the delivery log, filtered by config, event, status or trigger."""

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config_id = req.get_param_as_int("configId")
        event_id = req.get_param_as_int("eventId")
        group = req.get_param_as_int("groupStatus")
        trigger = req.get_param("trigger")
        count = min(max(req.get_param_as_int("count") or 100, 1), 100)
        start = max(req.get_param_as_int("startIndex") or 0, 0)
        entries = sorted(self.sender.log.values(), key=lambda e: e.id, reverse=True)
        entries = [
            e
            for e in entries
            if config_id in (None, e.config_id)
            and event_id in (None, e.id)
            and (group is None or group & group_of(e.status))
            and (trigger is None or trigger in (e.trigger, str(TRIGGERS.get(e.trigger))))
        ]
        send(req, resp, [e.dto() for e in entries[start : start + count]], total=len(entries))


def add_routes(app: falcon.App, portal: Portal, sender: WebhookSender) -> None:
    app.add_route("/api/2.0/settings/webhook", WebhookConfigResource(portal, sender))
    app.add_route("/api/2.0/settings/webhook/enable", WebhookEnableResource(portal, sender))
    app.add_route("/api/2.0/settings/webhook/{config_id}", WebhookItemResource(portal, sender))
    retry = WebhookRetryResource(portal, sender)
    app.add_route("/api/2.0/settings/webhook/retry", retry)
    app.add_route("/api/2.0/settings/webhook/{config_id}/retry", retry)
    app.add_route("/api/2.0/settings/webhooks/log", WebhookLogResource(sender))
