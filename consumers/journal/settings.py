"""The journal writer's settings: where the journal is, how it batches, how long it keeps decisions."""

from __future__ import annotations

from pydantic import Field

from shared.config.settings import StageSettings
from shared.journal.settings import JournalStoreSettings


class JournalWriterSettings(JournalStoreSettings, StageSettings):
    """The journal writer's settings, from the environment."""

    journal_retention_days: float = Field(
        default=30.0, gt=0, description="decisions older than this are pruned by the writer (days)"
    )
    journal_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="records written in one transaction, at most"
    )
    journal_batch_wait: float = Field(
        default=0.2, gt=0, le=10, description="seconds the first record of a batch waits for more before it is written"
    )
    journal_prune_interval: float = Field(
        default=600.0, gt=0, description="seconds between two pruning passes over the journal"
    )
