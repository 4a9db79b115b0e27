"""The reconciler's settings: how often it runs, how long it waits for the webhook path, its share of the API."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from consumers.classifier.settings import ClassifierSettings
from consumers.reconciler.context import Knobs
from ingress.settings import WEBHOOK_PATH

MIN_CALLS_PER_CYCLE = 5
# `invoice-pipeline reconcile` has no per-interval budget, only this hard cap (``--max-calls``): a listing that
# never ends cannot keep it calling DocSpace past its lease. 5,000 calls read about 250,000 log rows and files.
CLI_MAX_CALLS = 5000


class ReconcilerSettings(ClassifierSettings):
    """The classifier's rules and triggers (the reconciler judges files exactly as the classifier does), plus its own.

    ``DOCSPACE_RATE_LIMIT_PER_MINUTE`` is not used here: the reconciler's rate is its budget share of the key's
    whole limit, ``DOCSPACE_SHARED_RATE_LIMIT_PER_MINUTE`` (one setting for the key, SQLite or Redis).
    """

    reconcile_interval: float = Field(default=300.0, ge=1, description="seconds between two cycles")
    reconcile_grace: float = Field(
        default=600.0, ge=0, description="seconds: the room scan leaves files younger than this to the webhook path"
    )
    reconcile_log_settle: float = Field(
        default=60.0,
        ge=0,
        description="seconds: a failed delivery younger than this may still be retried by DocSpace (~31 s); it waits "
        "for the next cycle",
    )
    reconcile_scan_overlap: float = Field(
        default=300.0,
        ge=0,
        description="seconds each scan of a room starts before the last one ended (clock skew between the portal and "
        "us)",
    )
    reconcile_budget_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="the reconciler's share of the API key's requests per minute "
        "(`DOCSPACE_SHARED_RATE_LIMIT_PER_MINUTE`; `DOCSPACE_RATE_LIMIT_PER_MINUTE` is not used by it), however many "
        "rooms; a cycle spends at most one interval's worth (at least 5 calls) and the next goes on",
    )
    docspace_webhook_url: str | None = Field(
        default=None,
        description="the URL the pipeline's webhook points at; unset → the webhook whose URL ends in "
        "`/docspace/webhook`",
    )
    docspace_webhook_id: str | None = Field(default=None, description="or the webhook's id in DocSpace")

    @property
    def budget_per_minute(self) -> int:
        return max(1, int(self.reconcile_budget_share * self.docspace_shared_rate_limit_per_minute))

    @property
    def calls_per_cycle(self) -> int:
        """A cycle spends at most one interval's worth of its budget; what is left over waits for the next.

        At least enough for the webhook (list, enable), one page of the log and one room, so a short interval
        never starves the scan; the rate limiter still keeps the calls to the share (the cycle takes longer).
        """
        return max(MIN_CALLS_PER_CYCLE, int(self.budget_per_minute * self.reconcile_interval / 60))

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.reconcile_interval)


def knobs_for(settings: ReconcilerSettings, *, capped: bool = True, max_calls: int = CLI_MAX_CALLS) -> Knobs:
    """A cycle's knobs; ``capped=False`` (the operator's one-off run) has no per-interval budget, only the hard cap
    ``max_calls``: a cycle that reaches it fails and says so (run it again to go on)."""
    return Knobs(
        interval=settings.interval,
        grace=timedelta(seconds=settings.reconcile_grace),
        log_settle=timedelta(seconds=settings.reconcile_log_settle),
        overlap=timedelta(seconds=settings.reconcile_scan_overlap),
        triggers=frozenset(settings.classifier_triggers),
        webhook_path=WEBHOOK_PATH,
        webhook_url=settings.docspace_webhook_url,
        webhook_id=settings.docspace_webhook_id,
        calls_per_cycle=settings.calls_per_cycle if capped else max_calls,
        hard_cap=not capped,
        # Longer than a cycle can take (its calls are spaced over one interval), so it only lapses if we die.
        lease=settings.interval * 2 + timedelta(minutes=1),
    )
