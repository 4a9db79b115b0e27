"""JOURNAL_ENABLED: on by default; false gives every process a journal that publishes nothing."""

from __future__ import annotations

import pika
import pytest

from shared.broker.publisher import Publisher
from shared.config.settings import CommonSettings
from shared.journal.broker import BrokerJournal, process_journal
from shared.journal.port import NoJournal
from shared.journal.record import Decision


def test_the_journal_is_on_unless_the_setting_says_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_ENABLED", raising=False)
    assert CommonSettings().journal_enabled is True
    monkeypatch.setenv("JOURNAL_ENABLED", "false")
    assert CommonSettings().journal_enabled is False


def test_a_process_with_the_journal_off_publishes_no_record() -> None:
    # Never started, so every publish on it fails: the journal that is on counts its record as dropped, the journal
    # that is off never tries.
    publisher = Publisher([pika.URLParameters("amqp://guest:guest@127.0.0.1:1/")])
    decision = Decision.make("mover", "received", file_id="4711")
    on = process_journal(publisher, "journal", process="mover", enabled=True)
    assert isinstance(on, BrokerJournal)
    on.record(decision)
    assert on.close(timeout=5) == 1
    assert on.dropped == 1
    off = process_journal(publisher, "journal", process="mover", enabled=False)
    assert isinstance(off, NoJournal)
    off.record(decision)
    assert off.close() == 0
    assert on.dropped == 1
