"""``invoice-pipeline dlq``: list, show, replay and purge dead letters (see ops/dead_letters.py for how)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ops.broker_access import broker_parameters, topology
from ops.cli_common import EXIT_PROBLEM, ago, console, load_settings, parse_since, stages
from ops.dead_letters import DeadLetter, DeadLetterQueues, Decision, LetterFilter, list_letters
from ops.dlq_actions import Audit, Pace, Selection, counts_of, operator_name, purge_dead_letters, replay_dead_letters
from shared.broker.publisher import Publisher
from shared.config.settings import CommonSettings
from shared.core.control_chars import printable
from shared.journal.broker import BrokerJournal
from shared.journal.port import NoJournal
from shared.runtime.logging import configure_logging

app = typer.Typer(
    help="Dead letters: messages a stage gave up on, kept with their reason until replayed or purged.",
    no_args_is_help=True,
)

StageOption = Annotated[
    str | None, typer.Option("--stage", "-s", help="classifier, mover, notifier.email or notifier.pipeline")
]
DEFAULT_REPLAY_RATE = 20.0  # messages/s: a backlog of 1,000 is back in under a minute, at a pace DocSpace takes
# --rate's floor: the pause between two messages is slept inside the sweep, which holds its broker connection; at
# most 10 s keeps it well inside the heartbeat.
MIN_REPLAY_RATE = 0.1
AUDIT_CONNECT_TIMEOUT = 15.0
AUDIT_FLUSH_TIMEOUT = 10.0

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
    until: Annotated[str | None, typer.Option(help="last failure before: 30m, 2h, 7d (ago) or an ISO time")] = None,
    client: Annotated[str | None, typer.Option(help="only this client's invoices")] = None,
) -> None:
    """List dead letters as a table (nothing is removed: each message is put back in order)."""
    names = stages(stage)
    selection = Selection(tuple(names), reason, parse_since(since), parse_since(until, option="--until"), client=client)
    letters = [d for d, _ in _sweep(_queues(), names, lambda _d: "keep", "reading") if selection.matches(d)]
    out = console()
    if not letters:
        out.print("No dead letters" + (" match" if reason or since or until or client else "") + ".")
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


@dataclass(frozen=True)
class OperatorOptions:
    """``dlq``'s own options, given before the sub-command: who acts, and how fast a replay goes."""

    actor: str | None = None
    rate: float = DEFAULT_REPLAY_RATE


# Set by the group's callback, which click runs before every sub-command of each invocation: one value per run.
_OPTIONS: ContextVar[OperatorOptions | None] = ContextVar("dlq_operator_options", default=None)


@app.callback()
def operator_options(
    actor: Annotated[
        str | None, typer.Option("--actor", help="who acts, for the audit records (default: your OS user name)")
    ] = None,
    rate: Annotated[
        float,
        typer.Option(min=MIN_REPLAY_RATE, help="replay: messages sent back per second, at most (spares the stages)"),
    ] = DEFAULT_REPLAY_RATE,
) -> None:
    """Dead letters: messages a stage gave up on, kept with their reason until replayed or purged."""
    _OPTIONS.set(OperatorOptions(actor, rate))


def _operator() -> OperatorOptions:
    return _OPTIONS.get() or OperatorOptions()


@contextmanager
def _audit(settings: CommonSettings, actor: str | None) -> Iterator[Audit]:
    """An audit trail to the decision journal over the CLI's own publisher; says so when records did not get there."""
    # The publisher logs (connected, a record dropped): to stderr, warnings only, so stdout stays the command's own.
    configure_logging(fmt=settings.log_format, level="WARNING")
    publisher = Publisher(broker_parameters(settings), topology=topology(settings)).start()
    if not publisher.wait_connected(AUDIT_CONNECT_TIMEOUT):
        publisher.stop()
        console(stderr=True).print("[red]cannot reach the broker[/red]: check AMQP_URL (nothing was changed)")
        raise typer.Exit(EXIT_PROBLEM)
    journal = BrokerJournal(publisher, topology(settings).journal_exchange, process="invoice-pipeline-cli")
    try:
        yield Audit(journal, operator_name(actor))
    finally:
        missing = journal.close(AUDIT_FLUSH_TIMEOUT)
        publisher.stop()
        if missing:
            console(stderr=True).print(
                f"[yellow]{missing} audit record(s) did not reach the journal[/yellow] (the broker did not confirm "
                "them); the action itself is done"
            )


@app.command()
def replay(
    stage: StageOption = None,
    reason: ReasonOption = None,
    since: Annotated[str | None, typer.Option(help="last failure at or after: 30m, 2h, 7d or an ISO time")] = None,
    until: Annotated[str | None, typer.Option(help="last failure before: 30m, 2h, 7d (ago) or an ISO time")] = None,
    client: Annotated[
        str | None, typer.Option(help="only this client's invoices (mover and notifier dead letters name it)")
    ] = None,
    ident: Annotated[str | None, typer.Option("--id", help="only this dead letter (id or unique prefix)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be replayed and show a sample; change nothing")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="replay at most N messages")] = None,
) -> None:
    """Move dead letters back to their stage's work queue, attempt counter reset; every filter given must hold.

    Each message is published (and confirmed by the broker) before it leaves the dead-letter queue. Replaying is
    safe to repeat: the stages are idempotent, so an invoice already handled is recognised and not handled twice.
    The decision journal gets one audit record for the operation (who, when, the filter, how many) and one per
    message replayed; `invoice-pipeline trace OPERATION_ID` shows the operation.
    """
    selection = Selection(
        stages=tuple(stages(stage)),
        reason=reason,
        since=parse_since(since),
        until=parse_since(until, option="--until"),
        client=client,
        ident=ident,
        limit=limit,
    )
    settings = load_settings(CommonSettings)
    queues = DeadLetterQueues(broker_parameters(settings), topology(settings))
    options = _operator()
    out = console()
    with _replay_progress(dry_run) as progress:
        if dry_run:
            audit = Audit(NoJournal(), operator_name(options.actor))
            report = replay_dead_letters(
                selection, queues=queues, audit=audit, pace=Pace(options.rate), dry_run=True, progress=progress
            )
        else:
            with _audit(settings, options.actor) as audit:
                report = replay_dead_letters(
                    selection, queues=queues, audit=audit, pace=Pace(options.rate), progress=progress
                )
    if not report.matched:
        out.print(f"Nothing to replay ({escape(report.scope)}).")
        return
    if dry_run:
        shown = f", the first {len(report.sample)} below" if len(report.sample) < report.matched else ""
        out.print(
            _table(
                report.sample,
                f"Would replay {report.matched} dead letter(s){shown} (dry run, nothing changed): {report.scope}",
            )
        )
        return
    out.print(_table(report.replayed, f"Replayed {report.matched} dead letter(s) to their work queues"))
    out.print(
        f"Audited as operation {escape(report.operation)}: invoice-pipeline trace {escape(report.operation)}\n"
        "Watch them: stage_messages_total in /metrics, or invoice-pipeline dlq list for any that fail again."
    )


@contextmanager
def _replay_progress(dry_run: bool) -> Iterator[Callable[[str, int, int, int], None]]:
    """A bar per stage: how far through its dead-letter queue, and how many were sent back."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[moved]}"),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, swept: int, total: int, replayed: int) -> None:
            if stage not in tasks:
                verb = "checking" if dry_run else "replaying"
                tasks[stage] = bar.add_task(f"{verb} {stage}", total=total, moved="")
            moved = "" if dry_run else f"{replayed} replayed"
            bar.update(tasks[stage], completed=swept, total=total, moved=moved)

        yield update


@app.command()
def purge(
    stage: StageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete dead letters for good (asks first). Consider 'dlq list' and 'dlq replay' before this.

    Exactly the number confirmed is deleted, oldest first: dead letters that arrive while the question waits
    are left for the next look. The decision journal gets one audit record: who, which queues, how many.
    """
    names = stages(stage)
    settings = load_settings(CommonSettings)
    queues = DeadLetterQueues(broker_parameters(settings), topology(settings))
    depths = counts_of(queues, names)
    total = sum(depths.values())
    out = console()
    if total == 0:
        out.print("No dead letters to purge.")
        return
    summary = ", ".join(f"{name}: {count}" for name, count in depths.items() if count)
    if not yes and not typer.confirm(f"Delete {total} dead letter(s) for good ({summary})?", default=False):
        out.print("Nothing purged.")
        raise typer.Exit(EXIT_PROBLEM)
    with _audit(settings, _operator().actor) as audit:
        report = purge_dead_letters(depths, queues=queues, audit=audit)
    out.print(
        f"Purged {report.total} dead letter(s): "
        + ", ".join(f"{n}: {c}" for n, c in report.removed.items())
        + f" (audited as operation {escape(report.operation)})"
    )
