"""The classifier's shared file reads: one DocSpace read per upload, however its webhooks arrive."""

from __future__ import annotations

import time

import pytest

from consumers.classifier.file_reads import SharedFileReads
from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.values import FileInfo
from tests.support.fakes import FakeDocSpace
from tests.support.together import Gate, call_together

MODIFIED = "2026-09-18T08:14:02Z"


@pytest.fixture
def docspace() -> FakeDocSpace:
    fake = FakeDocSpace()
    fake.add_room("100", "Client room", "101")
    fake.add_file("7", "Invoice-7.pdf", folder_id="101")
    return fake


def test_both_webhooks_of_one_upload_make_one_read(docspace: FakeDocSpace) -> None:
    reads = SharedFileReads(docspace)
    first, second = reads.get_file("7", MODIFIED), reads.get_file("7", MODIFIED)
    assert first == second
    assert docspace.calls_to("get_file") == [("7",)]
    assert reads.shared == 1


def test_a_new_version_or_another_file_is_read_again(docspace: FakeDocSpace) -> None:
    docspace.add_file("8", "Invoice-8.pdf", folder_id="101")
    reads = SharedFileReads(docspace)
    reads.get_file("7", MODIFIED)
    reads.get_file("7", "2026-09-18T09:00:00Z")  # an upload of a new version changes modifiedOn
    reads.get_file("8", MODIFIED)
    reads.get_file("7", None)  # no modifiedOn in the payload: nothing to share on
    assert docspace.calls_to("get_file") == [("7",), ("7",), ("8",), ("7",)]


def test_an_answer_is_forgotten_after_its_ttl(docspace: FakeDocSpace) -> None:
    reads = SharedFileReads(docspace, ttl=0.05)
    reads.get_file("7", MODIFIED)
    time.sleep(0.1)
    reads.get_file("7", MODIFIED)
    assert len(docspace.calls_to("get_file")) == 2


def test_a_failed_read_is_not_shared(docspace: FakeDocSpace) -> None:
    reads = SharedFileReads(docspace)
    docspace.fail_next("get_file", DocSpaceUnavailable("503"))
    with pytest.raises(DocSpaceUnavailable):
        reads.get_file("7", MODIFIED)
    assert reads.get_file("7", MODIFIED).id == "7"
    assert len(docspace.calls_to("get_file")) == 2


def test_webhooks_that_arrive_together_wait_for_one_read() -> None:
    gate = Gate()
    calls: list[str] = []

    class SlowDocSpace(FakeDocSpace):
        def get_file(self, file_id: str, modified_on: str | None = None) -> FileInfo:
            calls.append(file_id)
            gate.hold()
            return super().get_file(file_id, modified_on)

    docspace = SlowDocSpace()
    docspace.add_file("7", "Invoice-7.pdf", folder_id="101")
    reads = SharedFileReads(docspace)
    answers = call_together(4, lambda: reads.get_file("7", MODIFIED), gate)
    assert calls == ["7"] and len(answers) == 4 and len(set(answers)) == 1


def test_room_lookups_pass_through(docspace: FakeDocSpace) -> None:
    room = SharedFileReads(docspace).find_room("101")
    assert room is not None and room.id == "100"
