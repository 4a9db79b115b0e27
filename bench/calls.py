"""Section 7: DocSpace calls per invoice and the drain at the portal's limit, the code before issue 22 and now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import backlog
from bench.baseline import BEFORE_CALLS, default_shares, worktree
from bench.procs import REDIS_URL

PORTAL_LIMIT_PER_MINUTE = 1500  # what the simulator enforces per API key, as DocSpace does per user


@dataclass
class Comparison:
    """One replica count's backlog drained by the old code and by the current code, under the same portal."""

    replicas: int
    before: backlog.BacklogResult
    after: backlog.BacklogResult
    before_shares: tuple[int, int]  # (classifier, mover) req/min, each version's defaults
    after_shares: tuple[int, int]

    @property
    def calls_ratio(self) -> float:
        """Current calls per invoice over the old code's (below 1 is fewer)."""
        return _ratio(self.after.calls_per_invoice, self.before.calls_per_invoice)

    @property
    def drain_ratio(self) -> float:
        """Current invoices a minute over the old code's (above 1 is faster)."""
        return _ratio(self.after.overall_per_s, self.before.overall_per_s)


def allowed_per_minute(calls_per_invoice: float) -> float:
    """Invoices a minute one API key allows at ``calls_per_invoice`` (0 when nothing was measured)."""
    return PORTAL_LIMIT_PER_MINUTE / calls_per_invoice if calls_per_invoice > 0 else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def before_and_after(invoices: int, replica_levels: Sequence[int]) -> list[Comparison]:
    """For each replica count, the same backlog under the same limit: first the old code, then the current.

    One replica keeps its claims in SQLite and each process its default share of the key; more replicas keep
    them in Redis and share one limit there, as they must. Each version runs with its own default shares.
    """
    out: list[Comparison] = []
    with worktree(BEFORE_CALLS) as old:
        before_shares, after_shares = default_shares(old), default_shares(Path.cwd())
        for replicas in replica_levels:
            redis_url = REDIS_URL if replicas > 1 else None
            before = backlog.run(
                invoices, 16, portal_limit=True, shares=before_shares, replicas=replicas, redis_url=redis_url, code=old
            )
            after = backlog.run(
                invoices, 16, portal_limit=True, shares=after_shares, replicas=replicas, redis_url=redis_url
            )
            out.append(Comparison(replicas, before, after, before_shares, after_shares))
    return out
