"""The ``invoice-pipeline`` command: dead letters, webhooks, doctor, test events, reconcile, trace, topology, today."""

from __future__ import annotations

import typer

from ops import cli_dlq, cli_docspace
from ops.cli_doctor import doctor
from ops.cli_reconcile import reconcile
from ops.cli_test_event import send_test_event
from ops.cli_today import today_command
from ops.cli_topology import topology_command
from ops.cli_trace import trace_command

app = typer.Typer(
    name="invoice-pipeline",
    help=(
        "Operate the DocSpace invoice pipeline. Settings come from the same environment variables as the "
        "processes (AMQP_URL, TOPOLOGY_PREFIX, DOCSPACE_API_HOST, DOCSPACE_API_KEY, ...)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback's locals could include a secret
)
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
