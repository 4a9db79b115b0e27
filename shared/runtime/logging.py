"""Structured logging: JSON lines in containers, readable lines in a terminal, ids bound per message."""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog
from prometheus_client import Counter

# Lines waiting for the writer thread, at most. A stderr that blocks (a full pipe, a stalled log collector) would
# otherwise grow the queue until the process runs out of memory; 20,000 lines are a few MB.
MAX_QUEUED_LINES = 20_000
LINES_DROPPED = Counter(
    "log_lines_dropped", "Log lines dropped because the log writer could not keep up (its queue was full)"
)

# Keys whose values must never reach a log line, whatever a caller passes by mistake.
_SECRET_KEYS = frozenset({"secret", "password", "api_key", "authorization", "token", "amqp_url", "signature"})


def _redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in event_dict.keys() & _SECRET_KEYS:
        event_dict[key] = "***"
    return event_dict


class LineWriter:
    """structlog's logger: hands each rendered line to one writer thread instead of writing it in place.

    With ``PrintLogger`` every thread takes a lock around a flushed write; a thread that loses the GIL while
    holding it stalls all the others (at 64 busy threads the ingress spent most of its time there). Here a
    worker only appends to a lock-free queue; the writer thread writes whatever has piled up in one call and
    flushes, so lines still appear within milliseconds and in order. At exit the queue is drained.

    The queue holds at most ``max_lines``: beyond that a line is dropped and counted (``log_lines_dropped_total``),
    and once the writer catches up it writes one ``log_lines_dropped`` line saying how many went missing.
    """

    def __init__(self, file: TextIO, *, max_lines: int = MAX_QUEUED_LINES) -> None:
        self._file = file
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._max_lines = max_lines
        self._dropped = 0  # since the last notice; only an estimate under races, the counter is exact
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()
        atexit.register(self.flush)

    def msg(self, message: str) -> None:
        # qsize() of a SimpleQueue takes no lock: the bound may be overshot by a line per racing thread, which
        # is harmless, while a locked queue.Queue would bring back the contention this class exists to avoid.
        if self._queue.qsize() >= self._max_lines:
            self._dropped += 1
            LINES_DROPPED.inc()
            return
        self._queue.put(message)

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg

    def _run(self) -> None:
        while True:
            lines = [self._queue.get()]
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        with contextlib.suppress(queue.Empty):
            while len(lines) < 1000:
                lines.append(self._queue.get_nowait())
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            lines.append(_dropped_notice(dropped))
        with contextlib.suppress(OSError, ValueError):  # a closed stderr at shutdown
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()

    def flush(self) -> None:
        with contextlib.suppress(queue.Empty):
            self._write([self._queue.get_nowait()])


def _dropped_notice(count: int) -> str:
    # Rendered here, not by structlog: the writer thread must not log through itself.
    event = {
        "event": "log_lines_dropped",
        "level": "warning",
        "timestamp": datetime.now(UTC).isoformat(),
        "count": count,
        "hint": "the log output (stderr) was too slow; the missing lines are gone",
    }
    return orjson.dumps(event).decode()


def _json_line(event_dict: dict[str, Any], **dumps_kw: Any) -> str:
    # orjson renders a line several times faster than json.dumps; the ingress writes one per delivery.
    return orjson.dumps(event_dict, default=dumps_kw.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()


_writers: dict[int, LineWriter] = {}


def _line_writer(file: TextIO) -> LineWriter:
    """One writer per output file per process, however often logging is configured."""
    if id(file) not in _writers:
        _writers[id(file)] = LineWriter(file)
    return _writers[id(file)]


def configure_logging(*, fmt: str = "auto", level: str = "INFO", process: str | None = None) -> None:
    """Configure structlog and the standard library (pika, waitress) to write one line per event to stderr."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if process:
        structlog.contextvars.bind_contextvars(process=process)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if as_json
        # Rich's tracebacks print every frame's local variables by default, and a local may be a secret.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
        )
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer] if as_json else [*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _line_writer(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika narrates every reconnect attempt at INFO/ERROR; our own lines already say what matters.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
