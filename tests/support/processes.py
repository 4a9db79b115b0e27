"""Ending a test's child process: asked to stop (SIGTERM) first, killed only when it does not in time."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_gently(process: subprocess.Popen[Any], grace: float, kill_wait: float = 10) -> int:
    """SIGTERM, up to ``grace`` seconds for it to exit, else SIGKILL; its exit code."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(kill_wait)
