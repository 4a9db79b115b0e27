"""The bench's arithmetic: the drain rates and the invoices a key allows (no timing, no processes)."""

from __future__ import annotations

import math

from bench.backlog import drain_rate, steady_rate
from bench.calls import allowed_per_minute


def test_the_steady_rate_is_taken_between_the_10th_and_90th_percentile_of_arrivals() -> None:
    # A slow start and a long tail do not count: 80 arrivals in the middle, two a second.
    arrivals = [0.0] * 10 + [100.0 + i * 0.5 for i in range(80)] + [500.0] * 10
    assert math.isclose(steady_rate(arrivals), 2.0)


def test_too_few_arrivals_or_all_at_once_give_no_rate() -> None:
    assert steady_rate([]) == 0.0
    assert steady_rate([1.0]) == 0.0
    assert steady_rate([5.0] * 50) == 0.0


def test_one_key_allows_1500_calls_a_minute_divided_by_the_calls_per_invoice() -> None:
    assert allowed_per_minute(2.0) == 750
    assert allowed_per_minute(3.0) == 500
    assert allowed_per_minute(0.0) == 0.0


def test_the_drain_runs_from_the_first_docspace_call_to_the_last_e_mail() -> None:
    # The calls made before the first e-mail (lookups, a classifier ahead of its mover) count: 10 e-mails, 20 s.
    arrivals = [5.0, 5.1, 5.2, 5.3, 5.4, 10.0, 12.0, 15.0, 18.0, 21.0]
    assert math.isclose(drain_rate(1.0, arrivals), 0.5)
    assert drain_rate(None, arrivals) == 0.0
    assert drain_rate(1.0, []) == 0.0
