"""A bad setting stops every process and the CLI with a message that names it and never shows a secret.

Each entry point runs as the operator runs it (a subprocess with only these settings in its environment), with
every secret the pipeline knows set to a recognisable value. pydantic would print the raw input otherwise: the
field's own value, and for a check over several fields the whole environment it read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "invoice-pipeline")

API_KEY = "sk-apikey-0123456789abcdef"
SMTP_PASSWORD = "smtp-pass-0123456789"
PIPELINE_SECRET = "pipeline-secret-0123456789"
WEBHOOK_SECRET = "webhook-secret-0123456789abc"
AMQP_PASSWORD = "amqp-pass-0123456789"
URL_PASSWORD = "url-pass-0123456789"
MISPLACED = "misplaced-secret-0123456789"  # a secret pasted into the wrong line of .env
SECRETS = (API_KEY, SMTP_PASSWORD, PIPELINE_SECRET, WEBHOOK_SECRET, AMQP_PASSWORD, URL_PASSWORD, MISPLACED)

SECRET_ENV = {
    "DOCSPACE_API_HOST": "https://portal.example",
    "DOCSPACE_API_KEY": API_KEY,
    "DOCSPACE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "SMTP_HOST": "smtp.example",
    "SMTP_USERNAME": "invoices",
    "SMTP_PASSWORD": SMTP_PASSWORD,
    "SMTP_STARTTLS": "true",
    "MAIL_FROM": "invoices@example.com",
    "PIPELINE_URL": "https://pipeline.example/hook",
    "PIPELINE_SECRET": PIPELINE_SECRET,
    "AMQP_URL": f"amqp://pipeline:{AMQP_PASSWORD}@127.0.0.1:1/%2F",
    "CLIENT_ROOM_ID": "1",
    "MANAGER_EMAIL": "anna@acme.example",
}

PROCESSES = {
    "ingress": [sys.executable, "-m", "ingress"],
    "classifier": [sys.executable, "-m", "consumers.classifier"],
    "mover": [sys.executable, "-m", "consumers.mover"],
    "notifier": [sys.executable, "-m", "consumers.notifier"],
    "reconciler": [sys.executable, "-m", "consumers.reconciler"],
    "cli dlq list": [CLI, "dlq", "list"],
    "cli docspace webhooks": [CLI, "docspace", "webhooks"],
    "cli send-test-event": [CLI, "send-test-event"],
    "cli reconcile": [CLI, "reconcile", "--dry-run"],
}


def run(argv: list[str], **settings: str) -> tuple[int, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "SYSTEMROOT") if key in os.environ}
    env.update({**SECRET_ENV, **settings, "LOG_FORMAT": "json"})
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} shown in:\n{output}"


@pytest.mark.parametrize("name", PROCESSES)
def test_a_secret_pasted_into_a_number_setting_is_named_not_shown(name: str) -> None:
    code, output = run(PROCESSES[name], HEARTBEAT=MISPLACED)
    assert code == 2, output
    assert "heartbeat" in output.lower()
    assert_no_secret(output)


@pytest.mark.parametrize("name", ["classifier", "mover", "reconciler", "cli docspace webhooks", "cli reconcile"])
def test_a_check_over_the_whole_docspace_settings_shows_no_secret(name: str) -> None:
    # A model-level check: pydantic's input for it is every setting the class read, the API key included.
    code, output = run(PROCESSES[name], DOCSPACE_API_HOST=f"http://user:{URL_PASSWORD}@portal.example")
    assert code == 2, output
    assert "DOCSPACE_API_HOST" in output and "ALLOW_INSECURE_TRANSPORT" in output
    assert_no_secret(output)


def test_a_check_over_the_whole_notifier_settings_shows_no_secret() -> None:
    code, output = run(PROCESSES["notifier"], SMTP_STARTTLS="false")  # a login in plain text
    assert code == 2, output
    assert "SMTP_USERNAME" in output and "SMTP_STARTTLS" in output
    assert_no_secret(output)


def test_a_pipeline_url_with_a_token_is_not_shown_when_it_is_refused() -> None:
    url = f"ftp://user:{URL_PASSWORD}@pipeline.example/{MISPLACED}?api_key={API_KEY}"
    code, output = run(PROCESSES["notifier"], PIPELINE_URL=url)
    assert code == 2, output
    assert "pipeline URL" in output
    assert_no_secret(output)


def test_a_bad_rules_file_names_the_client_and_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[clients]]\nname = "acme"\nroom_id = ".."\nmanager_email = "nobody"\n', encoding="utf-8")
    code, output = run(PROCESSES["classifier"], INVOICE_RULES_FILE=str(rules))
    assert code == 2, output
    assert "clients.0.room_id" in output and "clients.0.manager_email" in output
    assert_no_secret(output)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("HEARTBEAT", MISPLACED),
        ("PIPELINE_URL", f"http://user:{URL_PASSWORD}@pipeline.example/{MISPLACED}?k={API_KEY}"),
    ],
)
def test_doctor_names_the_bad_setting_and_shows_no_secret(setting: str, value: str) -> None:
    code, output = run([CLI, "doctor"], **{setting: value})
    assert code == 1, output
    assert setting in output
    assert_no_secret(output)
