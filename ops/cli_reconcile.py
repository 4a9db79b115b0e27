"""``invoice-pipeline reconcile``: run one reconcile cycle now (or a backfill with ``--since``), show what it did."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from consumers.reconciler.announce import broker_announcer
from consumers.reconciler.context import Replica
from consumers.reconciler.cycle import reconcile as reconcile_cycle
from consumers.reconciler.model import Announcement, CycleReport
from consumers.reconciler.settings import CLI_MAX_CALLS, MIN_CALLS_PER_CYCLE, ReconcilerSettings, knobs_for
from ops.broker_access import broker_parameters, topology
from ops.cli_common import EXIT_CONFIG, EXIT_PROBLEM, console, load_settings, parse_since
from shared.broker.publisher import Publisher
from shared.core.rules import RulesError
from shared.docspace.admin import PortalAdmin
from shared.runtime.wiring import checkpoints, docspace_client, idempotency_store

ACTION_STYLE = {
    "recovered": "green",
    "announced": "green",
    "re-enabled": "bold green",
    "enabled": "green",
    "still disabled": "bold red",
    "missing": "bold red",
}


def reconcile(
    since: Annotated[
        str | None,
        typer.Option(
            help="also announce invoices uploaded since then (30m, 2h, 3d or an ISO date), even from before the "
            "reconciler's first run; the service's own checkpoints are left as they are"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be recovered and announced; change nothing")
    ] = False,
    max_calls: Annotated[
        int,
        typer.Option(
            min=MIN_CALLS_PER_CYCLE,
            help="stop after this many DocSpace calls and say so (a run again goes on from where it stopped)",
        ),
    ] = CLI_MAX_CALLS,
) -> None:
    """Recover what DocSpace could not deliver, now: re-enable the webhook, replay failed deliveries from
    DocSpace's log, announce invoices in the watched rooms that no delivery announced."""
    settings = load_settings(ReconcilerSettings)
    err = console(stderr=True)
    try:
        rules = settings.rules()
    except RulesError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(EXIT_CONFIG) from None
    since_at = parse_since(since)
    publisher: Publisher | None = None
    if not dry_run:
        publisher = Publisher(broker_parameters(settings), topology=topology(settings)).start()
        if not publisher.wait_connected(15):
            publisher.stop()
            err.print("[red]cannot reach the broker[/red]: check AMQP_URL (nothing was changed)")
            raise typer.Exit(EXIT_PROBLEM)
    announce = broker_announcer(publisher, topology(settings).events_exchange) if publisher else _never
    client = docspace_client(settings, pool_size=2, per_minute=settings.budget_per_minute, process="reconciler-cli")
    store, marks = idempotency_store(settings), checkpoints(settings)
    try:
        with Progress(
            TextColumn("{task.description:<24}"), BarColumn(), TaskProgressColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task("webhook", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            replica = Replica(
                portal=PortalAdmin(client.transport),
                rules=rules,
                store=store,
                checkpoints=marks,
                announce=announce,
                knobs=knobs_for(settings, capped=False, max_calls=max_calls),
                owner=f"cli-{uuid.uuid4().hex[:12]}",
            )
            report = reconcile_cycle(
                replica,
                dry_run=dry_run,
                since=since_at,
                force=True,
                progress=progress,
            )
    finally:
        client.close()
        store.close()
        marks.close()
        if publisher is not None:
            publisher.stop()
    _print(report, since=since)
    if report.error is not None or report.not_run is not None:
        raise typer.Exit(EXIT_PROBLEM)


def _never(item: Announcement) -> None:
    raise AssertionError(f"a dry run announced {item.event_id}")  # reconcile() never calls it in a dry run


def _print(report: CycleReport, *, since: str | None) -> None:
    out = console()
    if report.not_run is not None:
        out.print(f"[yellow]Nothing done:[/yellow] {report.not_run}; try again in a moment.")
        return
    title = "reconcile" + (" --dry-run" if report.dry_run else "") + (f" --since {since}" if since else "")
    table = Table(title=title, title_justify="left")
    for column in ("kind", "id", "what", "action", "detail"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        style = ACTION_STYLE.get(f.action, "yellow" if f.action.startswith("would") else "")
        action = f"[{style}]{escape(f.action)}[/{style}]" if style else escape(f.action)
        table.add_row(f.kind, escape(f.ref), escape(f.what), action, escape(f.detail))
    out.print(table)
    verb = "would be" if report.dry_run else "were"
    recovered = report.recovered
    out.print(
        f"webhook: {report.webhook} · {recovered['delivery_log']} failed deliveries recovered from DocSpace's log, "
        f"{recovered['room_scan']} invoices announced by the room scan"
        + (f" (as listed, none {verb} sent)" if report.dry_run else "")
    )
    out.print(
        f"looked at {report.deliveries_seen} failed deliveries and {report.files_scanned} files in "
        f"{report.rooms_scanned}/{report.rooms_total} rooms with {report.calls} DocSpace calls"
    )
    if report.skipped:
        out.print(
            "left alone: " + ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(report.skipped.items()))
        )
    if report.error is not None:
        out.print(f"[bold red]stopped:[/bold red] {escape(report.error)} (the progress made is kept)")
