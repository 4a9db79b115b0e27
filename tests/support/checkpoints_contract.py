"""The checkpoint store's contract, as tests both adapters run: SQLite in tests/unit, Redis in tests/integration.

An adapter's test module subclasses ``CheckpointsContract`` as a ``Test…`` class and defines ``make``: a factory of
stores that share one place (one SQLite file, or one Redis namespace), as the processes of one deployment do.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.store.checkpoints import Checkpoints

Make = Callable[[], Checkpoints]


class CheckpointsContract:
    """The checkpoint store's contract, for an adapter's test module to subclass (as ``Test…``)."""

    def test_a_saved_checkpoint_is_read_back_by_another_process(self, make: Make) -> None:
        first, second = make(), make()
        assert first.load("reconciler.state") is None
        first.save("reconciler.state", {"log_after_id": 138800, "rooms": {"86193": {"scanned_until": "2026-11-03"}}})
        assert second.load("reconciler.state") == {
            "log_after_id": 138800,
            "rooms": {"86193": {"scanned_until": "2026-11-03"}},
        }
        second.save("reconciler.state", {"log_after_id": 138900})
        assert first.load("reconciler.state") == {"log_after_id": 138900}

    def test_a_lease_has_one_holder_who_may_extend_and_release_it(self, make: Make) -> None:
        a, b = make(), make()
        assert a.hold("reconciler.cycle", "a", seconds=30)
        assert not b.hold("reconciler.cycle", "b", seconds=30)
        assert a.hold("reconciler.cycle", "a", seconds=30)  # extending one's own lease
        b.release("reconciler.cycle", "b")  # not b's to release
        assert not b.hold("reconciler.cycle", "b", seconds=30)
        a.release("reconciler.cycle", "a")
        assert b.hold("reconciler.cycle", "b", seconds=30)

    def test_a_quarantined_row_is_listed_by_every_process_until_set_aside_again(self, make: Make) -> None:
        a, b = make(), make()
        assert b.quarantined("reconciler") == {}
        a.quarantine("reconciler", "delivery:138800", {"error": "RecursionError", "log_id": 138800})
        a.quarantine("reconciler", "file:5001:v1", {"error": "JSONEncodeError"})
        a.quarantine("other", "delivery:1", {})
        assert b.quarantined("reconciler") == {
            "delivery:138800": {"error": "RecursionError", "log_id": 138800},
            "file:5001:v1": {"error": "JSONEncodeError"},
        }
        b.quarantine("reconciler", "delivery:138800", {"error": "KeyError"})  # met again: the latest detail
        assert a.quarantined("reconciler")["delivery:138800"] == {"error": "KeyError"}
