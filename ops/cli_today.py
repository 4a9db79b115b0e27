"""``invoice-pipeline today``: the console's Today page in a terminal (the same function, ops/today.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ops.cli_common import EXIT_PROBLEM, console, load_settings
from ops.today import WINDOWS, Arrivals, Count, arrivals, today, window
from shared.journal.settings import JournalStoreSettings
from shared.journal.store import JournalUnavailable
from shared.journal.wiring import journal_store


def today_command(
    window_name: Annotated[
        str, typer.Option("--window", "-w", help=f"today (since midnight UTC), {', '.join(WINDOWS)}")
    ] = "today",
) -> None:
    """The funnel (deliveries, files, invoices, moved, e-mailed, pipeline called), what was skipped and why,
    what dead-lettered and what waited, and the invoices that arrived per client, from the decision journal."""
    settings = load_settings(JournalStoreSettings)
    since, until, name = window(window_name, datetime.now(UTC))
    try:
        store = journal_store(settings)
        try:
            numbers = today(store, since, until)
            per_client = arrivals(store, since, until)
        finally:
            store.close()
    except JournalUnavailable as exc:
        console(stderr=True).print(f"[red]the journal does not answer:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_PROBLEM) from None
    out = console()
    out.print(f"[bold]{name}[/bold]: {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
    out.print("  ".join(f"{step.label} [bold]{step.count}[/bold]" for step in numbers.funnel))
    for title, rows in (
        ("skipped", numbers.skipped),
        ("dead-lettered", numbers.dead_lettered),
        ("parked or retried", numbers.waiting),
    ):
        if rows:
            out.print(_table(title, rows))
    if per_client.clients:
        out.print(_clients(per_client))


def _clients(per_client: Arrivals) -> Table:
    table = Table(title="invoices arrived, per client", title_justify="left")
    table.add_column("client")
    table.add_column("invoices", justify="right")
    for client, count in per_client.clients:
        table.add_row(escape(client or "-"), str(count))  # a client's name comes from the rules, through the broker
    return table


def _table(title: str, rows: list[Count]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("stage", "outcome", "reason", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for c in rows:
        # A reason is a word of the outcome vocabulary, but the journal's input came through the broker: no markup.
        table.add_row(escape(c.stage), escape(c.outcome), escape(c.reason or "-"), str(c.count))
    return table
