"""``DocSpaceSimulator``: the simulator's control surface behind a real waitress server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import falcon
from waitress import wasyncore
from waitress.server import create_server

from simulator import admin, api, settings_api
from simulator.control import SimulatorControl
from simulator.model import ApiError
from simulator.wire import Gate, handle_api_error

DEFAULT_API_KEY = "sk-simulator-test-key"


class DocSpaceSimulator(SimulatorControl):
    """A DocSpace portal in a box, speaking the wire contract over real HTTP.

    Use as a context manager, or ``start()``/``stop()``. Everything a test or demo drives is a method of
    ``SimulatorControl`` (``simulator.control``) and, for other processes, an endpoint under ``/_sim/``
    (see ``simulator.admin``).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        move_delay: float = 0.05,
        retry_delays: Sequence[float] = (1, 2, 4, 8, 16),
        webhook_threads: int = 4,
        send_timeout: float = 30.0,
        seed: int | None = None,
        threads: int = 16,
    ) -> None:
        super().__init__(
            api_key=api_key,
            move_delay=move_delay,
            retry_delays=retry_delays,
            webhook_threads=webhook_threads,
            send_timeout=send_timeout,
            seed=seed,
        )
        self._host, self._port, self._threads = host, port, threads
        self.app = self._build_app()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"DocSpaceSimulator(base_url={self.base_url!r})"

    def _build_app(self) -> falcon.App:
        app = falcon.App(middleware=[Gate(self.api_key, self.faults, self.calls)])
        app.add_error_handler(ApiError, handle_api_error)
        api.add_routes(app, self.portal)
        settings_api.add_routes(app, self.portal, self.webhooks)
        admin.add_routes(app, self)
        return app

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            return f"http://{self._host}:{self._port}"
        return f"http://{self._host}:{self._server.effective_port}"

    def start(self) -> DocSpaceSimulator:
        # Waitress logs every queue-depth warning; tests with many threads would drown in them.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._server = create_server(self.app, host=self._host, port=self._port, threads=self._threads)
        self.portal.base_url = self.base_url
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(self._server,), name="docspace-sim", daemon=True)
        self._thread.start()
        return self

    def _serve(self, server: Any) -> None:
        # Our own loop instead of server.run(): sockets must be closed by the thread that selects on them,
        # or a stop from another thread races select() into EBADF.
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)
        server.task_dispatcher.shutdown(timeout=2)
        for dispatcher in list(server._map.values()):
            with contextlib.suppress(Exception):  # best effort: the process keeps running either way
                dispatcher.close()

    def stop(self) -> None:
        self.portal.cancel_timers()
        self.webhooks.close()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._server = None

    def __enter__(self) -> DocSpaceSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
