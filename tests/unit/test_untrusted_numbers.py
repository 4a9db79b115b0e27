"""Numbers read from places anyone can write (message headers, API answers) parse or are ignored, never crash."""

from __future__ import annotations

import pika
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.reconciler.scan import delivery_for
from ops.dead_letters import describe, replay_properties
from shared.core.ids import small_count
from shared.docspace.admin import _listed_file, _logged_delivery
from shared.docspace.values import _file_info, _id_sort_key, _webhook_config
from shared.docspace.webhooks import ListedFile, LoggedDelivery, UnreadableRow

HOSTILE = ["²", "١٢", "--5", "-1", "1" * 5000, "", " ", "1e3", "0x10", True, None, 2**70, -3, b"\xff"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_count_is_no_count(value: object) -> None:
    assert small_count(value) is None


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (7, 7), ("12", 12), (" 42 ", 42), (b"3", 3)])
def test_a_count_parses(value: object, expected: int) -> None:
    assert small_count(value) == expected


@given(st.one_of(st.text(), st.integers(), st.binary(), st.booleans(), st.none(), st.floats()))
def test_small_count_is_a_non_negative_int_or_none(value: object) -> None:
    result = small_count(value)
    assert result is None or (isinstance(result, int) and 0 <= result < 2**63)


@pytest.mark.parametrize("value", HOSTILE)
def test_dlq_reads_and_replays_hostile_attempt_headers(value: object) -> None:
    properties = pika.BasicProperties(headers={"x-attempts": value, "x-replays": value, "x-reason": "bug"})
    assert describe("mover", properties, b"{}").reason == "bug"
    assert replay_properties(properties).headers["x-replays"] >= 1


@pytest.mark.parametrize("value", ["²", "1" * 5000, "x"])
def test_docspace_answers_with_hostile_numbers_are_read_with_defaults(value: str) -> None:
    info = _file_info({"id": 5, "title": "Invoice.pdf", "folderId": 7, "version": value})
    assert info.version == 1
    assert _webhook_config({"id": 1, "triggers": value}, None).triggers == 0
    assert _id_sort_key(value)[0] == 1


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_numbers_in_the_delivery_log_and_a_listing_make_unreadable_rows_or_defaults(value: object) -> None:
    assert isinstance(_logged_delivery({"id": value, "trigger": 256}), UnreadableRow)  # no id: a counted skip
    row = _logged_delivery({"id": 7, "trigger": value, "status": value, "requestPayload": "{}"})
    assert isinstance(row, LoggedDelivery) and (row.trigger, row.status) == (0, 0)
    listed = _listed_file({"id": 5, "folderId": 7, "title": "Invoice.pdf", "version": value, "rootFolderId": value})
    assert isinstance(listed, ListedFile) and listed.version == 1
    assert delivery_for(listed)  # the root id is one the scan can write back, or left out
