"""The compose test's report: how long each phase took, the image size, whether it started the engine."""

from __future__ import annotations

import json

import pytest

from tests.compose.stack import REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_line(f"compose test (seconds, MB): {json.dumps(REPORT)}")
