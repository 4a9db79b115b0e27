"""``invoice-pipeline --env-file FILE <command>``: the file's settings are in place before the command reads any."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.cli import main
from ops.env_file import EnvFileError, read_env_file
from shared.journal.sqlite_store import SqliteJournalStore
from tests.support.journal_support import decision


def test_a_file_of_settings_is_read_with_comments_quotes_and_export(tmp_path: Path) -> None:
    path = tmp_path / "demo.env"
    path.write_text(
        "# the demo's settings\n\nexport TOPOLOGY_PREFIX=demo.\nMAIL_FROM='invoices@pipeline.localhost'\n"
        'JOURNAL_URL="sqlite:///var/demo journal.sqlite3"\nEMPTY=\n',
        encoding="utf-8",
    )
    assert read_env_file(path) == {
        "TOPOLOGY_PREFIX": "demo.",
        "MAIL_FROM": "invoices@pipeline.localhost",
        "JOURNAL_URL": "sqlite:///var/demo journal.sqlite3",
        "EMPTY": "",
    }


def test_a_line_that_is_no_setting_is_named_by_its_number_never_its_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("AMQP_URL=amqp://guest:guest@localhost\nhunter2 secret line\n", encoding="utf-8")
    with pytest.raises(EnvFileError, match="line 2") as caught:
        read_env_file(path)
    assert "hunter2" not in str(caught.value)


def test_every_command_reads_its_settings_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "elsewhere" / "journal.sqlite3"
    store = SqliteJournalStore(journal)
    store.insert([decision("mover", "received", file_id="4711", title="Invoice-0815.pdf", folder="Acme/Incoming")])
    store.close()
    env_file = tmp_path / "demo.env"
    env_file.write_text(f"JOURNAL_URL=sqlite:///{journal}\n", encoding="utf-8")
    # The shell points elsewhere; the named file wins (and monkeypatch restores the variable afterwards).
    monkeypatch.setenv("JOURNAL_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    code = main(["--env-file", str(env_file), "trace", "Invoice-0815", "--json", "--no-dlq"])

    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["verdict"]["state"] == "arrived" and found["matches"][0]["file_id"] == "4711"


def test_a_missing_env_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["--env-file", str(tmp_path / "nowhere.env"), "trace", "4711"]) == 2
