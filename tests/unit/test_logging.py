"""Log lines never carry a secret (as a field or a traceback's local), and a stalled output cannot grow memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import REGISTRY

from shared.runtime.logging import LineWriter

SECRET = "sk-local-variable-secret-0123456789"

_PROGRAM = f"""
from shared.runtime.logging import configure_logging
import structlog

configure_logging(fmt={{fmt!r}}, process="test")
log = structlog.get_logger("test")

def call_docspace():
    api_key = {SECRET!r}
    raise RuntimeError("DocSpace did not answer")

try:
    call_docspace()
except RuntimeError:
    log.exception("handler_bug")
log.info("configured", api_key={SECRET!r})
"""


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_shows_the_error_but_no_local_variable_and_secret_fields_are_masked(fmt: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(fmt=fmt)], capture_output=True, text=True, timeout=60, check=True
    )
    assert "DocSpace did not answer" in result.stderr
    assert "handler_bug" in result.stderr
    assert SECRET not in result.stderr


class StalledOutput(io.StringIO):
    """A stderr that blocks (a full pipe, a stalled collector) until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        assert self.go_on.wait(10)
        return super().write(text)


def test_a_stalled_output_holds_a_bounded_queue_and_the_excess_is_dropped_and_counted() -> None:
    dropped_before = REGISTRY.get_sample_value("log_lines_dropped_total") or 0.0
    out = StalledOutput()
    writer = LineWriter(out, max_lines=50)
    writer.msg("first")
    assert out.writing.wait(5)  # the writer thread holds "first" and is stuck writing it
    for n in range(57):
        writer.msg(f"line {n}")
    assert REGISTRY.get_sample_value("log_lines_dropped_total") == dropped_before + 7
    out.go_on.set()
    deadline = time.monotonic() + 5
    while "log_lines_dropped" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert lines[:51] == ["first", *(f"line {n}" for n in range(50))]  # the oldest kept, in order
    notice = json.loads(lines[51])
    assert notice["event"] == "log_lines_dropped" and notice["count"] == 7
