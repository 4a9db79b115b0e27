"""The notifier's handlers: one e-mail and one pipeline call per invoice, each independent of the other."""

from __future__ import annotations

import pytest

from consumers.notifier.handler import email_manager, trigger_pipeline
from shared.core.errors import TransientError
from shared.core.events import InvoiceReceived
from shared.core.handling import Handled, Outcome
from shared.store.sqlite_store import SqliteStore
from tests.support.fakes import FakeMailer, FakePipeline
from tests.support.message_builders import invoice_received


def test_the_manager_is_emailed_once_even_if_the_message_arrives_twice(store: SqliteStore) -> None:
    mailer = FakeMailer()

    first = email_manager(invoice_received(), mailer=mailer, store=store)
    second = email_manager(invoice_received(), mailer=mailer, store=store)

    assert first == Handled(
        Outcome.EMAILED, None, {"to": "ann@acme.example", "message_id": "<invoice-3358301:v1@example.test>"}
    )
    assert second == Handled(Outcome.IGNORED, "duplicate")
    assert [i.invoice_id for i in mailer.sent] == ["3358301:v1"]


def test_another_invoice_gets_its_own_email(store: SqliteStore) -> None:
    mailer = FakeMailer()

    email_manager(invoice_received(), mailer=mailer, store=store)
    email_manager(invoice_received(invoice_id="3358301:v2"), mailer=mailer, store=store)

    assert [i.invoice_id for i in mailer.sent] == ["3358301:v1", "3358301:v2"]


def test_no_mailer_means_email_is_skipped(store: SqliteStore) -> None:
    assert email_manager(invoice_received(), mailer=None, store=store) == Handled(Outcome.SKIPPED, "email_disabled")


def test_a_transient_mail_failure_propagates_and_the_retry_sends(store: SqliteStore) -> None:
    mailer = FakeMailer()
    failure = TransientError("421 try again later", reason="smtp_unavailable", retry_after=30)
    mailer.fail_next("send_invoice_notice", failure)

    with pytest.raises(TransientError) as raised:
        email_manager(invoice_received(), mailer=mailer, store=store)
    assert raised.value is failure
    assert mailer.sent == []

    retried = email_manager(invoice_received(), mailer=mailer, store=store)
    assert retried.outcome == "emailed"
    assert len(mailer.sent) == 1
    assert len(mailer.calls_to("send_invoice_notice")) == 2


def test_the_pipeline_is_triggered_once_per_invoice(store: SqliteStore) -> None:
    pipeline = FakePipeline()

    first = trigger_pipeline(invoice_received(), pipeline=pipeline, store=store)
    second = trigger_pipeline(invoice_received(), pipeline=pipeline, store=store)

    assert first == Handled(Outcome.PIPELINE_CALLED)
    assert second == Handled(Outcome.IGNORED, "duplicate")
    assert [i.invoice_id for i in pipeline.triggered] == ["3358301:v1"]


def test_no_pipeline_means_it_is_skipped(store: SqliteStore) -> None:
    assert trigger_pipeline(invoice_received(), pipeline=None, store=store) == Handled(
        Outcome.SKIPPED, "pipeline_disabled"
    )


def test_a_transient_pipeline_failure_propagates_and_the_retry_triggers(store: SqliteStore) -> None:
    pipeline = FakePipeline()
    pipeline.fail_next("trigger", TransientError("503 from the pipeline", retry_after=5))

    with pytest.raises(TransientError):
        trigger_pipeline(invoice_received(), pipeline=pipeline, store=store)
    assert pipeline.triggered == []

    assert trigger_pipeline(invoice_received(), pipeline=pipeline, store=store) == Handled(Outcome.PIPELINE_CALLED)
    assert len(pipeline.triggered) == 1


def test_a_failing_pipeline_never_causes_a_second_email(store: SqliteStore) -> None:
    # The consumer runs both handlers per message; a pipeline failure sends the message round again.
    mailer, pipeline = FakeMailer(), FakePipeline()
    pipeline.fail_next("trigger", TransientError("503"))
    pipeline.fail_next("trigger", TransientError("503"))

    outcomes: list[tuple[str, str]] = []
    for _ in range(3):
        emailed = email_manager(invoice_received(), mailer=mailer, store=store)
        try:
            outcomes.append(
                (emailed.outcome, trigger_pipeline(invoice_received(), pipeline=pipeline, store=store).outcome)
            )
        except TransientError:
            outcomes.append((emailed.outcome, "retry"))

    assert outcomes == [("emailed", "retry"), ("ignored", "retry"), ("ignored", "pipeline_called")]
    assert len(mailer.sent) == 1
    assert len(pipeline.triggered) == 1


class _AnsweringPipeline:
    """Implements PipelineTrigger: the pipeline answers 202, as an asynchronous receiver would."""

    def trigger(self, invoice: InvoiceReceived) -> int:
        return 202


def test_the_pipelines_answer_is_kept_for_the_journal(store: SqliteStore) -> None:
    handled = trigger_pipeline(invoice_received(), pipeline=_AnsweringPipeline(), store=store)
    assert handled == Handled(Outcome.PIPELINE_CALLED, None, {"status": 202})
