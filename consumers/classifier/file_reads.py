"""One DocSpace read per upload: the two webhooks of one upload share the classifier's read of the file.

A simple API upload fires ``file.created`` and then ``file.uploaded`` for the same file (contract §1, note 6),
and both reach the classifier together. Each would read the file from DocSpace to learn its version, although
the answer decides the same invoice, which the idempotency claim then lets through once. Under the portal's rate
limit that second read is a quarter of the pipeline's calls per invoice.

Both deliveries carry the same ``payload.modifiedOn``, and an upload of a new version changes it, so a read is
shared between deliveries with the same file id and ``modifiedOn``: the first one reads, the others arriving
meanwhile wait for its answer, and later ones within ``ttl`` reuse it. A failed read is not shared (the next
delivery reads again), and a delivery without ``modifiedOn`` always reads.
"""

from __future__ import annotations

from typing import Protocol

from shared.core.single_flight import SingleFlightCache
from shared.docspace.values import FileInfo, Room


class DocSpaceFiles(Protocol):
    """The DocSpace reads the classifier needs (port; ``DocSpaceClient`` is the real one)."""

    def get_file(self, file_id: str) -> FileInfo: ...
    def find_room(self, folder_id: str) -> Room | None: ...


class SharedFileReads:
    """The classifier's view of DocSpace: file reads shared per upload; room lookups (cached by the client) as is."""

    def __init__(self, docspace: DocSpaceFiles, *, ttl: float = 120.0, max_entries: int = 10_000) -> None:
        self._docspace = docspace
        # Single flight per (file id, modifiedOn): deliveries of one upload that miss together wait for one read.
        self._answers: SingleFlightCache[tuple[str, str], FileInfo] = SingleFlightCache(
            max_entries=max_entries, ttl=ttl
        )

    @property
    def shared(self) -> int:
        """Reads saved (the tests check it)."""
        return self._answers.hits

    def find_room(self, folder_id: str) -> Room | None:
        return self._docspace.find_room(folder_id)

    def get_file(self, file_id: str, modified_on: str | None = None) -> FileInfo:
        if modified_on is None:
            return self._docspace.get_file(file_id)
        return self._answers.get((file_id, modified_on), lambda: self._docspace.get_file(file_id))
