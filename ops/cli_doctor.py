"""``invoice-pipeline doctor``: run every check, print one table and a verdict, exit 1 when something is broken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.markup import escape
from rich.table import Table

from consumers.classifier.settings import ClassifierSettings
from consumers.notifier.settings import NotifierSettings
from consumers.reconciler.handler import LAST_RUN, QUARANTINE
from consumers.reconciler.settings import ReconcilerSettings
from ingress.settings import IngressSettings
from ops.cli_common import EXIT_PROBLEM, broker_parameters, console, topology
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
from shared.core.rules import Rules, RulesError
from shared.docspace.admin import PortalAdmin
from shared.runtime.wiring import checkpoints, docspace_client
from shared.store.idempotency import StoreUnavailable

S = TypeVar("S", bound=BaseSettings)

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "off": "dim", "skip": "dim"}


def doctor(
    webhook_url: Annotated[
        str | None,
        typer.Option(help="the public URL the webhook should point at (default: any URL ending in /docspace/webhook)"),
    ] = None,
) -> None:
    """Check the broker, DocSpace (key, rooms, Incoming folders, webhook), the reconciler, SMTP and the pipeline URL."""
    out = console()
    with console(stderr=True).status("checking the pipeline's dependencies..."):
        checks = list(_run(webhook_url))
    table = Table(title="invoice-pipeline doctor", title_justify="left")
    for column in ("component", "status", "detail", "fix"):
        table.add_column(column, overflow="fold", no_wrap=column in {"component", "status"})
    for c in checks:
        style = STYLE[c.status]
        table.add_row(escape(c.component), f"[{style}]{c.status}[/{style}]", escape(c.detail), escape(c.fix))
    out.print(table)
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    if failed:
        out.print(
            f"[bold red]NOT READY[/bold red]: {len(failed)} problem(s): " + ", ".join(c.component for c in failed)
        )
        raise typer.Exit(EXIT_PROBLEM)
    note = f" ({len(warned)} warning(s))" if warned else ""
    out.print(f"[bold green]READY[/bold green]: every configured dependency answers{note}.")


def _run(webhook_url: str | None) -> Iterator[Check]:
    common, error = _settings(CommonSettings)
    if common is None:
        yield Check("configuration", "fail", error, "fix the broker settings (AMQP_URL, RETRY_DELAYS, ...)")
    else:
        yield from check_broker(broker_parameters(common), topology(common))

    ingress, error = _settings(IngressSettings)
    if ingress is None:
        yield Check("ingress config", "fail", error, "fix the ingress settings")
    else:
        yield check_ingress_secret(ingress)

    transport_notes: list[str] = []
    docspace, error = _settings(DocSpaceSettings)
    if docspace is None:
        yield Check("docspace", "fail", error, "set DOCSPACE_API_HOST (https://...) and DOCSPACE_API_KEY")
    else:
        transport_notes += docspace.transport_notes()
        rules = None
        classifier, error = _settings(ClassifierSettings)
        if classifier is None:
            yield Check("rules", "fail", error, "fix the classifier settings")
        else:
            rules, check = _rules(classifier)
            yield check
        with docspace_client(docspace) as client:
            yield from check_docspace(client, PortalAdmin(client.transport), rules, webhook_url)

    yield from _reconciler()

    notifier, error = _settings(NotifierSettings)
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


def _reconciler() -> Iterator[Check]:
    settings, error = _settings(ReconcilerSettings)
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


def _rules(settings: ClassifierSettings) -> tuple[Rules | None, Check]:
    try:
        rules = settings.rules()
    except RulesError as exc:
        return None, Check("rules", "fail", str(exc), "see docs/configuration.md, 'Clients and rules'")
    source = settings.invoice_rules_file or "CLIENT_ROOM_ID / MANAGER_EMAIL"
    return rules, Check("rules", "ok", f"{len(rules.clients)} client(s) from {source}")


def _settings(cls: type[S]) -> tuple[S | None, str]:
    try:
        return cls(), ""
    except ValidationError as exc:
        # Field names and messages only: the input may be a secret.
        return None, "; ".join(line.strip() for line in explain(exc).splitlines())
