"""`make run` hands its settings to the command line: var/demo.env, and the one line that says how to use it."""

from __future__ import annotations

import stat
from pathlib import Path

from ops.env_file import read_env_file
from standins.demo import DEMO_ENV, trace_hint, write_env_file


def test_the_demo_s_settings_are_written_for_env_file_and_kept_private(tmp_path: Path) -> None:
    env = {
        "TOPOLOGY_PREFIX": "demo.",
        "DOCSPACE_WEBHOOK_SECRET": "s3cret=with=equals",
        "JOURNAL_URL": "sqlite:////work/var/demo-journal.sqlite3",
    }
    path = tmp_path / "var" / "demo.env"
    write_env_file(path, env)
    assert read_env_file(path) == env
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a demo's secret is still a secret


def test_the_hint_traces_the_demo_s_own_invoice_through_its_settings_file() -> None:
    hint = trace_hint(DEMO_ENV, "Invoice-2026-0042.pdf")
    assert hint == "invoice-pipeline --env-file var/demo.env trace Invoice-2026-0042"
