"""The pipeline's day in numbers, from the journal's per-minute rollups: the funnel, what was skipped and why,
what dead-lettered, what waits. The console's Today page shows what :func:`summarise` returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.journal.store import JournalStore

# The funnel's steps: a label, and the (stage, outcome) pairs whose decisions it counts.
FUNNEL: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("deliveries", "Deliveries", (("ingress", "accepted"), ("ingress", "spooled"))),
    ("files", "Files seen", (("classifier", "accepted"), ("classifier", "ignored"), ("classifier", "dead_lettered"))),
    ("invoices", "Invoices", (("classifier", "accepted"),)),
    ("moved", "Moved", (("mover", "received"),)),
    ("emailed", "E-mailed", (("notifier.email", "emailed"),)),
    ("pipeline", "Pipeline called", (("notifier.pipeline", "pipeline_called"),)),
)
# An invoice has arrived for a client when the classifier accepts it (the funnel's "invoices").
ARRIVED = ("classifier", "accepted")
SKIPPED = frozenset({"ignored", "skipped"})
WAITING = frozenset({"deferred", "retried", "requeued"})
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass(frozen=True)
class Step:
    """One number of the funnel, with the (stage, outcome) pairs behind it (for the list a click opens)."""

    key: str
    label: str
    count: int
    sources: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Count:
    """How many decisions of one stage, outcome and reason (``""``: none given) in the window."""

    stage: str
    outcome: str
    reason: str
    count: int


@dataclass(frozen=True)
class Today:
    """A window's numbers: the funnel, skipped, dead-lettered and waiting decisions by stage and reason."""

    since: datetime
    until: datetime
    funnel: list[Step]
    skipped: list[Count]
    dead_lettered: list[Count]
    waiting: list[Count]


def window(name: str | None, now: datetime) -> tuple[datetime, datetime, str]:
    """``today`` (since midnight UTC, the default), ``1h``, ``24h`` or ``7d``: its start, its end, its name."""
    if name in WINDOWS:
        return now - WINDOWS[name], now, name
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight, now, "today"


def summarise(
    totals: Mapping[tuple[str, str, str], int], since: datetime, until: datetime, *, files_seen: int | None = None
) -> Today:
    """The window's numbers from its totals per (stage, outcome, reason) (a pure function; see :func:`today`).

    ``files_seen`` counts files, not the classifier's decisions: DocSpace delivers an upload twice (file.created,
    file.uploaded) and the classifier decides each delivery, so without it the step counts deliveries decided.
    """
    by_pair: Counter[tuple[str, str]] = Counter()
    for (stage, outcome, _reason), n in totals.items():
        by_pair[(stage, outcome)] += n
    funnel = [
        Step(
            key,
            label,
            files_seen if key == "files" and files_seen is not None else sum(by_pair[p] for p in pairs),
            pairs,
        )
        for key, label, pairs in FUNNEL
    ]

    def pick(outcomes: frozenset[str]) -> list[Count]:
        rows = [Count(s, o, r, n) for (s, o, r), n in totals.items() if o in outcomes and n]
        return sorted(rows, key=lambda c: (-c.count, c.stage, c.reason))

    return Today(since, until, funnel, pick(SKIPPED), pick(frozenset({"dead_lettered"})), pick(WAITING))


def today(store: JournalStore, since: datetime, until: datetime) -> Today:
    """The window's numbers from the journal (per-minute rollups: the cost does not grow with the decisions)."""
    return summarise(store.totals(since, until), since, until, files_seen=store.files_seen(since, until))


@dataclass(frozen=True)
class Arrivals:
    """How many invoices arrived for each client in a window, most first (``""``: the decision named no client)."""

    since: datetime
    until: datetime
    clients: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(n for _client, n in self.clients)


def arrivals(store: JournalStore, since: datetime, until: datetime) -> Arrivals:
    """Per client, the invoices that arrived in the window (read from the decisions: the rollups know no client)."""
    counts = store.by_client(since, until, stage=ARRIVED[0], outcome=ARRIVED[1])
    return Arrivals(since, until, sorted(counts.items(), key=lambda item: (-item[1], item[0])))
