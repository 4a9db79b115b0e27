"""The simulated portal's asynchronous file operations: moves queued on a timer and read back through ``fileops``."""

from __future__ import annotations

import collections
import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.dto import Rendering
from simulator.model import FT_ARCHIVE, FT_VIRTUAL_ROOMS, ApiError, EventSink, File, now

ST_CREATED, ST_RUNNING, ST_COMPLETED, ST_FAILED = 0, 1, 2, 4


@dataclass
class Operation:
    """A file operation (a move) in progress or finished, as ``fileops`` reports it."""

    id: str
    owner: str
    hold: bool
    operation: int = 0  # FileOperationType.Move
    status: int = ST_CREATED
    progress: int = 0
    error: str = ""
    processed: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    # When the work is due (monotonic), and the work itself until it has run: see Operations.start_move.
    due: float = field(default=0.0, repr=False, compare=False)
    work: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status > ST_RUNNING

    def dto(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "Operation": self.operation,
            "progress": self.progress,
            "error": self.error,
            "processed": str(self.processed),
            "finished": self.finished,
            "status": self.status,
        }
        # Empty lists are left out, as the server does.
        if self.files:
            out["files"] = self.files
        if self.folders:
            out["folders"] = self.folders
        return out


class MoveOperations(Rendering):
    """Move operations with FileMoveCopyOperation semantics, and the once-only reports of finished ones."""

    def __init__(self, *, move_delay: float = 0.05, on_event: EventSink | None = None) -> None:
        super().__init__(on_event=on_event)
        self.move_delay = move_delay
        self.operations: dict[str, Operation] = {}
        self._timers: set[threading.Timer] = set()
        self.move_errors: list[str] = []  # scripted: the next move operations fail with these messages
        self.moves: collections.Counter[str] = collections.Counter()  # file id -> times a move operation moved it

    def start_move(
        self, owner: str, file_ids: list[Any], folder_ids: list[Any], dest_id: Any, conflict: int, hold: bool
    ) -> dict[str, Any]:
        """Synchronous checks, then queue the operation; it runs ``move_delay`` later.

        DocSpace does the work on its own servers, whatever its callers' CPUs are doing: a timer thread runs it
        when due, and a status read after that time runs it first if the timer is late (a starved test process),
        so a poll never sees a move still running that DocSpace would have finished.
        """
        with self.lock:
            dest = self.folder(dest_id)
            if dest.parent_id is None and dest.folder_type in (FT_VIRTUAL_ROOMS, FT_ARCHIVE):
                raise ApiError(403, "Access denied")
            files = [self.file(i) for i in file_ids]
            folders = [self.folder(i) for i in folder_ids]
            for d in folders:
                if d.parent_id is None or self.in_subtree(dest, d):
                    raise ApiError(403, "Access denied")
            op = Operation(id=str(uuid.uuid4()), owner=owner, hold=hold)
            self.operations[op.id] = op
            first = op.dto()
            op.status = ST_RUNNING
            op.due = time.monotonic() + self.move_delay
            op.work = functools.partial(
                self._run_move, op, [f.id for f in files], [d.id for d in folders], dest.id, conflict
            )
            timer = threading.Timer(self.move_delay, self._run_due, (op,))
            timer.daemon = True
            self._timers.add(timer)
            timer.start()
            return first

    def _run_due(self, op: Operation) -> None:
        """Run the operation's work once, whichever comes first: its timer or a status read after it was due."""
        with self.lock:
            work, op.work = op.work, None
            if work is not None:
                work()

    def _run_move(self, op: Operation, file_ids: list[int], folder_ids: list[int], dest_id: int, conflict: int) -> None:
        """FileMoveCopyOperation semantics (contract §3.5): Skip=0, Overwrite=1, Duplicate=2."""
        moved: list[File] = []
        with self.lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            dest = self.folders.get(dest_id)
            if self.move_errors:
                op.error = self.move_errors.pop(0)
            elif dest is None:
                op.error = "The required folder was not found"
            else:
                for fid in file_ids:
                    f = self.files.get(fid)
                    if f is None:
                        op.error = "The required file was not found"
                        break
                    if f.folder_id == dest.id and conflict != 2:
                        continue  # already there: nothing to do, no error, not in the result
                    clash = next(
                        (
                            x
                            for x in self.files.values()
                            if x.folder_id == dest.id and x.title.lower() == f.title.lower() and x.id != f.id
                        ),
                        None,
                    )
                    if clash is None or conflict == 2:
                        f.folder_id = dest.id
                        moved.append(f)
                    elif conflict == 1:
                        if clash.locked:
                            op.error = f"The file '{clash.title}' is locked and cannot be overwritten"
                            break
                        clash.version += 1
                        clash.size = f.size
                        clash.updated = now()
                        del self.files[f.id]
                        moved.append(clash)
                    # conflict == 0 (Skip): silently nothing
                    op.processed += 1
                for did in folder_ids:
                    d = self.folders.get(did)
                    if d is not None:
                        d.parent_id = dest.id
                        op.processed += 1
                op.files = [self.file_dto(f) for f in moved]
                op.folders = [self.folder_dto(dest)] if moved else []
            op.progress = 100
            op.status = ST_FAILED if op.error else ST_COMPLETED
            if not op.hold:
                self.operations.pop(op.id, None)
            for f in moved:
                self.moves[str(f.id)] += 1
                self._fire("file.moved", f)

    def read_operations(self, owner: str, *, op_id: str | None = None, op_type: int | None = None) -> list[dict]:
        """A status read: finished operations are dequeued, and reported only if held (at most once)."""
        with self.lock:
            out = []
            for op in list(self.operations.values()):
                if op.owner != owner or (op_id and op.id != op_id):
                    continue
                if op_type is not None and op.operation != op_type:
                    continue
                if op.work is not None and op.due <= time.monotonic():
                    self._run_due(op)
                if op.finished:
                    self.operations.pop(op.id, None)
                    if not op.hold:
                        continue
                out.append(op.dto())
            return out

    def consume_operation_reports(self, owner: str | None = None) -> int:
        """Another reader with the same user takes every finished report."""
        with self.lock:
            done = [o for o in self.operations.values() if o.finished and (owner is None or o.owner == owner)]
            for op in done:
                del self.operations[op.id]
            return len(done)

    def cancel_timers(self) -> None:
        with self.lock:
            for t in self._timers:
                t.cancel()
            self._timers.clear()
