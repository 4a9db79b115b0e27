"""What every ``invoice-pipeline`` command shares: settings from the environment, the console, times and stages.

Every command imports this module, so it imports nothing a command may not need: no broker client (the commands
that reach the broker take it from ``ops/broker_access.py``), and the settings library only when settings are
read. ``tests/unit/test_cli_commands.py`` holds ``trace`` to that.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from shared.broker.topology import STAGES
from shared.runtime import exit_codes

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

S = TypeVar("S", bound="BaseSettings")

# The commands' names for the shared exit codes (the values live in shared/runtime/exit_codes.py).
EXIT_PROBLEM, EXIT_CONFIG = exit_codes.EXIT_FAILED, exit_codes.EXIT_CONFIG


def console(*, stderr: bool = False) -> Console:
    # Off a terminal (pipes, tests) keep tables wide instead of eliding ids at 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, highlight=False)


def load_settings(cls: type[S]) -> S:
    """The same settings class the processes build, from the same environment; a clear message if invalid."""
    from shared.config.settings import explain  # with the settings library, which ``cls`` has loaded already

    try:
        return cls()
    except ValidationError as exc:
        # Names and problems only (never the input: it may be a secret), and no markup from the messages.
        console(stderr=True).print(f"[red]invalid configuration ({cls.__name__}):[/red]\n{escape(explain(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


def stages(stage: str | None) -> list[str]:
    """``--stage`` validated against the topology's stages; no option means all of them."""
    if stage is None:
        return list(STAGES)
    if stage not in STAGES:
        raise typer.BadParameter(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}", param_hint="--stage")
    return [stage]


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None, now: datetime | None = None, *, option: str = "--since") -> datetime | None:
    """``30m``, ``2h``, ``7d`` (ago) or an ISO date/time (UTC when no offset is given); errors name ``option``."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    match = _AGO.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO date/time", param_hint=option
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``2026-11-03 10:22 UTC (3h ago)``: absolute for the record, relative for the eye."""
    if when is None:
        return "-"
    delta = (now or datetime.now(UTC)) - when
    seconds = int(delta.total_seconds())
    if seconds < 0:
        rel = "in the future"
    elif seconds < 120:
        rel = f"{seconds}s ago"
    elif seconds < 7200:
        rel = f"{seconds // 60}m ago"
    elif seconds < 172800:
        rel = f"{seconds // 3600}h ago"
    else:
        rel = f"{seconds // 86400}d ago"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({rel})"
