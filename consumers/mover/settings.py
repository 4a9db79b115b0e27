"""The mover's settings: DocSpace access and how a name clash in Incoming is resolved."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config.settings import RATE_LIMIT_SHARE, DocSpaceSettings, StageSettings


class MoverSettings(DocSpaceSettings, StageSettings):
    """The mover's settings, from the environment."""

    # The classifier and the mover usually share one API key, and DocSpace counts per key. Per invoice the mover
    # makes the pipeline's two calls (the move, its poll): 1,360 of the 1,500 here is 11.3 invoices/s; the
    # classifier's 60 (room lookups) and a margin take the rest.
    docspace_rate_limit_per_minute: int = Field(default=1360, ge=1, description=RATE_LIMIT_SHARE)
    # A move is asynchronous: each worker waits ~0.4 s for DocSpace's operation, so 4 workers carry ~10 invoices/s,
    # below what one API key allows (11.3/s at 1,360 requests/min); 8 keep up with it (docs/performance.md, section 8).
    concurrency: int = Field(default=8, ge=1, le=256, description="worker threads (and prefetch) per consumer stage")
    move_conflict: Literal["Duplicate", "Overwrite", "Skip"] = Field(
        default="Duplicate",
        description="what a same-named file in `Incoming` does: `Duplicate` keeps both, `Overwrite` makes a new "
        "version, `Skip` leaves it (detected and dead-lettered as `docspace_move_skipped`, never silent)",
    )
    move_deadline: float = Field(
        default=30.0,
        gt=0,
        description="seconds to wait for DocSpace's move operation before confirming by reading the file",
    )
