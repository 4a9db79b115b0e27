"""How a stand-in run on its own (``python -m standins.…``, ``python -m simulator``) lives: until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def serve_until_stopped(stop: Callable[[], None]) -> int:
    """Block until SIGTERM (``docker stop``) or Ctrl-C, then ``stop`` the servers; the exit code is 0."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0
