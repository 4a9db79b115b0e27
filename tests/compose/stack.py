"""The docker-compose.yml stack under test: compose commands, published URLs, health, and small waits."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.compose.engine import run

T = TypeVar("T")

# Published ports the test gives each service (each a *_BIND variable of docker-compose.yml).
PUBLISHED = {
    "WEBHOOK_BIND": "proxy",
    "MAILCATCHER_BIND": "mailcatcher",
    "SIMULATOR_BIND": "simulator",
    "RECEIVER_BIND": "pipeline-receiver",
    "PROMETHEUS_BIND": "prometheus",
    "RABBITMQ_UI_BIND": "rabbitmq",
}
# What the run measured, printed at the end of the session (tests/compose/conftest.py).
REPORT: dict[str, Any] = {}
# The profiles CI starts; "grafana" and "mailpit" need images that cannot be built here.
PROFILES = ("demo",)
# One-shot services: they have done their part when they have exited with code 0 (no health check).
ONE_SHOT = {"topology"}
DEMO_ENV_FILE = "deploy/demo.env"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` (and the last error) if it never does."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (requests.RequestException, ValueError, KeyError, subprocess.SubprocessError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


@dataclass
class Stack:
    """One running project of docker-compose.yml: its compose command, published ports and environment."""

    compose: list[str]
    project: str
    ports: dict[str, int]  # service -> published port on 127.0.0.1
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def dc(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        profiles = [arg for name in PROFILES for arg in ("--profile", name)]
        # The demo's passwords: docker-compose.yml has no defaults for them (README's demo command says the same).
        env_file = ["--env-file", DEMO_ENV_FILE]
        return run([*self.compose, *env_file, *profiles, *args], env=self.env, timeout=timeout, check=check)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def get(self, service: str, path: str) -> Any:
        resp = requests.get(self.url(service, path), timeout=10)
        resp.raise_for_status()
        return resp.json()

    def containers(self) -> dict[str, dict[str, Any]]:
        """service name -> `docker inspect` of its container (one-off `run` containers left out)."""
        ids = self.dc("ps", "-q").stdout.split()
        if not ids:
            return {}
        inspected = json.loads(run(["docker", "inspect", *ids], env=self.env).stdout)
        return {
            c["Config"]["Labels"]["com.docker.compose.service"]: c
            for c in inspected
            if c["Config"]["Labels"].get("com.docker.compose.oneoff", "False") == "False"
        }

    def unhealthy(self, services: set[str] | None = None) -> dict[str, str]:
        """Services not (yet) running and healthy (one-shots: not exited 0), with their state.

        Every service but a one-shot must have a health check.
        """
        states = {}
        for service, container in self.containers().items():
            if services is not None and service not in services:
                continue
            if service in ONE_SHOT:
                state = container["State"]
                if state["Status"] != "exited" or state["ExitCode"] != 0:
                    states[service] = f"{state['Status']}/exit {state['ExitCode']}"
                continue
            health = container["State"].get("Health")
            assert health is not None, f"{service} has no health check: every service in the stack needs one"
            if container["State"]["Status"] != "running" or health["Status"] != "healthy":
                states[service] = f"{container['State']['Status']}/{health['Status']}"
        return states

    def wait_healthy(self, services: set[str] | None = None, timeout: float = 180) -> None:
        wait_for(
            "every container healthy",
            lambda: not self.unhealthy(services) or None,
            timeout,
        )

    def exec_python(self, service: str, code: str) -> str:
        return self.dc("exec", "-T", service, "python", "-c", code).stdout

    def metrics_text(self, service: str, port: int) -> str:
        """A process's own /metrics, read inside its container (its port is not published)."""
        url = f"http://127.0.0.1:{port}/metrics"
        return self.exec_python(
            service, f"import urllib.request;print(urllib.request.urlopen({url!r}).read().decode())"
        )

    def metric(self, service: str, port: int, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The sum of ``name``'s samples whose labels include ``labels`` (in any order), or None if there are none."""
        wanted = dict(labels or {})
        values = [
            sample.value
            for family in text_string_to_metric_families(self.metrics_text(service, port))
            for sample in family.samples
            if sample.name == name and wanted.items() <= sample.labels.items()
        ]
        return sum(values) if values else None
