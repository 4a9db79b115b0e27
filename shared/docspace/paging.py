"""Hard caps on DocSpace's paged listings: a listing whose ``total`` or full pages never end stops, loudly.

DocSpace says how many entries a listing has (``total``) and pages through them; a portal that keeps answering
full pages (a bug, an ignored ``startIndex``) would keep a loop going for ever. Every paging loop stops at a
cap far above any real listing, and hitting it is logged and counted, never silent.
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter

log = structlog.get_logger("docspace")

# A room's subfolders matching one title: a real one has a handful. (The reconciler's walks have their own cap,
# ``consumers.reconciler.model.MAX_WALK_PAGES``, counted as ``reconciler_page_cap_hits``.)
MAX_FOLDER_PAGES = 50

PAGE_CAP_HITS = Counter(
    "docspace_listing_page_cap_hits",
    "DocSpace listings cut off at their page cap (a portal that never stopped answering full pages), by listing",
    ["listing"],
)
# Every series from the start at zero: an alert on increase() would miss a first hit on a series born at 1.
PAGE_CAP_HITS.labels("folder_subfolders")


def page_cap_hit(listing: str, pages: int, **ids: str | int | None) -> None:
    """Say that the paged ``listing`` was cut off after ``pages`` pages: one log line and the counter."""
    PAGE_CAP_HITS.labels(listing).inc()
    log.critical(
        "docspace_listing_page_cap_hit",
        listing=listing,
        pages=pages,
        hint="DocSpace kept answering full pages; the rest of this listing was not read",
        **ids,
    )
