"""Plain-text transport: refused to other hosts, allowed (and said) for loopback or ALLOW_INSECURE_TRANSPORT."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumers.notifier.settings import NotifierSettings
from shared.config.plaintext import InsecureTransport, check_smtp_login, check_url, is_loopback
from shared.config.settings import DocSpaceSettings, explain


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLOW_INSECURE_TRANSPORT", "SMTP_HOST", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS",
                 "SMTP_SSL", "PIPELINE_URL", "PIPELINE_SECRET", "MAIL_FROM"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCSPACE_API_KEY", "sk-test")


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "app.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "192.168.1.2", "::2", "localhost.example.com", "", None])
def test_other_hosts(host: str | None) -> None:
    assert not is_loopback(host)


def test_https_needs_no_note() -> None:
    assert check_url("X", "https://portal.example", allow_insecure=False) is None


def test_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    with pytest.raises(InsecureTransport, match="ALLOW_INSECURE_TRANSPORT"):
        check_url("PIPELINE_URL", "http://user:pw@pipeline.example/x?k=1", allow_insecure=False)
    note = check_url("PIPELINE_URL", "http://user:pw@pipeline.example/x?k=1", allow_insecure=True)
    assert note is not None and "ALLOW_INSECURE_TRANSPORT=true" in note
    assert "pw" not in note and "k=1" not in note


def test_plain_http_to_this_machine_is_allowed_and_said() -> None:
    note = check_url("DOCSPACE_API_HOST", "http://127.0.0.1:8080", allow_insecure=False)
    assert note is not None and "development" in note


def test_an_smtp_login_needs_tls_unless_loopback_or_allowed() -> None:
    assert check_smtp_login("smtp.example", login=False, tls=False, allow_insecure=False) is None
    assert check_smtp_login("smtp.example", login=True, tls=True, allow_insecure=False) is None
    with pytest.raises(InsecureTransport, match="SMTP_STARTTLS"):
        check_smtp_login("smtp.example", login=True, tls=False, allow_insecure=False)
    assert check_smtp_login("smtp.example", login=True, tls=False, allow_insecure=True)
    assert check_smtp_login("127.0.0.1", login=True, tls=False, allow_insecure=False)


def test_docspace_settings_refuse_plain_http_and_accept_it_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSPACE_API_HOST", "http://portal.example")
    with pytest.raises(ValidationError) as info:
        DocSpaceSettings()
    assert "DOCSPACE_API_HOST must be https://" in explain(info.value)
    monkeypatch.setenv("ALLOW_INSECURE_TRANSPORT", "true")
    assert DocSpaceSettings().transport_notes() == [
        "DOCSPACE_API_HOST http://portal.example is plain http, allowed by ALLOW_INSECURE_TRANSPORT=true: "
        "traffic can be read on the way"
    ]


def test_docspace_settings_on_loopback_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSPACE_API_HOST", "http://127.0.0.1:9000")
    [note] = DocSpaceSettings().transport_notes()
    assert "this machine" in note
    monkeypatch.setenv("DOCSPACE_API_HOST", "https://portal.example")
    assert DocSpaceSettings().transport_notes() == []


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"PIPELINE_URL": "http://pipeline.example/hook", "PIPELINE_SECRET": "pipeline-secret-0123456789"},
            "PIPELINE_URL must be https://",
        ),
        ({"SMTP_HOST": "smtp.example", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"}, "SMTP_USERNAME is set"),
    ],
)
def test_notifier_settings_refuse_plain_text(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    monkeypatch.setenv("MAIL_FROM", "invoices@example.com")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        NotifierSettings()
    assert problem in explain(info.value)
    monkeypatch.setenv("ALLOW_INSECURE_TRANSPORT", "true")
    assert len(NotifierSettings().transport_notes()) == 1


def test_notifier_settings_with_tls_need_no_note(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PIPELINE_URL": "https://pipeline.example/hook",
        "PIPELINE_SECRET": "pipeline-secret-0123456789",
        "SMTP_HOST": "smtp.example",
        "SMTP_USERNAME": "u",
        "SMTP_PASSWORD": "p",
        "SMTP_STARTTLS": "true",
        "MAIL_FROM": "invoices@example.com",
    }.items():
        monkeypatch.setenv(name, value)
    assert NotifierSettings().transport_notes() == []
