"""Composition root of the notifier: ``python -m consumers.notifier [--only email|pipeline]``.

It consumes two queues bound to ``invoice.received``: a failing pipeline never re-sends an e-mail, nor the reverse.
"""

from __future__ import annotations

import argparse
import sys

import structlog

from consumers.notifier.handler import email_manager, trigger_pipeline
from consumers.notifier.mailer import SmtpConfig, SmtpMailer
from consumers.notifier.metrics import observe_end_to_end
from consumers.notifier.pipeline import HttpPipelineClient
from consumers.notifier.settings import NotifierSettings
from shared.broker.publisher import Publisher
from shared.broker.topology import NOTIFIER_EMAIL, NOTIFIER_PIPELINE
from shared.config.redact import safe_url
from shared.core.events import InvoiceReceived, decode
from shared.core.handling import Handled, InboundMessage
from shared.runtime.process import StageBuilder, StageSpec, run_stages
from shared.runtime.runner import Runtime, configuration, run_process
from shared.runtime.wiring import idempotency_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers.notifier", description=__doc__)
    parser.add_argument("--only", choices=["email", "pipeline"], help="consume just one of the two queues")
    args = parser.parse_args(argv)
    return run_process("notifier", NotifierSettings, lambda runtime, settings: _run(runtime, settings, args.only))


def _run(runtime: Runtime, settings: NotifierSettings, only: str | None) -> int:
    mailer = configuration(lambda: _mailer(settings), ValueError)
    pipeline = configuration(lambda: _pipeline(settings), ValueError)
    if pipeline is not None:
        runtime.closing(pipeline)
    log = structlog.get_logger("notifier")
    log.info(
        "notifier_configured",
        email="on" if mailer else "off (SMTP_HOST unset): notices are acknowledged and counted as skipped",
        pipeline=f"on ({safe_url(settings.pipeline_url)})"
        if pipeline
        else "off (PIPELINE_URL unset): events are acknowledged and counted as skipped",
    )
    store = runtime.closing(idempotency_store(settings))

    def email_stage(_publisher: Publisher) -> StageSpec:
        def handle(message: InboundMessage) -> Handled:
            invoice = decode(InvoiceReceived, message.body)
            handled = email_manager(invoice, mailer=mailer, store=store, lease_seconds=settings.claim_lease_seconds)
            return observe_end_to_end("email", invoice, handled)

        return StageSpec(NOTIFIER_EMAIL, handle)

    def pipeline_stage(_publisher: Publisher) -> StageSpec:
        def handle(message: InboundMessage) -> Handled:
            invoice = decode(InvoiceReceived, message.body)
            handled = trigger_pipeline(
                invoice, pipeline=pipeline, store=store, lease_seconds=settings.claim_lease_seconds
            )
            return observe_end_to_end("pipeline", invoice, handled)

        return StageSpec(NOTIFIER_PIPELINE, handle)

    builders: list[StageBuilder] = []
    if only in (None, "email"):
        builders.append(email_stage)
    if only in (None, "pipeline"):
        builders.append(pipeline_stage)
    return run_stages(settings, builders, process="notifier", runtime=runtime)


def _mailer(settings: NotifierSettings) -> SmtpMailer | None:
    if not settings.smtp_host or not settings.mail_from:
        return None
    return SmtpMailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            username=settings.smtp_username,
            password=settings.smtp_password,
            mail_from=settings.mail_from,
            timeout=settings.smtp_timeout,
        )
    )


def _pipeline(settings: NotifierSettings) -> HttpPipelineClient | None:
    if not settings.pipeline_url or settings.pipeline_secret is None:
        return None
    return HttpPipelineClient(
        settings.pipeline_url,
        settings.pipeline_secret,
        timeout=(3.05, settings.pipeline_timeout),
        max_pause=settings.max_pause_seconds,
    )


if __name__ == "__main__":
    sys.exit(main())
