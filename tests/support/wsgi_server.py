"""Serves a WSGI app on waitress in a background thread, on a free loopback port, for tests."""

from __future__ import annotations

import threading
from typing import Any

import waitress.server


class WsgiServer:
    """A WSGI app on waitress in a background thread, on a free loopback port."""

    def __init__(self, app: Any, *, threads: int = 8, max_request_body_size: int = 1024 * 1024 + 1) -> None:
        self._server = waitress.server.create_server(
            app, host="127.0.0.1", port=0, threads=threads, max_request_body_size=max_request_body_size
        )
        # waitress sets effective_port in BaseWSGIServer.__init__; types-waitress leaves it out.
        self.url = f"http://127.0.0.1:{self._server.effective_port}"  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> WsgiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._thread.join(5)
