"""The ``invoice-pipeline`` command: dead letters, webhooks, doctor, test events, reconcile, trace, topology, today."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ops import cli_dlq, cli_docspace
from ops.cli_common import EXIT_CONFIG, console
from ops.cli_doctor import doctor
from ops.cli_reconcile import reconcile
from ops.cli_test_event import send_test_event
from ops.cli_today import today_command
from ops.cli_topology import topology_command
from ops.cli_trace import trace_command
from ops.env_file import EnvFileError, load_env_file

app = typer.Typer(
    name="invoice-pipeline",
    help=(
        "Operate the DocSpace invoice pipeline. Settings come from the same environment variables as the "
        "processes (AMQP_URL, TOPOLOGY_PREFIX, DOCSPACE_API_HOST, DOCSPACE_API_KEY, ...), or from a file named "
        "with --env-file (before the command: invoice-pipeline --env-file var/demo.env doctor)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback's locals could include a secret
)


@app.callback()
def settings_file(
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="read settings from this file (KEY=value lines) before the command runs; they win over the "
            "environment. `make run` writes var/demo.env",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
) -> None:
    """Every command builds its settings after this has run, so the file's values are the ones it uses."""
    if env_file is None:
        return
    try:
        load_env_file(env_file)
    except (EnvFileError, OSError, UnicodeDecodeError) as exc:
        console(stderr=True).print(f"[red]cannot read --env-file:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


app.add_typer(cli_dlq.app, name="dlq")
app.add_typer(cli_docspace.app, name="docspace")
app.command()(doctor)
app.command("send-test-event")(send_test_event)
app.command()(reconcile)
app.command("trace")(trace_command)
app.command("today")(today_command)
app.command("topology")(topology_command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code instead of exiting."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="invoice-pipeline", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0
