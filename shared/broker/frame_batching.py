"""A pika ``SelectConnection`` that hands the frames of many publishes to its socket in one write.

pika writes each frame (three per message) with its own ``send()``; each releases and retakes the interpreter
lock, and in a busy process retaking it is what costs. Holding the frames of a batch and writing them once
removes that (measured: README, "Performance"). It overrides one private pika method,
``Connection._output_marshaled_frames``; ``tests/integration/test_frame_batching.py`` fails if a pika upgrade
renames it, changes its signature, or stops sending frames through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from pika.adapters.select_connection import SelectConnection


# pika ships no type hints, so SelectConnection is Any to mypy; subclassing it is the point of this class.
class BatchingConnection(SelectConnection):  # type: ignore[misc]
    """Inside :meth:`one_write`, frames are held and written together when the block ends; outside, as pika does."""

    _held: list[bytes] | None = None

    @contextlib.contextmanager
    def one_write(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held and self.is_open:
                self._adapter_emit_data(b"".join(held))

    @property
    def held_frames(self) -> int:
        """Frames waiting for the end of the current :meth:`one_write` block."""
        return len(self._held or ())

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        # Every frame pika sends passes through here, so holding them keeps their order. pika marshals all of a
        # message's frames before calling this, so a message that cannot be encoded leaves nothing half-held.
        if self._held is None:
            super()._output_marshaled_frames(marshaled_frames)
            return
        for marshaled in marshaled_frames:
            self.bytes_sent += len(marshaled)
            self.frames_sent += 1
        self._held.extend(marshaled_frames)
