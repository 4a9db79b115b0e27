"""Every ``doctor`` check, each from the settings its process reads from this environment: the CLI and the console.

A settings class that does not validate is a failed check (its problems named, never its values), not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from consumers.classifier.settings import ClassifierSettings
from consumers.notifier.settings import NotifierSettings
from consumers.reconciler.cycle import LAST_RUN, QUARANTINE
from consumers.reconciler.settings import ReconcilerSettings
from ingress.settings import WEBHOOK_PATH, IngressSettings
from ops.broker_access import broker_parameters, topology
from ops.doctor import (
    Check,
    check_broker,
    check_docspace,
    check_ingress_secret,
    check_pipeline,
    check_quarantine,
    check_reconciler,
    check_smtp,
    check_transport,
)
from shared.config.settings import CommonSettings, DocSpaceSettings, explain
from shared.core.errors import StageError
from shared.core.rules import Rules, RulesError
from shared.docspace.admin import PortalAdmin
from shared.docspace.values import WebhookDelivery
from shared.docspace.webhooks import find_pipeline_webhook
from shared.limits.rate_limit import Limiter
from shared.runtime.wiring import checkpoints, docspace_client
from shared.store.idempotency import StoreUnavailable

S = TypeVar("S", bound=BaseSettings)


def run_checks(webhook_url: str | None = None) -> Iterator[Check]:
    """Broker, ingress secret, DocSpace (key, rooms, Incoming folders, webhook), reconciler, SMTP, pipeline."""
    common, error = settings_or_problem(CommonSettings)
    if common is None:
        yield Check("configuration", "fail", error, "fix the broker settings (AMQP_URL, RETRY_DELAYS, ...)")
    else:
        yield from check_broker(broker_parameters(common), topology(common))

    ingress, error = settings_or_problem(IngressSettings)
    if ingress is None:
        yield Check("ingress config", "fail", error, "fix the ingress settings")
    else:
        yield check_ingress_secret(ingress)

    transport_notes: list[str] = []
    docspace, error = settings_or_problem(DocSpaceSettings)
    if docspace is None:
        yield Check("docspace", "fail", error, "set DOCSPACE_API_HOST (https://...) and DOCSPACE_API_KEY")
    else:
        transport_notes += docspace.transport_notes()
        rules = None
        classifier, error = settings_or_problem(ClassifierSettings)
        if classifier is None:
            yield Check("rules", "fail", error, "fix the classifier settings")
        else:
            rules, check = configured_rules(classifier)
            yield check
        with docspace_client(docspace) as client:
            yield from check_docspace(client, PortalAdmin(client.transport), rules, webhook_url)

    yield from reconciler_checks()

    notifier, error = settings_or_problem(NotifierSettings)
    if notifier is None:
        yield Check("notifier config", "fail", error, "fix the notifier settings")
    else:
        yield check_smtp(
            notifier.smtp_host,
            notifier.smtp_port,
            starttls=notifier.smtp_starttls,
            use_ssl=notifier.smtp_ssl,
            timeout=min(notifier.smtp_timeout, 10.0),
        )
        yield check_pipeline(notifier.pipeline_url, timeout=min(notifier.pipeline_timeout, 10.0))
        transport_notes += notifier.transport_notes()
    yield check_transport(transport_notes)


def reconciler_checks() -> Iterator[Check]:
    """The reconciler's last run, and the deliveries it set aside (quarantined), from its checkpoint store."""
    settings, error = settings_or_problem(ReconcilerSettings)
    if settings is None:
        yield Check("reconciler", "skip", error)
        return
    url = settings.idempotency_url.get_secret_value()
    # A diagnosis must not create the store: an SQLite file that is not there means nothing ran here.
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        yield check_reconciler(None, settings.reconcile_interval)
        return
    try:
        marks = checkpoints(settings)
        try:
            last_run = marks.load(LAST_RUN)
            set_aside = marks.quarantined(QUARANTINE)
        finally:
            marks.close()
    except StoreUnavailable as exc:
        yield Check("reconciler", "fail", str(exc), "check IDEMPOTENCY_URL and that the store answers")
        return
    yield check_reconciler(last_run, settings.reconcile_interval)
    yield check_quarantine(set_aside)


def reconciler_last_run(settings: ReconcilerSettings) -> dict[str, Any] | None:
    """The reconciler's last cycle report (what it recovered, what it found), from its checkpoint store."""
    url = settings.idempotency_url.get_secret_value()
    # A diagnosis must not create the store: an SQLite file that is not there means nothing ran here.
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    marks = checkpoints(settings)
    try:
        return marks.load(LAST_RUN)
    finally:
        marks.close()


def configured_rules(settings: ClassifierSettings) -> tuple[Rules | None, Check]:
    try:
        rules = settings.rules()
    except RulesError as exc:
        return None, Check("rules", "fail", str(exc), "see docs/configuration.md, 'Clients and rules'")
    source = settings.invoice_rules_file or "CLIENT_ROOM_ID / MANAGER_EMAIL"
    return rules, Check("rules", "ok", f"{len(rules.clients)} client(s) from {source}")


def settings_or_problem(cls: type[S]) -> tuple[S | None, str]:
    try:
        return cls(), ""
    except ValidationError as exc:
        # Field names and messages only: the input may be a secret.
        return None, "; ".join(line.strip() for line in explain(exc).splitlines())


def webhook_deliveries(count: int = 10) -> tuple[list[WebhookDelivery], str]:
    """DocSpace's latest deliveries of the pipeline's webhook (newest first), or none and why not."""
    settings, error = settings_or_problem(DocSpaceSettings)
    if settings is None:
        return [], error
    with docspace_client(settings) as client:
        portal = PortalAdmin(client.transport)
        try:
            config = find_pipeline_webhook(portal.list_webhooks(), path=WEBHOOK_PATH, url=None)
            if config is None:
                return [], "no webhook registered for a URL ending in " + WEBHOOK_PATH
            return portal.webhook_deliveries(config.id, count=count), ""
        except StageError as exc:
            return [], f"DocSpace did not list the deliveries: {exc}"


NOT_TRACKED = (
    "Not tracked here: IDEMPOTENCY_URL is not Redis, so each process counts only its own writes, in its memory "
    "(each process's docspace_write_quota_used gauge)"
)


@dataclass(frozen=True)
class WriteQuota:
    """DocSpace's write quota on the API key in its current period: ``used`` of ``limit``, or why it is not known."""

    limit: int
    used: int | None
    not_tracked: str | None = None


def write_quota(settings: DocSpaceSettings, shared: Limiter | None) -> WriteQuota:
    """What the key's writes count in Redis (the figure the mover's ``docspace_write_quota_used`` gauge reads).

    ``shared`` is the key's limit in Redis (``shared_rate_limiter``); without one, no process can see the others'
    counts, so the answer says so instead of showing one process's share. A Redis that does not answer raises
    ``StoreUnavailable``.
    """
    limit = settings.docspace_daily_write_quota
    if shared is None:
        return WriteQuota(limit, None, NOT_TRACKED)
    try:
        return WriteQuota(limit, shared.writes_used())
    except redis.RedisError as exc:
        raise StoreUnavailable(f"the shared DocSpace limit in Redis did not answer: {type(exc).__name__}") from exc
