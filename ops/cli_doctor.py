"""``invoice-pipeline doctor``: run every check, print one table and a verdict, exit 1 when something is broken."""

from __future__ import annotations

from typing import Annotated, TypeVar

import typer
from pydantic_settings import BaseSettings
from rich.markup import escape
from rich.table import Table

from ops.checkup import run_checks
from ops.cli_common import EXIT_PROBLEM, console

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
        checks = list(run_checks(webhook_url))
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
