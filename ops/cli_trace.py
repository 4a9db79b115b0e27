"""``invoice-pipeline trace``: one file's decisions from the journal, oldest first, and what to do about it.

The journal answers most traces, so this module imports only what reading it takes; the broker client and the
DocSpace client (the dead-letter queues and the delivery log, searched when the journal knows nothing) are
imported where they are used: a trace by file id starts in half the time (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import Field, ValidationError
from rich.markup import escape
from rich.table import Table

from ops.cli_common import EXIT_PROBLEM, console, load_settings
from ops.delivery_log import DEFAULT_MAX_ROWS, DeliveryLogSearch, WebhookChoice, not_searched, search_delivery_log
from ops.trace import FIND_LIMIT, Trace, clock, details, trace
from shared.config.settings import DocSpaceSettings
from shared.journal.record import Decision
from shared.journal.settings import JournalStoreSettings
from shared.journal.store import JournalUnavailable, Match
from shared.journal.wiring import journal_store

if TYPE_CHECKING:
    from ops.dead_letters import DeadLetter


def trace_command(
    term: Annotated[
        str, typer.Argument(metavar="TERM", help="a file id, invoice id, DocSpace event id or part of the file's title")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of tables")] = False,
    dlq: Annotated[
        bool, typer.Option("--dlq/--no-dlq", help="when the journal knows nothing, look in the dead-letter queues")
    ] = True,
    docspace_log: Annotated[
        bool,
        typer.Option(
            "--delivery-log/--no-delivery-log",
            help="when the journal knows nothing, look in DocSpace's delivery log (needs DOCSPACE_API_HOST and "
            "DOCSPACE_API_KEY; reads at most --log-rows of the newest deliveries)",
        ),
    ] = True,
    log_rows: Annotated[
        int, typer.Option("--log-rows", min=1, max=10_000, help="newest deliveries searched, 100 per API call")
    ] = DEFAULT_MAX_ROWS,
) -> None:
    """What happened to a file: its timeline from the decision journal, then a one-line verdict.

    Several files match a title fragment: a table to choose from (trace the file id). Nothing in the journal:
    the dead-letter queues and DocSpace's delivery log are searched for it.
    """
    settings = load_settings(JournalStoreSettings)
    now = datetime.now(UTC)
    try:
        store = journal_store(settings)
    except JournalUnavailable as exc:
        console(stderr=True).print(f"[red]the journal does not answer:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_PROBLEM) from None
    try:
        found = trace(
            term,
            store=store,
            now=now,
            dead_letters=_dead_letters(settings) if dlq else None,
            delivery_log=_delivery_log(log_rows) if docspace_log else None,
        )
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
        import pika.exceptions

        from ops.broker_access import broker_parameters, topology
        from ops.dead_letters import DeadLetterQueues
        from shared.broker.topology import STAGES

        queues = DeadLetterQueues(broker_parameters(settings), topology(settings))
        letters: list[DeadLetter] = []
        try:
            for stage in STAGES:
                letters += [d for d, _ in queues.sweep(stage, lambda _d: "keep")]
        except (pika.exceptions.AMQPError, OSError) as exc:
            console(stderr=True).print(f"[yellow]the dead-letter queues could not be read:[/yellow] {escape(str(exc))}")
        return letters

    return read


class DeliveryLogSettings(DocSpaceSettings):
    """What reading DocSpace's delivery log takes: the portal and key, and which webhook is the pipeline's."""

    docspace_webhook_url: str | None = Field(
        default=None,
        description="the URL the pipeline's webhook points at; unset → the webhook whose URL ends in "
        "`/docspace/webhook`",
    )
    docspace_webhook_id: str | None = Field(default=None, description="or the webhook's id in DocSpace")


def _delivery_log(max_rows: int) -> Callable[[str], DeliveryLogSearch]:
    def search(term: str) -> DeliveryLogSearch:
        from ingress.settings import WEBHOOK_PATH
        from shared.core.errors import StageError
        from shared.docspace.admin import PortalAdmin
        from shared.runtime.wiring import docspace_client

        try:
            settings = DeliveryLogSettings()
        except ValidationError as exc:
            names = sorted({str(error["loc"][0]).upper() for error in exc.errors() if error.get("loc")})
            return not_searched(f"DocSpace is not configured ({', '.join(names) or 'settings invalid'})")
        client = docspace_client(settings, pool_size=1, process="trace-cli")
        try:
            return search_delivery_log(
                term,
                portal=PortalAdmin(client.transport),
                webhook=WebhookChoice(WEBHOOK_PATH, settings.docspace_webhook_url, settings.docspace_webhook_id),
                max_rows=max_rows,
            )
        except StageError as exc:
            return not_searched(f"DocSpace did not answer: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            client.close()

    return search


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
    logged = found.delivery_log
    if logged is not None:
        out.print(f"DocSpace's delivery log: {escape(logged.note)}" + ("" if logged.searched else " (not searched)"))
        for d in logged.deliveries:
            answer = "no answer" if d.status == 0 else f"HTTP {d.status}"
            when = clock(d.created, now) if d.created else "-"
            title = f" {d.title!r}" if d.title else ""
            out.print(escape(f"  delivery {d.log_id}: {d.trigger} of file {d.file_id}{title} at {when}, {answer}"))
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
        # Added after the first release: scripts that do not know this key are unaffected.
        "delivery_log": None
        if found.delivery_log is None
        else {
            "searched": found.delivery_log.searched,
            "note": found.delivery_log.note,
            "rows_searched": found.delivery_log.rows_searched,
            "deliveries": [
                {
                    "log_id": d.log_id,
                    "trigger": d.trigger,
                    "created": d.created.isoformat() if d.created else None,
                    "status": d.status,
                    "file_id": d.file_id,
                    "event_id": d.event_id,
                    "title": d.title,
                }
                for d in found.delivery_log.deliveries
            ],
        },
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
