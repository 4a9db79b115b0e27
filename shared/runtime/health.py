"""A process's internal HTTP side on ``METRICS_PORT``: ``/healthz`` (alive), ``/readyz`` (ready), ``/metrics``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]


def health_app(is_ready: Callable[[], bool], registry: CollectorRegistry = REGISTRY) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: the two probes answer JSON, every other path is prometheus_client's exposition."""
    metrics: Callable[..., Iterable[bytes]] = make_wsgi_app(registry)  # typed here: prometheus_client says Callable

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            if is_ready():
                return _json(start_response, "200 OK", {"status": "ok"})
            return _json(
                start_response,
                "503 Service Unavailable",
                {"status": "unavailable", "reason": "not connected to the broker"},
            )
        return metrics(environ, start_response)

    return app


def _json(start_response: StartResponse, status: str, value: dict[str, str]) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # A slow scrape must not hold up a liveness probe; daemon threads never block the process's exit.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the structured log


class HealthServer:
    """Serves :func:`health_app` on a background thread until :meth:`stop`."""

    def __init__(
        self,
        port: int,
        is_ready: Callable[[], bool],
        *,
        host: str = "0.0.0.0",  # noqa: S104 - Prometheus and the orchestrator probe from outside the container
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._server = make_server(
            host, port, health_app(is_ready, registry), server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="health-server", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
