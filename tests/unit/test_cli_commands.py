"""The command line loads only the command asked for, and still offers every command when none is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.cli import COMMANDS, GROUPS, _command_word, build_app


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["trace", "4711"], "trace"),
        (["--env-file", "var/demo.env", "trace", "x"], "trace"),
        (["dlq", "list"], "dlq"),
        (["--help"], None),
        ([], None),
        (["no-such-command"], None),
    ],
)
def test_the_command_word_is_found_past_the_global_options(argv: list[str], word: str | None) -> None:
    assert _command_word(argv) == word


def test_without_a_command_every_command_is_offered() -> None:
    app = build_app()
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == set(COMMANDS) | set(GROUPS)


def test_trace_loads_neither_the_dead_letter_nor_the_docspace_commands() -> None:
    probe = (
        "import sys; from ops.cli import main; code = main(['trace', '--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('ops.cli_'))); sys.exit(code)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "ops.cli_trace" in loaded
    assert "ops.cli_dlq" not in loaded and "ops.cli_docspace" not in loaded and "ops.cli_doctor" not in loaded


def test_a_trace_the_journal_answers_loads_no_broker_docspace_or_log_library(tmp_path: Path) -> None:
    # The whole `invoice-pipeline trace` has a second (issue 20): a library only the fallbacks (dead-letter queues,
    # DocSpace's delivery log) or other commands need would be start-up time every trace pays.
    journal = tmp_path / "journal.sqlite3"
    probe = (
        "import sys; from ops.cli import main; code = main(['trace', '4711', '--no-dlq', '--no-delivery-log']); "
        "print(sorted(m for m in ('pika', 'requests', 'redis', 'structlog', 'psycopg') if m in sys.modules))"
    )
    env = {**os.environ, "JOURNAL_URL": f"sqlite:///{journal}"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
