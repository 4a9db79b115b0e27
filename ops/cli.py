"""The ``invoice-pipeline`` command: dead letters, webhooks, doctor, test events, reconcile, trace, topology, today."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ops.cli_common import EXIT_CONFIG, console
from ops.env_file import EnvFileError, load_env_file

# Each command's module and the object in it: a command imports only its own module, so `trace` starts in a
# fraction of the time every sub-command's imports (brokers, DocSpace, the journal's drivers) would take.
GROUPS = {"dlq": ("ops.cli_dlq", "app"), "docspace": ("ops.cli_docspace", "app")}
COMMANDS = {
    "doctor": ("ops.cli_doctor", "doctor"),
    "send-test-event": ("ops.cli_test_event", "send_test_event"),
    "reconcile": ("ops.cli_reconcile", "reconcile"),
    "trace": ("ops.cli_trace", "trace_command"),
    "today": ("ops.cli_today", "today_command"),
    "topology": ("ops.cli_topology", "topology_command"),
}
_GLOBAL_OPTIONS_WITH_VALUE = {"--env-file"}


def _load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


HELP = (
    "Operate the DocSpace invoice pipeline. Settings come from the same environment variables as the "
    "processes (AMQP_URL, TOPOLOGY_PREFIX, DOCSPACE_API_HOST, DOCSPACE_API_KEY, ...), or from a file named "
    "with --env-file (before the command: invoice-pipeline --env-file var/demo.env doctor)."
)


def build_app(only: str | None = None) -> typer.Typer:
    """The command line with ``only`` (the command asked for), or every command when it names none of them."""
    app = typer.Typer(
        name="invoice-pipeline",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,  # a traceback's locals could include a secret
    )
    app.callback()(settings_file)
    for name, (module, attribute) in GROUPS.items():
        if only in (None, name):
            app.add_typer(_load(module, attribute), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if only in (None, name):
            app.command(name)(_load(module, attribute))
    return app


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


def _command_word(argv: Sequence[str]) -> str | None:
    """The command ``argv`` asks for, past the global options; ``None`` when it names none we know."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in GROUPS or word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(build_app(_command_word(args)))
    try:
        command.main(args=args, prog_name="invoice-pipeline", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0
