"""``invoice-pipeline dlq``: list, show, replay and purge dead letters (see ops/dead_letters.py for how)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ops.broker_access import broker_parameters, topology
from ops.cli_common import EXIT_PROBLEM, ago, console, load_settings, parse_since, stages
from ops.dead_letters import (
    DeadLetter,
    DeadLetterQueues,
    Decision,
    LetterFilter,
    list_letters,
    purge_letters,
    replay_letters,
)
from shared.config.settings import CommonSettings
from shared.core.control_chars import printable

app = typer.Typer(
    help="Dead letters: messages a stage gave up on, kept with their reason until replayed or purged.",
    no_args_is_help=True,
)

StageOption = Annotated[
    str | None, typer.Option("--stage", "-s", help="classifier, mover, notifier.email or notifier.pipeline")
]
ReasonOption = Annotated[str | None, typer.Option("--reason", "-r", help="only this reason, e.g. docspace_not_found")]


def _queues() -> DeadLetterQueues:
    settings = load_settings(CommonSettings)
    return DeadLetterQueues(broker_parameters(settings), topology(settings))


def _sweep(
    queues: DeadLetterQueues, names: list[str], decide: Callable[[DeadLetter], Decision], verb: str
) -> list[tuple[DeadLetter, Decision]]:
    """Sweep each stage's queue with a progress bar (a queue can hold many thousands)."""
    done: list[tuple[DeadLetter, Decision]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        for stage in names:
            task = progress.add_task(f"{verb} {stage}", total=None)
            done += queues.sweep(stage, decide, progress=_reporter(progress, task))
    return done


def _reporter(progress: Progress, task: TaskID) -> Callable[[int, int], None]:
    """What ``sweep`` calls after each message: move ``task``'s bar."""
    return lambda n, total: progress.update(task, completed=n, total=total)


def _table(letters: list[DeadLetter], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("id", "stage", "reason", "attempts", "last failure", "event", "file", "invoice"):
        table.add_column(name, no_wrap=name in {"id", "stage", "reason"}, overflow="fold")
    for d in letters:
        # Every cell comes from the message's headers, which anyone who can publish may write: a "[/x]" in
        # one would be read as markup, and rich raises on a closing tag that was never opened; an escape
        # sequence would drive the operator's terminal.
        table.add_row(
            *(
                _shown(cell)
                for cell in (
                    d.id,
                    d.stage,
                    d.reason,
                    d.attempts if d.attempts is not None else "-",
                    ago(d.last_failure),
                    d.event_id or "-",
                    d.file_id or "-",
                    d.invoice_id or "-",
                )
            )
        )
    return table


@app.command("list")
def list_(
    stage: StageOption = None,
    reason: ReasonOption = None,
    since: Annotated[str | None, typer.Option(help="last failure at or after: 30m, 2h, 7d or an ISO time")] = None,
) -> None:
    """List dead letters as a table (nothing is removed: each message is put back in order)."""
    queues = _queues()
    letters = list_letters(
        lambda names, decide, verb: _sweep(queues, names, decide, verb),
        stages(stage),
        LetterFilter(reason=reason, since=parse_since(since)),
    )
    out = console()
    if not letters:
        out.print("No dead letters" + (" match" if reason or since else "") + ".")
        return
    out.print(_table(letters, f"{len(letters)} dead letter(s)"))
    out.print("Details: invoice-pipeline dlq show ID    Replay: invoice-pipeline dlq replay --stage S [--reason R]")


@app.command()
def show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="the id from 'dlq list' (a unique prefix is enough)")],
    stage: StageOption = None,
) -> None:
    """Show one dead letter: its properties, every header and the body."""
    queues = _queues()
    found = list_letters(
        lambda names, decide, verb: _sweep(queues, names, decide, verb), stages(stage), LetterFilter(ident=ident)
    )
    out = console()
    if not found:
        out.print(f"[red]No dead letter with id {escape(ident)}.[/red] See: invoice-pipeline dlq list")
        raise typer.Exit(EXIT_PROBLEM)
    if len({d.id for d in found}) > 1:
        out.print(f"[yellow]{escape(ident)} is ambiguous:[/yellow] " + ", ".join(sorted({d.id for d in found})))
        raise typer.Exit(EXIT_PROBLEM)
    letter = found[0]
    copies = f" ({len(found)} copies)" if len(found) > 1 else ""
    out.print(
        f"[bold]{_shown(letter.id)}[/bold]{copies}  stage {_shown(letter.stage)}  "
        f"reason [bold]{_shown(letter.reason)}[/bold]"
    )
    meta = Table(show_header=False, box=None)
    for name, value in (
        ("message id", letter.message_id),
        ("routing key", letter.routing_key),
        ("content type", letter.content_type),
        ("attempts", letter.attempts),
        ("first failure", ago(letter.first_failure)),
        ("last failure", ago(letter.last_failure)),
        ("error", letter.error),
    ):
        meta.add_row(name, _shown(value if value is not None else "-"))
    out.print(meta)
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name", no_wrap=True)
    headers.add_column("value", overflow="fold")
    for name, value in sorted(letter.headers.items()):
        headers.add_row(_shown(name), _shown(_render(value)))
    out.print(headers)
    out.print("[bold]body[/bold]")
    out.print(printable(_body(letter.body)), markup=False, highlight=False)


def _shown(value: object) -> str:
    """A value from a dead letter as inert text: no markup for rich, no escape sequence for the terminal."""
    return escape(printable(str(value)))


def _render(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _body(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", "replace")


@app.command()
def replay(
    stage: StageOption = None,
    reason: ReasonOption = None,
    ident: Annotated[str | None, typer.Option("--id", help="only this dead letter (id or unique prefix)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be replayed; change nothing")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="replay at most N messages")] = None,
) -> None:
    """Move dead letters back to their stage's work queue, attempt counter reset.

    Each message is published (and confirmed by the broker) before it leaves the dead-letter queue. Replaying is
    safe to repeat: the stages are idempotent, so an invoice already handled is recognised and not handled twice.
    """
    queues = _queues()
    chosen = replay_letters(
        lambda names, decide, verb: _sweep(queues, names, decide, verb),
        stages(stage),
        LetterFilter(reason=reason, ident=ident),
        limit=limit,
        dry_run=dry_run,
    )
    out = console()
    if not chosen:
        out.print("Nothing to replay.")
        return
    if dry_run:
        out.print(_table(chosen, f"Would replay {len(chosen)} dead letter(s) (dry run, nothing changed)"))
        return
    out.print(_table(chosen, f"Replayed {len(chosen)} dead letter(s) to their work queues"))
    out.print("Watch them: stage_messages_total in /metrics, or invoice-pipeline dlq list for any that fail again.")


@app.command()
def purge(
    stage: StageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete dead letters for good (asks first). Consider 'dlq list' and 'dlq replay' before this.

    Exactly the number confirmed is deleted, oldest first: dead letters that arrive while the question waits
    are left for the next look.
    """
    names = stages(stage)
    queues = _queues()
    depths = {name: queues.depth(name) for name in names}
    total = sum(depths.values())
    out = console()
    if total == 0:
        out.print("No dead letters to purge.")
        return
    summary = ", ".join(f"{name}: {count}" for name, count in depths.items() if count)
    if not yes and not typer.confirm(f"Delete {total} dead letter(s) for good ({summary})?", default=False):
        out.print("Nothing purged.")
        raise typer.Exit(EXIT_PROBLEM)
    removed = purge_letters(queues, depths)
    out.print(f"Purged {sum(removed.values())} dead letter(s): " + ", ".join(f"{n}: {c}" for n, c in removed.items()))
