"""The docspace commands and doctor against the simulator, the real broker and a real SMTP server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops.cli import main
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from standins.ports import free_port
from tests.support.cli_env import use_portal
from tests.support.real_broker import BrokerKit
from tests.support.rules_file import write_rules
from tests.support.simulator_fixtures import WebhookReceiver


@pytest.fixture
def portal_env(
    broker: BrokerKit,
    docspace_sim: DocSpaceSimulator,
    smtp_server: MailCatcher,
    pipeline_receiver: PipelineReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> dict[str, str]:
    acme = docspace_sim.create_room("Acme Ltd")
    docspace_sim.create_folder(acme, "Incoming")
    globex = docspace_sim.create_room("Globex")
    rules = write_rules(tmp_path, {"acme": (acme, "anna@acme.example"), "globex": (globex, "bob@globex.example")})
    # The test's own store (beside the rules): doctor reads the reconciler's last run from it.
    use_portal(
        monkeypatch,
        broker,
        docspace_sim,
        rules,
        DOCSPACE_WEBHOOK_SECRET="Doctor-Test-Secret!1",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        MAIL_FROM="invoices@pipeline.example",
        PIPELINE_URL=pipeline_receiver.url,
        PIPELINE_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    return {"acme": acme, "globex": globex}


def test_doctor_names_the_unreadable_room_and_the_missing_webhook_then_passes_once_fixed(
    portal_env: dict[str, str],
    docspace_sim: DocSpaceSimulator,
    webhook_receiver: WebhookReceiver,
    smtp_server: MailCatcher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docspace_sim.deny_room(portal_env["globex"])

    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1 and "NOT READY" in out
    assert "room globex" in out and "cannot read it (403)" in out and "invite the key's owner" in out
    assert "no webhook registered" in out and "register-webhook" in out
    for healthy in ("broker", "topology", "docspace", "room acme", "incoming acme", "smtp", "pipeline"):
        assert re.search(rf"{re.escape(healthy)}\s+│\s+ok", out), (healthy, out)
    assert "Doctor-Test-Secret" not in out  # secrets never printed
    assert smtp_server.mails == []  # EHLO only: no mail

    # Fix both: the key gets the room back, and the webhook is registered through the CLI.
    docspace_sim.faults.clear()
    code = main(["docspace", "register-webhook", "--url", webhook_receiver.url, "--name", "invoices"])
    out = capsys.readouterr().out
    assert code == 0, out
    printed = re.search(r"^DOCSPACE_WEBHOOK_SECRET=(\S+)$", out, re.M)
    assert printed, out
    secret = printed.group(1)
    assert len(secret) <= 50 and re.search(r"[A-Z]", secret) and re.search(r"[a-z]", secret)
    assert re.search(r"\d", secret) and re.search(r"[^A-Za-z0-9]", secret) and "," not in secret
    config = next(iter(docspace_sim.webhooks.configs.values()))
    assert (config.triggers, config.enabled, config.ssl, config.secret) == (384, True, False, secret)
    assert [r.method for r in webhook_receiver.requests] == ["HEAD"]  # DocSpace's URL check

    assert main(["docspace", "webhooks"]) == 0
    out = capsys.readouterr().out
    assert "invoices" in out and "file.created, file.uploaded" in out and secret not in out

    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "READY" in out and "file.created, file.uploaded" in out


def test_doctor_reports_unconfigured_parts_as_off_and_an_unreachable_broker_as_a_failure(
    portal_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SMTP_HOST", "MAIL_FROM", "PIPELINE_URL", "PIPELINE_SECRET"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"smtp\s+│\s+off", out) and re.search(r"pipeline\s+│\s+off", out)
    assert re.search(r"broker\s+│\s+fail", out) and "start RabbitMQ" in out
    assert "guest:guest" not in out


def test_register_webhook_explains_an_unreachable_url(
    portal_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/docspace/webhook"
    assert main(["docspace", "register-webhook", "--url", url]) == 1
    captured = capsys.readouterr()
    assert "webhook URL not available" in captured.err and "tunnel" in captured.err
    assert "DOCSPACE_WEBHOOK_SECRET=" not in captured.out


def test_register_webhook_refuses_plain_http_to_another_host_unless_insecure(
    portal_env: dict[str, str], docspace_sim: DocSpaceSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    docspace_sim.reset_calls()
    url = "http://hooks.example/docspace/webhook"
    assert main(["docspace", "register-webhook", "--url", url]) == 2
    assert "--insecure" in capsys.readouterr().err
    assert docspace_sim.call_counts() == {}  # refused before asking DocSpace

    # Allowed when asked for: DocSpace then HEAD-checks the URL (unreachable here) and refuses it itself.
    assert main(["docspace", "register-webhook", "--url", url, "--insecure"]) == 1
    err = capsys.readouterr().err
    assert "plain http webhook URL allowed (--insecure)" in err and "webhook URL not available" in err


def test_register_webhook_allows_plain_http_to_this_machine_and_says_so(
    portal_env: dict[str, str], webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["docspace", "register-webhook", "--url", webhook_receiver.url]) == 0
    assert "plain http webhook URL allowed (this machine, for development)" in capsys.readouterr().err
