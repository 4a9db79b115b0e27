"""``invoice-pipeline trace``: one file's decisions from the journal, oldest first, and what to do about it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import pika.exceptions
import typer
from rich.markup import escape
from rich.table import Table

from ops.broker_access import broker_parameters, topology
from ops.cli_common import EXIT_PROBLEM, console, load_settings
from ops.dead_letters import DeadLetter, DeadLetterQueues
from ops.trace import FIND_LIMIT, Trace, clock, details, trace
from shared.broker.topology import STAGES
from shared.journal.record import Decision
from shared.journal.settings import JournalStoreSettings
from shared.journal.store import JournalUnavailable, Match
from shared.journal.wiring import journal_store


def trace_command(
    term: Annotated[
        str, typer.Argument(metavar="TERM", help="a file id, invoice id, DocSpace event id or part of the file's title")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of tables")] = False,
    dlq: Annotated[
        bool, typer.Option("--dlq/--no-dlq", help="when the journal knows nothing, look in the dead-letter queues")
    ] = True,
) -> None:
    """What happened to a file: its timeline from the decision journal, then a one-line verdict.

    Several files match a title fragment: a table to choose from (trace the file id). Nothing in the journal:
    the dead-letter queues are searched for the id.
    """
    settings = load_settings(JournalStoreSettings)
    now = datetime.now(UTC)
    try:
        store = journal_store(settings)
    except JournalUnavailable as exc:
        console(stderr=True).print(f"[red]the journal does not answer:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_PROBLEM) from None
    try:
        found = trace(term, store=store, now=now, dead_letters=_dead_letters(settings) if dlq else None)
    except JournalUnavailable as exc:
        console(stderr=True).print(f"[red]the journal does not answer:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_PROBLEM) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(_as_json(found), ensure_ascii=False, indent=2))
    else:
        _print(found, now)
    if found.verdict is not None and found.verdict.state == "not_found":
        raise typer.Exit(EXIT_PROBLEM)


def _dead_letters(settings: JournalStoreSettings) -> Any:
    def read() -> list[DeadLetter]:
        queues = DeadLetterQueues(broker_parameters(settings), topology(settings))
        letters: list[DeadLetter] = []
        try:
            for stage in STAGES:
                letters += [d for d, _ in queues.sweep(stage, lambda _d: "keep")]
        except (pika.exceptions.AMQPError, OSError) as exc:
            console(stderr=True).print(f"[yellow]the dead-letter queues could not be read:[/yellow] {escape(str(exc))}")
        return letters

    return read


def _print(found: Trace, now: datetime) -> None:
    out = console()
    if len(found.matches) > 1:
        out.print(_choices(found.matches, found.term, now))
        out.print("Trace one of them: invoice-pipeline trace FILE_ID")
        return
    if found.matches:
        match = found.matches[0]
        subject = f"file {match.file_id}" if match.file_id else f"event {match.event_id}"
        title = f" {match.title!r}" if match.title else ""
        out.print(f"[bold]{escape(subject + title)}[/bold]  ({len(found.timeline)} decisions)")
        out.print(_timeline(found.timeline, now))
    for letter in found.dead_letters:
        out.print(f"dead letter {escape(letter.id)} in {escape(letter.stage)}.dlq: {escape(letter.reason)}")
    if found.verdict is not None:
        out.print(f"[bold]{escape(found.verdict.text)}[/bold]")


def _choices(matches: list[Match], term: str, now: datetime) -> Table:
    many = (
        f"the {len(matches)} newest files that match" if len(matches) >= FIND_LIMIT else f"{len(matches)} files match"
    )
    table = Table(title=f"{many} {term!r}", title_justify="left")
    for name in ("file id", "title", "decisions", "first", "last", "matched by"):
        table.add_column(name, overflow="fold")
    for m in matches:
        cells = (m.file_id or f"(event {m.event_id})", m.title or "-", m.decisions, clock(m.first_at, now))
        table.add_row(*(escape(str(c)) for c in (*cells, clock(m.last_at, now), m.matched_by)))
    return table


def _timeline(timeline: list[Decision], now: datetime) -> Table:
    table = Table(show_edge=False)
    for name in ("time", "stage", "outcome", "reason", "details"):
        table.add_column(name, overflow="fold", no_wrap=name in {"time", "stage"})
    for d in timeline:
        # Every cell may come from a webhook's payload (a title, a reason word): never read as markup.
        table.add_row(*(escape(c) for c in (clock(d.at, now), d.stage, d.outcome, d.reason or "", details(d, now))))
    return table


def _as_json(found: Trace) -> dict[str, Any]:
    verdict = found.verdict
    return {
        "term": found.term,
        "matches": [
            {
                "file_id": m.file_id,
                "event_id": m.event_id,
                "title": m.title,
                "decisions": m.decisions,
                "first_at": m.first_at.isoformat(),
                "last_at": m.last_at.isoformat(),
                "matched_by": m.matched_by,
            }
            for m in found.matches
        ],
        "timeline": [d.model_dump(mode="json", exclude_none=True) for d in found.timeline],
        "dead_letters": [
            {"id": d.id, "stage": d.stage, "reason": d.reason, "file_id": d.file_id, "invoice_id": d.invoice_id}
            for d in found.dead_letters
        ],
        "verdict": None
        if verdict is None
        else {
            "state": verdict.state,
            "text": verdict.text,
            "stage": verdict.stage,
            "reason": verdict.reason,
            "since": verdict.since.isoformat() if verdict.since else None,
            "command": verdict.command,
        },
    }
