"""``invoice-pipeline topology``: declare every exchange and queue as the administrator, or print the users' script."""

from __future__ import annotations

from typing import Annotated

import pika.exceptions
import typer

from ops.broker_access import broker_parameters, topology
from ops.broker_users import users_script
from ops.cli_common import EXIT_PROBLEM, console, load_settings
from shared.broker.connection import CONNECTION_ERRORS, TopologyMismatch, declare_topology, node_names
from shared.config.settings import CommonSettings


def topology_command(
    print_users: Annotated[
        bool,
        typer.Option(
            "--print-users",
            help="print the rabbitmqctl script that creates the least-privilege broker users (deploy/rabbitmq/"
            "users.sh) for this TOPOLOGY_PREFIX, and declare nothing",
        ),
    ] = False,
) -> None:
    """Declare the topology (run it as the broker's administrator before processes with TOPOLOGY_DECLARE=passive)."""
    settings = load_settings(CommonSettings)
    # This command is what declares: TOPOLOGY_DECLARE=passive (from a shared settings file) is for the processes.
    names = topology(settings.model_copy(update={"topology_declare": "full"}))
    if print_users:
        typer.echo(users_script(names), nl=False)
        return
    params = broker_parameters(settings)
    err = console(stderr=True)
    try:
        declare_topology(params, names)
    except TopologyMismatch as exc:
        err.print(f"[red]{exc}[/red]", markup=True, highlight=False)
        raise typer.Exit(EXIT_PROBLEM) from None
    except (pika.exceptions.ChannelClosedByBroker, *CONNECTION_ERRORS) as exc:
        err.print(f"cannot declare the topology on {node_names(params)}: {type(exc).__name__} {exc}".strip())
        raise typer.Exit(EXIT_PROBLEM) from None
    prefix = f" (prefix {names.prefix!r})" if names.prefix else ""
    console().print(f"topology declared: {len(names.exchanges())} exchanges, {len(names.queues())} queues{prefix}")
