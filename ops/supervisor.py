"""Runs the pipeline's processes side by side, restarts a crashed one, and stops them all together.

Each stage stays its own OS process (as in production); the supervisor only starts, watches and stops them,
and hands every line they print to a callback (the terminal, a test's log collector).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from ops.console import say
from shared.runtime.exit_codes import EXIT_FAILED, EXIT_OK, RESTART_CANNOT_HELP


@dataclass(frozen=True)
class ChildSpec:
    """One child process: its name, its argv and the environment it adds."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


class Supervisor:
    """Starts the children, hands on their output line by line, restarts a crashed one and stops them all together."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        on_line: Callable[[str, str], None],
        restart: bool = True,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self._specs = list(specs)
        self._on_line = on_line
        self._restart = restart
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._processes: dict[str, subprocess.Popen[str]] = {}
        self._restarts: dict[str, int] = {}
        self._stopping = threading.Event()
        self._paused: set[str] = set()
        self.fatal: str | None = None
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        for spec in self._specs:
            self._spawn(spec)
        self._watcher.start()
        return self

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self._specs]

    def process(self, name: str) -> subprocess.Popen[str]:
        return self._processes[name]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one child (fault tests); the watcher restarts it."""
        self._processes[name].send_signal(sig)

    def pause(self, name: str, timeout: float = 20.0) -> None:
        """Stop one child (SIGTERM, as a deploy would) and keep it stopped until :meth:`resume`."""
        self._paused.add(name)
        process = self._processes[name]
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def resume(self, name: str) -> None:
        """Start a paused child again."""
        spec = next(spec for spec in self._specs if spec.name == name)
        self._spawn(spec)
        self._paused.discard(name)

    def restarts(self, name: str) -> int:
        return self._restarts.get(name, 0)

    def wait(self) -> None:
        """Block until stop() is called or a child fails in a way a restart cannot fix."""
        while not self._stopping.is_set():
            self._stopping.wait(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child (they finish the message in hand), then SIGKILL what is left after ``timeout``."""
        self._stopping.set()
        for process in self._processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        deadline = time.monotonic() + timeout
        for process in self._processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def _spawn(self, spec: ChildSpec) -> None:
        process = subprocess.Popen(
            list(spec.argv),
            env={**self._base_env, **spec.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
        )
        self._processes[spec.name] = process
        threading.Thread(target=self._pump, args=(spec.name, process), daemon=True).start()

    def _pump(self, name: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._on_line(name, line.rstrip("\n"))

    def _watch(self) -> None:
        restart_at: dict[str, float] = {}
        while not self._stopping.wait(0.2):
            for spec in self._specs:
                if spec.name in self._paused:
                    continue
                if spec.name in restart_at:
                    if time.monotonic() >= restart_at[spec.name]:
                        del restart_at[spec.name]
                        self._spawn(spec)
                    continue
                code = self._processes[spec.name].poll()
                if code is None:
                    continue
                if code in RESTART_CANNOT_HELP or not self._restart:
                    self.fatal = f"{spec.name} exited with code {code}"
                    self._on_line("supervisor", f"{self.fatal}: stopping everything")
                    threading.Thread(target=self.stop, daemon=True).start()
                    return
                count = self._restarts.get(spec.name, 0) + 1
                self._restarts[spec.name] = count
                delay = min(30.0, 0.25 * 2 ** min(count, 7))
                self._on_line("supervisor", f"{spec.name} exited with code {code}; restart #{count} in {delay:.1f}s")
                restart_at[spec.name] = time.monotonic() + delay


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


CONSUMERS = {"classifier": "consumers.classifier", "mover": "consumers.mover", "notifier": "consumers.notifier"}


JOURNAL_WRITER = "journal"


def pipeline_children(replicas: int = 1, *, reconcilers: int = 1) -> list[ChildSpec]:
    """The pipeline's processes, each started exactly as in production: the ingress, the stages, the reconciler
    and the journal writer (one: the journal queue's single active consumer makes a second a stand-by).

    With ``replicas`` > 1 each stage runs that many times (``classifier-1``, ``classifier-2``...), as several hosts
    would run it: the ingress stays one (a load balancer would spread DocSpace's deliveries over several).
    ``reconcilers`` is how many reconcilers run (``reconciler``, ``reconciler-2``...; one is enough).
    """
    children = [ChildSpec("ingress", python_module("ingress"))]
    for name, module in CONSUMERS.items():
        names = [name] if replicas == 1 else [f"{name}-{n}" for n in range(1, replicas + 1)]
        children += [ChildSpec(child, python_module(module)) for child in names]
    children += [
        ChildSpec("reconciler" + (f"-{n + 1}" if n else ""), python_module("consumers.reconciler"))
        for n in range(reconcilers)
    ]
    children.append(ChildSpec(JOURNAL_WRITER, python_module("consumers.journal")))
    return children


def wait_for_pipeline(
    ingress_internal_url: str,
    started: Callable[[], set[str]],
    supervisor: Supervisor,
    timeout: float = 30,
    consumers: set[str] | None = None,
) -> None:
    """Block until the ingress is ready and every consumer has started consuming; raise RuntimeError if not.

    ``ingress_internal_url`` is the ingress's internal base URL (``METRICS_PORT``), where its ``/readyz`` is.
    ``consumers`` names the consumer processes to wait for (the replicas' names, when stages run several times).
    """
    consumers = consumers if consumers is not None else set(CONSUMERS)
    import requests  # only the supervisor's readiness check needs HTTP

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.fatal is not None:
            raise RuntimeError(supervisor.fatal)
        try:
            ready = requests.get(ingress_internal_url + "/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            ready = False
        if ready and consumers <= started():
            return
        time.sleep(0.1)
    raise RuntimeError(f"the pipeline was not ready within {timeout:.0f}s")


def supervise(supervisor: Supervisor) -> int:
    """Wait for the supervised processes until Ctrl-C or SIGTERM, then stop them; 1 if one could not run."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        say("\nStopping: each process finishes the message in hand…")
        supervisor.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor.wait()
    if supervisor.fatal:
        say(f"✗ {supervisor.fatal}: see the lines above for why")
        return EXIT_FAILED
    return EXIT_OK
