"""The console's pages over the decision journal: Today (the funnel and its lists) and Find an invoice (trace)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import falcon

from console.app import Pages
from console.sources import Sources
from ops.dead_letters import DeadLetter, LetterFilter, list_letters
from ops.today import ARRIVED, WINDOWS, Today, today, window
from ops.trace import trace
from shared.broker.topology import STAGES
from shared.journal.store import JournalStore, JournalUnavailable

LIST_LIMIT = 200


def _now() -> datetime:
    return datetime.now(UTC)


def _journal(sources: Sources) -> JournalStore:
    if sources.journal is None:
        raise falcon.HTTPNotFound(title="no journal", description="set JOURNAL_URL to see the journal's pages")
    return sources.journal


class TodayPage:
    """``/today``: the funnel for a window, skipped and dead-lettered by reason, what waits and why."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until, name = window(req.get_param("window"), _now())
        counted = self._sources.counted_windows.get(name)
        snapshot = counted.snapshot if counted else None
        numbers: Today | None
        if snapshot is not None and snapshot.value is not None:
            numbers, error = snapshot.value, snapshot.error
            since, until = numbers.since, numbers.until
        else:
            try:
                numbers, error = today(_journal(self._sources), since, until), None
            except JournalUnavailable as exc:
                numbers, error = None, str(exc)
        per_client = self._sources.arrivals.snapshot if self._sources.arrivals else None
        queues = None
        try:
            queues = self._sources.queues()
        except Exception as exc:
            error = error or f"the broker did not answer: {type(exc).__name__}"
        self._page.render(
            req,
            resp,
            "today.html",
            title="Today",
            today=numbers,
            window=name,
            windows=["today", *WINDOWS],
            since=since,
            until=until,
            queues=queues or [],
            error=error,
            per_client=per_client,
            arrived=ARRIVED,
            counted_at=snapshot.taken_at if snapshot is not None and snapshot.value is not None else None,
        )


class DecisionList:
    """``/today/list``: the decisions behind one number (stage, outcome, reason) in the window, newest first."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until, name = window(req.get_param("window"), _now())
        pairs = [p.split(":", 1) for p in req.get_param_as_list("of") or [] if ":" in p][:6]
        reason, client = req.get_param("reason"), req.get_param("client")
        store = _journal(self._sources)
        rows = []
        for stage, outcome in pairs:
            if client is not None:
                rows += store.client_decisions(
                    since, until, stage=stage[:64], outcome=outcome[:64], client=client[:200], limit=LIST_LIMIT
                )
            else:
                rows += store.decisions(
                    since, until, stage=stage[:64], outcome=outcome[:64], reason=reason, limit=LIST_LIMIT
                )
        rows.sort(key=lambda d: d.at, reverse=True)
        what = ", ".join(f"{s} {o}" for s, o in pairs) + (f" ({reason or 'no reason'})" if reason is not None else "")
        what += f" for {client}" if client is not None else ""
        self._page.render(
            req,
            resp,
            "decisions.html",
            title="Decisions",
            decisions=rows[:LIST_LIMIT],
            what=what,
            window=name,
            limit=LIST_LIMIT,
            docspace=self._sources.docspace_url,
        )


class Find:
    """``/find``: a title fragment, file id, invoice id or event id; one file shows its timeline and verdict."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        term = (req.get_param("q") or "").strip()[:200]
        found, error = None, None
        if term:
            now = _now()
            try:
                found = trace(term, store=_journal(self._sources), now=now, dead_letters=self._dead_letters)
            except JournalUnavailable as exc:
                error = str(exc)
        self._page.render(
            req,
            resp,
            "find.html",
            title="Find an invoice",
            term=term,
            found=found,
            error=error,
            docspace=self._sources.docspace_url,
            recent=timedelta(days=1),
        )

    def _dead_letters(self) -> list[DeadLetter]:
        # Only when the journal knows nothing: the same fallback as `invoice-pipeline trace`.
        try:
            return list_letters(self._sources.sweep(), list(STAGES), LetterFilter())
        except Exception:
            return []  # the broker is away: the verdict then says "not found in the journal" only
