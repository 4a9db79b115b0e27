"""The drainer's decisions with a scripted publish: what it quarantines, what it waits out, and that it never dies."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingress.spool import Spool
from ingress.spool_drainer import MAX_HEAD_FAILURES, MAX_SPOOL_FAULTS, SpoolDrainer, SpoolStuck
from shared.core.errors import BrokerUnavailable, MessageNacked, MessageRefused, MessageUnroutable, UnpublishableMessage
from shared.core.outgoing import OutgoingMessage


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(
        exchange="old.events", routing_key="file.uploaded", body=f"{n}".encode(), message_id=str(n), headers={}
    )


class ScriptedPublish:
    """``publish_and_wait`` whose answers are scripted per message id; records what was published."""

    def __init__(self, script: dict[str, list[BaseException]]) -> None:
        self.script = script
        self.published: list[OutgoingMessage] = []

    def __call__(self, message: OutgoingMessage) -> None:
        failures = self.script.get(message.message_id or "", [])
        if failures:
            raise failures.pop(0)
        self.published.append(message)


def _start_drainer(spool: Spool, publish: ScriptedPublish, deaths: list[BaseException]) -> SpoolDrainer:
    """A drainer on a broker that is always up, retrying at once, recording its death in ``deaths``."""
    return SpoolDrainer(
        spool,
        publish_and_wait=publish,
        is_connected=lambda: True,
        exchange="docspace.events",
        idle_wait=0.01,
        failure_wait=0.01,
        on_death=deaths.append,
    ).start()


def _drain(tmp_path: Path, publish: ScriptedPublish, count: int) -> tuple[Spool, list[str]]:
    quarantined: list[str] = []
    spool = Spool(tmp_path, max_bytes=1024 * 1024, on_quarantine=lambda reason, _id: quarantined.append(reason))
    for n in range(count):
        spool.append(_message(n))
    deaths: list[BaseException] = []
    drainer = _start_drainer(spool, publish, deaths)
    _until(lambda: spool.depth == 0)
    drainer.stop()
    assert deaths == []
    return spool, quarantined


def _until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_unpublishable_record_is_quarantined_at_once_and_the_rest_published(tmp_path: Path) -> None:
    publish = ScriptedPublish({"1": [UnpublishableMessage("ShortStringTooLong")]})
    _spool, quarantined = _drain(tmp_path, publish, 3)
    assert [m.message_id for m in publish.published] == ["0", "2"]
    assert quarantined == ["unpublishable"]
    assert {m.exchange for m in publish.published} == {"docspace.events"}  # today's exchange


def test_a_record_is_quarantined_only_after_repeated_refusals(tmp_path: Path) -> None:
    publish = ScriptedPublish(
        {"0": [MessageRefused("406")] * (MAX_HEAD_FAILURES - 1), "1": [MessageRefused("406")] * MAX_HEAD_FAILURES}
    )
    _spool, quarantined = _drain(tmp_path, publish, 3)
    # Record 0 was a bystander of someone else's refusal and went through; record 1 is the one refused.
    assert [m.message_id for m in publish.published] == ["0", "2"]
    assert quarantined == ["refused"]


def test_an_outage_is_waited_out_and_a_surprise_does_not_kill_the_thread(tmp_path: Path) -> None:
    publish = ScriptedPublish({"0": [BrokerUnavailable("down"), RuntimeError("a bug")]})
    _spool, quarantined = _drain(tmp_path, publish, 2)
    assert [m.message_id for m in publish.published] == ["0", "1"]
    assert quarantined == []


def test_a_head_record_that_keeps_failing_for_a_bug_is_quarantined_and_the_rest_published(tmp_path: Path) -> None:
    failure = KeyError("a bug")
    publish = ScriptedPublish({"0": [failure] * (MAX_HEAD_FAILURES + 10), "1": [failure] * (MAX_HEAD_FAILURES - 1)})
    _spool, quarantined = _drain(tmp_path, publish, 3)
    # Record 1 failed a moment and went through; record 0 failed every time and no longer holds up the rest.
    assert [m.message_id for m in publish.published] == ["1", "2"]
    assert quarantined == ["bug"]
    assert len(publish.script["0"]) == 10  # tried exactly MAX_HEAD_FAILURES times


@pytest.mark.parametrize("failure", [MessageUnroutable("no binding"), MessageNacked("nack")])
def test_nacks_and_unroutable_returns_are_waited_out_and_nothing_is_quarantined(
    tmp_path: Path, failure: Exception
) -> None:
    # The broker's state (a queue refusing, a binding missing during a deploy), not the record's: every record
    # would fail the same way, so none is moved aside; they go through, in order, once the broker takes them.
    publish = ScriptedPublish({"0": [failure] * (MAX_HEAD_FAILURES + 1)})
    _spool, quarantined = _drain(tmp_path, publish, 2)
    assert [m.message_id for m in publish.published] == ["0", "1"]
    assert quarantined == []


def test_a_quarantine_that_keeps_failing_stops_the_drainer_instead_of_spinning(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    spool.append(_message(0))
    spool.append(_message(1))
    spool.quarantine_dir.write_text("a file where the quarantine folder belongs")  # every quarantine raises
    publish = ScriptedPublish({"0": [UnpublishableMessage("ShortStringTooLong")] * 100})
    deaths: list[BaseException] = []
    drainer = _start_drainer(spool, publish, deaths)
    _until(lambda: bool(deaths))
    drainer.stop()
    assert isinstance(deaths[0], SpoolStuck)
    assert len(publish.script["0"]) == 100 - MAX_SPOOL_FAULTS  # one try per step, then it stopped
    assert publish.published == [] and spool.depth == 2  # nothing skipped, nothing lost
