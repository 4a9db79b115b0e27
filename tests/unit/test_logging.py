"""Log lines never carry a secret: not as a field, and not as a local variable in a printed traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

SECRET = "sk-local-variable-secret-0123456789"

_PROGRAM = f"""
from shared.logging import configure_logging
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
