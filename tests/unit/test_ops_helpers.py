"""Pure parts of the operator tooling: the webhook secret, trigger names, --since, replays, the webhook verdict."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
import typer

from ops.cli_common import parse_since
from ops.dead_letters import dead_letter_id, replay_properties
from ops.doctor import _check_webhook, check_reconciler
from ops.webhook_setup import generate_secret
from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import trigger_names

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def test_generated_secrets_meet_docspace_rules_and_differ() -> None:
    seen = {generate_secret() for _ in range(200)}
    assert len(seen) == 200
    for secret in seen:
        assert len(secret) <= 50
        assert all(re.search(p, secret) for p in (r"[A-Z]", r"[a-z]", r"\d", r"[^A-Za-z0-9]"))
        assert not set(secret) & set("$#'\"\\ ,")


def test_trigger_names() -> None:
    assert trigger_names(384) == ["file.created", "file.uploaded"]
    assert trigger_names(0) == ["* (all)"]


def test_since_takes_durations_and_iso_times() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday", NOW)


def test_dead_letter_ids_are_stable_and_tell_stages_apart() -> None:
    assert dead_letter_id("notifier.email", "inv", b"x") == dead_letter_id("notifier.email", "inv", b"x")
    assert dead_letter_id("notifier.email", "inv", b"x") != dead_letter_id("notifier.pipeline", "inv", b"x")


def test_a_replayed_dead_letter_waits_for_a_new_store_outage_from_zero() -> None:
    # Dead-lettered as store_outage_too_long: replayed with its old clock, it would be dead-lettered again at once.
    headers = {"x-reason": "store_outage_too_long", "x-store-outage-since": 1_700_000_000_000, "x-custom": "kept"}
    replayed = replay_properties(pika.BasicProperties(headers=headers), now=NOW)
    assert "x-store-outage-since" not in (replayed.headers or {})
    assert (replayed.headers or {})["x-custom"] == "kept"


def hook(**kw: Any) -> WebhookConfig:
    base: dict[str, Any] = {
        "id": "2621",
        "name": "invoice-pipeline",
        "uri": "https://hooks.example.com/docspace/webhook",
        "enabled": True,
        "ssl": True,
        "triggers": 384,
        "created_on": NOW - timedelta(days=30),
        "last_success_on": NOW - timedelta(hours=1),
        "last_failure_on": None,
        "last_failure_content": None,
        "last_status": 200,
    }
    return WebhookConfig(**{**base, **kw})


@pytest.mark.parametrize(
    ("config", "status", "words"),
    [
        (hook(), "ok", "last success"),
        (hook(enabled=False), "fail", "disabled"),
        (hook(triggers=512), "fail", "file.updated"),
        (hook(last_failure_on=NOW - timedelta(minutes=5), last_failure_content="502"), "warn", "failed"),
        (
            hook(last_success_on=NOW - timedelta(days=2), last_failure_on=NOW - timedelta(minutes=5)),
            "fail",
            "DocSpace disables it in about 1d",
        ),
        (hook(uri="https://elsewhere.example.com/hook"), "fail", "no webhook registered"),
    ],
)
def test_the_webhook_verdict(config: WebhookConfig, status: str, words: str) -> None:
    check = _check_webhook([config], None, NOW)
    assert check.status == status and words in check.detail, check


@pytest.mark.parametrize(
    ("last_run", "status", "words"),
    [
        (None, "warn", "no reconcile run recorded"),
        ({"finished_at": (NOW - timedelta(minutes=2)).isoformat(), "webhook": "enabled", "recovered": {"room_scan": 2}},
         "ok", "2 invoices announced by the room scan"),
        ({"finished_at": (NOW - timedelta(minutes=16)).isoformat(), "webhook": "enabled"}, "fail", "3 intervals"),
        ({"finished_at": NOW.isoformat(), "error": "docspace_unavailable: 503"}, "fail", "failed: docspace_"),
        ({"finished_at": NOW.isoformat(), "findings": [{"kind": "room", "ref": "100", "what": "acme",
          "action": "not scanned", "detail": "docspace_access_denied: 403"}]}, "warn", "acme (100): docspace_access"),
    ],
)  # fmt: skip
def test_doctor_reports_the_reconcilers_last_run(last_run: dict | None, status: str, words: str) -> None:
    check = check_reconciler(last_run, 300, now=NOW)
    assert check.status == status and words in check.detail, check
