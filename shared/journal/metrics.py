"""The journal's counters, defined once: the stages that publish records and the writer that stores them share them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PUBLISHED = Counter("journal_records_published", "Journal records the broker confirmed, by stage", ["stage"])
DROPPED = Counter(
    "journal_records_dropped",
    "Journal records given up on, by reason (publish_failed: the broker did not take it; unrecordable: a stage "
    "could not make the record; undecodable: the writer could not read it). The invoice went on either way.",
    ["reason"],
)
WRITTEN = Counter("journal_records_written", "Journal records the writer committed (duplicates not counted)")
LAG = Gauge("journal_lag_seconds", "Age of the oldest record the writer holds and has not committed (0: caught up)")
WRITER_UP = Gauge("journal_writer_up", "1 while the journal writer consumes the journal queue and its store answers")
