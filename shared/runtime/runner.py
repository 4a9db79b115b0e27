"""The one process runner: settings, then logging, signals, the entry point's work, and closing what it opened."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Any, Protocol, TypeVar

import structlog
from pydantic import ValidationError

from shared.broker.connection import TopologyMismatch
from shared.config.settings import explain
from shared.core.rules import RulesError
from shared.runtime.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_TOPOLOGY
from shared.runtime.health import HealthServer
from shared.runtime.logging import configure_logging

log = structlog.get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ConfigError(Exception):
    """The settings, or what they name (a rules file, a spool folder), cannot run the process: exit 2, said plainly.

    The message follows ``<process>: `` on stderr, so it must never hold a secret's value.
    """


class ProcessSettings(Protocol):
    """What the runner reads of a process's settings (``CommonSettings`` has it all)."""

    @property
    def log_format(self) -> str: ...
    @property
    def log_level(self) -> str: ...
    def transport_notes(self) -> list[str]: ...


class Closable(Protocol):
    """A part that holds something open: a client, a store, a spool."""

    def close(self) -> object: ...


S = TypeVar("S", bound=ProcessSettings)
C = TypeVar("C", bound=Closable)
T = TypeVar("T")


class Runtime:
    """What an entry point's parts get from the runner: the process's name, how it stops, what must close at exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.close_failed = False
        self._on_stop: list[Callable[[], object]] = []
        self._stack = ExitStack()

    def closing(self, part: C) -> C:
        """Close ``part`` when the process ends (after everything opened later)."""
        self.on_exit(part.close)
        return part

    def on_exit(self, close: Callable[[], object]) -> None:
        """Call ``close`` when the process ends; the last registered runs first."""
        self._stack.callback(self._close, close)

    def health(self, port: int, ready: Callable[[], bool], **options: Any) -> HealthServer | None:
        """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``port`` until exit; no server when the port is 0."""
        if not port:
            return None
        server = HealthServer(port, ready, **options).start()
        self.on_exit(server.stop)
        return server

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on SIGTERM/SIGINT (at once, when the process is already stopping)."""
        self._on_stop.append(callback)
        if self.stopping.is_set():
            callback()

    def stop(self) -> None:
        """Stop the process as SIGTERM does: set :attr:`stopping` and run every stop callback."""
        self.stopping.set()
        for callback in list(self._on_stop):
            callback()

    def close_all(self) -> None:
        self._stack.close()

    def _close(self, close: Callable[[], object]) -> None:
        try:
            close()
        except Exception as exc:
            self.close_failed = True
            log.error("close_failed", part=getattr(close, "__qualname__", repr(close)), error=repr(exc)[:300])


def configuration(build: Callable[[], T], *errors: type[Exception]) -> T:
    """``build()`` something the settings name (the rules, a mailer); any of ``errors`` is a configuration error."""
    try:
        return build()
    except errors as exc:
        raise ConfigError(_invalid(exc)) from exc


def run_process(name: str, settings: Callable[[], S], body: Callable[[Runtime, S], int]) -> int:
    """Run an entry point and return its exit code.

    Builds the settings (a bad one: exit 2 with a line naming it, never its value), configures logging, says what
    plain-text transport the settings allow, turns SIGTERM/SIGINT into :meth:`Runtime.stop`, runs ``body`` with the
    runtime and the settings, and at the end closes all it registered, each whatever the others do. A topology
    mismatch that reaches the runner exits 3; a part that failed to close turns a clean exit into 1, as the
    exception it raised once did.
    """
    try:
        loaded = settings()
    except (ValidationError, RulesError) as exc:
        return _config_error(name, _invalid(exc))
    except ConfigError as exc:
        return _config_error(name, str(exc))
    configure_logging(fmt=loaded.log_format, level=loaded.log_level, process=name)
    for note in loaded.transport_notes():
        log.warning("insecure_transport_allowed", detail=note)
    runtime = Runtime(name)
    try:
        with _stop_on_signals(runtime):
            try:
                code = body(runtime, loaded)
            finally:
                runtime.close_all()
    except ConfigError as exc:
        return _config_error(name, str(exc))
    except TopologyMismatch as exc:
        log.critical("topology_mismatch", error=str(exc))
        return EXIT_TOPOLOGY
    return EXIT_FAILED if code == EXIT_OK and runtime.close_failed else code


@contextmanager
def _stop_on_signals(runtime: Runtime) -> Iterator[None]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        runtime.stop()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _invalid(error: Exception) -> str:
    detail = explain(error) if isinstance(error, ValidationError) else f"  {error}"
    return f"invalid configuration:\n{detail}"


def _config_error(name: str, message: str) -> int:
    print(f"{name}: {message}", file=sys.stderr)
    return EXIT_CONFIG
