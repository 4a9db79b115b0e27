"""The ingress's replay memory (bounded, forgetting) and its refusal of weak webhook and pipeline secrets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from consumers.notifier.settings import NotifierSettings
from ingress.replay import RecentEvents
from ingress.settings import IngressSettings
from ops.doctor import check_ingress_secret
from shared.config.settings import explain
from tests.support.clock import FakeClock


def test_an_accepted_id_is_remembered_for_the_window_only() -> None:
    clock = FakeClock(1000.0)
    recent = RecentEvents(60, clock=clock)
    assert not recent.seen("141022")
    recent.remember("141022")
    clock.now += 59
    assert recent.seen("141022")
    clock.now += 2
    assert not recent.seen("141022")


def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    recent = RecentEvents(3600, max_size=3, clock=FakeClock(1000.0))
    for n in range(5):
        recent.remember(str(n))
    assert len(recent) == 3
    assert [recent.seen(str(n)) for n in range(5)] == [False, False, True, True, True]


def test_expired_ids_are_dropped_as_new_ones_arrive() -> None:
    clock = FakeClock(1000.0)
    recent = RecentEvents(10, clock=clock)
    for n in range(100):
        recent.remember(str(n))
    clock.now += 11
    recent.remember("new")
    assert len(recent) == 1


def test_a_forgotten_id_goes_through_again() -> None:
    recent = RecentEvents(60, clock=FakeClock(1000.0))
    recent.remember("1")
    recent.forget("1")
    assert not recent.seen("1")


def test_a_window_of_zero_remembers_nothing() -> None:
    recent = RecentEvents(0)
    recent.remember("1")
    assert not recent.seen("1") and len(recent) == 0


def test_an_event_created_longer_ago_than_the_window_is_too_old() -> None:
    created = datetime(2026, 9, 18, 8, 14, 3, tzinfo=UTC)
    wall = FakeClock(1000.0)
    recent = RecentEvents(3600, wall_clock=wall)
    wall.now = created.timestamp() + 3600
    assert not recent.too_old(created)
    wall.now += 1
    assert recent.too_old(created)
    assert not recent.too_old(None)
    assert not RecentEvents(0, wall_clock=wall).too_old(created)


@pytest.mark.parametrize("window", ["60", "899.5"])
def test_a_replay_window_shorter_than_docspace_s_retries_is_refused(
    monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    monkeypatch.setenv("REPLAY_WINDOW_SECONDS", window)
    with pytest.raises(ValidationError, match="at least 900 seconds"):
        IngressSettings()


@pytest.mark.parametrize("window", ["0", "900", "3600"])
def test_a_replay_window_of_zero_or_long_enough_is_taken(monkeypatch: pytest.MonkeyPatch, window: str) -> None:
    monkeypatch.setenv("REPLAY_WINDOW_SECONDS", window)
    assert IngressSettings().replay_window_seconds == float(window)


def _settings(secret: str, monkeypatch: pytest.MonkeyPatch) -> IngressSettings:
    monkeypatch.setenv("DOCSPACE_WEBHOOK_SECRET", secret)
    return IngressSettings()


@pytest.mark.parametrize(
    ("secret", "problems"),
    [
        ("abc,Sixteen-chars-ok", ["secret #1 of 2 is 3 characters; each needs at least 16"]),
        ("Sixteen-chars-ok,Another-long-one!,hunter2", ["secret #3 of 3 is 7 characters; each needs at least 16"]),
        ("x", ["secret #1 of 1 is 1 character; each needs at least 16"]),
        ("Sixteen-chars-ok,", ["secret #2 of 2 is empty; each needs at least 16"]),
        ("Sixteen-chars-ok, Another-long-one!", []),
    ],
)
def test_each_secret_must_be_16_characters_and_is_named_by_position_only(
    monkeypatch: pytest.MonkeyPatch, secret: str, problems: list[str]
) -> None:
    found = _settings(secret, monkeypatch).weak_secrets()
    assert found == problems
    for part in secret.split(","):
        if part.strip():
            assert all(part.strip() not in line for line in found)


def test_doctor_names_the_weak_part_never_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    check = check_ingress_secret(_settings("Sixteen-chars-ok,tiny-one", monkeypatch))
    assert check.status == "fail"
    assert "secret #2 of 2 is 8 characters" in check.detail
    assert "tiny-one" not in check.detail + check.fix and "Sixteen-chars-ok" not in check.detail + check.fix


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("hunter2", "PIPELINE_SECRET is 7 characters; it needs at least 16"),
        ("whsec_c2VjcmV0", "PIPELINE_SECRET is 8 characters; it needs at least 16"),  # the prefix is not secret
        ("Sixteen-chars-ok", None),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", None),
    ],
)
def test_the_pipeline_secret_needs_as_many_characters_as_a_webhook_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str, problem: str | None
) -> None:
    monkeypatch.delenv("ALLOW_INSECURE_TRANSPORT", raising=False)
    monkeypatch.setenv("PIPELINE_URL", "https://pipeline.example/hook")
    monkeypatch.setenv("PIPELINE_SECRET", secret)
    if problem is None:
        assert NotifierSettings().pipeline_secret is not None
        return
    with pytest.raises(ValidationError) as info:
        NotifierSettings()
    assert problem in explain(info.value)
    assert secret not in explain(info.value) and secret not in str(info.value)
