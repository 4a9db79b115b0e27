"""Starts the product's processes (and the baselines) as separate OS processes, logging to files; reads their RSS."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pika
import requests

from shared.broker.connection import connection_parameters
from shared.broker.topology import Topology
from shared.config.settings import DEFAULT_AMQP_URL, CommonSettings

AMQP_URL = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
# The replica sections share claims and the DocSpace limit in Redis, as replicas on several hosts would.
REDIS_URL = "redis://127.0.0.1:6379/14"
LOG_DIR = Path("var/bench")


class Proc:
    """One child process (``python -m module``), its output in ``var/bench/<name>.log``.

    ``cwd`` is the source tree it runs from (another checkout, say): ``python -m`` imports from its working
    directory first, so the same interpreter runs that tree's code.
    """

    def __init__(self, name: str, module: str, env: Mapping[str, str], *args: str, cwd: Path | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        spool = (LOG_DIR / f"{name}.spool").resolve()  # absolute: the child may run in another directory
        shutil.rmtree(spool, ignore_errors=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            # Each process its own spool: a backlog left by an earlier run would send every delivery to disk.
            env={**os.environ, "LOG_FORMAT": "json", "AMQP_URL": AMQP_URL, "SPOOL_DIR": str(spool), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        self.peak_rss_mb = 0.0

    def rss_mb(self) -> float:
        """Resident memory now (and remembered as the peak)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        self.peak_rss_mb = max(self.peak_rss_mb, kb / 1024)
        return kb / 1024

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def wait_http(url: str, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: see {proc.log_path}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready within {timeout:.0f}s: see {proc.log_path}")


def topology(prefix: str) -> Topology:
    return Topology.from_settings(CommonSettings(topology_prefix=prefix))


def wait_consumers(prefix: str, stages: Mapping[str, Proc], timeout: float = 30) -> None:
    """Block until every stage's work queue has a consumer."""
    top = topology(prefix)
    connection = pika.BlockingConnection(connection_parameters(AMQP_URL, name="bench"))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        for stage, proc in stages.items():
            while True:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited: see {proc.log_path}")
                with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                    if channel.queue_declare(top.stage(stage).work, passive=True).method.consumer_count:
                        break
                if not channel.is_open:
                    channel = connection.channel()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no consumer on {stage} within {timeout:.0f}s: see {proc.log_path}")
                time.sleep(0.1)
    finally:
        connection.close()


def queue_depths(prefix: str) -> dict[str, int]:
    """Messages left in every queue of the topology (work, retry and dead-letter queues)."""
    top = topology(prefix)
    connection = pika.BlockingConnection(connection_parameters(AMQP_URL, name="bench"))
    depths: dict[str, int] = {}
    try:
        channel = connection.channel()
        for name in top.all_queue_names():
            try:
                depths[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                channel = connection.channel()
    finally:
        connection.close()
    return depths


def delete_topology(prefix: str) -> None:
    connection = pika.BlockingConnection(connection_parameters(AMQP_URL, name="bench"))
    try:
        topology(prefix).delete(connection.channel())
    finally:
        connection.close()
